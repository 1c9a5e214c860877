"""An agent as the core holds it: state, phone, the call they are on, their places in the
skill groups' idle indexes. Plain data; the core changes it only through the agent table
(:mod:`acd.core.agent_states`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from acd.core.agent_states import AgentState
from acd.core.routing import Entry, IdleAgents


@dataclass(slots=True, eq=False)
class Agent:
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


__all__ = ["Agent"]
