"""Decisions: what the core asks the adapters to do. Frozen, plain data, compared by value.

Every decision the core returns is one of the classes here; :data:`DECISION_TYPES` lists
them all and :data:`Decision` is their union, so an adapter can check that it handles each.
See :mod:`acd.core` for the whole contract (which events the adapter feeds back) and
:mod:`acd.core.control` for call control (hold, transfers, consults, survey, outbound).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acd.core.agent_states import AgentState
from acd.core.calls import CallRecord
from acd.core.config import Destination


# --- telephony (AMI adapter) -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RingAgent:
    """Ring ``endpoint`` for the waiting caller ``call_id`` (e.g. Originate, caller id
    ``caller_number``). Report ``agent_ringing``, then ``agent_answered`` or ``ring_failed``.
    Do not bridge on answer: wait for :class:`BridgeCall`. The core has its own ring timer
    of ``timeout`` seconds; giving up earlier is fine (report ``ring_failed``)."""
    call_id: str
    agent_id: str
    endpoint: str
    group: str
    timeout: float
    caller_number: str = ""


@dataclass(frozen=True, slots=True)
class RingAgentForCallback:
    """Ring ``endpoint`` for a callback: nobody is waiting on the line; when the agent
    answers (report ``agent_answered``) the core asks to :class:`DialCustomer`."""
    call_id: str
    agent_id: str
    endpoint: str
    group: str
    timeout: float
    number: str


@dataclass(frozen=True, slots=True)
class CancelRing:
    """Stop offering ``call_id`` to ``agent_id``: abort the ring, or hang up the agent's leg
    if it was answered but is not bridged (a late answer, or a callback whose customer could
    not be reached). Idempotent; the core sends no further event for this offer."""
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class BridgeCall:
    """Connect the caller (or the callback customer) with the agent's answered leg."""
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class DialCustomer:
    """Callback: the agent is on the line; dial ``number`` for up to ``timeout`` seconds.
    Report ``customer_answered`` (then the core sends :class:`BridgeCall`) or
    ``customer_dial_failed``. If the agent hangs up meanwhile, abort the dial and report
    ``agent_hung_up``."""
    call_id: str
    agent_id: str
    number: str
    timeout: float


@dataclass(frozen=True, slots=True)
class SendToDestination:
    """Take the caller out of the queue (stop the music on hold) and send them to
    ``destination``: an IVR flow, a mailbox, or a goodbye and hangup. For a ``callback``
    destination, tell the caller they will be called back and hang up: the core keeps the
    call as a callback in its place. ``reason``: closed, no_agents, queue_full, max_wait."""
    call_id: str
    destination: Destination
    reason: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell the waiting caller their position and/or estimated wait (seconds), then resume
    the music on hold. ``None``: leave that part out."""
    call_id: str
    position: int | None
    estimated_wait: float | None


@dataclass(frozen=True, slots=True)
class ReleaseLegs:
    """The call ended in the core: no agent or customer leg of it may stay up (hang up what
    is left). ``caller_too``: hang up the caller's channel as well (a conversation ended by
    a hangup: end reason ``caller_hangup`` or ``agent_hangup``). Follows the call's
    ``ended`` :class:`RecordCallEvent` (or :class:`OutboundEnded`, with ``caller_too``
    false)."""
    call_id: str
    caller_too: bool


@dataclass(frozen=True, slots=True)
class RegroupCaller:
    """The waiting caller now waits in ``group``'s queue since ``entered_at`` (an overflow
    to another skill group): the caller's channel must carry the new group and entry time
    (``ACD_GROUP``, ``ACD_ENTERED``). Follows the ``queued`` :class:`RecordCallEvent`.
    Not sent after :class:`RequeueCaller`, which sets them itself."""
    call_id: str
    group: str
    entered_at: float


# --- call control: a connected call (hold, transfer, consult, survey) --------------------------

@dataclass(frozen=True, slots=True)
class HoldCaller:
    """Take the caller and the owner's leg apart: the caller to music on hold, the owner's
    leg to silence (e.g. AMI dual Redirect)."""
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class ResumeCaller:
    """Bridge the held caller with the owner's (``agent_id``) leg again."""
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class RingTarget:
    """Ring a transfer or consult target (``role``: ``transfer`` or ``consult``; report as
    for :class:`RingAgent`); its answered leg waits in silence until bridged."""
    call_id: str
    agent_id: str
    endpoint: str
    timeout: float
    caller_number: str
    role: str             # "transfer" or "consult"
    from_agent: str


@dataclass(frozen=True, slots=True)
class BridgeTarget:
    """Bridge the caller with the target's leg: the target (``agent_id``) owns the call."""
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class BridgeConsult:
    """Bridge the owner's (``agent_id``) leg with the consulted agent's (``target_id``)."""
    call_id: str
    agent_id: str
    target_id: str


