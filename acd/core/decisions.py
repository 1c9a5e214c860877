"""Decisions: what the core asks the adapters to do. Frozen, plain data, compared by value.

See :mod:`acd.core` for the whole contract (which events the adapter feeds back).
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


Decision = (RingAgent | RingAgentForCallback | CancelRing | BridgeCall | DialCustomer
            | SendToDestination | Announce | StartTimer | CancelTimer | Notify
            | RecordCallEvent | RecordAgentState)
