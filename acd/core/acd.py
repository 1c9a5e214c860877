"""The ACD core: one object, events in, decisions out. No I/O, no clock, no asyncio.

Every event method takes ``now`` (seconds, any monotonic clock the adapter likes) and returns
the list of decisions for the adapters to carry out, in order. See :mod:`acd.core` for the
contract.

:class:`Acd` is the public API: agent and call events, time, service hours, queries. Its
parts, each a layer on the one below (none imports this module):

* :mod:`acd.core.engine` -- the state (agents, groups, calls, timers) and the internal
  moves: agent and call state changes through their tables, routing indexes, rings,
  the matching at the end of each event (``_settle``), records;
* :mod:`acd.core.outbound` -- the agents' outbound calls;
* :mod:`acd.core.control` -- call control of connected calls (hold, transfer, consult,
  survey, the agent's hangup);
* :mod:`acd.core.restore` -- the rebuild after a restart;
* :mod:`acd.core.views` -- the JSON-ready views, functions of plain data.
"""
from __future__ import annotations

import random
from dataclasses import replace
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from acd.core import agent_states as ags
from acd.core import calls as cls
from acd.core import views
from acd.core.agent_states import MANUAL_STATES, AgentEvent, AgentState
from acd.core.agents import Agent
from acd.core.calls import (CALLBACK_STATES, OFFERABLE_STATES, Call, CallEvent, CallEventKind,
                            CallState)
from acd.core.config import GroupConfig, validate_groups
from acd.core.control import CallControl
from acd.core.decisions import BridgeCall, CancelRing, Decision, DialCustomer, Notify
from acd.core.engine import SendReason
from acd.core.errors import (AgentLoggedIn, CallbackDisabled, CallbackNumberMissing,
                             GroupHasCalls, NotAManualState, UnknownCall, UnknownGroup)
from acd.core.groups import Group, GroupStats
from acd.core.restore import Restore
from acd.core.routing import IdleAgents, Strategy
from acd.core.timers import (QUEUE_TIMERS, T_ANNOUNCE, T_CB_EXPIRE, T_CB_RETRY, T_FAMILIAR,
                             T_MAXWAIT, T_OBRING, T_PHONE, T_RETRY, T_RING, T_WIDEN, T_WRAPUP,
                             T_XFER, split_key, timer_key)


