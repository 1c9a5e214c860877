"""Call control as state machines: hold, transfers and consults of a connected call, and the
agent's outbound call. Tables only: no side effects, no I/O.

**The connected call** (:data:`TABLE`). While a caller talks with their agent (the *owner* of the
call), the owner may put the caller on hold, transfer them to an idle agent or a skill group,
consult an idle agent (or a group's next agent) while the caller holds, send the caller to the
satisfaction survey, invite a rating, or hang up. One transfer or consult at a time: the call
is in exactly one control state::

    talking <──hold/resume──> held
       │  (either of them: the state to go back to, "previous")
       ├─ transfer ──> transfer_ringing ──target answered──> talking (the target owns the call)
       │                  └─ cancel, target failed ──> previous
       ├─ consult ──> consult_ringing ──target answered──> consulting ──complete──> talking
       │                  └─ cancel, target failed ──> previous    ├─ return ──> talking
       │                                                            └─ target hung up ──> previous
       └─ transfer to a group, survey, hang up ──> left (the call leaves the agent)

While a transfer or consult rings or is answered, the caller holds (music). A move may emit
transfer events, the transfer's (or consult's) life: ``started``, ``ringing``, ``answered``,
``completed``, ``cancelled``, ``failed``. Every (state, action) pair missing from the table is
refused with :class:`ControlIllegal` (``call.control_illegal``, naming the state and the
action); a refusal changes nothing.

The owner hanging up their phone during a transfer or consult does not drop the caller: a
ringing transfer or consult goes on without them (``ownerless``: whoever answers gets the
caller; if nobody does, the caller goes back to their skill group's queue); an answered
consult is completed (the consulted agent gets the caller).

**The outbound call** (:data:`OUTBOUND_TABLE`): the agent's own phone rings first; once the
agent answers, the customer is dialled; once the customer answers, the two are bridged::

    agent_ringing ──agent answered──> dialing ──customer answered──> connected ──> ended
         └──────────── (no answer, hang up, failure) ──> ended <──────┘

Stable error ids (all :class:`~acd.core.errors.AcdError`; the HTTP layer maps ``call.*`` and
``agent.*`` to 409, ``dial.*`` and ``control.*`` to 400, ``group.unknown`` to 404):

=============================  =======================================================
``call.control_illegal``       the action is not possible in the call's control state
``agent.no_call``              the agent has no connected call to act on
``agent.target_unavailable``   the transfer or consult target is not idle and reachable
``agent.target_is_self``       an agent cannot transfer to or consult themselves
``agent.on_a_call``            an outbound call needs an agent who is not on a call
                               (ringing, talking, wrap-up) and whose phone is reachable
``call.no_agent_available``    consulting a group: none of its agents is free now
``call.group_closed``          transferring to a group outside its service hours
``dial.bad_number``            an outbound number that is not digits, * or # (+ first)
``control.target_missing``     a transfer or consult names no target, or both kinds
``call.outbound_illegal``      the outbound call has no move for this event
=============================  =======================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from acd.core.calls import CallState
from acd.core.errors import AcdError, IllegalCallTransition, IllegalTransition

#: A caller transferred to a skill group goes ahead of new arrivals: this much more priority.
TRANSFER_PRIORITY_BOOST = 1000


# =============================================================================== connected call

class ControlState(StrEnum):
    TALKING = "talking"
    HELD = "held"
    TRANSFER_RINGING = "transfer_ringing"
    CONSULT_RINGING = "consult_ringing"
    CONSULTING = "consulting"
    # targets that are not states a call stays in:
    PREVIOUS = "previous"      # back to talking or held, whichever it was before the transfer
    LEFT = "left"              # the call left the agent (to a queue, the survey, or ended)


class ControlAction(StrEnum):
    # the owner's actions (HTTP API)
    HOLD = "hold"
    RESUME = "resume"
    TRANSFER = "transfer"                  # to an agent
    TRANSFER_GROUP = "transfer_group"      # to a skill group's queue
    CONSULT = "consult"                    # an agent, or a group's next free agent
    CANCEL = "cancel"                      # a transfer or consult that has not been answered
    COMPLETE = "complete"                  # the consult: the consulted agent gets the caller
    RETURN = "return"                      # back to the caller from a consult
    SURVEY = "survey"                      # the caller goes to the survey, the agent drops
    INVITE_RATING = "invite_rating"        # the survey follows when the agent hangs up
    HANGUP = "hangup"
    # what happens to the target's phone (and the owner's)
    TARGET_RINGING = "target_ringing"
    TARGET_ANSWERED = "target_answered"
    TARGET_FAILED = "target_failed"        # refused, busy, no answer, unreachable
    TARGET_HANGUP = "target_hangup"        # the consulted agent hung up
    OWNER_HANGUP = "owner_hangup"          # the owner hung up during a transfer or consult


class TransferEvent(StrEnum):
    """The life of one transfer or consult, as pushed to the agents' screens."""
    STARTED = "started"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Move(NamedTuple):
    target: ControlState
    events: tuple[TransferEvent, ...] = ()


