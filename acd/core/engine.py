"""The core's engine: its state and the moves every part of it makes. No I/O, no clock.

:class:`Engine` holds the agents, skill groups, calls, timers and the decisions of the event
being handled, and the internal moves on them; :class:`~acd.core.Acd` adds the events (the
public API) on top, through call control (:mod:`acd.core.control`), outbound calls
(:mod:`acd.core.outbound`) and the rebuild after a restart (:mod:`acd.core.restore`).

In short:

* agents and calls change state only through the tables in :mod:`acd.core.agent_states`
  and :mod:`acd.core.calls`;
* a call's place in the routing indexes follows from its state, group, levels and
  reservation: every change goes ``_detach`` -> change -> ``_attach``;
* agents that became available and calls that became offerable are collected while an
  event is handled and matched at the end (``_settle``): agents first, then calls in queue
  order. After every event no offerable call has an eligible available agent;
* an agent's part of a call (a leg: talk and hold seconds, then the wrap-up) is recorded
  when it ends (``RecordLeg``, ``RecordLegWrapup``).
"""
from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from acd.core import agent_states as ags
from acd.core import calls as cls
from acd.core.agent_states import SYSTEM_STATES, WORKING_STATES, AgentEvent, AgentState
from acd.core.agents import Agent
from acd.core.calls import (LIVE_WAITING_STATES, OFFERABLE_STATES, QUEUED_STATES, Call,
                            Callback, CallEvent, CallEventKind, CallRecord, CallState,
                            EndReason)
from acd.core.config import (CallbackSettings, Destination, DestinationKind, GroupConfig,
                             validate_groups)
from acd.core.decisions import (Announce, CancelRing, CancelTimer, Decision, Notify,
                                RecordAgentState, RecordCallEvent, RecordControl, RecordLeg,
                                RecordLegWrapup, RegroupCaller, ReleaseLegs, RingAgent,
                                RingAgentForCallback, SendToDestination, StartTimer)
from acd.core.errors import (DuplicateCall, EndpointInUse, EndpointMissing, UnknownCall,
                             UnknownGroup)
from acd.core.groups import Group
from acd.core.routing import Entry, IdleAgents, SortedList, Strategy, idle_entry
from acd.core.timers import (CALL_TIMERS, QUEUE_TIMERS, T_ANNOUNCE, T_CB_EXPIRE, T_CB_RETRY,
                             T_FAMILIAR, T_MAXWAIT, T_RETRY, T_RING, T_WIDEN, T_WRAPUP,
                             timer_key)


class SendReason(StrEnum):
    CLOSED = "closed"
    NO_AGENTS = "no_agents"
    QUEUE_FULL = "queue_full"
    MAX_WAIT = "max_wait"
    OVERLOAD = "overload"


_SEND_EVENT = {
    SendReason.CLOSED: CallEvent.SEND_CLOSED,
    SendReason.NO_AGENTS: CallEvent.SEND_NO_AGENTS,
    SendReason.QUEUE_FULL: CallEvent.SEND_OVERFLOW,
    SendReason.MAX_WAIT: CallEvent.SEND_OVERFLOW,
    SendReason.OVERLOAD: CallEvent.SEND_OVERFLOW,
}

#: A conversation ended by a hangup: the caller's channel goes too.
_HANGUP_ENDS = frozenset({EndReason.CALLER_HANGUP, EndReason.AGENT_HANGUP})
_NO_ANSWER_CAUSES = frozenset({"no_answer", "noanswer", "no answer", "timeout"})
#: Rings that never reached the phone through no doing of the agent (Asterisk did not
#: answer the ring's request in time, or the link to it was cut): no break for the agent.
#: Under overload every ring may end so; breaks for them left no agent to serve anyone.
NOT_THE_AGENTS_CAUSES = frozenset({"asterisk_unanswered"})


@dataclass(slots=True, eq=False)
class LegStat:
    """An agent's part of a call while it lasts: since when, in which role, time on hold."""
    call_id: str
    agent_id: str
    role: str
    started: float
    hold: float = 0.0
    held_since: float | None = None


