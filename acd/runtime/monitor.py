"""Supervisors on live calls: listen, whisper, barge, from their own SIP phone.

A supervisor with a phone (``web.users[].phone``) picks a connected call (or the agent on
it); the runtime rings the supervisor's phone (AMI Originate) into the dialplan's
``[acd-monitor]``, which spies on the agent's leg of the call (ChanSpy, ``ACD_SPY``):

=========  ====================================================================
listen     the supervisor hears both sides; nobody hears the supervisor
whisper    the agent hears the supervisor; the caller does not
barge      both hear the supervisor
=========  ====================================================================

A mode change while connected is a Redirect of the supervisor's channel to the mode's
extension (ChanSpy starts again on the same leg: the supervisor stays on the line). Stop is
a hangup of that channel. Monitoring ends by itself with the agent's leg: the call ended,
or a transfer took the caller to another agent (ChanSpy ``E``; the supervisor picks the
call again to follow it). The supervisor's channel is no leg of the call: nothing of it
reaches the core, the call's record or its statistics. One monitoring session per
supervisor; picking another call moves it there.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acd.asterisk import dialplan as dp
from acd.core import AcdError
from acd.errors import UserError
from acd.runtime.ami_out import AmiOut
from acd.runtime.channels import MONITOR_PREFIX, Channels

MODES = dp.MONITOR_MODES
#: How long the supervisor's phone rings before the monitoring is given up (seconds).
RING_SECONDS = 30


@dataclass(eq=False)
class Monitor:
    """One supervisor's monitoring of one call."""
    user: str
    phone: str
    call_id: str
    agent_id: str
    spied: str               # the agent's leg's channel
    mode: str
    uid: str                 # the supervisor's channel (ChannelId we chose)
    started: float
    channel: str = ""
    answered: bool = False

    def view(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "agent_id": self.agent_id, "mode": self.mode,
                "phone": self.phone, "answered": self.answered, "started_at": self.started}