S, A, T = ControlState, ControlAction, TransferEvent

#: (state, action) -> move. Every pair not listed is illegal.
TABLE: dict[tuple[ControlState, ControlAction], Move] = {
    (S.TALKING, A.HOLD): Move(S.HELD),
    (S.HELD, A.RESUME): Move(S.TALKING),

    (S.TALKING, A.TRANSFER): Move(S.TRANSFER_RINGING, (T.STARTED,)),
    (S.HELD, A.TRANSFER): Move(S.TRANSFER_RINGING, (T.STARTED,)),
    (S.TRANSFER_RINGING, A.TARGET_RINGING): Move(S.TRANSFER_RINGING, (T.RINGING,)),
    (S.TRANSFER_RINGING, A.TARGET_ANSWERED): Move(S.TALKING, (T.ANSWERED, T.COMPLETED)),
    (S.TRANSFER_RINGING, A.CANCEL): Move(S.PREVIOUS, (T.CANCELLED,)),
    (S.TRANSFER_RINGING, A.TARGET_FAILED): Move(S.PREVIOUS, (T.FAILED,)),
    (S.TRANSFER_RINGING, A.OWNER_HANGUP): Move(S.TRANSFER_RINGING),

    (S.TALKING, A.TRANSFER_GROUP): Move(S.LEFT, (T.STARTED, T.COMPLETED)),
    (S.HELD, A.TRANSFER_GROUP): Move(S.LEFT, (T.STARTED, T.COMPLETED)),

    (S.TALKING, A.CONSULT): Move(S.CONSULT_RINGING, (T.STARTED,)),
    (S.HELD, A.CONSULT): Move(S.CONSULT_RINGING, (T.STARTED,)),
    (S.CONSULT_RINGING, A.TARGET_RINGING): Move(S.CONSULT_RINGING, (T.RINGING,)),
    (S.CONSULT_RINGING, A.TARGET_ANSWERED): Move(S.CONSULTING, (T.ANSWERED,)),
    (S.CONSULT_RINGING, A.CANCEL): Move(S.PREVIOUS, (T.CANCELLED,)),
    (S.CONSULT_RINGING, A.RETURN): Move(S.TALKING, (T.CANCELLED,)),
    (S.CONSULT_RINGING, A.TARGET_FAILED): Move(S.PREVIOUS, (T.FAILED,)),
    (S.CONSULT_RINGING, A.OWNER_HANGUP): Move(S.TRANSFER_RINGING),
    (S.CONSULTING, A.COMPLETE): Move(S.TALKING, (T.COMPLETED,)),
    (S.CONSULTING, A.RETURN): Move(S.TALKING, (T.CANCELLED,)),
    (S.CONSULTING, A.TARGET_HANGUP): Move(S.PREVIOUS, (T.FAILED,)),
    (S.CONSULTING, A.OWNER_HANGUP): Move(S.TALKING, (T.COMPLETED,)),

    (S.TALKING, A.SURVEY): Move(S.LEFT),
    (S.HELD, A.SURVEY): Move(S.LEFT),
    (S.TALKING, A.INVITE_RATING): Move(S.TALKING),
    (S.HELD, A.INVITE_RATING): Move(S.HELD),
    (S.TALKING, A.HANGUP): Move(S.LEFT),
    (S.HELD, A.HANGUP): Move(S.LEFT),
}

