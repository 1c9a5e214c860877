"""The call state machine (one table), end reasons, timeline records and the call itself.

A call enters the core with ``call_arrived`` (state ``new``) and leaves it in ``ended`` with
exactly one :class:`EndReason`; the table below says which (state, event) pairs end a call
and with which reason, so no code path chooses an end reason on its own.

States::

    new ──queue──> waiting ──offer──> ringing ──answer──> connected ──hangup──> ended
                     ^  |  <──ring_returned──┘                  ^
                     |  └──callback_request──> callback_waiting ──offer──> callback_ringing
                     |                              ^    ^   <──ring_returned──┘   |answer
                     |                 retry_due    |    |                         v
                     |             callback_retry <─┼────┼──dial_failed── callback_dialing
                     |                              |    └─(original place kept)   |customer_answer
                     └─ queue (overflow to another skill group)             connected

A callback keeps the caller's place: its queue key (priority, entry time, sequence) never
changes while it waits, rings an agent, or waits between attempts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from acd.core.errors import IllegalCallTransition
from acd.core.routing import Entry, SortedList


class CallState(StrEnum):
    NEW = "new"
    WAITING = "waiting"
    RINGING = "ringing"
    CONNECTED = "connected"
    CALLBACK_WAITING = "callback_waiting"
    CALLBACK_RINGING = "callback_ringing"
    CALLBACK_DIALING = "callback_dialing"
    CALLBACK_RETRY = "callback_retry"
    ENDED = "ended"


class CallEvent(StrEnum):
    QUEUE = "queue"                        # enters a skill group's queue (again, on overflow)
    OFFER = "offer"                        # the ACD rings an agent
    ANSWER = "answer"                      # the agent picked up
    RING_RETURNED = "ring_returned"        # no answer, ring failed, or the agent rejected
    CALLBACK_REQUEST = "callback_request"
    CUSTOMER_ANSWER = "customer_answer"    # callback: the customer picked up
    DIAL_FAILED = "dial_failed"            # callback: the customer did not; try again later
    RETRY_DUE = "retry_due"                # callback: the gap between attempts is over
    CALLER_HANGUP = "caller_hangup"
    AGENT_HANGUP = "agent_hangup"
    SEND_CLOSED = "send_closed"            # outside service hours: to the closed destination
    SEND_NO_AGENTS = "send_no_agents"      # nobody logged in: to the no-agents destination
    SEND_OVERFLOW = "send_overflow"        # max wait or queue length: to the overflow destination
    EXPIRE = "expire"                      # callback: expiry reached
    GIVE_UP = "give_up"                    # callback: all attempts made
    RESTORE_CONNECTED = "restore_connected"
    LOST = "lost"                          # Asterisk stopped or restarted: the channels are gone


class EndReason(StrEnum):
    CALLER_HANGUP = "caller_hangup"        # connected; the caller (or callback customer) hung up
    AGENT_HANGUP = "agent_hangup"          # connected, then the agent hung up
    ABANDONED = "abandoned"                # the caller hung up before an agent answered
    OVERFLOW = "overflow"                  # sent to an overflow destination (max wait, queue full)
    CLOSED = "closed"                      # outside service hours, sent to the closed destination
    NO_AGENTS = "no_agents"                # nobody logged in, sent to the no-agents destination
    CALLBACK_EXPIRED = "callback_expired"  # the callback was not completed before its expiry
    CALLBACK_FAILED = "callback_failed"    # every callback attempt failed to reach the customer
    LOST = "lost"                          # Asterisk stopped or restarted under the call: its
                                           # channels are gone (the ``lost`` record says why)


class Move(NamedTuple):
    target: CallState
    end_reason: EndReason | None = None


C, V, R = CallState, CallEvent, EndReason

#: (state, event) -> move. Every pair not listed is illegal.
TABLE: dict[tuple[CallState, CallEvent], Move] = {
    (C.NEW, V.QUEUE): Move(C.WAITING),
    (C.NEW, V.SEND_CLOSED): Move(C.ENDED, R.CLOSED),
    (C.NEW, V.SEND_NO_AGENTS): Move(C.ENDED, R.NO_AGENTS),
    (C.NEW, V.SEND_OVERFLOW): Move(C.ENDED, R.OVERFLOW),
    (C.NEW, V.RESTORE_CONNECTED): Move(C.CONNECTED),
    (C.NEW, V.LOST): Move(C.ENDED, R.LOST),

    (C.WAITING, V.QUEUE): Move(C.WAITING),
    (C.WAITING, V.OFFER): Move(C.RINGING),
    (C.WAITING, V.CALLBACK_REQUEST): Move(C.CALLBACK_WAITING),
    (C.WAITING, V.CALLER_HANGUP): Move(C.ENDED, R.ABANDONED),
    (C.WAITING, V.SEND_CLOSED): Move(C.ENDED, R.CLOSED),
    (C.WAITING, V.SEND_NO_AGENTS): Move(C.ENDED, R.NO_AGENTS),
    (C.WAITING, V.SEND_OVERFLOW): Move(C.ENDED, R.OVERFLOW),
    (C.WAITING, V.LOST): Move(C.ENDED, R.LOST),

    (C.RINGING, V.ANSWER): Move(C.CONNECTED),
    (C.RINGING, V.RING_RETURNED): Move(C.WAITING),
    (C.RINGING, V.CALLBACK_REQUEST): Move(C.CALLBACK_WAITING),
    (C.RINGING, V.CALLER_HANGUP): Move(C.ENDED, R.ABANDONED),
    (C.RINGING, V.LOST): Move(C.ENDED, R.LOST),

    (C.CONNECTED, V.CALLER_HANGUP): Move(C.ENDED, R.CALLER_HANGUP),
    (C.CONNECTED, V.AGENT_HANGUP): Move(C.ENDED, R.AGENT_HANGUP),
    (C.CONNECTED, V.LOST): Move(C.ENDED, R.LOST),

    (C.CALLBACK_WAITING, V.OFFER): Move(C.CALLBACK_RINGING),
    (C.CALLBACK_WAITING, V.EXPIRE): Move(C.ENDED, R.CALLBACK_EXPIRED),

    (C.CALLBACK_RINGING, V.ANSWER): Move(C.CALLBACK_DIALING),
    (C.CALLBACK_RINGING, V.RING_RETURNED): Move(C.CALLBACK_WAITING),

    (C.CALLBACK_DIALING, V.CUSTOMER_ANSWER): Move(C.CONNECTED),
    (C.CALLBACK_DIALING, V.DIAL_FAILED): Move(C.CALLBACK_RETRY),
    (C.CALLBACK_DIALING, V.GIVE_UP): Move(C.ENDED, R.CALLBACK_FAILED),
    (C.CALLBACK_DIALING, V.EXPIRE): Move(C.ENDED, R.CALLBACK_EXPIRED),

    (C.CALLBACK_RETRY, V.RETRY_DUE): Move(C.CALLBACK_WAITING),
    (C.CALLBACK_RETRY, V.EXPIRE): Move(C.ENDED, R.CALLBACK_EXPIRED),
}

#: Calls in these states can be offered to an agent (they sit in the routing indexes).
OFFERABLE_STATES = frozenset({C.WAITING, C.CALLBACK_WAITING})
#: Calls in these states hold a place in their group's queue (for positions).
QUEUED_STATES = frozenset({C.WAITING, C.RINGING, C.CALLBACK_WAITING, C.CALLBACK_RINGING})
#: A caller is on the line, listening to music on hold (queue length counts these).
LIVE_WAITING_STATES = frozenset({C.WAITING, C.RINGING})
#: The call is a callback the caller already hung up on.
CALLBACK_STATES = frozenset({C.CALLBACK_WAITING, C.CALLBACK_RINGING, C.CALLBACK_DIALING,
                             C.CALLBACK_RETRY})
#: An agent is attached to the call.
WITH_AGENT_STATES = frozenset({C.RINGING, C.CONNECTED, C.CALLBACK_RINGING, C.CALLBACK_DIALING})


def next_state(call_id: str, state: CallState, event: CallEvent) -> Move:
    """Look ``(state, event)`` up in :data:`TABLE`; raise if the move is illegal."""
    move = TABLE.get((state, event))
    if move is None:
        raise IllegalCallTransition(call_id, state.value, event.value)
    return move


class CallEventKind(StrEnum):
    """Kinds of timeline records."""
    ARRIVED = "arrived"
    QUEUED = "queued"                      # entered a skill group's queue (detail: priority)
    RESTORED = "restored"                  # rebuilt after a restart
    FAMILIAR = "familiar"                  # held for the agent the caller spoke with recently
    FAMILIAR_RELEASED = "familiar_released"
    WIDENED = "widened"                    # overflow step: more groups or lower skill levels
    OFFERED = "offered"                    # the ACD rings an agent
    RINGING = "ringing"                    # the agent's phone rings
    NO_ANSWER = "no_answer"                # the agent did not answer (detail: cause)
    RING_CANCELLED = "ring_cancelled"
    ANSWERED = "answered"
    CALLBACK_REQUESTED = "callback_requested"
    DIALING = "dialing"                    # callback: the agent answered, dialing the customer
    DIAL_FAILED = "dial_failed"
    SENT = "sent"                          # to a destination (detail: destination and reason)
    LOST = "lost"                          # Asterisk lost the call's channels (detail: why)
    REQUEUED = "requeued"                  # back to the queue, at the front (detail: why)
    ENDED = "ended"
    WRAPUP = "wrapup"                      # the agent's after-call work started
    WRAPUP_ENDED = "wrapup_ended"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One line of a call's timeline."""
    at: float
    kind: CallEventKind
    group: str | None = None
    agent_id: str | None = None
    detail: str = ""
    end_reason: EndReason | None = None   # set on the ``ended`` record only


