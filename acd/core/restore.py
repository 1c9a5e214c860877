"""Rebuilding the ACD after a restart: agents, waiting callers (and callbacks) with their
original entry time and priority, calls in conversation; then ``resume`` offers the waiting
calls in their original order. No records are written for what is rebuilt (a ``restored``
line on the call's timeline only). Call control's own rebuild (``restore_control``,
``restore_outbound``) is in :mod:`acd.core.control` and :mod:`acd.core.outbound`.
"""
from __future__ import annotations

from collections.abc import Sequence

from acd.core.agent_states import MANUAL_STATES, AgentState
from acd.core.agents import Agent
from acd.core.calls import OFFERABLE_STATES, Call, Callback, CallEvent, CallEventKind
from acd.core.config import CallbackSettings
from acd.core.decisions import Decision
from acd.core.engine import Engine
from acd.core.errors import RestoreInvalid
from acd.core.timers import T_ANNOUNCE, T_CB_EXPIRE, T_MAXWAIT, T_WRAPUP, timer_key


class Restore(Engine):
    """The rebuild after a restart, on the core's engine. See the module docstring."""

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
        agent = self._agents.get(agent_id) or Agent(agent_id)
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
        self._bind_endpoint(agent, endpoint)
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
        g = self._new_call_in(call_id, group)
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
        g = self._new_call_in(call_id, group)
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

    def hold_offers(self, held: bool, now: float) -> list[Decision]:
        """Hold every new offer (``held``: the link to the telephony is down, a ring could
        only fail) or release them: then the waiting calls are offered, in queue order, to
        the agents free meanwhile. Everything else goes on while held: callers queue, rings
        under way end, timers fire (a caller past the maximum wait still goes)."""
        self._offers_held = bool(held)
        return [] if held else self.resume(now)

    @property
    def offers_held(self) -> bool:
        return self._offers_held


__all__ = ["Restore"]
