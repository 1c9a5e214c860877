"""What the facts from Asterisk mean for our legs, callers and phones, told to the core.

=======================  ==================================================================
fact                     core event
=======================  ==================================================================
ChannelRinging (a leg)   ``agent_ringing``; the held ``ring`` goes to the agent's screen
OriginateAnswered        ``agent_answered`` / ``customer_answered``
OriginateFailed,         ``ring_failed(cause)`` / ``customer_dial_failed(cause)`` for a leg
ChannelHungUp            not answered; ``agent_hung_up`` / ``caller_hung_up`` for one that
                         was; a waiting caller's hangup: ``caller_hung_up``
BridgeLeft (unexpected)  the first leave of a conversation says who hung up
ChannelCreated/HungUp    ``phone_in_use`` when an agent phone's use changes
ContactChanged           ``contact_status``; a phone that stops answering while it rings or
                         talks: ``phone_lost``
AsteriskStopping         ``channels_lost``: every call in Asterisk is lost
=======================  ==================================================================

Call control moves channels out of bridges itself, so the leaves it causes (and those that
follow as a two-party bridge dissolves) are expected and no hangup (:class:`Bridges`).
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from acd.runtime import ami_in as f
from acd.runtime.channels import AGENT_LEG, MONITOR_PREFIX, Bridges, Caller, Channels, Leg
from acd.runtime.phones import Phones

#: OriginateResponse Reason -> cause for the core.
ORIGINATE_REASON = {1: "hangup", 3: "no_answer", 5: "busy", 8: "congestion"}
#: Hangup Cause (Q.850) -> cause for the core.
HANGUP_CAUSE = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected", 20: "unreachable",
                3: "unreachable", 34: "congestion", 38: "congestion", 16: "hangup",
                0: "cancelled"}


def _known_cause(cause: int | None) -> bool:
    return cause is not None and cause in HANGUP_CAUSE and cause not in (0, 16)


def ring_cause(leg: Leg, reason: int | None) -> str:
    """Why a ring or dial ended without an answer, in the core's words."""
    if _known_cause(leg.cause):
        return HANGUP_CAUSE[leg.cause]            # type: ignore[index]
    if reason in ORIGINATE_REASON:
        return ORIGINATE_REASON[reason]           # type: ignore[index]
    return "unreachable" if leg.channel is None else "failed"


