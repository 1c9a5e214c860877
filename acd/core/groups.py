"""A skill group as the core holds it: its configuration, whether it is open, its idle
agents and waiting calls (the routing indexes), counts by state, and its counters."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from acd.core.agent_states import WORKING_STATES, AgentState
from acd.core.calls import LIVE_WAITING_STATES, Call, CallState
from acd.core.config import GroupConfig
from acd.core.routing import IdleAgents, SortedList, WaitingCalls


@dataclass(slots=True)
class GroupStats:
    """Counters since start (or ``reset_stats``)."""
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0
    closed: int = 0
    no_agents: int = 0
    callbacks_requested: int = 0
    callbacks_failed: int = 0
    callbacks_expired: int = 0


@dataclass(slots=True, eq=False)
class Group:
    cfg: GroupConfig
    open: bool
    member_index: dict[str, int]
    idle: IdleAgents
    waiting: WaitingCalls = field(default_factory=WaitingCalls)
    queue: SortedList = field(default_factory=SortedList)        # keys of QUEUED_STATES calls
    calls: dict[str, Call] = field(default_factory=dict)          # live calls homed here
    call_counts: Counter[CallState] = field(default_factory=Counter)
    agent_counts: Counter[AgentState] = field(default_factory=Counter)
    stats: GroupStats = field(default_factory=GroupStats)
    aht: float = 180.0                                            # handle time, moving average

    @property
    def logged_in(self) -> int:
        return len(self.cfg.members) - self.agent_counts[AgentState.OFFLINE]

    @property
    def working(self) -> int:
        return sum(self.agent_counts[s] for s in WORKING_STATES)

    @property
    def live_waiting(self) -> int:
        return sum(self.call_counts[s] for s in LIVE_WAITING_STATES)


__all__ = ["Group", "GroupStats"]
