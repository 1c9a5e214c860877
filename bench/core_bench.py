"""Measure 6: the ACD core alone, no I/O (events in, decisions out, a made-up clock).

100 skill groups; 100, 1,000 and 10,000 agents, each a member of two groups (its home group
at level 5 and another at level 3); 10,000 callers waiting, spread over the groups. Every agent
starts busy, so the callers wait. Then, agent by agent, a cycle of real events, each timed
on its own:

``agent free -> ring``       ``set_agent_state(idle)``: the core picks the first eligible
                             caller among the 10,000 and decides to ring this agent (the
                             routing decision when an agent becomes free)
``answer``                   ``agent_answered``: ringing -> talking, bridge
``state asked in call``      ``set_agent_state(busy)`` while talking: pending
``caller hangs up``          ``caller_hung_up``: talking -> (no wrap-up) -> busy
``caller arrives, queued``   ``call_arrived`` with every member busy: the caller joins the
                             queue (keeps 10,000 waiting)

then, not a core event but what the runtime does after every change,

``snapshot queues/agents``   ``snapshot_queues``, ``snapshot_agents``: acd/runtime/
                             publishes both to the supervisors' topic once per loop turn
                             with a change, whether anybody subscribed or not

and, in a second core with every agent idle and nobody waiting,

``caller arrives -> ring``   ``call_arrived``: the core picks an idle agent among the group's
                             members (the routing decision when a caller arrives)

Each operation is timed with ``time.perf_counter_ns``; the garbage collector is left on (as in
the server). Targets: a routing decision under 200 microseconds at p99 with 10,000 agents, and
a cost that does not grow linearly with the number of agents.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from acd.core import Acd, GroupConfig, RingAgent
from bench.stats import growth, summary

OPS = ("agent_free_ring", "answer", "state_in_call", "caller_hangup", "caller_queued",
       "caller_arrives_ring", "snapshot_queues", "snapshot_agents")
ROUTING_OPS = ("agent_free_ring", "caller_arrives_ring")


def _groups(n_agents: int, n_groups: int, rng: random.Random) -> list[GroupConfig]:
    members: list[dict[str, int]] = [{} for _ in range(n_groups)]
    for i in range(n_agents):
        home = i % n_groups
        members[home][f"a{i}"] = 5
        other = rng.randrange(n_groups)
        if other != home:
            members[other].setdefault(f"a{i}", 3)
    return [GroupConfig(f"g{g}", members=m) for g, m in enumerate(members)]


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self, step: float = 0.001) -> float:
        self.t += step
        return self.t


def _timed(out: dict[str, list[int]], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter_ns()
    res = fn()
    out[name].append(time.perf_counter_ns() - t0)
    return res


def run_size(n_agents: int, waiting: int = 10_000, n_groups: int = 100, cycles: int = 3000,
             seed: int = 1) -> dict[str, list[int]]:
    """Times in nanoseconds of each operation, ``cycles`` of each, for one size."""
    rng = random.Random(seed)
    out: dict[str, list[int]] = {op: [] for op in OPS}
    clock = _Clock()

    # Everybody busy, ``waiting`` callers queued.
    acd = Acd(_groups(n_agents, n_groups, random.Random(seed)), rng=random.Random(seed))
    agents = [f"a{i}" for i in range(n_agents)]
    for a in agents:
        acd.agent_login(a, f"ep-{a}", clock())
        acd.set_agent_state(a, "busy", clock())
    for c in range(waiting):
        acd.call_arrived(f"w{c}", "0300", f"g{rng.randrange(n_groups)}", clock())
    order = agents * (cycles // n_agents + 1)
    rng.shuffle(order)
    nxt = waiting
    for a in order[:cycles]:
        decisions = _timed(out, "agent_free_ring", lambda: acd.set_agent_state(a, "idle", clock()))
        ring = next((d for d in decisions if isinstance(d, RingAgent)), None)
        if ring is None:
            raise AssertionError(f"{a} became free with callers waiting, and was not rung")
        call = ring.call_id
        _timed(out, "answer", lambda: acd.agent_answered(call, a, clock()))
        _timed(out, "state_in_call", lambda: acd.set_agent_state(a, "busy", clock()))
        _timed(out, "caller_hangup", lambda: acd.caller_hung_up(call, clock()))
        nxt += 1
        new = f"w{nxt}"
        group = f"g{rng.randrange(n_groups)}"
        decisions = _timed(out, "caller_queued",
                           lambda: acd.call_arrived(new, "0301", group, clock()))
        if any(isinstance(d, RingAgent) for d in decisions):
            raise AssertionError("a caller was rung while every agent was busy")

    # Not a core event: what the runtime does after every change (acd/runtime/effects.py publishes
    # the supervisors' snapshot of every queue and agent, subscribed or not).
    for _ in range(max(20, cycles // 100)):
        _timed(out, "snapshot_queues", lambda: acd.snapshot_queues(clock()))
        _timed(out, "snapshot_agents", lambda: acd.snapshot_agents(clock()))

    # Everybody idle, nobody waiting: a caller arrives and an idle agent is picked.
    acd2 = Acd(_groups(n_agents, n_groups, random.Random(seed)), rng=random.Random(seed))
    for a in agents:
        acd2.agent_login(a, f"ep-{a}", clock())
    for c in range(cycles):
        group = f"g{rng.randrange(n_groups)}"
        decisions = _timed(out, "caller_arrives_ring",
                           lambda: acd2.call_arrived(f"n{c}", "0302", group, clock()))
        ring = next((d for d in decisions if isinstance(d, RingAgent)), None)
        if ring is None:
            raise AssertionError("a caller arrived with idle members and nobody was rung")
        acd2.agent_answered(ring.call_id, ring.agent_id, clock())
        acd2.caller_hung_up(ring.call_id, clock())      # no wrap-up: idle again
    return out


def measure(sizes: tuple[int, ...] = (100, 1000, 10_000), waiting: int = 10_000,
            n_groups: int = 100, cycles: int = 3000) -> dict[str, Any]:
    """Every size; summaries in microseconds, the raw samples, and how the cost grows."""
    result: dict[str, Any] = {"sizes": list(sizes), "waiting": waiting, "groups": n_groups,
                              "cycles": cycles, "ops": {}, "growth": {}}
    for n in sizes:
        started = time.perf_counter()
        times = run_size(n, waiting, n_groups, cycles)
        for op, xs in times.items():
            result["ops"].setdefault(op, {})[str(n)] = {
                "us": summary([x / 1e9 for x in xs], 1e6, 2),
                "samples_us": [round(x / 1000, 2) for x in xs]}
        result.setdefault("seconds", {})[str(n)] = round(time.perf_counter() - started, 2)
    for op in OPS:
        p50 = {n: result["ops"][op][str(n)]["us"]["p50"] for n in sizes}
        result["growth"][op] = growth(p50)
    worst = max(result["ops"][op][str(max(sizes))]["us"]["p99"] for op in ROUTING_OPS)
    result["routing_p99_us_at_max"] = worst
    return result