#: The states a call rests in (the others are move targets only).
RESTING_STATES = frozenset({S.TALKING, S.HELD, S.TRANSFER_RINGING, S.CONSULT_RINGING,
                            S.CONSULTING})
#: A transfer or consult is under way.
TRANSFER_STATES = frozenset({S.TRANSFER_RINGING, S.CONSULT_RINGING, S.CONSULTING})
#: The caller hears music on hold.
CALLER_HOLDS = frozenset({S.HELD, S.TRANSFER_RINGING, S.CONSULT_RINGING, S.CONSULTING})


class ControlIllegal(IllegalTransition):
    what = "call"

    def __init__(self, call_id: str, state: str, action: str) -> None:
        super().__init__("call.control_illegal", call_id, state, action,
                         f"Call {call_id!r}: {action.replace('_', ' ')!r} is not possible "
                         f"while the call is {state.replace('_', ' ')!r}.")


def next_state(call_id: str, state: ControlState, action: ControlAction,
               previous: ControlState = S.TALKING) -> Move:
    """Look ``(state, action)`` up in :data:`TABLE`; raise if the move is illegal. A
    ``previous`` target is resolved to ``previous`` (talking or held)."""
    move = TABLE.get((state, action))
    if move is None:
        raise ControlIllegal(call_id, state.value, action.value)
    if move.target is S.PREVIOUS:
        return Move(previous, move.events)
    return move


#: Moves of the core's call (:mod:`acd.core.calls`) that only call control makes: a caller
#: transferred to a skill group waits in its queue again. (The core's own table is the queue's
#: specification; call control adds this one move on top.)
CALL_REQUEUE = "requeue"
CALL_MOVES: dict[tuple[CallState, str], CallState] = {
    (CallState.CONNECTED, CALL_REQUEUE): CallState.WAITING,
}


def call_move(call_id: str, state: CallState, event: str) -> CallState:
    target = CALL_MOVES.get((state, event))
    if target is None:
        raise IllegalCallTransition(call_id, state.value, event)
    return target


# =============================================================================== outbound call

class OutboundState(StrEnum):
    AGENT_RINGING = "agent_ringing"
    DIALING = "dialing"
    CONNECTED = "connected"
    ENDED = "ended"


class OutboundEvent(StrEnum):
    AGENT_ANSWERED = "agent_answered"
    AGENT_FAILED = "agent_failed"          # the agent's own phone did not answer
    CUSTOMER_ANSWERED = "customer_answered"
    CUSTOMER_FAILED = "customer_failed"    # busy, no answer, unreachable
    AGENT_HANGUP = "agent_hangup"          # the agent's phone, or the agent's hangup action
    CUSTOMER_HANGUP = "customer_hangup"


class OutboundMove(NamedTuple):
    target: OutboundState
    end_reason: str | None = None


O, OE = OutboundState, OutboundEvent

#: (state, event) -> move; an outbound call ends with exactly one of these reasons.
OUTBOUND_TABLE: dict[tuple[OutboundState, OutboundEvent], OutboundMove] = {
    (O.AGENT_RINGING, OE.AGENT_ANSWERED): OutboundMove(O.DIALING),
    (O.AGENT_RINGING, OE.AGENT_FAILED): OutboundMove(O.ENDED, "agent_no_answer"),
    (O.AGENT_RINGING, OE.AGENT_HANGUP): OutboundMove(O.ENDED, "cancelled"),
    (O.DIALING, OE.CUSTOMER_ANSWERED): OutboundMove(O.CONNECTED),
    (O.DIALING, OE.CUSTOMER_FAILED): OutboundMove(O.ENDED, "customer_unreachable"),
    (O.DIALING, OE.AGENT_HANGUP): OutboundMove(O.ENDED, "cancelled"),
    (O.CONNECTED, OE.AGENT_HANGUP): OutboundMove(O.ENDED, "agent_hangup"),
    (O.CONNECTED, OE.CUSTOMER_HANGUP): OutboundMove(O.ENDED, "customer_hangup"),
}