class Monitors:
    """Monitoring sessions by supervisor, and by the Uniqueid of their phone's channel."""

    def __init__(self, channels: Channels, out: AmiOut, *, acd: Any, log: Any,
                 clock: Callable[[], float], phones: Mapping[str, str]) -> None:
        self.ch, self.out, self.acd, self.log, self.clock = channels, out, acd, log, clock
        self.phones = dict(phones)              # supervisor (web user) -> phone endpoint
        self.by_user: dict[str, Monitor] = {}
        self.by_uid: dict[str, Monitor] = {}

    # ---------------------------------------------------------------- asked for

    def start(self, user: str, mode: str, *, call_id: str | None = None,
              agent_id: str | None = None) -> dict[str, Any]:
        """Monitor the call (by its id, or the agent's current call) in ``mode``; a session
        on another call is ended first, one on the same call changes mode."""
        mode = _mode(mode)
        phone = self.phones.get(user)
        if not phone:
            raise UserError("monitor.no_phone", f"{user} has no phone to monitor from "
                            "(web.users[].phone in the configuration)")
        call_id, agent_id = self._connected(call_id, agent_id)
        leg = self.ch.agent_leg(call_id, agent_id)
        if leg is None or leg.gone or not leg.answered or not leg.channel:
            raise UserError("monitor.no_call", f"agent {agent_id} has no live leg on call "
                            f"{call_id}")
        now = self.clock()
        old = self.by_user.get(user)
        if old is not None and old.call_id == call_id and old.spied == leg.channel:
            return self.change(user, mode)
        if old is not None:
            self._end(old, "moved")
        uid = f"{self.ch.next_id(MONITOR_PREFIX[:-1])}-{phone}"[:60]
        m = Monitor(user, phone, call_id, agent_id, leg.channel, mode, uid, now)
        self.by_user[user] = self.by_uid[uid] = m
        self.log.info("monitor.started", user=user, call=call_id, agent=agent_id, mode=mode,
                      phone=phone)
        self.out.chain(uid, self.out.originate(
            call_id, agent_id, lambda exc: self._failed(m, str(exc)),
            Channel=dp.AGENT_DIAL.format(endpoint=phone), Context=dp.MONITOR_CONTEXT,
            Exten=mode, Priority=1, Timeout=RING_SECONDS * 1000, ChannelId=uid,
            CallerID=f'"Monitor {agent_id}" <{agent_id}>', Variable=[f"{dp.SPY}={m.spied}"]))
        return m.view()

    def change(self, user: str, mode: str) -> dict[str, Any]:
        """Switch the mode while connected (the supervisor stays on the line)."""
        mode = _mode(mode)
        m = self._session(user)
        if m.mode != mode:
            m.mode = mode
            self.log.info("monitor.mode", user=user, call=m.call_id, mode=mode)
            if m.channel:
                self.out.chain(m.uid, self.out.redirect(m.channel, m.call_id,
                                                        dp.MONITOR_CONTEXT, mode))
        return m.view()

    def stop(self, user: str) -> dict[str, Any]:
        m = self._session(user)
        self._end(m, "stopped")
        return {"stopped": True, "call_id": m.call_id}

    def view(self, user: str) -> dict[str, Any] | None:
        m = self.by_user.get(user)
        return None if m is None else m.view()

    # ---------------------------------------------------------------- Asterisk says

    def created(self, uid: str, channel: str) -> None:
        m = self.by_uid.get(uid)
        if m is None:
            return
        m.channel = channel
        if self.by_user.get(m.user) is not m:      # stopped before it was there
            self.out.hangup(channel, m.call_id, m.agent_id)

    def answered(self, uid: str) -> None:
        m = self.by_uid.get(uid)
        if m is not None:
            m.answered = True
            self.log.info("monitor.answered", user=m.user, call=m.call_id)

    def originate_failed(self, uid: str) -> None:
        """The supervisor's phone did not answer (or cannot be reached)."""
        m = self.by_uid.get(uid)
        if m is not None:
            self._failed(m, "the supervisor's phone did not answer")

    def hung_up(self, uid: str) -> None:
        """The supervisor's channel ended (hung up, the agent's leg gone, stopped)."""
        m = self.by_uid.pop(uid, None)
        if m is not None and self.by_user.get(m.user) is m:
            del self.by_user[m.user]
            self.log.info("monitor.ended", user=m.user, call=m.call_id,
                          seconds=round(self.clock() - m.started, 1))

    # ---------------------------------------------------------------- inside

    def _connected(self, call_id: str | None, agent_id: str | None) -> tuple[str, str]:
        if call_id:
            try:
                info = self.acd.call_info(call_id)
            except AcdError:            # an unknown call
                raise UserError("monitor.no_call", f"no call {call_id!r}") from None
            owner = info.get("agent_id")
            if info.get("state") != "connected" or not owner:
                raise UserError("monitor.no_call",
                                f"call {call_id} is not connected with an agent")
            if agent_id and agent_id != owner:
                raise UserError("monitor.no_call", f"call {call_id} is not agent {agent_id}'s")
            return call_id, owner
        if agent_id:
            snap = self.acd.agent_snapshot(agent_id, self.clock())
            if snap is None:
                raise UserError("agent.unknown", f"no agent {agent_id!r}")
            if not snap.get("call_id"):
                raise UserError("monitor.no_call", f"agent {agent_id} is on no call")
            return str(snap["call_id"]), agent_id
        raise UserError("monitor.no_call", "say which call (call_id) or agent (agent)")

    def _session(self, user: str) -> Monitor:
        m = self.by_user.get(user)
        if m is None:
            raise UserError("monitor.none", f"{user} monitors no call")
        return m

    def _end(self, m: Monitor, why: str) -> None:
        self.by_user.pop(m.user, None)
        self.log.info("monitor.stopping", user=m.user, call=m.call_id, why=why)
        if m.channel:       # else not there yet: hung up once it is (created)
            self.out.hangup(m.channel, m.call_id, m.agent_id)

    def _failed(self, m: Monitor, why: str) -> None:
        self.log.warning("monitor.failed", user=m.user, call=m.call_id, error=why[:200])
        self.by_uid.pop(m.uid, None)
        if self.by_user.get(m.user) is m:
            del self.by_user[m.user]


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError("monitor.bad_mode", f"mode is one of {', '.join(MODES)}, not {mode!r}")
    return mode


__all__ = ["MODES", "MONITOR_PREFIX", "Monitor", "Monitors"]