class Tracker:
    """Routes facts about channels to the core (see the module docstring). ``feed(what, fn,
    *args, **bind)`` calls a core event with the time and carries out its decisions."""

    def __init__(self, channels: Channels, bridges: Bridges, phones: Phones, *, acd: Any,
                 feed: Callable[..., Any], hangup: Callable[[str, str | None, str | None], None],
                 pages: Any, records: Any, log: Any, clock: Callable[[], float],
                 leg_ended: Callable[[str, str, str], None] = lambda *a: None,
                 monitors: Any = None) -> None:
        self.ch, self.bridges, self.phones = channels, bridges, phones
        self.monitors = monitors        # supervisors' channels (acd.runtime.monitor)
        self.acd, self.feed, self.hangup = acd, feed, hangup
        self.pages = pages              # the held rings (see effects.Pages)
        self.records, self.log, self.clock = records, log, clock
        self.leg_ended = leg_ended      # (call, agent, leg): an agent's leg is gone
        self.rebuilding = True          # facts come from a rebuild's reading, not events
        self.asterisk_stopping = False  # it said it is shutting down


    # ================================================================ channels and legs

    def _monitoring(self, uid: str) -> bool:
        """A supervisor's monitoring channel: no leg of any call, the monitors' alone."""
        return self.monitors is not None and uid.startswith(MONITOR_PREFIX)

    def created(self, e: f.ChannelCreated) -> None:
        if self._monitoring(e.uid):
            self.monitors.created(e.uid, e.channel)
            return
        self.phone_channel(e.channel, e.uid, True)
        leg = self.ch.legs.get(e.uid)
        if leg is not None:
            leg.channel = e.channel
            if leg.cancelled:
                self.hangup(leg.uid, leg.call_id, leg.agent_id)

    def state(self, e: f.ChannelRinging) -> None:
        leg = self.ch.legs.get(e.uid)
        if leg is None:
            return
        leg.channel = e.channel or leg.channel
        if leg.cancelled:
            self.hangup(leg.uid, leg.call_id, leg.agent_id)
            return
        if e.ringing and not leg.ringing and leg.kind == AGENT_LEG:
            leg.ringing = True
            self.feed("agent_ringing", self.acd.agent_ringing, leg.call_id, leg.agent_id,
                      call=leg.call_id, agent=leg.agent_id)
            self.pages.release_ring(leg.call_id, leg.agent_id)

    def answered(self, e: f.OriginateAnswered) -> None:
        if self._monitoring(e.uid):
            self.monitors.answered(e.uid)
            return
        leg = self.ch.legs.get(e.uid)
        if leg is None:
            return
        leg.answered = True
        if e.channel:
            leg.channel = e.channel
        if leg.cancelled or leg.reported or not self.ch.is_current(leg):
            self.hangup(leg.uid, leg.call_id, leg.agent_id)
            return
        leg.reported = True
        self.log.info("runtime.leg_answered", call=leg.call_id, agent=leg.agent_id,
                      leg=leg.uid, kind=leg.kind, channel=leg.channel)
        if leg.kind == AGENT_LEG:
            self.pages.release_ring(leg.call_id, leg.agent_id)
            self.feed("agent_answered", self.acd.agent_answered, leg.call_id, leg.agent_id,
                      call=leg.call_id, agent=leg.agent_id)
        else:
            self.feed("customer_answered", self.acd.customer_answered, leg.call_id,
                      call=leg.call_id, agent=leg.agent_id)

    def originate_failed(self, e: f.OriginateFailed) -> None:
        if self._monitoring(e.uid):
            self.monitors.originate_failed(e.uid)
            return
        leg = self.ch.legs.get(e.uid)
        if leg is None:
            return
        known = e.reason in ORIGINATE_REASON or _known_cause(leg.cause)
        if not known and leg.channel is not None and not leg.gone:
            # No cause yet (Reason 0): the channel's Hangup, which follows, carries it (a
            # rejected ring is busy or rejected, not just "failed").
            leg.reason = e.reason
            return
        cause = ring_cause(leg, e.reason)
        self.log.info("runtime.leg_failed", call=leg.call_id, agent=leg.agent_id, leg=leg.uid,
                      kind=leg.kind, reason=e.reason, cause=cause)
        self.leg_failed(leg, cause)
        if leg.channel is None:       # never got a channel: nothing will hang up later
            self.ch.forget_leg(leg)

    def leg_failed(self, leg: Leg, cause: str) -> None:
        """A ring or customer dial ended without an answer: tell the core once."""
        if leg.reported or leg.cancelled or not self.ch.is_current(leg):
            leg.reported = True
            return
        leg.reported = True
        if leg.kind == AGENT_LEG:
            self.pages.drop_ring(leg.call_id, leg.agent_id)
            self.feed("ring_failed", self.acd.ring_failed, leg.call_id, leg.agent_id, cause,
                      call=leg.call_id, agent=leg.agent_id)
        else:
            self.feed("customer_dial_failed", self.acd.customer_dial_failed, leg.call_id,
                      cause, call=leg.call_id, agent=leg.agent_id)

    def hangup_cause(self, e: f.HangupCause) -> None:
        leg = self.ch.legs.get(e.uid)
        if leg is not None and leg.cause is None:
            leg.cause = e.cause

    def hung_up(self, e: f.ChannelHungUp) -> None:
        if self._monitoring(e.uid):
            self.monitors.hung_up(e.uid)
            return
        self.phone_channel(e.channel, e.uid, False)
        self.bridges.gone(e.uid)
        leg = self.ch.legs.get(e.uid)
        if leg is not None:
            leg.gone = True
            if leg.cause is None and e.cause is not None:
                leg.cause = e.cause
            self.leg_gone(leg)
            return
        ctx = self.ch.caller(e.uid)
        if ctx is not None and (e.channel == ctx.channel or not e.channel):
            self.caller_gone(ctx)
        elif ctx is None and self.ch.forget_expected(e.uid):
            self.log.info("runtime.caller_gone_before_queue", call=e.uid)
            self.records.call_ended(e.uid, "caller_hangup", self.clock())

    def leg_gone(self, leg: Leg) -> None:
        if leg.kind == AGENT_LEG and leg.answered:
            self.leg_ended(leg.call_id, leg.agent_id, leg.uid)
        if leg.answered and self.ch.is_current(leg) and not leg.cancelled:
            self.log.info("runtime.leg_hangup", call=leg.call_id, agent=leg.agent_id,
                          leg=leg.uid, kind=leg.kind, cause=leg.cause)
            self._answered_leg_hung_up(leg)
            if leg.kind == AGENT_LEG:
                # A callback's customer still being dialled: abort that dial.
                cust = self.ch.customer(leg.call_id)
                if cust is not None and not cust.answered:
                    cust.cancelled = True
                    self.hangup(cust.uid, cust.call_id, cust.agent_id)
        elif not leg.answered:
            self.leg_failed(leg, ring_cause(leg, leg.reason))
        self.ch.forget_leg(leg)

    def _answered_leg_hung_up(self, leg: Leg) -> None:
        if leg.kind == AGENT_LEG:
            self.feed("agent_hung_up", self.acd.agent_hung_up, leg.call_id, leg.agent_id,
                      call=leg.call_id, agent=leg.agent_id)
        else:
            self.feed("caller_hung_up", self.acd.caller_hung_up, leg.call_id,
                      call=leg.call_id, agent=leg.agent_id)

    def caller_gone(self, ctx: Caller) -> None:
        ctx.gone = True
        self.ch.callers.pop(ctx.call_id, None)
        if ctx.sent or self.acd.call_state(ctx.call_id) is None:
            return          # sent on already, or not registered yet (the queue sees it)
        self.log.info("runtime.caller_hangup", call=ctx.call_id, channel=ctx.channel)
        self.feed("caller_hung_up", self.acd.caller_hung_up, ctx.call_id, call=ctx.call_id)

    def renamed(self, e: f.ChannelRenamed) -> None:
        leg = self.ch.legs.get(e.uid)
        if leg is not None:
            leg.channel = e.channel
        ctx = self.ch.caller(e.uid)
        if ctx is not None:
            ctx.channel = e.channel

    def voicemail(self, e: f.VoicemailLeft) -> None:
        self.records.event(e.call_id, "voicemail", self.clock(),
                           {"file": e.file, "mailbox": e.mailbox})

    # ================================================================ bridges

    def bridge_entered(self, e: f.BridgeEntered) -> None:
        self.bridges.entered(e.uid, e.bridge)
        ctx = self.ch.caller(e.uid)
        if ctx is not None:
            ctx.bridged = True

    def bridge_left(self, e: f.BridgeLeft) -> None:
        """Whoever leaves a conversation's bridge first hung up (the other side follows: the
        dialplan hangs it up). The Hangup events come later, in either order, so the first
        BridgeLeave is what tells the caller's hangup from the agent's."""
        if self.bridges.left(e.uid, e.bridge):
            return
        leg = self.ch.legs.get(e.uid)
        if leg is not None and leg.answered and self.ch.is_current(leg) and not leg.cancelled:
            self.log.info("runtime.left_bridge", call=leg.call_id, agent=leg.agent_id,
                          kind=leg.kind)
            self._answered_leg_hung_up(leg)
            return
        ctx = self.ch.caller(e.uid)
        if ctx is not None and ctx.bridged and not ctx.sent and e.channel == ctx.channel:
            self.log.info("runtime.left_bridge", call=ctx.call_id, kind="caller")
            self.feed("caller_hung_up", self.acd.caller_hung_up, ctx.call_id,
                      call=ctx.call_id)

    # ================================================================ phones

    def phone_channel(self, channel: str, uid: str, up: bool) -> None:
        """A channel of an agent's phone came or went: the core hears when the phone turns
        in use or free (no ring reaches a phone still closing its last call)."""
        changed = self.phones.channel(channel, uid, up)
        if changed is not None:
            self.phone_in_use(*changed)

    def phone_in_use(self, endpoint: str, in_use: bool) -> None:
        self.feed("phone_in_use", self.acd.phone_in_use, endpoint, in_use,
                  agent=self.phones.agent_of.get(endpoint))

    def contact(self, e: f.ContactChanged) -> None:
        try:
            reachable = self.phones.contact_status(e.endpoint, e.uri, e.status)
        except ValueError:             # not Asterisk's: the phone is as it was
            self.log.warning("runtime.contact_status_ignored", endpoint=e.endpoint,
                             uri=e.uri[:200], status=e.status[:40])
            return
        if reachable is None:
            return
        was = self.acd.phone_reachable(e.endpoint)
        self.set_reachable(e.endpoint, reachable)
        status = e.status.strip().lower()
        if (status == "unreachable" or (status == "removed" and _websocket(e.uri))) and (
                was and not reachable and not self.asterisk_stopping):
            # The phone stopped answering (its qualify failed), or a browser phone's contact
            # went with its WebSocket (the tab closed or crashed: no BYE comes; a SIP phone's
            # clean unregister comes after its BYE and is no loss): a ring on it cannot go on;
            # a conversation is taken back if the phone is still unreachable after the core's
            # grace (asterisk.phone_lost_qualifies; see Acd.phone_lost).
            agent = self.phones.agent_of[e.endpoint]
            cause = "unreachable" if status == "unreachable" else "unregistered"
            self.log.warning("runtime.phone_lost", agent=agent, endpoint=e.endpoint, uri=e.uri,
                             cause=cause)
            self.feed("phone_lost", self.acd.phone_lost, agent, cause, agent=agent)

    def set_reachable(self, endpoint: str, reachable: bool, *, always: bool = False) -> None:
        """Tell the core (the one owner of the fact) when the phone's reachability changed."""
        if not always and self.acd.phone_reachable(endpoint) == reachable:
            return
        # ``always``: every phone at a rebuild (debug: not a line per agent at each start).
        (self.log.debug if always else self.log.info)("runtime.phone", endpoint=endpoint,
                                                      reachable=reachable)
        self.feed("contact_status", self.acd.contact_status, endpoint, reachable,
                  agent=self.phones.agent_of.get(endpoint))

    # ================================================================ Asterisk went away

    def asterisk_stopping_now(self, _e: f.AsteriskStopping) -> None:
        """Asterisk says it is shutting down (SoftHangupRequest with the shutdown flag on
        every channel, then the Shutdown event): its calls are lost, and no phone can ring
        until it is back (the reconnect reads the phones again)."""
        if self.asterisk_stopping or self.rebuilding:
            return
        self.asterisk_stopping = True
        self.log.warning("runtime.asterisk_stopping")
        self.phones.forget_contacts()
        for ep in self.phones.agent_of:
            self.set_reachable(ep, False)
        self.asterisk_lost("asterisk_shutdown")

    def asterisk_lost(self, cause: str, keep: Collection[str] = ()) -> None:
        """Every channel in Asterisk is gone: forget our callers and legs (their hangups, if
        any come, are no news) and let the core end the calls as lost. Outbound calls are
        left to their legs' hangups; ``keep``: calls already in the new Asterisk."""
        outbound = {leg.call_id for leg in self.ch.legs.values()
                    if self.acd.is_outbound(leg.call_id)}
        self.log.warning("runtime.asterisk_lost", cause=cause, callers=len(self.ch.callers),
                         legs=len(self.ch.legs))
        for leg in list(self.ch.legs.values()):
            if leg.call_id not in outbound and leg.call_id not in keep:
                leg.gone = leg.reported = True
                self.ch.forget_leg(leg)
        for ctx in list(self.ch.callers.values()):
            if ctx.call_id in keep:
                continue
            ctx.gone = True
            del self.ch.callers[ctx.call_id]
        self.pages.drop_all_rings()
        self.bridges.clear()
        now = self.clock()
        for uid in list(self.ch.expected):       # handed to the queue, never arrived there
            self.ch.forget_expected(uid)
            self.records.event(uid, "lost", now, {"detail": cause})
            self.records.call_ended(uid, "lost", now)
        self.feed("channels_lost", lambda now: self.acd.channels_lost(cause, now, keep=keep))


__all__ = ["Tracker", "ring_cause", "ORIGINATE_REASON", "HANGUP_CAUSE"]


def _websocket(uri: str) -> bool:
    """A contact registered over SIP over WebSocket (the agent page's browser phone)."""
    return any(p.strip().lower() in ("transport=ws", "transport=wss") for p in uri.split(";")[1:])
