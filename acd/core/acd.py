"""The ACD core: one object, events in, decisions out. No I/O, no clock, no asyncio.

Every event method takes ``now`` (seconds, any monotonic clock the adapter likes) and returns
the list of decisions for the adapters to carry out, in order. See :mod:`acd.core` for the
contract.

Internals, in short:

* agents and calls change state only through the tables in :mod:`acd.core.agent_states`
  and :mod:`acd.core.calls`;
* a call's place in the routing indexes follows from its state, group, levels and
  reservation: every change goes ``_detach`` -> change -> ``_attach``;
* agents that became available and calls that became offerable are collected while an
  event is handled and matched at the end (``_settle``): agents first, then calls in queue
  order. After every event no offerable call has an eligible available agent.
"""
from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from acd.core import agent_states as ags
from acd.core import calls as cls
from acd.core.agent_states import (MANUAL_STATES, SYSTEM_STATES, WORKING_STATES, AgentEvent,
                                   AgentState)
from acd.core.calls import (CALLBACK_STATES, LIVE_WAITING_STATES, OFFERABLE_STATES,
                            QUEUED_STATES, Call, Callback, CallEvent, CallEventKind, CallRecord,
                            CallState, EndReason)
from acd.core.config import (CallbackSettings, Destination, DestinationKind, GroupConfig,
                             validate_groups)
from acd.core.control import CallControl
from acd.core.decisions import (Announce, BridgeCall, CancelRing, CancelTimer, Decision,
                                DialCustomer, Notify, RecordAgentState, RecordCallEvent,
                                RegroupCaller, ReleaseLegs, RingAgent, RingAgentForCallback,
                                SendToDestination, StartTimer)
from acd.core.errors import (CallbackDisabled, CallbackNumberMissing, DuplicateCall,
                             EndpointInUse, EndpointMissing, NotAManualState, RestoreInvalid,
                             UnknownCall, UnknownGroup)
from acd.core.timers import (CALL_TIMERS, CONTROL_TIMERS, QUEUE_TIMERS, T_ANNOUNCE,
                             T_CB_EXPIRE, T_CB_RETRY, T_FAMILIAR, T_MAXWAIT, T_RETRY, T_RING,
                             T_WIDEN, T_WRAPUP, split_key, timer_key)
from acd.core.routing import Entry, IdleAgents, SortedList, Strategy, WaitingCalls, idle_entry


class SendReason(StrEnum):
    CLOSED = "closed"
    NO_AGENTS = "no_agents"
    QUEUE_FULL = "queue_full"
    MAX_WAIT = "max_wait"


_SEND_EVENT = {
    SendReason.CLOSED: CallEvent.SEND_CLOSED,
    SendReason.NO_AGENTS: CallEvent.SEND_NO_AGENTS,
    SendReason.QUEUE_FULL: CallEvent.SEND_OVERFLOW,
    SendReason.MAX_WAIT: CallEvent.SEND_OVERFLOW,
}

#: A conversation ended by a hangup: the caller's channel goes too.
_HANGUP_ENDS = frozenset({EndReason.CALLER_HANGUP, EndReason.AGENT_HANGUP})
_NO_ANSWER_CAUSES = frozenset({"no_answer", "noanswer", "no answer", "timeout"})


@dataclass(slots=True, eq=False)
class _Agent:
    agent_id: str
    groups: dict[str, int] = field(default_factory=dict)   # group -> skill level
    state: AgentState = AgentState.OFFLINE
    reason: str = ""
    since: float = 0.0
    endpoint: str | None = None
    pending: tuple[AgentState, str] | None = None
    idle_since: float = 0.0
    call_id: str | None = None          # ringing, talking, or wrapping up this call
    calls_answered: int = 0
    last_offer: dict[str, int] = field(default_factory=dict)   # group -> offer sequence
    available: bool = False             # idle, logged in, reachable: in the idle indexes
    indexed: list[tuple[IdleAgents, int, Entry]] = field(default_factory=list)
    handle_started: float | None = None
    handle_group: str | None = None


@dataclass(slots=True)
class _Stats:
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0
    closed: int = 0
    no_agents: int = 0
    callbacks_requested: int = 0
    callbacks_failed: int = 0
    callbacks_expired: int = 0


@dataclass(slots=True, eq=False)
class _Group:
    cfg: GroupConfig
    open: bool
    member_index: dict[str, int]
    idle: IdleAgents
    waiting: WaitingCalls = field(default_factory=WaitingCalls)
    queue: SortedList = field(default_factory=SortedList)        # keys of QUEUED_STATES calls
    calls: dict[str, Call] = field(default_factory=dict)          # live calls homed here
    call_counts: Counter[CallState] = field(default_factory=Counter)
    agent_counts: Counter[AgentState] = field(default_factory=Counter)
    stats: _Stats = field(default_factory=_Stats)
    aht: float = 180.0                                            # handle time, moving average

    @property
    def logged_in(self) -> int:
        return len(self.cfg.members) - self.agent_counts[AgentState.OFFLINE]

    @property
    def working(self) -> int:
        return sum(self.agent_counts[s] for s in WORKING_STATES)

    @property
    def live_waiting(self) -> int:
        return sum(self.call_counts[s] for s in LIVE_WAITING_STATES)


