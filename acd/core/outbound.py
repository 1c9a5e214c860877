"""Outbound calls in the core: the agent's own phone rings first, then the customer is
dialled; once the customer answers the two are bridged. The state machine is
:data:`acd.core.transfers.OUTBOUND_TABLE`; this module carries it out against the agent
(whose state changes only through :mod:`acd.core.agent_states`).

The adapter reports the legs through the ACD's usual events (``agent_ringing``,
``agent_answered``, ``ring_failed``, ``agent_hung_up``, ``customer_answered``,
``customer_dial_failed``, ``caller_hung_up`` for the customer's leg): each ``_outbound_*``
hook below returns None when the call is not an outbound call, else the decisions.
Decisions: :class:`~acd.core.RingAgentForOutbound`, :class:`~acd.core.DialCustomer`,
:class:`~acd.core.BridgeCall`, :class:`~acd.core.OutboundStarted`,
:class:`~acd.core.OutboundEnded` (then :class:`~acd.core.ReleaseLegs`).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from acd.core import transfers as tf
from acd.core.agent_states import AgentEvent, AgentState
from acd.core.decisions import (BridgeCall, CancelRing, Decision, DialCustomer, Notify,
                                OutboundEnded, OutboundStarted, ReleaseLegs,
                                RingAgentForOutbound)
from acd.core.engine import Engine, LegStat
from acd.core.errors import DuplicateCall, NotLoggedIn, RestoreInvalid
from acd.core.numbers import is_number
from acd.core.timers import T_OBRING, T_WRAPUP, timer_key
from acd.core.transfers import OutboundEvent, OutboundState

#: An agent may make an outbound call from these states (not on a call or wrapping up).
DIAL_FROM = frozenset({AgentState.IDLE, AgentState.BUSY, AgentState.BREAK, AgentState.MEETING})


@dataclass(slots=True, eq=False)
class OutboundCall:
    call_id: str
    agent_id: str
    number: str
    dial_timeout: float
    wrapup_seconds: float
    started_at: float
    state: OutboundState = OutboundState.AGENT_RINGING
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None


def outbound_view(out: OutboundCall) -> dict[str, Any]:
    """The outbound call, JSON-ready (as ``control_info`` gives it)."""
    return {"call_id": out.call_id, "outbound": True, "state": out.state.value,
            "agent_id": out.agent_id, "number": out.number,
            "answered_at": out.answered_at, "end_reason": out.end_reason}


class OutboundCalls(Engine):
    """The agents' outbound calls, on the core's engine. See the module docstring."""

    def _init_outbound(self) -> None:
        self._outbound: dict[str, OutboundCall] = {}
        self._outbound_ended: OrderedDict[str, OutboundCall] = OrderedDict()

    def dial(self, agent_id: str, number: str, now: float, *, call_id: str,
             ring_timeout: float = 20.0, dial_timeout: float = 45.0,
             wrapup_seconds: float = 0.0) -> list:
        """The agent's outbound call to ``number``: the agent's phone rings first, then the
        customer is dialled. ``call_id`` is chosen by the adapter (it names the record)."""
        self._begin()
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is AgentState.OFFLINE:
            raise NotLoggedIn(agent_id, "offline", "dial")
        if not is_number(number):
            raise tf.BadNumber()
        if agent.state not in DIAL_FROM:
            raise tf.OnACall(agent_id, f"state {agent.state.value!r}")
        if (why := self._phone_unusable(agent)) is not None:
            raise tf.OnACall(agent_id, why)
        if (call_id in self._calls or call_id in self._ended or call_id in self._outbound
                or call_id in self._outbound_ended):
            raise DuplicateCall(call_id)
        out = OutboundCall(call_id, agent_id, number, dial_timeout, wrapup_seconds, now)
        self._outbound[call_id] = out
        self._out.append(OutboundStarted(call_id, agent_id, number, now))
        # From busy, break or meeting: through idle (the agent table offers calls to idle
        # agents only); their state comes back after the call, as a pending state.
        back = None if agent.state is AgentState.IDLE else (agent.state, agent.reason)
        if back is not None:
            self._agent_event(agent, AgentEvent.GO_IDLE, now, "outbound call")
        agent.call_id = call_id
        self._agent_event(agent, AgentEvent.OFFER, now)
        if back is not None and agent.pending is None:
            agent.pending = back
            self._notify_state(agent)
        assert agent.endpoint is not None
        self._out.append(RingAgentForOutbound(call_id, agent_id, agent.endpoint, ring_timeout,
                                              number))
        self._start_timer(timer_key(T_OBRING, call_id), now + ring_timeout)
        self._out.append(Notify(agent_id, "outbound", {"call_id": call_id, "number": number,
                                                       "state": out.state.value}))
        return self._settle(now)

    def restore_outbound(self, call_id: str, agent_id: str, number: str, now: float, *,
                         answered_at: float | None = None) -> list:
        """After a restart: the agent's outbound call is connected (agent restored first in
        a manual state)."""
        self._begin()
        agent = self._agents.get(agent_id)
        if agent is None or agent.state not in (AgentState.IDLE, AgentState.BUSY,
                                                AgentState.BREAK, AgentState.MEETING):
            raise RestoreInvalid(f"Agent {agent_id!r} must be restored in a manual state.")
        if call_id in self._outbound or call_id in self._calls:
            raise DuplicateCall(call_id)
        since = now if answered_at is None else answered_at
        out = OutboundCall(call_id, agent_id, number, 0.0, 0.0, since,
                           state=OutboundState.CONNECTED, answered_at=since)
        self._outbound[call_id] = out
        if agent.state is not AgentState.IDLE and agent.pending is None:
            agent.pending = (agent.state, agent.reason)
        agent.call_id = call_id
        agent.reason = ""
        self._force_agent_state(agent, AgentState.TALKING, since)
        self._legstats[(call_id, agent_id)] = LegStat(call_id, agent_id, "outbound", since)
        return self._take()

    def is_outbound(self, call_id: str) -> bool:
        return call_id in self._outbound or call_id in self._outbound_ended

    def _outbound_of(self, call_id: str) -> OutboundCall | None:
        """The outbound call, live or ended; None if ``call_id`` is not one."""
        return self._outbound.get(call_id) or self._outbound_ended.get(call_id)

    # ------------------------------------------------------------------ the legs' events

    def _outbound_hang_up(self, agent_id: str, now: float) -> list[Decision] | None:
        """The agent asks to end their call: theirs if it is a live outbound call."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.call_id not in self._outbound:
            return None
        out = self._outbound[agent.call_id]
        if out.agent_id != agent_id or out.state is OutboundState.ENDED:
            return None
        self._outbound_event(out, OutboundEvent.AGENT_HANGUP, now)
        return self._settle(now)

    def _outbound_ringing(self, call_id: str, agent_id: str, now: float) -> list | None:
        if call_id not in self._outbound and call_id not in self._outbound_ended:
            return None
        self._begin()
        return self._settle(now)

    def _outbound_answered(self, call_id: str, agent_id: str, now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.agent_id == agent_id and (
                out.state is OutboundState.AGENT_RINGING):
            self._outbound_event(out, OutboundEvent.AGENT_ANSWERED, now)
            return self._settle(now)
        if out is None or out.agent_id != agent_id:
            return [CancelRing(call_id, agent_id)]
        return self._settle(now)

    def _outbound_ring_failed(self, call_id: str, agent_id: str, cause: str,
                              now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.agent_id == agent_id and (
                out.state is OutboundState.AGENT_RINGING):
            self._outbound_event(out, OutboundEvent.AGENT_FAILED, now, cause)
        return self._settle(now)

    def _outbound_agent_hung_up(self, call_id: str, agent_id: str, now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.agent_id == agent_id:
            if out.state is OutboundState.AGENT_RINGING:
                self._outbound_event(out, OutboundEvent.AGENT_FAILED, now, "rejected")
            elif out.state is not OutboundState.ENDED:
                self._outbound_event(out, OutboundEvent.AGENT_HANGUP, now)
        return self._settle(now)

    def _outbound_fact(self, call_id: str, now: float,
                       moves: dict[OutboundState, tuple[OutboundEvent, str]]) -> list | None:
        """A fact about the customer's side of an outbound call: in the states of ``moves``,
        the event (and cause) it is; None if the call is no outbound call of ours."""
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.state in moves:
            event, cause = moves[out.state]
            self._outbound_event(out, event, now, cause)
        return self._settle(now)

    def _outbound_customer_answered(self, call_id: str, now: float) -> list | None:
        return self._outbound_fact(call_id, now, {
            OutboundState.DIALING: (OutboundEvent.CUSTOMER_ANSWERED, "")})

    def _outbound_customer_failed(self, call_id: str, cause: str, now: float) -> list | None:
        return self._outbound_fact(call_id, now, {
            OutboundState.DIALING: (OutboundEvent.CUSTOMER_FAILED,
                                    (cause or "failed").strip().lower())})

    def _outbound_caller_hung_up(self, call_id: str, now: float) -> list | None:
        """For an outbound call, the far end (the customer) hung up."""
        return self._outbound_fact(call_id, now, {
            OutboundState.CONNECTED: (OutboundEvent.CUSTOMER_HANGUP, ""),
            OutboundState.DIALING: (OutboundEvent.CUSTOMER_FAILED, "hangup")})

    def _outbound_timer(self, ident: str, now: float) -> None:
        """The agent's phone rang too long for their outbound call."""
        out = self._outbound.get(ident)
        if out is not None and out.state is OutboundState.AGENT_RINGING:
            self._outbound_event(out, OutboundEvent.AGENT_FAILED, now, "no_answer")

    # ------------------------------------------------------------------ the state machine

    def _outbound_event(self, out: OutboundCall, event: OutboundEvent, now: float,
                        cause: str = "") -> None:
        move = tf.next_outbound(out.call_id, out.state, event)
        agent = self._agents[out.agent_id]
        call_id = out.call_id
        before = out.state
        out.state = move.target
        if event is OutboundEvent.AGENT_ANSWERED:
            self._cancel_timer(timer_key(T_OBRING, call_id))
            self._agent_event(agent, AgentEvent.ANSWER, now)
            agent.handle_started = now
            agent.handle_group = None
            self._out.append(DialCustomer(call_id, out.agent_id, out.number, out.dial_timeout))
            self._rec(call_id, now, "dialing", out.agent_id, {"number": out.number})
        elif event is OutboundEvent.CUSTOMER_ANSWERED:
            out.answered_at = now
            self._legstats[(call_id, out.agent_id)] = LegStat(call_id, out.agent_id,
                                                              "outbound", now)
            self._out.append(BridgeCall(call_id, out.agent_id))
            self._rec(call_id, now, "answered", out.agent_id)
        self._out.append(Notify(out.agent_id, "outbound", {
            "call_id": call_id, "number": out.number, "state": out.state.value,
            "cause": cause or None}))
        if move.target is not OutboundState.ENDED:
            return
        self._cancel_timer(timer_key(T_OBRING, call_id))
        out.ended_at = now
        out.end_reason = move.end_reason
        self._outbound.pop(call_id, None)
        self._outbound_ended[call_id] = out
        while len(self._outbound_ended) > self._keep_ended:
            self._outbound_ended.popitem(last=False)
        self._out.append(CancelRing(call_id, out.agent_id))     # whatever leg is left
        self._out.append(OutboundEnded(call_id, out.agent_id, move.end_reason or "ended", now,
                                       cause))
        self._out.append(ReleaseLegs(call_id, caller_too=False))
        self._out.append(Notify(out.agent_id, "ended", {"call_id": call_id,
                                                        "reason": move.end_reason}))
        if agent.call_id != call_id:
            return
        if before is OutboundState.AGENT_RINGING:
            agent.call_id = None
            self._agent_event(agent, AgentEvent.RING_CANCELLED, now, keep_idle=True)
            return
        if (call_id, out.agent_id) in self._legstats:
            self._leg_closed(agent, call_id, now, move.end_reason or "ended")
        self._agent_event(agent, AgentEvent.CALL_ENDED, now)
        if out.wrapup_seconds > 0:
            self._start_timer(timer_key(T_WRAPUP, agent.agent_id), now + out.wrapup_seconds)
        else:
            self._finish_wrapup(agent, now)


__all__ = ["OutboundCalls", "OutboundCall", "outbound_view", "DIAL_FROM"]