#: Every way an outbound call ends.
OUTBOUND_END_REASONS = frozenset(m.end_reason for m in OUTBOUND_TABLE.values() if m.end_reason)


class OutboundIllegal(IllegalTransition):
    what = "call"

    def __init__(self, call_id: str, state: str, event: str) -> None:
        super().__init__("call.outbound_illegal", call_id, state, event)


def next_outbound(call_id: str, state: OutboundState, event: OutboundEvent) -> OutboundMove:
    move = OUTBOUND_TABLE.get((state, event))
    if move is None:
        raise OutboundIllegal(call_id, state.value, event.value)
    return move


# =============================================================================== errors

class NoCall(AcdError):
    def __init__(self, agent_id: str, state: str) -> None:
        super().__init__("agent.no_call", f"Agent {agent_id!r} has no connected call to act "
                                          f"on (state {state!r}).")


class TargetUnavailable(AcdError):
    def __init__(self, agent_id: str, why: str) -> None:
        super().__init__("agent.target_unavailable",
                         f"Agent {agent_id!r} cannot take the call now ({why}).")
        self.agent_id = agent_id


class TargetIsSelf(AcdError):
    def __init__(self, agent_id: str) -> None:
        super().__init__("agent.target_is_self",
                         f"Agent {agent_id!r} cannot transfer to or consult themselves.")


class TargetMissing(AcdError):
    def __init__(self) -> None:
        super().__init__("control.target_missing",
                         "Name one target: an agent (to_agent) or a skill group (to_group).")


class NoAgentAvailable(AcdError):
    def __init__(self, group: str) -> None:
        super().__init__("call.no_agent_available",
                         f"No agent of skill group {group!r} is free to be consulted now.")


class GroupClosed(AcdError):
    def __init__(self, group: str) -> None:
        super().__init__("call.group_closed",
                         f"Skill group {group!r} is closed (outside its service hours).")


class OnACall(AcdError):
    def __init__(self, agent_id: str, state: str) -> None:
        super().__init__("agent.on_a_call", f"Agent {agent_id!r} cannot make an outbound call "
                                            f"now ({state}): finish the call and its wrap-up.")


class BadNumber(AcdError):
    def __init__(self) -> None:
        super().__init__("dial.bad_number", "The number must be 1 to 32 digits, * or #, "
                                            "with an optional + first.")


# =============================================================================== plain data

@dataclass(slots=True)
class Transfer:
    """The transfer or consult under way on a call."""
    kind: str                     # "transfer" or "consult"
    target_agent: str
    target_group: str | None      # the group it was picked from (consult a group)
    started_at: float
    answered_at: float | None = None
    ownerless: bool = False       # the owner hung up: whoever answers gets the caller


__all__ = [
    "ControlState", "ControlAction", "TransferEvent", "Move", "TABLE", "RESTING_STATES",
    "TRANSFER_STATES", "CALLER_HOLDS", "ControlIllegal", "next_state", "CALL_MOVES",
    "CALL_REQUEUE", "call_move",
    "OutboundState", "OutboundEvent", "OutboundMove", "OUTBOUND_TABLE", "OUTBOUND_END_REASONS",
    "OutboundIllegal", "next_outbound",
    "NoCall", "TargetUnavailable", "TargetIsSelf", "TargetMissing", "NoAgentAvailable",
    "GroupClosed", "OnACall", "BadNumber", "Transfer",
    "TRANSFER_PRIORITY_BOOST",
]
