"""The ACD runtime: the public API, and the one loop between Asterisk and the pure core.

Everything that happens comes in here and goes one way::

    AMI event --ami_in.translate--> fact --FACTS--> core event --> decisions --DECISIONS--> handler
    queue script, agent's request, timer, service hours ---------> core event --^

The two tables a newcomer reads first are :meth:`AcdRuntime._fact_table` (what each fact from
Asterisk means: :mod:`acd.runtime.tracking`) and :meth:`AcdRuntime._decision_table` (who
carries out each decision of the core: :mod:`acd.runtime.telephony` over AMI,
:mod:`acd.runtime.effects` for timers, pages and records, :mod:`acd.runtime.queue` for the
waiting callers' sessions). Every decision type the core can emit has exactly one handler
(``tests/unit/test_runtime_tables.py``); one without a handler is logged as an error, never
dropped in silence. A refused event (:class:`~acd.core.AcdError`) is logged and changes
nothing; a failed AMI action is logged with its call and agent and fed back to the core as the
matching failure.

The parts (ledgers, phones, AMI out, telephony, effects, queue, restore) never route: each
returns facts or decisions, or is handed ``feed``/``apply`` from here.

Callers wait in Asterisk, not in our memory: the queue script registers a caller through
:meth:`AcdRuntime.caller_arrived`. After a restart, the first AMI login rebuilds the core
from Asterisk's channels and the store (:mod:`acd.runtime.plan`, :mod:`acd.runtime.restore`);
the AMI events that come meanwhile are held and routed once it is done. Every later login
reconciles: Asterisk's channels are compared with what we know, and what we missed comes back
as facts. Asterisk itself stopping or restarting loses every channel in it: the calls end as
``lost``, the agents return to their true states, and the phones count again once a qualify
answers.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from acd import log as acdlog
from acd.ami import events as ev
from acd.ami.client import AmiError, AmiTimeout
from acd.asterisk import dialplan as dp
from acd.core import (Acd, AcdError, Announce, BridgeCall, BridgeConsult, BridgeTarget,
                      CancelRing, CancelTimer, Decision, DialCustomer, DropLeg, HoldCaller,
                      InviteRating, Notify, OutboundEnded, OutboundStarted, RecordAgentState,
                      RecordCallEvent, RecordControl, RecordLeg, RecordLegWrapup, RegroupCaller,
                      ReleaseLegs, RequeueCaller, ResumeCaller, RingAgent, RingAgentForCallback,
                      RingAgentForOutbound, RingTarget, SendToDestination, SendToSurvey,
                      StartTimer)
from acd.errors import UserError
from acd.hours import ServiceHours
from acd.recordings import group_share as _share, recording_name
from acd.runtime.reconfigure import reconfigure
from acd.runtime import ami_in as f
from acd.runtime.ami_out import AmiOut
from acd.runtime.channels import AGENT_LEG, Bridges, Channels
from acd.runtime.effects import Pages, Records, Timers, utc
from acd.runtime.phones import Phones
from acd.runtime.plan import plan
from acd.runtime.monitor import Monitors
from acd.runtime.overload import PING_TIMEOUT, LoopLag
from acd.runtime.queue import Queue
from acd.runtime.recorder import Recorder
from acd.runtime.restore import Restorer
from acd.runtime.telephony import Telephony
from acd.runtime.tracking import Tracker
from acd.store.writer import StoreWriter

RECONCILE_ATTEMPTS = 30    # a reconcile that cannot read Asterisk yet (booting) tries again
RECONCILE_RETRY_SECONDS = 1.0
#: Decisions that change nothing the supervisors see (no snapshot is pushed for them).
_UNSEEN = (StartTimer, CancelTimer, Announce, RecordLeg, RecordLegWrapup)


class AcdRuntime:
    """See the module docstring. Plain values in; ``app.py`` wires it."""

    def __init__(self, acd: Acd, ami: Any, store: Any, hub: Any, *,
                 endpoints: Mapping[str, str], groups: Sequence[Any] = (),
                 names: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time,
                 customer_dial: str = dp.CUSTOMER_DIAL, hotline_number: str = "",
                 ring_grace: float = 2.0, hours_interval: float = 60.0,
                 outbound_caller_id: str = "", outbound_enabled: bool = True,
                 outbound_ring_timeout: float = 20.0,
                 outbound_dial_timeout: float = 45.0, max_lag: float = 0.5,
                 max_asterisk: float = 0.0,
                 recordings_spool: tuple[str, Path] | None = None,
                 recordings_folder: Path | None = None, recordings_keep_days: int = 0,
                 supervisor_phones: Mapping[str, str] | None = None,
                 rng: random.Random | None = None) -> None:
        self.acd, self.ami, self.store, self.hub, self.clock = acd, ami, store, hub, clock
        self.endpoints = dict(endpoints)                 # agent id -> PJSIP endpoint
        self.names = dict(names or {})
        self.group_cfg = {g.name: g for g in groups}     # acd.config.GroupConfig
        self.hotline_number = hotline_number
        self.hours_interval = hours_interval
        self.outbound_caller_id = outbound_caller_id
        self.outbound_enabled = outbound_enabled
        self.outbound_ring_timeout = outbound_ring_timeout
        self.outbound_dial_timeout = outbound_dial_timeout
        self.writer = StoreWriter()
        self.ready = asyncio.Event()
        self.log = acdlog.get_logger(component="runtime")
        self.lag = LoopLag(max_lag, self.log, max_asterisk=max_asterisk,
                           ping=self._asterisk_round_trip)
        self._rebuilt = self._rebuilding = False
        self._buffer: list[ev.AmiEvent] | None = []     # AMI events held until the rebuild
        self._open: dict[str, bool] = {}                 # group -> open (service hours)
        self._hours_task: asyncio.Task | None = None
        self._ami_up = False
        self._asterisk_started: str | None = None       # CoreStatus: when Asterisk started
        self._recordings = (recordings_spool, recordings_folder or Path("recordings"), rng,
                            recordings_keep_days)
        self.supervisor_phones = dict(supervisor_phones or {})   # web user -> phone endpoint
        self._wire(customer_dial, ring_grace)

    def _wire(self, customer_dial: str, ring_grace: float) -> None:
        """The parts, each handed what it needs."""
        log, clock, acd = self.log, self.clock, self.acd
        self.channels, self.bridges = Channels(), Bridges()
        self.phones = Phones(self.endpoints)
        self.out = AmiOut(self.ami, log)
        self.records = Records(self.store, self.writer, log, clock)
        spool, folder, rng, keep_days = self._recordings
        self.recorder = Recorder(
            self.out, self.records, shares={name: _share(g) for name, g in self.group_cfg.items()},
            group_of=acd.call_group, leg_channel=self._leg_channel, spool=spool,
            folder=folder, log=log, clock=clock, rng=rng, store=self.store,
            keep_days=keep_days)
        self.records.call_done = self.recorder.call_ended
        self._timers = Timers(clock, self._timer_fired)
        self.pages = Pages(self.hub, log, ringing=self._phone_rings,
                           save_pending=self.records.save_pending, snapshot=self._snapshot)
        self.monitors = Monitors(self.channels, self.out, acd=acd, log=log, clock=clock,
                                 phones=self.supervisor_phones)
        self.tracker = Tracker(self.channels, self.bridges, self.phones, acd=acd,
                               feed=self.feed, hangup=self.out.hangup, pages=self.pages,
                               records=self.records, log=log, clock=clock,
                               leg_ended=self.recorder.leg_ended, monitors=self.monitors)
        self.telephony = Telephony(
            self.channels, self.bridges, self.out, acd=acd, log=log, clock=clock,
            leg_failed=self.tracker.leg_failed, feed_later=self._feed_later,
            drop_ring=self.pages.drop_ring, customer_dial=customer_dial,
            outbound_cid=self._outbound_cid, ring_grace=ring_grace,
            talking=self.recorder.bridged)
        keys = {name: g.callback.key if g.callback is not None else None
                for name, g in self.group_cfg.items()}
        self.queue = Queue(self.channels, self.records, self.out, acd=acd, store=self.store,
                           log=log, clock=clock, apply=self.apply, wait_ready=self.wait_ready,
                           callback_keys=keys, admit=self.lag.admit)
        self.restorer = Restorer(self.channels, self.bridges, self.phones, self.out,
                                 self.records, acd=acd, store=self.store, log=log, clock=clock,
                                 telephony=self.telephony, take_phones=self._take_phones)
        self._facts = self._fact_table()
        self._decisions = self._decision_table()

    # ================================================================ the two tables

    def _fact_table(self) -> dict[type, Callable[[Any], None]]:
        """Each fact from Asterisk (:mod:`acd.runtime.ami_in`) -> what it means."""
        t = self.tracker
        return {f.ChannelCreated: t.created, f.ChannelRinging: t.state,
                f.OriginateAnswered: t.answered, f.OriginateFailed: t.originate_failed,
                f.HangupCause: t.hangup_cause, f.ChannelHungUp: t.hung_up,
                f.AsteriskStopping: t.asterisk_stopping_now, f.ContactChanged: t.contact,
                f.BridgeEntered: t.bridge_entered, f.BridgeLeft: t.bridge_left,
                f.ChannelRenamed: t.renamed, f.VoicemailLeft: t.voicemail,
                f.KeyPressed: self.queue.key_pressed,
                f.CallerWaiting: self.queue.caller_waiting}

    def _decision_table(self) -> dict[type, Callable[[Any], None]]:
        """Each decision of the core -> the one handler that carries it out."""
        tel, rec, q = self.telephony, self.records, self.queue
        return {
            # telephony over AMI (acd.runtime.telephony)
            RingAgent: tel.ring, RingAgentForCallback: tel.ring, CancelRing: tel.cancel_ring,
            BridgeCall: tel.bridge_call, DialCustomer: tel.dial_customer,
            SendToDestination: tel.send, ReleaseLegs: tel.release_legs,
            RegroupCaller: tel.regroup, HoldCaller: tel.hold, ResumeCaller: tel.resume,
            BridgeTarget: tel.bridge_target, RingTarget: tel.ring_target,
            BridgeConsult: tel.bridge_consult, DropLeg: tel.drop_leg,
            RequeueCaller: tel.requeue, InviteRating: tel.invite_rating,
            SendToSurvey: tel.to_survey, RingAgentForOutbound: tel.ring_for_outbound,
            # waiting callers (acd.runtime.queue)
            Announce: q.announce,
            # timers, pages, records (acd.runtime.effects)
            StartTimer: self._timers.start, CancelTimer: self._timers.cancel,
            Notify: self.pages.notify, RecordCallEvent: rec.call_event,
            RecordAgentState: rec.agent_state, RecordControl: rec.control,
            RecordLeg: rec.leg, RecordLegWrapup: rec.leg_wrapup,
            OutboundStarted: rec.outbound_started, OutboundEnded: rec.outbound_ended,
        }

    def _leg_channel(self, call_id: str, agent_id: str) -> str | None:
        leg = self.channels.agent_leg(call_id, agent_id)
        return leg.channel if leg is not None and not leg.gone else None

    # ================================================================ the loop

    def on_ami_event(self, event: ev.AmiEvent) -> None:
        """The AMI event callback: never blocks, never raises."""
        if self._buffer is not None:
            self._buffer.append(event)
            return
        try:
            fact = f.translate(event)
            if fact is not None:
                self.route(fact)
        except Exception:
            self.log.exception("runtime.event_failed", event_name=event.name,
                               channel=getattr(event, "channel", None))

    def route(self, fact: f.Fact) -> None:
        self._facts[type(fact)](fact)

    def feed(self, what: str, fn: Callable[..., list[Decision]], *args: Any,
             **bind: Any) -> list[Decision]:
        """Call a core event with ``now``; log a refusal; carry out the decisions."""
        try:
            out = fn(*args, self.clock())
        except AcdError as exc:
            self.log.warning("runtime.event_refused", event_name=what, error=exc.id,
                             message=exc.message, **bind)
            return []
        except Exception:
            self.log.exception("runtime.core_error", event_name=what, **bind)
            return []
        self.apply(out)
        return out

    def _feed_later(self, what: str, fn: Callable[..., list[Decision]], *args: Any,
                    **bind: Any) -> None:
        """Feed on the next loop turn (a decision's failure known at once)."""
        async def later() -> None:
            await asyncio.sleep(0)
            self.feed(what, fn, *args, **bind)
        self.out.spawn(later(), what)

    def apply(self, decisions: Iterable[Decision]) -> None:
        """Carry out decisions in order, each by its one handler (AMI actions become tasks,
        one chain per call). The supervisors' snapshot follows once per loop turn."""
        seen = False
        for d in decisions:
            handler = self._decisions.get(type(d))
            if handler is None:
                self.log.error("runtime.decision_unhandled", decision=type(d).__name__,
                               call=getattr(d, "call_id", None),
                               agent=getattr(d, "agent_id", None))
                continue
            try:
                handler(d)
            except Exception:
                self.log.exception("runtime.decision_failed", decision=type(d).__name__,
                                   call=getattr(d, "call_id", None),
                                   agent=getattr(d, "agent_id", None))
            seen |= not isinstance(d, _UNSEEN) and (not isinstance(d, Notify)
                                                    or d.event == "state")
        if seen:
            self.pages.snapshot_soon()

    def _timer_fired(self, key: str) -> None:
        self.feed("timer_fired", self.acd.timer_fired, key, timer=key)

    # ================================================================ life

    def attach(self) -> None:
        """Register with the AMI client (events and connection changes)."""
        self.ami.on_event(self.on_ami_event)
        self.ami.on_connection(self.on_ami_connection)

    async def _asterisk_round_trip(self) -> float | None:
        """One AMI Ping's round trip (seconds), for the overload watch; None with no link.
        No answer within the watch's timeout counts as that long."""
        if not self._ami_up:
            return None
        t0 = time.monotonic()
        try:
            await self.ami.action("Ping", timeout=PING_TIMEOUT)
        except AmiTimeout:
            return PING_TIMEOUT
        except AmiError:
            return None
        return time.monotonic() - t0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.out.loop = self._timers.loop = self.pages.loop = loop
        self.writer.start()
        self.lag.start()
        self.recorder.start()

    async def stop(self) -> None:
        await self.recorder.stop()
        await self.lag.stop()
        self._timers.stop()
        await self.out.stop()
        await self.writer.stop()

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def quiesce(self) -> None:
        """Wait until every AMI action and store write started so far is done (tests,
        shutdown)."""
        while True:
            tasks = [t for t in self.out.tasks if t is not self._hours_task]
            if not tasks:
                break
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.drain()

    async def flush(self) -> None:
        """Wait until everything stored so far is written (the HTTP layer answers a call
        control action after its record is written: a crash then loses nothing)."""
        await self.writer.flush()

    # ================================================================ public API (HTTP)

    def login(self, agent_id: str) -> dict[str, Any]:
        endpoint = self._endpoint(agent_id)
        return self._act(agent_id, lambda now: self.acd.agent_login(agent_id, endpoint, now))

    def logout(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.agent_logout(agent_id, now))

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.set_agent_state(agent_id, state, now,
                                                                        reason))

    def set_member(self, group: str, agent_id: str, level: int | None) -> None:
        """Membership changed on the admin page: routing follows at once (acd.core)."""
        self._endpoint(agent_id)
        if not self.ready.is_set():
            raise UserError("acd.starting", "The ACD is still taking up its state from "
                                            "Asterisk and the database; try again in a moment.")
        self.apply(self.acd.set_member(group, agent_id, level, self.clock()))

    def reconfigure(self, cfg: Any) -> None:
        """Agents, groups, supervisors' phones changed on the admin page (reconfigure.py)."""
        reconfigure(self, cfg)

    def end_wrapup(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.end_wrapup(agent_id, now))

    # ---- call control: the agent's actions on their call. A refusal raises an AcdError
    # with a stable id and changes nothing; otherwise the agent's snapshot is returned.

    def hold(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.hold_call(agent_id, now))

    def resume(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.resume_call(agent_id, now))

    def transfer(self, agent_id: str, *, to_agent: str | None = None,
                 to_group: str | None = None) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.transfer(
            agent_id, now, to_agent=to_agent, to_group=to_group))

    def cancel_transfer(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.cancel_transfer(agent_id, now))

    def consult(self, agent_id: str, *, to_agent: str | None = None,
                to_group: str | None = None) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.consult(
            agent_id, now, to_agent=to_agent, to_group=to_group))

    def complete_consult(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.complete_consult(agent_id, now))

    def return_from_consult(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.return_from_consult(agent_id, now))

    def to_survey(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.to_survey(agent_id, now))

    def invite_rating(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.invite_rating(agent_id, now))

    def hangup(self, agent_id: str) -> dict[str, Any]:
        return self._act(agent_id, lambda now: self.acd.hang_up(agent_id, now))

    def dial(self, agent_id: str, number: str) -> dict[str, Any]:
        """The agent's outbound call: their phone rings first, then ``number`` is dialled
        with the configured caller id. The call is recorded like any other."""
        if not self.outbound_enabled:
            raise UserError("dial.not_configured", "Outbound calls need outbound.dial, the "
                                                   "way to reach customers.")
        call_id = self.channels.next_id("out")
        return self._act(agent_id, lambda now: self.acd.dial(
            agent_id, number, now, call_id=call_id, ring_timeout=self.outbound_ring_timeout,
            dial_timeout=self.outbound_dial_timeout))

    def pause_recording(self, agent_id: str) -> dict[str, Any]:
        """The agent's conversation is not recorded until resumed (card numbers): silence
        in the file, the span on the call's timeline."""
        self._endpoint(agent_id)
        return self.recorder.pause(agent_id)

    def resume_recording(self, agent_id: str) -> dict[str, Any]:
        self._endpoint(agent_id)
        return self.recorder.resume(agent_id)

    # ---- supervisors on live calls (acd.runtime.monitor)

    def monitor(self, user: str, mode: str, *, call_id: str | None = None,
                agent_id: str | None = None) -> dict[str, Any]:
        """Listen, whisper or barge on a connected call from the supervisor's phone (a
        session on another call moves here; on this call, the mode changes)."""
        if not self.ready.is_set():
            raise UserError("acd.starting", "the ACD is starting; try again in a moment")
        return self.monitors.start(user, mode, call_id=call_id, agent_id=agent_id)

    def monitor_mode(self, user: str, mode: str) -> dict[str, Any]:
        return self.monitors.change(user, mode)

    def monitor_stop(self, user: str) -> dict[str, Any]:
        return self.monitors.stop(user)

    def monitoring(self, user: str) -> dict[str, Any] | None:
        return self.monitors.view(user)

    def _act(self, agent_id: str, action: Callable[[float], list[Decision]]) -> dict[str, Any]:
        self._endpoint(agent_id)
        if not self.ready.is_set():
            raise UserError("acd.starting", "The ACD is still taking up its state from "
                                            "Asterisk and the database; try again in a moment.")
        self.apply(action(self.clock()))
        return self.agent(agent_id)

    def agent(self, agent_id: str) -> dict[str, Any]:
        """The agent's snapshot: state, pending state, reachable, and the current call."""
        self._endpoint(agent_id)
        return self._agent_view(agent_id, self.acd.agent_snapshot(agent_id, self.clock()))

    def agents(self) -> dict[str, Any]:
        snap = self.acd.snapshot_agents(self.clock())
        return {a: self._agent_view(a, snap.get(a)) for a in self.endpoints}

    def queues(self) -> dict[str, Any]:
        return self.acd.snapshot_queues(self.clock())

    def call_info(self, call_id: str) -> dict[str, Any]:
        return self.acd.call_info(call_id)

    def timers(self) -> dict[str, float]:
        """The timers we hold for the core: key -> due time (for tests and supervisors)."""
        return self._timers.due()

    def fire_timer(self, key: str) -> None:
        """Fire a timer now (tests drive time this way with an injected clock)."""
        self._timers.fire_now(key)

    def _agent_view(self, agent_id: str, snap: dict[str, Any] | None) -> dict[str, Any]:
        endpoint = self.endpoints[agent_id]
        if snap is None:       # configured, in no skill group, never logged in
            snap = {"state": "offline", "reason": "", "since": None, "in_state_for": None,
                    "endpoint": None, "available": False, "unavailable_reason": "logged out",
                    "pending": None, "pending_reason": None, "call_id": None, "groups": {},
                    "calls_answered": 0, "idle_since": None}
        out = {"agent_id": agent_id, "name": self.names.get(agent_id, agent_id),
               "phone": endpoint, **snap, "can_dial": self.outbound_enabled}
        # The core owns the fact; until Asterisk was read, no phone counts.
        out["reachable"] = self._rebuilt and self.acd.phone_reachable(endpoint)
        call_id = snap.get("call_id")
        out["call"] = out["control"] = None
        if call_id:
            try:
                info = self.acd.call_info(call_id)
                info.pop("timeline", None)
                out["call"] = info
            except AcdError:
                pass
            control = self.acd.control_info(call_id)
            # The call's control is the agent's only while they are a party to it (its owner,
            # or the agent a transfer rings): after handing it over (in wrap-up, say) the
            # call is theirs no more, and the page must not offer its actions.
            transfer = (control or {}).get("transfer") or {}
            if control is not None and agent_id in (control.get("owner"),
                                                    control.get("agent_id"),   # outbound
                                                    transfer.get("target_agent")):
                out["control"] = control
        # The recording of the agent's conversation (paused or not): the page shows it,
        # after a reload too (a pause for card numbers must not look like none).
        out["recording"] = self.recorder.status(agent_id) if call_id else None
        return out

    def _endpoint(self, agent_id: str) -> str:
        endpoint = self.endpoints.get(agent_id)
        if endpoint is None:
            raise UserError("agent.unknown", f"There is no agent {agent_id!r}.")
        return endpoint

    def _phone_rings(self, call_id: str, agent_id: str) -> bool:
        leg = self.channels.agent_leg(call_id, agent_id)
        return leg is not None and (leg.ringing or leg.answered)

    def _snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {"queues": self.acd.snapshot_queues(now), "agents": self.acd.snapshot_agents(now)}

    def _outbound_cid(self) -> str | None:
        """Caller id of calls to customers: ``outbound.caller_id``, else the hotline."""
        if self.outbound_caller_id:
            return self.outbound_caller_id
        return f"<{self.hotline_number}>" if self.hotline_number else None

    # ================================================================ the queue script

    async def caller_arrived(self, *, uniqueid: str, channel: str, caller_number: str,
                             caller_name: str, did: str, group: str, priority: int,
                             entered: float, ivr: bool = True) -> bool:
        """The queue script registers a caller. A caller the core knows (back after a
        restart, a requeue or a cut) is attached again; a new one enters the queue of
        ``group`` at ``entered`` (the ACD_ENTERED the script keeps). ``ivr``: the caller came
        through an IVR (keys may be on record); False (a group's own number): there is no key
        trail to look for. True: the caller waits (in Asterisk: the script sends them to
        ``wait``); False: the call is over for the ACD (the script sends the caller away).
        AcdError: refused."""
        return await self.queue.arrive(uniqueid=uniqueid, channel=channel,
                                       caller_number=caller_number, caller_name=caller_name,
                                       did=did, group=group, priority=priority, entered=entered,
                                       ivr=ivr)

    async def caller_on_record(self, call_id: str,
                               before_waiting: Callable[[], Awaitable[Any]] | None = None
                               ) -> None:
        """Wait (bounded) until the caller's entry is on record (see Queue.on_record);
        ``before_waiting`` runs first if there is anything to wait for."""
        await self.queue.on_record(call_id, before_waiting)

    def expect_caller(self, uniqueid: str, key_trail: Sequence[str] | None = None) -> None:
        """The IVR hands this call to the queue, with the keys the caller pressed (the key
        trail as stored): the queue script then registers the caller without reading the
        store. Should the caller hang up before that, the record still gets its end reason."""
        self.queue.expect(uniqueid, key_trail)

    def callback_requested(self, call_id: str, number: str) -> None:
        """The caller confirmed ``number`` (the ``callback`` script). AcdError: refused."""
        self.queue.callback_requested(call_id, number)

    def callback_not_requested(self, call_id: str) -> None:
        """The caller did not confirm a number: they wait on."""
        self.queue.callback_not_requested(call_id)

    def caller_number(self, call_id: str) -> str:
        """A waiting caller's number (as they called, if it is a number; else "")."""
        return self.queue.caller_number(call_id)

    def callback_key(self, call_id: str) -> str | None:
        """The key that asks for a callback in the call's current group (None: none)."""
        return self.queue.callback_key(call_id)

    # ================================================================ AMI link

    def on_ami_connection(self, up: bool) -> None:
        self._ami_up = up
        if not up:
            if self.out.stopping or getattr(self.ami, "closing", False):
                self.log.info("runtime.ami_closed")     # our own stop: nothing is wrong
            else:
                self.log.warning("runtime.ami_down")
            # No rings while there is no link: each would fail at once and send the caller
            # on to the next agent, and the next. Released once the link is reconciled.
            self._hold_offers(True)
        elif not self._rebuilt:
            self.out.spawn(self._rebuild(), "rebuild")
        else:
            self.out.spawn(self._reconcile(), "reconcile")

    async def _rebuild(self) -> None:
        """First AMI login: take the state up from Asterisk and the store, then resume."""
        if self._rebuilding or self._rebuilt:
            return
        self._rebuilding = True
        log = self.log.bind(phase="rebuild")
        try:
            started = self.clock()
            try:
                reading, self._asterisk_started = await self.restorer.read()
            except AmiError as exc:
                log.warning("runtime.rebuild_postponed", error=str(exc))
                return
            except Exception:
                log.exception("runtime.rebuild_read_failed")
                reading = None
            counts: dict[str, int] = {}
            if reading is not None:
                try:
                    p = plan(reading, self.clock(), self.endpoints, self.acd.wrapup_seconds)
                    out, counts = self.restorer.apply(p, reading)
                    self.apply(out)
                    self.restorer.after_apply(p)
                except Exception:
                    log.exception("runtime.rebuild_failed")
            await self._take_up_recordings()
            self._finish_rebuild(reading.reachable if reading else {})
            log.info("runtime.rebuilt", took=round(self.clock() - started, 3), **counts)
        finally:
            self._rebuilding = False

    async def _take_up_recordings(self) -> None:
        """Recordings under way before a restart go on; those whose leg is gone now are
        finished."""
        try:
            await self.recorder.take_up(self.store)
        except Exception:
            self.log.exception("recording.take_up_failed")
            return
        names = set()
        for leg in self.channels.legs.values():
            if leg.kind == AGENT_LEG and not leg.gone:
                try:
                    names.add(recording_name(leg.call_id, leg.uid))
                except ValueError:
                    pass
        self.recorder.still_talking(names)

    def _finish_rebuild(self, reachable: Mapping[str, bool]) -> None:
        now = self.clock()
        self._rebuilt = True
        try:
            self.apply(self.acd.hold_offers(not self._ami_up, now))
        except Exception:
            self.log.exception("runtime.resume_failed")
        for ep, ok in reachable.items():
            self.tracker.set_reachable(ep, ok, always=True)
        # A pending state used up while we were away is cleared in the store too.
        for agent_id, saved in self.records.pending_saved().items():
            snap = self.acd.agent_snapshot(agent_id, now)
            have = (snap["pending"], snap["pending_reason"] or "") if snap else saved
            if have != saved:
                self.records.save_pending(Notify(agent_id, "state", {
                    "pending": have[0], "pending_reason": have[1]}))
        self._check_hours()
        held, self._buffer = self._buffer or [], None
        self.tracker.rebuilding = False
        for e in held:
            self.on_ami_event(e)
        self.ready.set()
        self._hours_task = self.out.spawn(self._hours_loop(), "hours")
        self.pages.snapshot_soon()

    def _hold_offers(self, held: bool) -> None:
        if held == self.acd.offers_held:
            return
        self.log.info("runtime.offers_held" if held else "runtime.offers_released")
        try:
            self.apply(self.acd.hold_offers(held, self.clock()))
        except Exception:
            self.log.exception("runtime.hold_offers_failed")

    async def _reconcile(self) -> None:
        """A later AMI login: feed the core what happened while the link was down; then
        the offers held meanwhile go out (even if Asterisk could not be read)."""
        try:
            await self._reconcile_channels()
        finally:
            if self._ami_up:
                self._hold_offers(False)

    async def _reconcile_channels(self) -> None:
        """Asterisk may still be booting when the link comes back (AMI answers before its
        modules are loaded): a failed read is tried again while the link stays up."""
        log = self.log.bind(phase="reconcile")
        for attempt in range(RECONCILE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RECONCILE_RETRY_SECONDS)
                if not self._ami_up:
                    return
            try:
                started = await self.out.core_started()
                channels, seen = await self._channels_and_since()
                contacts = await self.out.contacts()
                break
            except AmiError as exc:
                log.warning("runtime.reconcile_failed", error=str(exc), attempt=attempt + 1)
        else:
            return
        present = {str(c.get("Uniqueid")): c for c in channels}
        self._take_phones(channels, seen)   # first: an agent freed below rings a free phone
        restarted = started is not None and self._asterisk_started not in (None, started)
        # After a crash, only a qualify's answer proves a phone (see Phones.load_contacts);
        # after a clean stop Asterisk wrote its registrations out: they are the phones' own.
        reachable = self.phones.load_contacts(
            contacts, proven=restarted and not self.tracker.asterisk_stopping)
        answered_before = {leg.uid for leg in self.channels.legs.values() if leg.answered}
        if restarted:
            # Asterisk restarted while the link was down (a crash, or a stop we did not hear
            # of): whatever it held is lost, even if no event told us. (A caller who reached
            # the new Asterisk already is kept.) The phones first: the agents freed may ring.
            log.warning("runtime.asterisk_restarted", was=self._asterisk_started, now=started)
            for ep, ok in reachable.items():
                self.tracker.set_reachable(ep, ok)
            self.tracker.asterisk_lost("asterisk_restart", keep=set(present))
        self._asterisk_started = started or self._asterisk_started
        self.tracker.asterisk_stopping = False
        for fact in self.restorer.reconcile(present):
            self.route(fact)
        self.restorer.rebridge(present, answered_before)
        for ep, ok in reachable.items():
            self.tracker.set_reachable(ep, ok)
        log.info("runtime.reconciled", channels=len(channels))

    async def _channels_and_since(self) -> tuple[list[dict[str, Any]], list[Any]]:
        """CoreShowChannels, and the phones' channel events seen while it was read (a Hangup
        that overtakes the list is not undone by it)."""
        seen = self.phones.watch()
        try:
            return await self.out.channels(), seen
        finally:
            self.phones.unwatch(seen)

    def _take_phones(self, channels: Iterable[Mapping[str, Any]], since: Sequence = ()) -> None:
        for ep, in_use in self.phones.take_channels(channels, since):
            self.tracker.phone_in_use(ep, in_use)

    # ================================================================ service hours, checks

    def _check_hours(self) -> None:
        at = utc(self.clock())
        for name, g in self.group_cfg.items():
            if not g.hours and not g.holidays:
                continue
            try:
                is_open = ServiceHours.of(g).is_open(at)
            except Exception:
                self.log.exception("runtime.hours_failed", group=name)
                continue
            if self._open.get(name) == is_open:
                continue
            self._open[name] = is_open
            self.log.info("runtime.group_hours", group=name, open=is_open)
            self.feed("set_group_open", self.acd.set_group_open, name, is_open, group=name)

    async def check_phones(self) -> None:
        """An idle agent whose phone counts as in use: read Asterisk's channels again, in case
        a Hangup never came (only a lost event or a forged one could cause that)."""
        busy = self.phones.busy_agents()
        if not self._ami_up or not busy:
            return
        now = self.clock()
        if not any((self.acd.agent_snapshot(a, now) or {}).get("state") == "idle"
                   for a in busy):
            return
        try:
            channels, seen = await self._channels_and_since()
        except AmiError as exc:
            self.log.warning("runtime.phone_check_failed", error=str(exc))
            return
        self._take_phones(channels, seen)

    async def _hours_loop(self) -> None:
        while True:
            await asyncio.sleep(self.hours_interval)
            self._check_hours()
            try:
                await self.check_phones()
            except Exception:
                self.log.exception("runtime.phone_check_failed")
            old = self.clock() - 3600        # handed over by the IVR, never seen since
            for uid in [u for u, at in self.channels.expected.items() if at < old]:
                self.channels.forget_expected(uid)


__all__ = ["AcdRuntime"]