@dataclass(frozen=True, slots=True)
class DropLeg:
    """Hang up this agent's leg of the call, after the call's actions before it; no further
    event is expected for it."""
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class RequeueCaller:
    """The caller waits in ``group``'s queue again, with ``priority`` and ``entered_at``
    (the channel carries them); the owner's leg is dropped (a :class:`DropLeg` follows)."""
    call_id: str
    group: str
    priority: int
    entered_at: float


@dataclass(frozen=True, slots=True)
class SendToSurvey:
    """The caller goes to the satisfaction survey: ``redirect`` (the caller holds: move
    them now) or by the dialplan once the bridge is over (see :class:`InviteRating`)."""
    call_id: str
    redirect: bool


@dataclass(frozen=True, slots=True)
class InviteRating:
    """The caller goes to the survey once their conversation is over."""
    call_id: str


# --- call control: outbound calls --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RingAgentForOutbound:
    """Ring the agent's own phone for their outbound call to ``number``; report
    ``agent_answered`` or ``ring_failed``; then :class:`DialCustomer` and
    :class:`BridgeCall` follow as for a callback."""
    call_id: str
    agent_id: str
    endpoint: str
    timeout: float
    number: str


@dataclass(frozen=True, slots=True)
class OutboundStarted:
    """The outbound call's record: it started."""
    call_id: str
    agent_id: str
    number: str
    at: float


@dataclass(frozen=True, slots=True)
class OutboundEnded:
    """The outbound call's record: it ended (one end ``reason``; ``cause`` of a failure).
    A :class:`ReleaseLegs` follows."""
    call_id: str
    agent_id: str
    reason: str
    at: float
    cause: str = ""


# --- time -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call ``timer_fired(key, now)`` when the clock reaches ``at`` (absolute, the same
    clock as ``now``). A key that is already set is replaced."""
    key: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the timer ``key``. (Firing it anyway is harmless: the core ignores timers it
    did not set or has cancelled.)"""
    key: str


# --- people and records -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the agent's screen: ``event`` is ``ring``, ``answered``, ``ended`` or ``state``;
    ``payload`` is JSON-ready."""
    agent_id: str
    event: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordCallEvent:
    """Append ``record`` to the call's timeline in the store."""
    call_id: str
    record: CallRecord


@dataclass(frozen=True, slots=True)
class RecordAgentState:
    """Store an agent state change (for occupancy and reports)."""
    agent_id: str
    at: float
    state: AgentState
    previous: AgentState
    reason: str = ""
    call_id: str | None = None




@dataclass(frozen=True, slots=True)
class RecordControl:
    """A line of the call's call-control timeline (hold, resume, transfer_*, consult_*,
    ...); ``detail`` is JSON-ready."""
    call_id: str
    at: float
    kind: str
    agent_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordLeg:
    """An agent's part of a call is over: ``role`` answer, callback, transfer, consult or
    outbound; ``talk`` and ``hold`` in seconds; ``reason`` why it ended."""
    call_id: str
    agent_id: str
    role: str
    started_at: float
    ended_at: float
    talk: float
    hold: float
    reason: str


@dataclass(frozen=True, slots=True)
class RecordLegWrapup:
    """The agent's wrap-up after their part of ``call_id`` took ``seconds``."""
    call_id: str
    agent_id: str
    seconds: float


Decision = (RingAgent | RingAgentForCallback | CancelRing | BridgeCall | DialCustomer
            | SendToDestination | Announce | ReleaseLegs | RegroupCaller
            | HoldCaller | ResumeCaller | RingTarget | BridgeTarget | BridgeConsult | DropLeg
            | RequeueCaller | SendToSurvey | InviteRating
            | RingAgentForOutbound | OutboundStarted | OutboundEnded
            | StartTimer | CancelTimer
            | Notify | RecordCallEvent | RecordAgentState | RecordControl | RecordLeg
            | RecordLegWrapup)

#: Every decision class, in the order of :data:`Decision`.
DECISION_TYPES: tuple[type, ...] = Decision.__args__

__all__ = [
    "RingAgent", "RingAgentForCallback", "CancelRing", "BridgeCall", "DialCustomer",
    "SendToDestination", "Announce", "ReleaseLegs", "RegroupCaller",
    "HoldCaller", "ResumeCaller", "RingTarget", "BridgeTarget", "BridgeConsult", "DropLeg",
    "RequeueCaller", "SendToSurvey", "InviteRating",
    "RingAgentForOutbound", "OutboundStarted", "OutboundEnded",
    "StartTimer", "CancelTimer",
    "Notify", "RecordCallEvent", "RecordAgentState", "RecordControl", "RecordLeg",
    "RecordLegWrapup",
    "Decision", "DECISION_TYPES",
]
