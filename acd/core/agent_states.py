"""The agent state machine: one table, no side effects.

Manual states (the agent chooses): ``offline`` (logged out), ``idle``, ``busy``, ``break``,
``meeting``. ``idle`` is the state after login, and only idle agents are offered calls.
System states (the ACD sets them): ``ringing``, ``talking``, ``wrapup``.

A manual state asked for in a system state is *deferred*: it becomes the agent's pending
state, applied when the call and its wrap-up end (or when the ring ends unanswered). Whenever
the machine leaves a system state for a manual one, a pending state wins over the table's
target (so "break after this call" also beats the ``no answer`` break).

Any (state, event) pair missing from :data:`TABLE` is illegal and raises an
:class:`~acd.core.errors.IllegalAgentTransition` naming both (``agent.not_logged_in`` when
the agent is offline, ``agent.already_logged_in`` for a second login).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from acd.core.errors import AlreadyLoggedIn, IllegalAgentTransition, NotLoggedIn


class AgentState(StrEnum):
    OFFLINE = "offline"
    IDLE = "idle"
    BUSY = "busy"
    BREAK = "break"
    MEETING = "meeting"
    RINGING = "ringing"
    TALKING = "talking"
    WRAPUP = "wrapup"


class AgentEvent(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    GO_IDLE = "go_idle"
    GO_BUSY = "go_busy"
    GO_BREAK = "go_break"
    GO_MEETING = "go_meeting"
    OFFER = "offer"                    # the ACD rings the agent
    ANSWER = "answer"                  # the agent picked up
    NO_ANSWER = "no_answer"            # ring timed out or failed; group puts agents on break
    RING_CANCELLED = "ring_cancelled"  # the ring ended without the agent's fault (or no break)
    CALL_ENDED = "call_ended"          # either side hung up; after-call work starts
    WRAPUP_END = "wrapup_end"          # wrap-up timer, or the agent ended it early


S, E = AgentState, AgentEvent

#: The states an agent may choose (``offline`` = logged out).
MANUAL_STATES = frozenset({S.OFFLINE, S.IDLE, S.BUSY, S.BREAK, S.MEETING})
#: The states the ACD sets around a call.
SYSTEM_STATES = frozenset({S.RINGING, S.TALKING, S.WRAPUP})
#: Agents in these states are working the queue (used for estimates and familiar routing).
WORKING_STATES = frozenset({S.IDLE, S.RINGING, S.TALKING, S.WRAPUP})

#: The event that asks for each manual state.
REQUEST_EVENT: dict[AgentState, AgentEvent] = {
    S.OFFLINE: E.LOGOUT, S.IDLE: E.GO_IDLE, S.BUSY: E.GO_BUSY,
    S.BREAK: E.GO_BREAK, S.MEETING: E.GO_MEETING,
}


class Move(NamedTuple):
    target: AgentState
    deferred: bool = False   # True: becomes the pending state, applied after the call


_D = True  # deferred

#: (state, event) -> move. Every pair not listed is illegal.
TABLE: dict[tuple[AgentState, AgentEvent], Move] = {
    (S.OFFLINE, E.LOGIN): Move(S.IDLE),

    (S.IDLE, E.GO_IDLE): Move(S.IDLE),
    (S.IDLE, E.GO_BUSY): Move(S.BUSY),
    (S.IDLE, E.GO_BREAK): Move(S.BREAK),
    (S.IDLE, E.GO_MEETING): Move(S.MEETING),
    (S.IDLE, E.LOGOUT): Move(S.OFFLINE),
    (S.IDLE, E.OFFER): Move(S.RINGING),

    (S.BUSY, E.GO_IDLE): Move(S.IDLE),
    (S.BUSY, E.GO_BUSY): Move(S.BUSY),
    (S.BUSY, E.GO_BREAK): Move(S.BREAK),
    (S.BUSY, E.GO_MEETING): Move(S.MEETING),
    (S.BUSY, E.LOGOUT): Move(S.OFFLINE),

    (S.BREAK, E.GO_IDLE): Move(S.IDLE),
    (S.BREAK, E.GO_BUSY): Move(S.BUSY),
    (S.BREAK, E.GO_BREAK): Move(S.BREAK),
    (S.BREAK, E.GO_MEETING): Move(S.MEETING),
    (S.BREAK, E.LOGOUT): Move(S.OFFLINE),

    (S.MEETING, E.GO_IDLE): Move(S.IDLE),
    (S.MEETING, E.GO_BUSY): Move(S.BUSY),
    (S.MEETING, E.GO_BREAK): Move(S.BREAK),
    (S.MEETING, E.GO_MEETING): Move(S.MEETING),
    (S.MEETING, E.LOGOUT): Move(S.OFFLINE),

    (S.RINGING, E.ANSWER): Move(S.TALKING),
    (S.RINGING, E.NO_ANSWER): Move(S.BREAK),
    (S.RINGING, E.RING_CANCELLED): Move(S.IDLE),
    (S.RINGING, E.GO_IDLE): Move(S.IDLE, _D),
    (S.RINGING, E.GO_BUSY): Move(S.BUSY, _D),
    (S.RINGING, E.GO_BREAK): Move(S.BREAK, _D),
    (S.RINGING, E.GO_MEETING): Move(S.MEETING, _D),
    (S.RINGING, E.LOGOUT): Move(S.OFFLINE, _D),

    (S.TALKING, E.CALL_ENDED): Move(S.WRAPUP),
    (S.TALKING, E.GO_IDLE): Move(S.IDLE, _D),
    (S.TALKING, E.GO_BUSY): Move(S.BUSY, _D),
    (S.TALKING, E.GO_BREAK): Move(S.BREAK, _D),
    (S.TALKING, E.GO_MEETING): Move(S.MEETING, _D),
    (S.TALKING, E.LOGOUT): Move(S.OFFLINE, _D),

    (S.WRAPUP, E.WRAPUP_END): Move(S.IDLE),
    (S.WRAPUP, E.GO_IDLE): Move(S.IDLE, _D),
    (S.WRAPUP, E.GO_BUSY): Move(S.BUSY, _D),
    (S.WRAPUP, E.GO_BREAK): Move(S.BREAK, _D),
    (S.WRAPUP, E.GO_MEETING): Move(S.MEETING, _D),
    (S.WRAPUP, E.LOGOUT): Move(S.OFFLINE, _D),
}


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one event: the new (or pending) state."""
    state: AgentState
    deferred: bool = False      # ``state`` is to become the pending state
    took_pending: bool = False  # ``state`` is the pending state being applied now


def next_state(agent_id: str, state: AgentState, event: AgentEvent,
               pending: AgentState | None = None) -> Step:
    """Look ``(state, event)`` up in :data:`TABLE`; raise if the move is illegal."""
    move = TABLE.get((state, event))
    if move is None:
        if state is S.OFFLINE:
            raise NotLoggedIn(agent_id, state.value, event.value)
        if event is E.LOGIN:
            raise AlreadyLoggedIn(agent_id, state.value, event.value)
        raise IllegalAgentTransition(agent_id, state.value, event.value)
    if move.deferred:
        return Step(move.target, deferred=True)
    if pending is not None and state in SYSTEM_STATES and move.target not in SYSTEM_STATES:
        return Step(pending, took_pending=True)
    return Step(move.target)