class Engine:
    """The core's state and its internal moves. See the module docstring."""

    def __init__(self, groups: Iterable[GroupConfig], *, rng: random.Random | None = None,
                 keep_ended: int = 10_000, familiar_memory: int = 100_000,
                 phone_grace: float = 0.0) -> None:
        by_name = validate_groups(groups)
        # Seconds an agent's phone may stay unreachable during a conversation before the
        # caller is taken back (0: at once). One failed qualify is no proof of a dead phone:
        # a busy machine answers late, and a dropped conversation costs more than a wait.
        self._phone_grace = max(0.0, float(phone_grace))
        self._rng = rng if rng is not None else random.Random(0)
        self._keep_ended = keep_ended
        self._familiar_memory = familiar_memory
        self._agents: dict[str, Agent] = {}
        self._groups: dict[str, Group] = {}
        for name, cfg in by_name.items():
            g = Group(cfg=cfg, open=cfg.open,
                      member_index={a: i for i, a in enumerate(cfg.members)},
                      idle=IdleAgents(Strategy(cfg.strategy), list(cfg.members.values())),
                      aht=cfg.expected_handle_time)
            g.agent_counts[AgentState.OFFLINE] = len(cfg.members)
            self._groups[name] = g
            for agent_id, level in cfg.members.items():
                agent = self._agents.get(agent_id)
                if agent is None:
                    agent = self._agents[agent_id] = Agent(agent_id)
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
        self._dirty_agents: list[Agent] = []
        self._dirty_calls: list[Call] = []
        # No offers while the link to the telephony is down: a ring then fails at once, and
        # the caller would go from agent to agent for nothing (see Acd.hold_offers).
        self._offers_held = False
        self._legstats: dict[tuple[str, str], LegStat] = {}
        self._wrapping: dict[str, tuple[str, float]] = {}     # agent -> (call, wrap-up start)

    # ================================================================ agents

    def _agent_event(self, agent: Agent, event: AgentEvent, now: float, reason: str = "",
                     keep_idle: bool = False) -> None:
        pending = agent.pending[0] if agent.pending else None
        step = ags.next_state(agent.agent_id, agent.state, event, pending)
        self._apply_agent_step(agent, step, now, reason, keep_idle)

    def _apply_agent_step(self, agent: Agent, step: ags.Step, now: float, reason: str,
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

    def _set_agent_state(self, agent: Agent, new: AgentState, now: float, reason: str,
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

    def _force_agent_state(self, agent: Agent, new: AgentState, since: float) -> None:
        """Restore only: set the state without the table, records or notifications."""
        for name in agent.groups:
            counts = self._groups[name].agent_counts
            counts[agent.state] -= 1
            counts[new] += 1
        agent.state = new
        agent.since = since
        self._sync_available(agent)

    def _new_call_in(self, call_id: str, group: str) -> Group:
        """The group a new call enters; refused if the call is known or the group is not."""
        if call_id in self._calls or call_id in self._ended:
            raise DuplicateCall(call_id)
        g = self._groups.get(group)
        if g is None:
            raise UnknownGroup(group)
        return g

    def _bind_endpoint(self, agent: Agent, endpoint: str) -> None:
        """Bind the agent to their phone (login, restore); refused if none or another's."""
        if not endpoint:
            raise EndpointMissing(agent.agent_id)
        holder = self._by_endpoint.get(endpoint)
        if holder is not None and holder != agent.agent_id:
            raise EndpointInUse(endpoint, holder)
        self._agents[agent.agent_id] = agent
        agent.endpoint = endpoint
        self._by_endpoint[endpoint] = agent.agent_id

    def _is_reachable(self, agent: Agent) -> bool:
        return agent.endpoint is not None and self._reachable.get(agent.endpoint, True)

    def _in_use_now(self, agent: Agent) -> bool:
        return agent.endpoint is not None and agent.endpoint in self._in_use

    def _phone_unusable(self, agent: Agent) -> str | None:
        """Why the agent's phone cannot take a call now, or None."""
        if not self._is_reachable(agent):
            return "phone unreachable"
        return "phone in use" if self._in_use_now(agent) else None

    def _sync_available(self, agent: Agent) -> None:
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

    def _notify_state(self, agent: Agent) -> None:
        self._out.append(Notify(agent.agent_id, "state", {
            "state": agent.state.value, "reason": agent.reason, "since": agent.since,
            "pending": agent.pending[0].value if agent.pending else None,
            "pending_reason": agent.pending[1] if agent.pending else None,
            "reachable": self._is_reachable(agent), "phone_in_use": self._in_use_now(agent),
            "call_id": agent.call_id}))

    def _release_reservations(self, agent: Agent, now: float) -> None:
        held = self._reserved.get(agent.agent_id)
        if held:
            for key in list(held):
                self._release_familiar(self._calls[key[-1]], now)

    def _after_call(self, agent: Agent, call: Call, now: float,
                    reason: str | None = None) -> None:
        """The agent's conversation (or callback attempt) is over: wrap-up. ``reason``:
        why their part ended, if not the call's end (call control: transferred, ...)."""
        self._leg_after_call(agent, call, now, reason)
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

    def _finish_wrapup(self, agent: Agent, now: float) -> None:
        self._leg_wrapup_ended(agent, now)
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

    # ================================================================ an agent's part of a call

    def _leg_of(self, agent: Agent, call: Call) -> LegStat:
        key = (call.call_id, agent.agent_id)
        stat = self._legstats.get(key)
        if stat is None:
            started = (agent.handle_started if agent.handle_started is not None
                       else call.answered_at if call.answered_at is not None else 0.0)
            role = "callback" if call.callback is not None else "answer"
            stat = self._legstats[key] = LegStat(call.call_id, agent.agent_id, role, started)
        return stat

    def _leg_closed(self, agent: Agent, call_id: str, now: float, reason: str) -> None:
        key = (call_id, agent.agent_id)
        stat = self._legstats.pop(key, None)
        if stat is None:
            call = self._calls.get(call_id) or self._ended.get(call_id)
            if call is None or call.answered_at is None or agent.handle_started is None:
                return                        # never talked (e.g. a failed callback attempt)
            started = agent.handle_started
            role = "callback" if call.callback is not None else "answer"
            stat = LegStat(call_id, agent.agent_id, role, started)
        hold = stat.hold
        if stat.held_since is not None:
            hold += max(0.0, now - stat.held_since)
        total = max(0.0, now - stat.started)
        self._out.append(RecordLeg(call_id, agent.agent_id, stat.role, stat.started, now,
                                   max(0.0, total - hold), hold, reason))
        self._wrapping[agent.agent_id] = (call_id, now)

    def _leg_after_call(self, agent: Agent, call: Call, now: float,
                            reason: str | None) -> None:
        """The agent's part of the call is over (before the wrap-up): its leg record."""
        why = reason or (call.end_reason.value if call.end_reason else "ended")
        self._leg_closed(agent, call.call_id, now, why)

    def _leg_wrapup_ended(self, agent: Agent, now: float) -> None:
        """The agent's wrap-up is over: its record."""
        entry = self._wrapping.pop(agent.agent_id, None)
        if entry is not None and entry[0] == agent.call_id:
            self._out.append(RecordLegWrapup(entry[0], agent.agent_id,
                                             max(0.0, now - entry[1])))

    # ================================================================ calls

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

    def _enter_group(self, call: Call, group: str, now: float,
                     entered: float | None = None, overloaded: bool = False) -> None:
        """Arrival, or overflow into another group: check service hours, staffing and queue
        length, then queue (since ``entered``, by default now). ``overloaded``: the server
        takes no more callers now; a new one goes to the group's overload destination."""
        if call.state is CallState.WAITING:       # moving from another group
            self._detach(call)
            for kind in QUEUE_TIMERS:
                self._cancel_timer(timer_key(kind, call.call_id))
        g = self._groups[group]
        call.group = group
        cfg = g.cfg
        if not g.open:
            self._send(call, cfg.closed_destination, SendReason.CLOSED, now)
        elif overloaded:
            self._send(call, cfg.overload_destination, SendReason.OVERLOAD, now)
        elif cfg.no_agents_destination is not None and g.logged_in == 0:
            self._send(call, cfg.no_agents_destination, SendReason.NO_AGENTS, now)
        elif cfg.max_queue_length is not None and g.live_waiting >= cfg.max_queue_length:
            self._send(call, cfg.queue_full_destination, SendReason.QUEUE_FULL, now)
        else:
            self._enqueue(call, g, now, now if entered is None else entered)

    def _enqueue(self, call: Call, g: Group, now: float, entered: float) -> None:
        cfg = g.cfg
        call.entered_at = entered
        call.seq = self._next_seq()
        call.levels = {cfg.name: cfg.min_level}
        call.widen_step = 0
        call.declined.clear()
        call.overdue = False
        call.reserved_for = self._familiar_agent(call, g, now)
        g.stats.offered += 1
        self._move(call, CallEvent.QUEUE)
        self._record(call, entered, CallEventKind.QUEUED, detail=f"priority {call.priority}")
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
            self._start_timer(timer_key(T_MAXWAIT, cid), max(now, entered + cfg.max_wait))
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
                    self._enqueue(call, self._groups[call.group], now, now)
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

    def _familiar_agent(self, call: Call, g: Group, now: float) -> str | None:
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

    def _count_answer(self, g: Group, call: Call, now: float) -> None:
        g.stats.answered += 1
        if now - call.entered_at <= g.cfg.service_level_seconds:
            g.stats.answered_within_sl += 1
        if call.agent_id is not None:
            self._remember(call.caller_number, call.agent_id, now)

    def _control_call_ending(self, call: Call, event: CallEvent, now: float) -> None:
        """The call is about to end (``_end``): call control's part (see
        :class:`~acd.core.control.CallControl`). Nothing here."""

    # ================================================================ rings

    def _ring(self, call: Call, agent: Agent, via: str, now: float) -> None:
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
            "call_id": call.call_id, "caller_number": call.caller_text or call.caller_number,
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
        if cfg.no_answer_break and cause not in NOT_THE_AGENTS_CAUSES:
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

    def _offer_agent(self, agent: Agent, now: float) -> None:
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

    # ================================================================ plumbing

    def _begin(self) -> None:
        self._out = []
        self._dirty_agents = []
        self._dirty_calls = []

    def _settle(self, now: float) -> list[Decision]:
        """Match what became available during this event: agents first (each takes the
        first call in queue order), then calls in queue order (each takes the best agent).
        Nothing is matched while offers are held: releasing them matches everything."""
        if self._offers_held:
            self._dirty_agents, self._dirty_calls = [], []
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

    def _rec(self, call_id: str, now: float, kind: str, agent_id: str | None,
             detail: dict[str, Any] | None = None) -> None:
        self._out.append(RecordControl(call_id, now, kind, agent_id, dict(detail or {})))


__all__ = ["Engine", "LegStat", "SendReason"]