@dataclass(slots=True)
class Callback:
    number: str
    requested_at: float
    expires_at: float
    max_attempts: int
    gap: float
    dial_timeout: float
    attempts: int = 0
    expired: bool = False   # expiry came while an attempt was under way


@dataclass(slots=True, eq=False)
class Call:
    """A call as the core sees it. Owned by the :class:`~acd.core.Acd`; read it through
    :meth:`~acd.core.Acd.call_info`."""
    call_id: str
    caller_number: str
    group: str                      # the skill group whose queue it is in
    priority: int                   # higher first
    arrived_at: float
    key_trail: tuple[str, ...] = ()
    verification: str | None = None
    #: the caller id as it came (shown to agents; ``caller_number`` is only a dialable one)
    caller_text: str = ""
    state: CallState = CallState.NEW
    entered_at: float = 0.0         # entry into the current group's queue
    seq: int = 0                    # tie-breaker: order of entry
    agent_id: str | None = None
    #: groups whose agents may take the call -> lowest skill level accepted; home group first
    levels: dict[str, int] = field(default_factory=dict)
    reserved_for: str | None = None  # familiar-customer routing: only this agent, for now
    widen_step: int = 0              # next overflow (widening) step of the group
    declined: set[str] = field(default_factory=set)  # agents not to offer again, for a while
    overdue: bool = False            # max wait passed while ringing: overflow on return
    callback: Callback | None = None
    #: the group the caller's channel carries (ACD_GROUP); None: no caller channel (a
    #: callback: the caller hung up, or a connected customer's leg)
    channel_group: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    timeline: list[CallRecord] = field(default_factory=list)
    # routing index bookkeeping (owned by Acd)
    attached: bool = False
    placed: list[tuple[SortedList, Entry]] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, float, int, str]:
        """The place in the queue: priority (higher first), entry time, entry order."""
        return (-self.priority, self.entered_at, self.seq, self.call_id)