class Acd(CallControl, Restore):
    """The ACD core. Construct it with the skill groups; feed it events; carry out what the
    returned decisions ask. ``rng`` drives the ``random`` strategy (seed it for tests). Call
    control (hold, transfers, consults, survey) comes from
    :class:`~acd.core.control.CallControl`, outbound calls from
    :class:`~acd.core.outbound.OutboundCalls`, the rebuild after a restart from
    :class:`~acd.core.restore.Restore`."""

    def __init__(self, groups: Iterable[GroupConfig], *, rng: random.Random | None = None,
                 keep_ended: int = 10_000, familiar_memory: int = 100_000,
                 phone_grace: float = 0.0) -> None:
        super().__init__(groups, rng=rng, keep_ended=keep_ended,
                         familiar_memory=familiar_memory, phone_grace=phone_grace)
        self._init_outbound()
        self._init_control()

    # ================================================================ agent events

    def agent_login(self, agent_id: str, endpoint: str, now: float) -> list[Decision]:
        """The agent logs in, bound to the SIP ``endpoint``; they become idle."""
        self._begin()
        agent = self._agents.get(agent_id) or Agent(agent_id)
        step = ags.next_state(agent_id, agent.state, AgentEvent.LOGIN)
        self._bind_endpoint(agent, endpoint)
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
        agent = self._agents.get(agent_id) or Agent(agent_id)
        self._agent_event(agent, ags.REQUEST_EVENT[wanted], now, reason)
        return self._settle(now)

    def end_wrapup(self, agent_id: str, now: float) -> list[Decision]:
        """The agent ends their after-call work early."""
        self._begin()
        agent = self._agents.get(agent_id) or Agent(agent_id)
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
        if agent_id is not None and reachable:
            self._cancel_timer(timer_key(T_PHONE, agent_id))    # back within the grace
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
                     verification: str | None = None,
                     entered_at: float | None = None,
                     overloaded: bool = False,
                     caller_text: str | None = None) -> list[Decision]:
        """A caller enters skill group ``group``'s queue (higher ``priority`` first, then
        entry time). ``key_trail``: the IVR keys pressed; ``verification``: what the IVR
        established about the caller. Both are shown to the agent. ``entered_at``: when the
        caller entered the queue, if earlier than ``now`` (the channel says so): their place,
        the arrival and queue records and the maximum wait count from it; what the core
        decides (an offer, a ring timer) happens at ``now``. ``overloaded``: the server is
        past what it can serve (see :mod:`acd.runtime.overload`): the caller is not queued
        but sent to the group's ``overload_destination`` (a message, by default), on record
        as an overflow. ``caller_number``: the caller's number if it is one we may dial,
        else ""; ``caller_text``: the caller id as it came, shown to the agent (default: the
        number)."""
        self._begin()
        self._new_call_in(call_id, group)
        entered = now if entered_at is None else min(entered_at, now)
        call = Call(call_id, caller_number or "", group, int(priority), entered,
                    tuple(key_trail), verification,
                    caller_text=(caller_number or "") if caller_text is None else caller_text)
        call.channel_group = group
        self._calls[call_id] = call
        self._record(call, entered, CallEventKind.ARRIVED, detail=" ".join(call.key_trail))
        self._enter_group(call, group, now, entered, overloaded)
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
        if (control := self._outbound_caller_hung_up(call_id, now)) is not None:
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
        if (control := self._outbound_customer_answered(call_id, now)) is not None:
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
        if (control := self._outbound_customer_failed(call_id, cause, now)) is not None:
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
        if kind == T_OBRING:
            self._outbound_timer(ident, now)
            return self._settle(now)
        if kind == T_XFER:
            self._control_timer(ident, now)
            return self._settle(now)
        if kind == T_PHONE:
            self._phone_gone(ident, "unreachable", now, still_unreachable=True)
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

    def set_member(self, group: str, agent_id: str, level: int | None,
                   now: float) -> list[Decision]:
        """Membership changed while running (the admin page): ``agent_id`` joins ``group``
        at skill ``level``, changes level, or leaves it (``level`` None). Only routing
        changes: a call the agent is on goes on (they leave the group after it), and an
        idle member added is offered the group's waiting callers at once."""
        self._begin()
        self._set_member(group, agent_id, level)
        return self._settle(now)

    def _set_member(self, group: str, agent_id: str, level: int | None) -> None:
        g = self._groups.get(group)
        if g is None:
            raise UnknownGroup(group)
        if level is not None and (isinstance(level, bool) or not isinstance(level, int)
                                  or level < 0):
            raise ValueError(f"a skill level is a whole number of 0 or more, not {level!r}")
        agent = self._agents.get(agent_id)
        if agent is None:
            if level is None:
                return
            agent = self._agents[agent_id] = Agent(agent_id)
        if agent.available:                  # out of every idle index, back in below
            for idle, lv, entry in agent.indexed:
                idle.remove(lv, entry)
            agent.indexed.clear()
            agent.available = False
        members = dict(g.cfg.members)
        if level is None:
            if agent.groups.pop(group, None) is not None:
                g.agent_counts[agent.state] -= 1
                members.pop(agent_id, None)
                g.member_index.pop(agent_id, None)
        else:
            if group not in agent.groups:
                g.agent_counts[agent.state] += 1
                g.member_index[agent_id] = max(g.member_index.values(), default=-1) + 1
            agent.groups[group] = level
            members[agent_id] = level
            g.idle.ensure_level(level)
        g.cfg = replace(g.cfg, members=members)
        self._sync_available(agent)          # idle and reachable: indexed again, and matched

    def configure_groups(self, groups: Iterable[GroupConfig], now: float) -> list[Decision]:
        """Skill groups changed while running (the admin page): new groups come (with no
        members: see :meth:`set_member`), the others take their new settings (a new wrap-up
        applies from the next call on, a new ring timeout from the next ring, a new strategy
        from the next offer), and groups left out go, if no call is homed there
        (``group.has_calls``). Members are kept as they are."""
        self._begin()
        wanted = list(groups)
        gone = [n for n in self._groups if n not in {g.name for g in wanted}]
        for name in gone:
            if self._groups[name].calls:
                raise GroupHasCalls(name, len(self._groups[name].calls))
        kept = [replace(g, members=dict(self._groups[g.name].cfg.members)
                        if g.name in self._groups else {}) for g in wanted]
        validate_groups(kept)
        for name in gone:
            for agent_id in list(self._groups[name].cfg.members):
                self._set_member(name, agent_id, None)
            del self._groups[name]
        for cfg in kept:
            g = self._groups.get(cfg.name)
            if g is None:
                self._groups[cfg.name] = Group(cfg=cfg, open=cfg.open, member_index={},
                                               idle=IdleAgents(Strategy(cfg.strategy), []),
                                               aht=cfg.expected_handle_time)
                continue
            same_strategy = Strategy(g.cfg.strategy) is Strategy(cfg.strategy)
            g.cfg = cfg
            if same_strategy:
                continue
            members = [self._agents[a] for a in cfg.members if a in self._agents]
            for agent in members:              # out of every idle index, back in below
                for idle, lv, entry in agent.indexed:
                    idle.remove(lv, entry)
                agent.indexed.clear()
                agent.available = False
            g.idle = IdleAgents(Strategy(cfg.strategy), list(cfg.members.values()))
            for agent in members:
                self._sync_available(agent)
        return self._settle(now)

    def forget_agent(self, agent_id: str, now: float) -> list[Decision]:
        """An agent removed on the admin page: out of every group, and forgotten. Only a
        logged-out agent (``agent.logged_in``)."""
        self._begin()
        agent = self._agents.get(agent_id)
        if agent is None:
            return self._settle(now)
        if agent.state is not AgentState.OFFLINE:
            raise AgentLoggedIn(agent_id, agent.state.value)
        for name in list(agent.groups):
            self._set_member(name, agent_id, None)
        self._agents.pop(agent_id, None)
        return self._settle(now)

    def remember_contact(self, caller_number: str, agent_id: str, at: float) -> None:
        """Tell the core "caller X last talked to agent Y at time T" (e.g. from the store at
        start-up). The core also remembers its own answered calls."""
        self._remember(caller_number, agent_id, at)

    # ================================================================ queries

    def snapshot_queues(self, now: float) -> dict[str, dict[str, Any]]:
        """Per skill group: calls waiting (in order), longest wait, agents by state, and
        counters since start (or :meth:`reset_stats`). JSON-ready."""
        return {name: views.queue_view(g, now) for name, g in self._groups.items()}

    def snapshot_agents(self, now: float) -> dict[str, dict[str, Any]]:
        """Per agent: state, reason, pending state, phone reachability, and why they are
        not offered calls (``unavailable_reason``). JSON-ready."""
        return {agent_id: self._agent_view(a, now) for agent_id, a in self._agents.items()}

    def agent_snapshot(self, agent_id: str, now: float) -> dict[str, Any] | None:
        """One agent, as :meth:`snapshot_agents` shows them; None if the core has no such
        agent."""
        a = self._agents.get(agent_id)
        return None if a is None else self._agent_view(a, now)

    def _agent_view(self, a: Agent, now: float) -> dict[str, Any]:
        return views.agent_view(a, now, reachable=self._is_reachable(a),
                                in_use=self._in_use_now(a), unusable=self._phone_unusable(a))

    def wrapup_seconds(self, group: str | None) -> float:
        """The skill group's wrap-up seconds; 0.0 for an unknown group (or None)."""
        g = self._groups.get(group or "")
        return float(g.cfg.wrapup_seconds) if g is not None else 0.0

    def group_calls(self, group: str) -> int:
        """The live calls homed in ``group`` (waiting, ringing, connected, held, callbacks)."""
        g = self._groups.get(group)
        return len(g.calls) if g is not None else 0

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
        return views.call_view(call)

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
            g.stats = GroupStats()


__all__ = ["Acd", "SendReason"]