class Acd(CallControl):
    """The ACD core. Construct it with the skill groups; feed it events; carry out what the
    returned decisions ask. ``rng`` drives the ``random`` strategy (seed it for tests). Call
    control (hold, transfers, consults, survey, outbound) comes from
    :class:`~acd.core.control.CallControl`."""

    def __init__(self, groups: Iterable[GroupConfig], *, rng: random.Random | None = None,
                 keep_ended: int = 10_000, familiar_memory: int = 100_000) -> None:
        by_name = validate_groups(groups)
        self._rng = rng if rng is not None else random.Random(0)
        self._keep_ended = keep_ended
        self._familiar_memory = familiar_memory
        self._agents: dict[str, _Agent] = {}
        self._groups: dict[str, _Group] = {}
        for name, cfg in by_name.items():
            g = _Group(cfg=cfg, open=cfg.open,
                       member_index={a: i for i, a in enumerate(cfg.members)},
                       idle=IdleAgents(Strategy(cfg.strategy), list(cfg.members.values())),
                       aht=cfg.expected_handle_time)
            g.agent_counts[AgentState.OFFLINE] = len(cfg.members)
            self._groups[name] = g
            for agent_id, level in cfg.members.items():
                agent = self._agents.get(agent_id)
                if agent is None:
                    agent = self._agents[agent_id] = _Agent(agent_id)
                agent.groups[name] = level
        self._calls: dict[str, Call] = {}
        self._ended: OrderedDict[str, Call] = OrderedDict()
        self._timers: dict[str, float] = {}
        self._reachable: dict[str, bool] = {}
        self._in_use: set[str] = set()
        self._by_endpoint: dict[str, str] = {}
        self._familiar: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._reserved: dict[str, SortedList] = {}
        self._seq = 0
        self._out: list[Decision] = []
        self._dirty_agents: list[_Agent] = []
        self._dirty_calls: list[Call] = []
        self._init_control()

    # ================================================================ agent events

    def agent_login(self, agent_id: str, endpoint: str, now: float) -> list[Decision]:
        """The agent logs in, bound to the SIP ``endpoint``; they become idle."""
        self._begin()
        agent = self._agents.get(agent_id) or _Agent(agent_id)
        step = ags.next_state(agent_id, agent.state, AgentEvent.LOGIN)
        if not endpoint:
            raise EndpointMissing(agent_id)
        holder = self._by_endpoint.get(endpoint)
        if holder is not None and holder != agent_id:
            raise EndpointInUse(endpoint, holder)
        self._agents[agent_id] = agent
        agent.endpoint = endpoint
        self._by_endpoint[endpoint] = agent_id
        self._apply_agent_step(agent, step, now, "login")
        return self._settle(now)

    def agent_logout(self, agent_id: str, now: float, reason: str = "logout") -> list[Decision]:
        """Same as ``set_agent_state(agent_id, "offline", ...)``: pending during a call."""
        return self.set_agent_state(agent_id, AgentState.OFFLINE, now, reason)

    def set_agent_state(self, agent_id: str, state: AgentState | str, now: float,
                        reason: str = "") -> list[Decision]:
        """The agent asks for a manual state (idle, busy, break, meeting, offline). During a
        call (ringing, talking, wrap-up) it becomes pending and applies afterwards."""
        self._begin()
        try:
            wanted = AgentState(state)
        except ValueError:
            raise NotAManualState(agent_id, str(state)) from None
        if wanted not in MANUAL_STATES:
            raise NotAManualState(agent_id, wanted.value)
        agent = self._agents.get(agent_id) or _Agent(agent_id)
        self._agent_event(agent, ags.REQUEST_EVENT[wanted], now, reason)
        return self._settle(now)

    def end_wrapup(self, agent_id: str, now: float) -> list[Decision]:
        """The agent ends their after-call work early."""
        self._begin()
        agent = self._agents.get(agent_id) or _Agent(agent_id)
        ags.next_state(agent_id, agent.state, AgentEvent.WRAPUP_END)   # raises if illegal
        self._cancel_timer(timer_key(T_WRAPUP, agent_id))
        self._finish_wrapup(agent, now)
        return self._settle(now)

    def contact_status(self, endpoint: str, reachable: bool, now: float) -> list[Decision]:
        """AMI ContactStatus: the endpoint's phone is (un)reachable. Unknown endpoints count
        as reachable; an agent whose phone is unreachable gets no calls."""
        self._begin()
        before = self._reachable.get(endpoint, True)
        self._reachable[endpoint] = bool(reachable)
        agent_id = self._by_endpoint.get(endpoint)
        if agent_id is not None and before != bool(reachable):
            agent = self._agents[agent_id]
            self._sync_available(agent)
            self._notify_state(agent)
            if not reachable:
                self._release_reservations(agent, now)
        return self._settle(now)

    def phone_in_use(self, endpoint: str, in_use: bool, now: float) -> list[Decision]:
        """The endpoint's phone has a call on it (any call: one of ours still hanging up, or
        the agent's own). As app_queue with ``ringinuse=no``, an idle agent whose phone is in
        use gets no calls until it is free again."""
        self._begin()
        before = endpoint in self._in_use
        if in_use:
            self._in_use.add(endpoint)
        else:
            self._in_use.discard(endpoint)
        agent_id = self._by_endpoint.get(endpoint)
        if agent_id is not None and before != bool(in_use):
            agent = self._agents[agent_id]
            self._sync_available(agent)
            self._notify_state(agent)
        return self._settle(now)

    # ================================================================ call events

    def call_arrived(self, call_id: str, caller_number: str, group: str, now: float, *,
                     priority: int = 0, key_trail: Sequence[str] | str = (),
                     verification: str | None = None) -> list[Decision]:
        """A caller enters skill group ``group``'s queue (higher ``priority`` first, then
        entry time). ``key_trail``: the IVR keys pressed; ``verification``: what the IVR
        established about the caller. Both are shown to the agent."""
        self._begin()
        if call_id in self._calls or call_id in self._ended:
            raise DuplicateCall(call_id)
        if group not in self._groups:
            raise UnknownGroup(group)
        call = Call(call_id, caller_number or "", group, int(priority), now,
                    tuple(key_trail), verification)
        call.channel_group = group
        self._calls[call_id] = call
        self._record(call, now, CallEventKind.ARRIVED, detail=" ".join(call.key_trail))
        self._enter_group(call, group, now)
        return self._settle(now)

    def agent_ringing(self, call_id: str, agent_id: str, now: float) -> list[Decision]:
        """The agent's phone started ringing (for the timeline)."""
        if (control := self._control_ringing(call_id, agent_id, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if (call is not None and call.agent_id == agent_id
                and call.state in (CallState.RINGING, CallState.CALLBACK_RINGING)):
            self._record(call, now, CallEventKind.RINGING, agent_id=agent_id)
        return self._settle(now)

    def agent_answered(self, call_id: str, agent_id: str, now: float) -> list[Decision]:
        """The agent picked up. The core answers with BridgeCall (or DialCustomer for a
        callback); a late answer to an offer the core took back gets CancelRing."""
        if (control := self._control_answered(call_id, agent_id, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if call is None:
            return [CancelRing(call_id, agent_id)]
        if call.agent_id != agent_id or call.state not in (CallState.RINGING,
                                                            CallState.CALLBACK_RINGING):
            if call.agent_id == agent_id:       # a repeated event
                return []
            return [CancelRing(call_id, agent_id)]
        agent = self._agents[agent_id]
        g = self._groups[call.group]
        self._cancel_timer(timer_key(T_RING, call_id))
        if call.state is CallState.RINGING:
            self._move(call, CallEvent.ANSWER)
            for kind in QUEUE_TIMERS:
                self._cancel_timer(timer_key(kind, call_id))
            call.answered_at = now
            self._agent_event(agent, AgentEvent.ANSWER, now)
            self._count_answer(g, call, now)
            self._out.append(BridgeCall(call_id, agent_id))
            self._record(call, now, CallEventKind.ANSWERED, agent_id=agent_id)
            self._out.append(Notify(agent_id, "answered", {"call_id": call_id,
                                                           "callback": False}))
        else:
            cb = call.callback
            assert cb is not None
            self._move(call, CallEvent.ANSWER)
            self._agent_event(agent, AgentEvent.ANSWER, now)
            cb.attempts += 1
            self._out.append(DialCustomer(call_id, agent_id, cb.number, cb.dial_timeout))
            self._record(call, now, CallEventKind.DIALING, agent_id=agent_id,
                         detail=f"attempt {cb.attempts} of {cb.max_attempts}")
            self._out.append(Notify(agent_id, "answered", {
                "call_id": call_id, "callback": True, "number": cb.number,
                "attempt": cb.attempts}))
        agent.calls_answered += 1
        agent.handle_started = now
        agent.handle_group = call.group
        return self._settle(now)

    def ring_failed(self, call_id: str, agent_id: str, cause: str, now: float) -> list[Decision]:
        """Ringing the agent failed (busy, rejected, unreachable, no_answer...). Treated as
        no answer: the agent goes to break if the group says so, the caller keeps their
        place."""
        if (control := self._control_ring_failed(call_id, agent_id, cause, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if (call is not None and call.agent_id == agent_id
                and call.state in (CallState.RINGING, CallState.CALLBACK_RINGING)):
            self._unanswered(call, now, (cause or "failed").strip().lower(), cancel_leg=False)
        return self._settle(now)

    def caller_hung_up(self, call_id: str, now: float) -> list[Decision]:
        """The caller's channel hung up (for a connected callback: the customer's). Ignored
        for a callback whose caller already left."""
        if (control := self._control_caller_hung_up(call_id, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if call is None or call.state in CALLBACK_STATES:
            return []
        if call.state is CallState.RINGING:
            self._cancel_offer(call, now, "caller_hangup")
            self._end(call, CallEvent.CALLER_HANGUP, now)
        elif call.state is CallState.CONNECTED:
            agent = self._agents[call.agent_id] if call.agent_id else None
            self._end(call, CallEvent.CALLER_HANGUP, now)
            if agent is not None:
                self._after_call(agent, call, now)
        else:
            self._end(call, CallEvent.CALLER_HANGUP, now)
        return self._settle(now)

    def agent_hung_up(self, call_id: str, agent_id: str, now: float) -> list[Decision]:
        """The agent's leg hung up: ends a connected call; aborts a callback dial; while
        ringing it counts as a rejected ring."""
        if (control := self._control_agent_hung_up(call_id, agent_id, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if call is None or call.agent_id != agent_id:
            return []
        if call.state is CallState.CONNECTED:
            agent = self._agents[agent_id]
            self._end(call, CallEvent.AGENT_HANGUP, now)
            self._after_call(agent, call, now)
        elif call.state is CallState.CALLBACK_DIALING:
            self._dial_failed(call, now, "agent_hangup")
        elif call.state in (CallState.RINGING, CallState.CALLBACK_RINGING):
            self._unanswered(call, now, "rejected", cancel_leg=False)
        return self._settle(now)

    def callback_requested(self, call_id: str, number: str, now: float) -> list[Decision]:
        """The waiting caller asks to be called back on ``number`` and hangs up; the call
        keeps its place in the queue."""
        self._begin()
        call = self._live_call(call_id)
        if call is None:
            return []
        cls.next_state(call_id, call.state, CallEvent.CALLBACK_REQUEST)   # raises if illegal
        if self._groups[call.group].cfg.callback is None:
            raise CallbackDisabled(call_id, call.group)
        if not number:
            raise CallbackNumberMissing(call_id)
        self._to_callback(call, number, now)
        return self._settle(now)

    def customer_answered(self, call_id: str, now: float) -> list[Decision]:
        """Callback: the customer picked up; the core answers with BridgeCall."""
        if (control := self._control_customer_answered(call_id, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if call is None or call.state is not CallState.CALLBACK_DIALING:
            return []
        assert call.agent_id is not None
        g = self._groups[call.group]
        self._move(call, CallEvent.CUSTOMER_ANSWER)
        for kind in (*QUEUE_TIMERS, T_CB_EXPIRE):
            self._cancel_timer(timer_key(kind, call_id))
        call.answered_at = now
        self._count_answer(g, call, now)
        self._out.append(BridgeCall(call_id, call.agent_id))
        self._record(call, now, CallEventKind.ANSWERED, agent_id=call.agent_id,
                     detail="callback")
        self._out.append(Notify(call.agent_id, "answered", {
            "call_id": call_id, "callback": True, "customer": True}))
        return self._settle(now)

    def customer_dial_failed(self, call_id: str, cause: str, now: float) -> list[Decision]:
        """Callback: the customer could not be reached (busy, no answer...)."""
        if (control := self._control_customer_failed(call_id, cause, now)) is not None:
            return control
        self._begin()
        call = self._live_call(call_id)
        if call is not None and call.state is CallState.CALLBACK_DIALING:
            self._dial_failed(call, now, (cause or "failed").strip().lower())
        return self._settle(now)

    def channels_lost(self, cause: str, now: float,
                      keep: Collection[str] = ()) -> list[Decision]:
        """Asterisk stopped or restarted: every channel is gone (``cause`` says which, e.g.
        ``asterisk_shutdown``, ``asterisk_restart``). A call with a caller on the line ends
        as :attr:`EndReason.LOST`, after a ``lost`` record with the cause. Agents return to
        their true states: one ringing goes back to idle (no fault of theirs), one talking
        goes through the group's wrap-up. Callbacks keep their place: one ringing an agent
        waits again, one dialing the customer counts as a failed attempt. Outbound calls
        are left to their legs' hangups, and so are the calls in ``keep`` (already in the
        new Asterisk)."""
        self._begin()
        for call in sorted(self._calls.values(), key=lambda c: c.key):
            if call.call_id in self._outbound or call.call_id in keep or call.state in (
                    CallState.CALLBACK_WAITING, CallState.CALLBACK_RETRY):
                continue
            if call.state is CallState.CALLBACK_RINGING:
                self._cancel_offer(call, now, cause)
                self._move(call, CallEvent.RING_RETURNED)
                continue
            if call.state is CallState.CALLBACK_DIALING:
                self._dial_failed(call, now, cause)
                continue
            self._record(call, now, CallEventKind.LOST, agent_id=call.agent_id, detail=cause)
            if call.state is CallState.RINGING:
                self._cancel_offer(call, now, cause)
            agent = (self._agents.get(call.agent_id) if call.agent_id
                     and call.state is CallState.CONNECTED else None)
            self._end(call, CallEvent.LOST, now)
            if agent is not None and agent.call_id == call.call_id:
                self._after_call(agent, call, now)
        return self._settle(now)

    # ================================================================ other inputs

    def timer_fired(self, key: str, now: float) -> list[Decision]:
        """A timer set with StartTimer is due. Unknown or cancelled keys are ignored."""
        self._begin()
        if self._timers.pop(key, None) is None:
            return []
        kind, ident = split_key(key)
        if kind in CONTROL_TIMERS:
            self._control_timer(kind, ident, now)
            return self._settle(now)
        if kind == T_WRAPUP:
            agent = self._agents.get(ident)
            if agent is not None and agent.state is AgentState.WRAPUP:
                self._finish_wrapup(agent, now)
            return self._settle(now)
        call = self._calls.get(ident)
        if call is None:
            return self._settle(now)
        if kind == T_RING:
            if call.state in (CallState.RINGING, CallState.CALLBACK_RINGING):
                self._unanswered(call, now, "no_answer", cancel_leg=True)
        elif kind == T_ANNOUNCE:
            self._announce(call, now)
        elif kind == T_WIDEN:
            self._widen(call, now, force=True)
        elif kind == T_MAXWAIT:
            if call.state is CallState.WAITING:
                self._send(call, self._groups[call.group].cfg.max_wait_destination,
                           SendReason.MAX_WAIT, now)
            elif call.state is CallState.RINGING:
                call.overdue = True
        elif kind == T_FAMILIAR:
            if call.reserved_for is not None:
                self._release_familiar(call, now)
        elif kind == T_RETRY:
            call.declined.clear()
            if call.attached and call.state in OFFERABLE_STATES:
                self._dirty_calls.append(call)
        elif kind == T_CB_RETRY:
            if call.state is CallState.CALLBACK_RETRY:
                self._move(call, CallEvent.RETRY_DUE)
        elif kind == T_CB_EXPIRE:
            if call.state in (CallState.CALLBACK_WAITING, CallState.CALLBACK_RETRY):
                self._end(call, CallEvent.EXPIRE, now)
            elif call.callback is not None:
                call.callback.expired = True
        return self._settle(now)

    def set_group_open(self, group: str, is_open: bool, now: float) -> list[Decision]:
        """Service hours, as evaluated by the adapter. New callers of a closed group go to
        its closed destination; callers already waiting are still served."""
        self._begin()
        g = self._groups.get(group)
        if g is None:
            raise UnknownGroup(group)
        g.open = bool(is_open)
        return self._settle(now)

    def remember_contact(self, caller_number: str, agent_id: str, at: float) -> None:
        """Tell the core "caller X last talked to agent Y at time T" (e.g. from the store at
        start-up). The core also remembers its own answered calls."""
        self._remember(caller_number, agent_id, at)

    # ================================================================ restart

    def restore_agent(self, agent_id: str, endpoint: str, state: AgentState | str,
                      since: float, *, reason: str = "", idle_since: float | None = None,
                      reachable: bool | None = None, calls_answered: int = 0,
                      wrapup_until: float | None = None,
                      pending: AgentState | str | None = None,
                      pending_reason: str = "") -> list[Decision]:
        """Rebuild a logged-in agent after a restart, without records. ``state``: a manual
        state, ``wrapup`` (with ``wrapup_until``), or ``ringing`` (restored as idle: rings
        do not survive a restart). Talking agents: restore them (e.g. idle), then
        :meth:`restore_connected_call`. Call :meth:`resume` when everything is restored."""
        self._begin()
        wanted = AgentState(state)
        agent = self._agents.get(agent_id) or _Agent(agent_id)
        if agent.state is not AgentState.OFFLINE:
            raise RestoreInvalid(f"Agent {agent_id!r} is already restored or logged in.")
        if wanted is AgentState.OFFLINE:
            return []
        if wanted is AgentState.RINGING:
            wanted = AgentState.IDLE
        if wanted is AgentState.TALKING:
            raise RestoreInvalid(f"Agent {agent_id!r}: restore the agent, then the call with "
                                 "restore_connected_call.")
        if wanted is AgentState.WRAPUP and wrapup_until is None:
            raise RestoreInvalid(f"Agent {agent_id!r}: wrap-up needs wrapup_until.")
        pend = None if pending is None else AgentState(pending)
        if pend is not None and (pend not in MANUAL_STATES or wanted is not AgentState.WRAPUP):
            raise RestoreInvalid(f"Agent {agent_id!r}: a pending state must be manual and "
                                 "only goes with wrap-up (or restore_connected_call).")
        if not endpoint:
            raise EndpointMissing(agent_id)
        holder = self._by_endpoint.get(endpoint)
        if holder is not None and holder != agent_id:
            raise EndpointInUse(endpoint, holder)
        self._agents[agent_id] = agent
        agent.endpoint = endpoint
        self._by_endpoint[endpoint] = agent_id
        if reachable is not None:
            self._reachable[endpoint] = bool(reachable)
        agent.calls_answered = calls_answered
        agent.idle_since = since if idle_since is None else idle_since
        agent.reason = reason
        agent.pending = None if pend is None else (pend, pending_reason)
        self._force_agent_state(agent, wanted, since)
        if wanted is AgentState.WRAPUP:
            assert wrapup_until is not None
            self._start_timer(timer_key(T_WRAPUP, agent_id), wrapup_until)
        return self._take()

    def restore_waiting_call(self, call_id: str, caller_number: str, group: str,
                             priority: int, entered_at: float, now: float, *,
                             arrived_at: float | None = None,
                             key_trail: Sequence[str] | str = (),
                             verification: str | None = None,
                             callback_number: str | None = None,
                             callback_requested_at: float | None = None,
                             callback_attempts: int = 0) -> list[Decision]:
        """Rebuild a waiting caller (or a waiting callback, with ``callback_number``) with
        its ORIGINAL entry time and priority, so the original order is kept (ties: the
        order of restoring). A call that was ringing an agent is restored as waiting.
        Nothing is offered until :meth:`resume`."""
        self._begin()
        if call_id in self._calls or call_id in self._ended:
            raise DuplicateCall(call_id)
        g = self._groups.get(group)
        if g is None:
            raise UnknownGroup(group)
        cfg = g.cfg
        call = Call(call_id, caller_number or "", group, int(priority),
                    entered_at if arrived_at is None else arrived_at,
                    tuple(key_trail), verification)
        call.entered_at = entered_at
        call.seq = self._next_seq()
        call.levels = {group: cfg.min_level}
        call.channel_group = None if callback_number else group
        self._calls[call_id] = call
        self._record(call, now, CallEventKind.RESTORED)
        self._move(call, CallEvent.QUEUE)
        if callback_number:
            s = cfg.callback or CallbackSettings()
            asked = entered_at if callback_requested_at is None else callback_requested_at
            call.callback = Callback(callback_number, asked, asked + s.expiry, s.attempts,
                                     s.gap, s.dial_timeout, attempts=callback_attempts)
            self._move(call, CallEvent.CALLBACK_REQUEST)
            self._start_timer(timer_key(T_CB_EXPIRE, call_id), call.callback.expires_at)
        else:
            if cfg.announce_every is not None:
                self._start_timer(timer_key(T_ANNOUNCE, call_id), now + cfg.announce_every)
            if cfg.max_wait is not None:
                self._start_timer(timer_key(T_MAXWAIT, call_id),
                                  max(now, entered_at + cfg.max_wait))
        self._widen(call, now, force=False)
        return self._take()

    def restore_connected_call(self, call_id: str, agent_id: str, group: str, now: float, *,
                               caller_number: str = "", priority: int = 0,
                               arrived_at: float | None = None,
                               entered_at: float | None = None,
                               answered_at: float | None = None,
                               key_trail: Sequence[str] | str = (),
                               verification: str | None = None,
                               callback_number: str | None = None) -> list[Decision]:
        """Rebuild a call in conversation with ``agent_id`` (restored first with
        :meth:`restore_agent`). The agent becomes ``talking``; a non-idle restored state
        becomes their pending state."""
        self._begin()
        if call_id in self._calls or call_id in self._ended:
            raise DuplicateCall(call_id)
        g = self._groups.get(group)
        if g is None:
            raise UnknownGroup(group)
        agent = self._agents.get(agent_id)
        if agent is None or agent.state not in MANUAL_STATES - {AgentState.OFFLINE}:
            state = agent.state.value if agent else "offline"
            raise RestoreInvalid(f"Agent {agent_id!r} must be restored in a manual state "
                                 f"first (is {state!r}).")
        answered = now if answered_at is None else answered_at
        entered = answered if entered_at is None else entered_at
        call = Call(call_id, caller_number or "", group, int(priority),
                    entered if arrived_at is None else arrived_at, tuple(key_trail),
                    verification)
        call.entered_at = entered
        call.seq = self._next_seq()
        call.levels = {group: g.cfg.min_level}
        call.answered_at = answered
        if callback_number:
            s = g.cfg.callback or CallbackSettings()
            call.callback = Callback(callback_number, entered, entered + s.expiry, s.attempts,
                                     s.gap, s.dial_timeout, attempts=1)
        else:
            call.channel_group = group
        self._calls[call_id] = call
        self._record(call, now, CallEventKind.RESTORED, agent_id=agent_id)
        self._move(call, CallEvent.RESTORE_CONNECTED)
        call.agent_id = agent_id
        if agent.state is not AgentState.IDLE and agent.pending is None:
            agent.pending = (agent.state, agent.reason)
        agent.call_id = call_id
        agent.handle_started = answered
        agent.handle_group = group
        agent.reason = ""
        self._force_agent_state(agent, AgentState.TALKING, answered)
        return self._take()

    def resume(self, now: float) -> list[Decision]:
        """After restoring: offer the waiting calls, in their original order."""
        self._begin()
        self._dirty_calls = [c for c in self._calls.values()
                             if c.attached and c.state in OFFERABLE_STATES]
        return self._settle(now)

    # ================================================================ queries

    def snapshot_queues(self, now: float) -> dict[str, dict[str, Any]]:
        """Per skill group: calls waiting (in order), longest wait, agents by state, and
        counters since start (or :meth:`reset_stats`). JSON-ready."""
        out: dict[str, dict[str, Any]] = {}
        for name, g in self._groups.items():
            counts = g.call_counts
            live = [c.entered_at for c in g.calls.values() if c.state in LIVE_WAITING_STATES]
            s = g.stats
            calls = []
            for pos, key in enumerate(g.queue, start=1):
                c = g.calls[key[-1]]
                calls.append({"call_id": c.call_id, "position": pos, "state": c.state.value,
                              "priority": c.priority, "caller_number": c.caller_number,
                              "waited": now - c.entered_at, "agent_id": c.agent_id,
                              "callback": c.callback is not None,
                              "reserved_for": c.reserved_for})
            out[name] = {
                "open": g.open,
                "waiting": counts[CallState.WAITING],
                "ringing": counts[CallState.RINGING],
                "connected": counts[CallState.CONNECTED],
                "callbacks": sum(counts[st] for st in CALLBACK_STATES),
                "longest_wait": (now - min(live)) if live else 0.0,
                "calls": calls,
                "agents": {st.value: n for st, n in g.agent_counts.items() if n},
                "logged_in": g.logged_in,
                "available": len(g.idle),
                "offered": s.offered,
                "answered": s.answered,
                "answered_within_sl": s.answered_within_sl,
                "abandoned": s.abandoned,
                "overflowed": s.overflowed,
                "closed": s.closed,
                "no_agents": s.no_agents,
                "callbacks_requested": s.callbacks_requested,
                "callbacks_failed": s.callbacks_failed,
                "callbacks_expired": s.callbacks_expired,
                "service_level": (s.answered_within_sl / s.offered) if s.offered else None,
                "service_level_seconds": g.cfg.service_level_seconds,
                "average_handle_time": g.aht,
            }
        return out

    def snapshot_agents(self, now: float) -> dict[str, dict[str, Any]]:
        """Per agent: state, reason, pending state, phone reachability, and why they are
        not offered calls (``unavailable_reason``). JSON-ready."""
        return {agent_id: self._agent_view(a, now) for agent_id, a in self._agents.items()}

    def agent_snapshot(self, agent_id: str, now: float) -> dict[str, Any] | None:
        """One agent, as :meth:`snapshot_agents` shows them; None if the core has no such
        agent."""
        a = self._agents.get(agent_id)
        return None if a is None else self._agent_view(a, now)

    def _agent_view(self, a: _Agent, now: float) -> dict[str, Any]:
        if a.available:
            why = None
        elif a.state is AgentState.OFFLINE:
            why = "logged out"
        else:
            why = self._phone_unusable(a) or (
                a.state.value + (f": {a.reason}" if a.reason else ""))
        return {
            "state": a.state.value,
            "reason": a.reason,
            "since": a.since,
            "in_state_for": now - a.since,
            "endpoint": a.endpoint,
            "reachable": self._is_reachable(a),
            "phone_in_use": self._in_use_now(a),
            "available": a.available,
            "unavailable_reason": why,
            "pending": a.pending[0].value if a.pending else None,
            "pending_reason": a.pending[1] if a.pending else None,
            "call_id": a.call_id,
            "groups": dict(a.groups),
            "calls_answered": a.calls_answered,
            "idle_since": a.idle_since if a.state is AgentState.IDLE else None,
        }

    def wrapup_seconds(self, group: str | None) -> float:
        """The skill group's wrap-up seconds; 0.0 for an unknown group (or None)."""
        g = self._groups.get(group or "")
        return float(g.cfg.wrapup_seconds) if g is not None else 0.0

    def call_state(self, call_id: str) -> str | None:
        """The call's state (as :meth:`call_info` gives it: ``waiting``, ``ended``...), live
        or recently ended; None if the core does not know the call."""
        call = self._calls.get(call_id) or self._ended.get(call_id)
        return None if call is None else call.state.value

    def call_group(self, call_id: str) -> str | None:
        """The skill group whose queue the call is (or was last) in; None if unknown."""
        call = self._calls.get(call_id) or self._ended.get(call_id)
        return None if call is None else call.group

    def phone_reachable(self, endpoint: str) -> bool:
        """Whether the core counts the endpoint's phone as reachable (as it does for
        routing: unknown endpoints are reachable until ``contact_status`` says not)."""
        return self._reachable.get(endpoint, True)

    def call_info(self, call_id: str) -> dict[str, Any]:
        """One call (live, or among the recently ended), with its timeline. JSON-ready."""
        call = self._calls.get(call_id) or self._ended.get(call_id)
        if call is None:
            raise UnknownCall(call_id)
        cb = call.callback
        return {
            "call_id": call.call_id,
            "state": call.state.value,
            "group": call.group,
            "priority": call.priority,
            "caller_number": call.caller_number,
            "arrived_at": call.arrived_at,
            "entered_at": call.entered_at,
            "answered_at": call.answered_at,
            "ended_at": call.ended_at,
            "end_reason": call.end_reason.value if call.end_reason else None,
            "agent_id": call.agent_id,
            "key_trail": list(call.key_trail),
            "verification": call.verification,
            "levels": dict(call.levels),
            "reserved_for": call.reserved_for,
            "callback": None if cb is None else {
                "number": cb.number, "requested_at": cb.requested_at,
                "expires_at": cb.expires_at, "attempts": cb.attempts,
                "max_attempts": cb.max_attempts},
            "timeline": [{"at": r.at, "kind": r.kind.value, "group": r.group,
                          "agent_id": r.agent_id, "detail": r.detail,
                          "end_reason": r.end_reason.value if r.end_reason else None}
                         for r in call.timeline],
        }

    def is_eligible(self, call_id: str, agent_id: str) -> bool:
        """Would the call be offered to this agent if the agent were available? (Group
        membership and skill level, familiar-customer hold, recent no answer.) Slow and
        plain: for supervisors' "why" questions and for tests."""
        call = self._calls.get(call_id)
        agent = self._agents.get(agent_id)
        if call is None or agent is None:
            return False
        if call.reserved_for is not None:
            return agent_id == call.reserved_for
        if agent_id in call.declined:
            return False
        return any(agent.groups.get(g, -1) >= lvl for g, lvl in call.levels.items())

    def timers(self) -> dict[str, float]:
        """The timers the core is waiting for: key -> due time."""
        return dict(self._timers)

    def reset_stats(self) -> None:
        """Start the queue counters afresh (e.g. at midnight)."""
        for g in self._groups.values():
            g.stats = _Stats()

    # ================================================================ internals: agents

    def _agent_event(self, agent: _Agent, event: AgentEvent, now: float, reason: str = "",
                     keep_idle: bool = False) -> None:
        pending = agent.pending[0] if agent.pending else None
        step = ags.next_state(agent.agent_id, agent.state, event, pending)
        self._apply_agent_step(agent, step, now, reason, keep_idle)

    def _apply_agent_step(self, agent: _Agent, step: ags.Step, now: float, reason: str,
                          keep_idle: bool = False) -> None:
        if step.deferred:
            agent.pending = (step.state, reason)
            self._notify_state(agent)
            return
        if step.took_pending and agent.pending is not None:
            reason = agent.pending[1]
        if agent.state in SYSTEM_STATES and step.state not in SYSTEM_STATES:
            agent.pending = None
        self._set_agent_state(agent, step.state, now, reason, keep_idle)

    def _set_agent_state(self, agent: _Agent, new: AgentState, now: float, reason: str,
                         keep_idle: bool) -> None:
        prev = agent.state
        if new is prev and reason == agent.reason:
            return
        for name in agent.groups:
            counts = self._groups[name].agent_counts
            counts[prev] -= 1
            counts[new] += 1
        agent.state = new
        agent.reason = reason
        agent.since = now
        if new is AgentState.IDLE and prev is not AgentState.IDLE and not keep_idle:
            agent.idle_since = now
        if new is AgentState.OFFLINE:
            if agent.endpoint is not None:
                self._by_endpoint.pop(agent.endpoint, None)
            agent.endpoint = None
            agent.pending = None
        self._out.append(RecordAgentState(agent.agent_id, now, new, prev, reason,
                                          agent.call_id))
        self._notify_state(agent)
        self._sync_available(agent)
        if new not in WORKING_STATES:
            self._release_reservations(agent, now)

    def _force_agent_state(self, agent: _Agent, new: AgentState, since: float) -> None:
        """Restore only: set the state without the table, records or notifications."""
        for name in agent.groups:
            counts = self._groups[name].agent_counts
            counts[agent.state] -= 1
            counts[new] += 1
        agent.state = new
        agent.since = since
        self._sync_available(agent)

    def _is_reachable(self, agent: _Agent) -> bool:
        return agent.endpoint is not None and self._reachable.get(agent.endpoint, True)

    def _in_use_now(self, agent: _Agent) -> bool:
        return agent.endpoint is not None and agent.endpoint in self._in_use

    def _phone_unusable(self, agent: _Agent) -> str | None:
        """Why the agent's phone cannot take a call now, or None."""
        if not self._is_reachable(agent):
            return "phone unreachable"
        return "phone in use" if self._in_use_now(agent) else None

    def _sync_available(self, agent: _Agent) -> None:
        avail = (agent.state is AgentState.IDLE and self._is_reachable(agent)
                 and not self._in_use_now(agent))
        if avail == agent.available:
            return
        agent.available = avail
        if avail:
            for name, level in agent.groups.items():
                g = self._groups[name]
                entry = idle_entry(g.idle.strategy, agent.agent_id,
                                   member_index=g.member_index[agent.agent_id],
                                   idle_since=agent.idle_since,
                                   last_offer=agent.last_offer.get(name, -1),
                                   calls_answered=agent.calls_answered)
                g.idle.add(level, entry)
                agent.indexed.append((g.idle, level, entry))
            self._dirty_agents.append(agent)
        else:
            for idle, level, entry in agent.indexed:
                idle.remove(level, entry)
            agent.indexed.clear()

    def _notify_state(self, agent: _Agent) -> None:
        self._out.append(Notify(agent.agent_id, "state", {
            "state": agent.state.value, "reason": agent.reason, "since": agent.since,
            "pending": agent.pending[0].value if agent.pending else None,
            "pending_reason": agent.pending[1] if agent.pending else None,
            "reachable": self._is_reachable(agent), "phone_in_use": self._in_use_now(agent),
            "call_id": agent.call_id}))

    def _release_reservations(self, agent: _Agent, now: float) -> None:
        held = self._reserved.get(agent.agent_id)
        if held:
            for key in list(held):
                self._release_familiar(self._calls[key[-1]], now)

    def _after_call(self, agent: _Agent, call: Call, now: float,
                    reason: str | None = None) -> None:
        """The agent's conversation (or callback attempt) is over: wrap-up. ``reason``:
        why their part ended, if not the call's end (call control: transferred, ...)."""
        self._control_after_call(agent, call, now, reason)
        reason = reason or (call.end_reason.value if call.end_reason else "dial_failed")
        self._out.append(Notify(agent.agent_id, "ended", {"call_id": call.call_id,
                                                          "reason": reason}))
        self._agent_event(agent, AgentEvent.CALL_ENDED, now)
        secs = self._groups[call.group].cfg.wrapup_seconds
        self._record(call, now, CallEventKind.WRAPUP, agent_id=agent.agent_id,
                     detail=f"{secs:g} s")
        if secs > 0:
            self._start_timer(timer_key(T_WRAPUP, agent.agent_id), now + secs)
        else:
            self._finish_wrapup(agent, now)

    def _finish_wrapup(self, agent: _Agent, now: float) -> None:
        self._control_wrapup_ended(agent, now)
        call_id = agent.call_id
        call = None if call_id is None else (self._calls.get(call_id)
                                             or self._ended.get(call_id))
        if call is not None:
            self._record(call, now, CallEventKind.WRAPUP_ENDED, agent_id=agent.agent_id)
        if agent.handle_started is not None and agent.handle_group in self._groups:
            g = self._groups[agent.handle_group]
            g.aht = 0.8 * g.aht + 0.2 * max(0.0, now - agent.handle_started)
        agent.handle_started = None
        agent.handle_group = None
        agent.call_id = None
        self._agent_event(agent, AgentEvent.WRAPUP_END, now)

    # ================================================================ internals: calls

    def _live_call(self, call_id: str) -> Call | None:
        """The live call; None if it ended (late events are normal); raise if unknown."""
        call = self._calls.get(call_id)
        if call is not None:
            return call
        if call_id in self._ended:
            return None
        raise UnknownCall(call_id)

    def _attach(self, call: Call) -> None:
        """Put the call where its state, group, levels and reservation say."""
        if call.attached or call.state in (CallState.NEW, CallState.ENDED):
            return
        g = self._groups[call.group]
        call.attached = True
        g.calls[call.call_id] = call
        g.call_counts[call.state] += 1
        key = call.key
        if call.state in QUEUED_STATES:
            g.queue.add(key)
        if call.state in OFFERABLE_STATES:
            if call.reserved_for is not None:
                held = self._reserved.get(call.reserved_for)
                if held is None:
                    held = self._reserved[call.reserved_for] = SortedList()
                held.add(key)
                call.placed.append((held, key))
            else:
                for name, threshold in call.levels.items():
                    bucket = self._groups[name].waiting.bucket(threshold)
                    bucket.add(key)
                    call.placed.append((bucket, key))
            self._dirty_calls.append(call)

    def _detach(self, call: Call) -> None:
        if not call.attached:
            return
        g = self._groups[call.group]
        call.attached = False
        del g.calls[call.call_id]
        g.call_counts[call.state] -= 1
        if call.state in QUEUED_STATES:
            g.queue.remove(call.key)
        for bucket, key in call.placed:
            bucket.remove(key)
        call.placed.clear()

    def _move(self, call: Call, event: CallEvent) -> None:
        move = cls.next_state(call.call_id, call.state, event)
        assert move.target is not CallState.ENDED, "use _end"
        self._detach(call)
        call.state = move.target
        self._attach(call)

    def _end(self, call: Call, event: CallEvent, now: float) -> None:
        move = cls.next_state(call.call_id, call.state, event)
        assert move.target is CallState.ENDED and move.end_reason is not None
        self._control_call_ending(call, event, now)
        self._detach(call)
        call.state = CallState.ENDED
        call.end_reason = move.end_reason
        call.ended_at = now
        for kind in CALL_TIMERS:
            self._cancel_timer(timer_key(kind, call.call_id))
        if call.reserved_for is not None:
            call.reserved_for = None
        stats = self._groups[call.group].stats
        if move.end_reason is EndReason.ABANDONED:
            stats.abandoned += 1
        elif move.end_reason is EndReason.CALLBACK_FAILED:
            stats.callbacks_failed += 1
        elif move.end_reason is EndReason.CALLBACK_EXPIRED:
            stats.callbacks_expired += 1
        self._record(call, now, CallEventKind.ENDED, agent_id=call.agent_id,
                     end_reason=move.end_reason)
        del self._calls[call.call_id]
        self._ended[call.call_id] = call
        while len(self._ended) > self._keep_ended:
            self._ended.popitem(last=False)

    def _enter_group(self, call: Call, group: str, now: float) -> None:
        """Arrival, or overflow into another group: check service hours, staffing and queue
        length, then queue."""
        if call.state is CallState.WAITING:       # moving from another group
            self._detach(call)
            for kind in QUEUE_TIMERS:
                self._cancel_timer(timer_key(kind, call.call_id))
        g = self._groups[group]
        call.group = group
        cfg = g.cfg
        if not g.open:
            self._send(call, cfg.closed_destination, SendReason.CLOSED, now)
        elif cfg.no_agents_destination is not None and g.logged_in == 0:
            self._send(call, cfg.no_agents_destination, SendReason.NO_AGENTS, now)
        elif cfg.max_queue_length is not None and g.live_waiting >= cfg.max_queue_length:
            self._send(call, cfg.queue_full_destination, SendReason.QUEUE_FULL, now)
        else:
            self._enqueue(call, g, now)

    def _enqueue(self, call: Call, g: _Group, now: float) -> None:
        cfg = g.cfg
        call.entered_at = now
        call.seq = self._next_seq()
        call.levels = {cfg.name: cfg.min_level}
        call.widen_step = 0
        call.declined.clear()
        call.overdue = False
        call.reserved_for = self._familiar_agent(call, g, now)
        g.stats.offered += 1
        self._move(call, CallEvent.QUEUE)
        self._record(call, now, CallEventKind.QUEUED, detail=f"priority {call.priority}")
        cid = call.call_id
        if call.channel_group is not None and call.channel_group != cfg.name:
            call.channel_group = cfg.name         # an overflow: the channel must say so
            self._out.append(RegroupCaller(cid, cfg.name, call.entered_at))
        if call.reserved_for is not None:
            self._record(call, now, CallEventKind.FAMILIAR, agent_id=call.reserved_for,
                         detail=f"{cfg.familiar_seconds:g} s")
            self._start_timer(timer_key(T_FAMILIAR, cid), now + cfg.familiar_seconds)
        if cfg.announce_every is not None:
            self._start_timer(timer_key(T_ANNOUNCE, cid), now + cfg.announce_every)
        if cfg.max_wait is not None:
            self._start_timer(timer_key(T_MAXWAIT, cid), now + cfg.max_wait)
        self._widen(call, now, force=False)

    def _send(self, call: Call, dest: Destination, reason: SendReason, now: float) -> None:
        stats = self._groups[call.group].stats
        if reason is SendReason.CLOSED:
            stats.closed += 1
        elif reason is SendReason.NO_AGENTS:
            stats.no_agents += 1
        else:
            stats.overflowed += 1
        self._record(call, now, CallEventKind.SENT, detail=f"{dest} ({reason.value})")
        kind = DestinationKind(dest.kind)
        if kind is DestinationKind.GROUP:
            self._enter_group(call, dest.target, now)
            return
        if kind is DestinationKind.CALLBACK:
            if call.caller_number:
                if not call.attached:             # take a place in the queue first
                    self._enqueue(call, self._groups[call.group], now)
                self._out.append(SendToDestination(call.call_id, dest, reason.value))
                self._to_callback(call, call.caller_number, now)
                return
            dest = Destination.hangup()           # nobody to call back
        self._out.append(SendToDestination(call.call_id, dest, reason.value))
        self._end(call, _SEND_EVENT[reason], now)

    def _to_callback(self, call: Call, number: str, now: float) -> None:
        g = self._groups[call.group]
        s = g.cfg.callback or CallbackSettings()
        if call.state is CallState.RINGING:
            self._cancel_offer(call, now, "callback")
        for kind in (T_ANNOUNCE, T_MAXWAIT):
            self._cancel_timer(timer_key(kind, call.call_id))
        call.overdue = False
        call.channel_group = None                 # the caller hangs up
        call.callback = Callback(number, now, now + s.expiry, s.attempts, s.gap,
                                 s.dial_timeout)
        self._move(call, CallEvent.CALLBACK_REQUEST)
        g.stats.callbacks_requested += 1
        self._record(call, now, CallEventKind.CALLBACK_REQUESTED, detail=number)
        self._start_timer(timer_key(T_CB_EXPIRE, call.call_id), call.callback.expires_at)

    def _widen(self, call: Call, now: float, force: bool) -> None:
        """Apply the overflow (widening) steps that are due; set the timer for the next."""
        steps = self._groups[call.group].cfg.widen
        levels = dict(call.levels)
        done: list[str] = []
        while call.widen_step < len(steps) and (
                force or steps[call.widen_step].after <= now - call.entered_at):
            force = False
            step = steps[call.widen_step]
            call.widen_step += 1
            if step.min_level is not None and step.min_level < levels[call.group]:
                levels[call.group] = step.min_level
                done.append(f"level {step.min_level}")
            for other in step.groups:
                if other not in levels:
                    levels[other] = self._groups[other].cfg.min_level
                    done.append(f"group {other}")
        if levels != call.levels:
            self._detach(call)
            call.levels = levels
            self._attach(call)
            self._record(call, now, CallEventKind.WIDENED, detail=", ".join(done))
        if call.widen_step < len(steps):
            self._start_timer(timer_key(T_WIDEN, call.call_id),
                              call.entered_at + steps[call.widen_step].after)

    def _announce(self, call: Call, now: float) -> None:
        g = self._groups[call.group]
        cfg = g.cfg
        if call.state is CallState.WAITING:
            position = g.queue.index(call.key) + 1
            wait = float(round(position * g.aht / max(1, g.working)))
            self._out.append(Announce(call.call_id,
                                      position if cfg.announce_position else None,
                                      wait if cfg.announce_estimated_wait else None))
        if call.state in LIVE_WAITING_STATES and cfg.announce_every is not None:
            self._start_timer(timer_key(T_ANNOUNCE, call.call_id), now + cfg.announce_every)

    def _release_familiar(self, call: Call, now: float) -> None:
        agent_id = call.reserved_for
        self._detach(call)
        call.reserved_for = None
        self._attach(call)
        self._cancel_timer(timer_key(T_FAMILIAR, call.call_id))
        self._record(call, now, CallEventKind.FAMILIAR_RELEASED, agent_id=agent_id)

    def _familiar_agent(self, call: Call, g: _Group, now: float) -> str | None:
        cfg = g.cfg
        if cfg.familiar_seconds <= 0 or not call.caller_number:
            return None
        last = self._familiar.get(call.caller_number)
        if last is None or now - last[1] > cfg.familiar_window:
            return None
        agent = self._agents.get(last[0])
        if (agent is None or cfg.name not in agent.groups
                or agent.state not in WORKING_STATES or not self._is_reachable(agent)):
            return None
        return agent.agent_id

    def _remember(self, number: str, agent_id: str, at: float) -> None:
        if not number:
            return
        old = self._familiar.get(number)
        if old is not None and old[1] > at:
            return
        self._familiar[number] = (agent_id, at)
        self._familiar.move_to_end(number)
        while len(self._familiar) > self._familiar_memory:
            self._familiar.popitem(last=False)

    def _count_answer(self, g: _Group, call: Call, now: float) -> None:
        g.stats.answered += 1
        if now - call.entered_at <= g.cfg.service_level_seconds:
            g.stats.answered_within_sl += 1
        if call.agent_id is not None:
            self._remember(call.caller_number, call.agent_id, now)

    # ================================================================ internals: rings

    def _ring(self, call: Call, agent: _Agent, via: str, now: float) -> None:
        self._move(call, CallEvent.OFFER)
        call.agent_id = agent.agent_id
        agent.call_id = call.call_id
        agent.last_offer[via] = self._next_seq()
        self._agent_event(agent, AgentEvent.OFFER, now)
        g = self._groups[call.group]
        timeout = g.cfg.ring_timeout
        assert agent.endpoint is not None
        cb = call.callback
        if cb is not None:
            self._out.append(RingAgentForCallback(call.call_id, agent.agent_id, agent.endpoint,
                                                  call.group, timeout, cb.number))
        else:
            self._out.append(RingAgent(call.call_id, agent.agent_id, agent.endpoint,
                                       call.group, timeout, call.caller_number))
        self._start_timer(timer_key(T_RING, call.call_id), now + timeout)
        self._record(call, now, CallEventKind.OFFERED, agent_id=agent.agent_id,
                     detail="" if via == call.group else f"via {via}")
        self._out.append(Notify(agent.agent_id, "ring", {
            "call_id": call.call_id, "caller_number": call.caller_number,
            "group": call.group, "priority": call.priority,
            "key_trail": list(call.key_trail), "verification": call.verification,
            "waited": now - call.entered_at, "callback": cb is not None,
            "number": cb.number if cb is not None else None}))

    def _cancel_offer(self, call: Call, now: float, why: str) -> None:
        """Take a ring back through no fault of the agent (they keep their idle place)."""
        assert call.agent_id is not None
        agent = self._agents[call.agent_id]
        self._cancel_timer(timer_key(T_RING, call.call_id))
        self._out.append(CancelRing(call.call_id, agent.agent_id))
        self._record(call, now, CallEventKind.RING_CANCELLED, agent_id=agent.agent_id,
                     detail=why)
        self._out.append(Notify(agent.agent_id, "ended", {"call_id": call.call_id,
                                                          "reason": why}))
        agent.call_id = None
        call.agent_id = None
        self._agent_event(agent, AgentEvent.RING_CANCELLED, now, keep_idle=True)

    def _unanswered(self, call: Call, now: float, cause: str, cancel_leg: bool) -> None:
        """No answer or failed ring: the agent goes to break (or to the back of the idle
        line), the caller goes back to their place."""
        assert call.agent_id is not None
        agent = self._agents[call.agent_id]
        cfg = self._groups[call.group].cfg
        self._cancel_timer(timer_key(T_RING, call.call_id))
        if cancel_leg:
            self._out.append(CancelRing(call.call_id, agent.agent_id))
        no_answer = cause in _NO_ANSWER_CAUSES
        self._record(call, now, CallEventKind.NO_ANSWER, agent_id=agent.agent_id,
                     detail="no_answer" if no_answer else cause)
        self._out.append(Notify(agent.agent_id, "ended", {
            "call_id": call.call_id, "reason": "no_answer" if no_answer else cause}))
        agent.call_id = None
        call.agent_id = None
        if call.reserved_for is not None:
            call.reserved_for = None
            self._cancel_timer(timer_key(T_FAMILIAR, call.call_id))
            self._record(call, now, CallEventKind.FAMILIAR_RELEASED, agent_id=agent.agent_id)
        if cfg.no_answer_break:
            self._agent_event(agent, AgentEvent.NO_ANSWER, now,
                              "no answer" if no_answer else f"ring failed: {cause}")
        else:
            self._agent_event(agent, AgentEvent.RING_CANCELLED, now)
        if agent.state is AgentState.IDLE:
            call.declined.add(agent.agent_id)
            self._start_timer(timer_key(T_RETRY, call.call_id), now + cfg.retry_seconds)
        self._move(call, CallEvent.RING_RETURNED)
        if call.callback is not None and call.callback.expired:
            self._end(call, CallEvent.EXPIRE, now)
        elif call.overdue and call.state is CallState.WAITING:
            self._send(call, cfg.max_wait_destination, SendReason.MAX_WAIT, now)

    def _dial_failed(self, call: Call, now: float, cause: str) -> None:
        assert call.agent_id is not None and call.callback is not None
        agent = self._agents[call.agent_id]
        cb = call.callback
        self._out.append(CancelRing(call.call_id, agent.agent_id))
        self._record(call, now, CallEventKind.DIAL_FAILED, agent_id=agent.agent_id,
                     detail=f"{cause}, attempt {cb.attempts} of {cb.max_attempts}")
        if cb.attempts >= cb.max_attempts:
            self._end(call, CallEvent.GIVE_UP, now)
        elif cb.expired or now + cb.gap >= cb.expires_at:
            self._end(call, CallEvent.EXPIRE, now)
        else:
            call.agent_id = None
            self._move(call, CallEvent.DIAL_FAILED)
            self._start_timer(timer_key(T_CB_RETRY, call.call_id), now + cb.gap)
        self._after_call(agent, call, now)

    def _offer_agent(self, agent: _Agent, now: float) -> None:
        """An agent became available: the first call (queue order) they may take."""
        if not agent.available:
            return
        agent_id = agent.agent_id
        calls = self._calls
        best: Entry | None = None
        via = ""
        held = self._reserved.get(agent_id)
        if held:
            best = held.first()
            if best is not None:
                via = calls[best[-1]].group

        def skip(key: Entry) -> bool:
            return agent_id in calls[key[-1]].declined

        for name, level in agent.groups.items():
            key = self._groups[name].waiting.best_for(level, skip)
            if key is not None and (best is None or key < best):
                best, via = key, name
        if best is not None:
            self._ring(calls[best[-1]], agent, via, now)

    def _offer_call(self, call: Call, now: float) -> None:
        """A call became offerable: the best available agent (home group first, then the
        groups it was widened to, in order)."""
        if not call.attached or call.state not in OFFERABLE_STATES:
            return
        if call.reserved_for is not None:
            agent = self._agents.get(call.reserved_for)
            if agent is not None and agent.available:
                self._ring(call, agent, call.group, now)
            return
        for name, min_level in call.levels.items():
            agent_id = self._groups[name].idle.pick(min_level, call.declined, self._rng)
            if agent_id is not None:
                self._ring(call, self._agents[agent_id], name, now)
                return

    # ================================================================ internals: plumbing

    def _begin(self) -> None:
        self._out = []
        self._dirty_agents = []
        self._dirty_calls = []

    def _settle(self, now: float) -> list[Decision]:
        """Match what became available during this event: agents first (each takes the
        first call in queue order), then calls in queue order (each takes the best agent)."""
        while self._dirty_agents or self._dirty_calls:
            agents, self._dirty_agents = self._dirty_agents, []
            for agent in agents:
                self._offer_agent(agent, now)
            calls, self._dirty_calls = self._dirty_calls, []
            seen: set[str] = set()
            for call in sorted(calls, key=lambda c: c.key):
                if call.call_id not in seen:
                    seen.add(call.call_id)
                    self._offer_call(call, now)
        return self._take()

    def _take(self) -> list[Decision]:
        out, self._out = self._out, []
        return out

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _start_timer(self, key: str, at: float) -> None:
        self._timers[key] = at
        self._out.append(StartTimer(key, at))

    def _cancel_timer(self, key: str) -> None:
        if self._timers.pop(key, None) is not None:
            self._out.append(CancelTimer(key))

    def _record(self, call: Call, now: float, kind: CallEventKind, *,
                agent_id: str | None = None, detail: str = "",
                end_reason: EndReason | None = None) -> None:
        rec = CallRecord(now, kind, call.group, agent_id, detail, end_reason)
        call.timeline.append(rec)
        self._out.append(RecordCallEvent(call.call_id, rec))
        if kind is CallEventKind.ENDED:
            self._out.append(ReleaseLegs(call.call_id, end_reason in _HANGUP_ENDS))
