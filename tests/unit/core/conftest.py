"""A tiny stand-in for the adapters: keeps the core's timers and a clock, fires timers in order."""
from __future__ import annotations

from collections.abc import Iterable

import pytest

from acd.core import (Acd, CancelTimer, Decision, GroupConfig, RingAgent, RingAgentForCallback,
                      StartTimer)


class Sim:
    def __init__(self, groups: Iterable[GroupConfig], **kw) -> None:
        self.core = Acd(groups, **kw)
        self.now = 0.0
        self.timers: dict[str, float] = {}
        self.log: list[Decision] = []

    def do(self, method: str, *args, at: float | None = None, **kw) -> list[Decision]:
        """Call an event method at time ``at`` (firing the timers due before it)."""
        if at is not None:
            self.advance(at)
        return self.absorb(getattr(self.core, method)(*args, now=self.now, **kw))

    def absorb(self, out: list[Decision]) -> list[Decision]:
        for d in out:
            if isinstance(d, StartTimer):
                self.timers[d.key] = d.at
            elif isinstance(d, CancelTimer):
                self.timers.pop(d.key, None)
        self.log.extend(out)
        return out

    def advance(self, to: float) -> list[Decision]:
        """Move the clock to ``to``, firing due timers in order; return their decisions."""
        out: list[Decision] = []
        while True:
            due = [(at, key) for key, at in self.timers.items() if at <= to]
            if not due:
                break
            at, key = min(due)
            del self.timers[key]
            self.now = max(self.now, at)
            out += self.absorb(self.core.timer_fired(key, self.now))
        self.now = max(self.now, to)
        return out

    def login(self, *agents: str, at: float | None = None) -> None:
        for a in agents:
            self.do("agent_login", a, f"PJSIP/{a}", at=at)


def rung(out: list[Decision]) -> list[tuple[str, str]]:
    """(call, agent) of every ring in ``out``."""
    return [(d.call_id, d.agent_id) for d in out
            if isinstance(d, (RingAgent, RingAgentForCallback))]


@pytest.fixture
def make_sim():
    return Sim


@pytest.fixture
def rings():
    return rung
