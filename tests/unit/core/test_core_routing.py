"""Each strategy gives its documented order; familiar-customer routing; routing indexes."""
from __future__ import annotations

import random

import pytest

from acd.core import GroupConfig, Strategy


def group(strategy=Strategy.LONGEST_IDLE, members=None, **kw) -> GroupConfig:
    return GroupConfig("g", members=members or {"a": 1, "b": 1, "c": 1}, strategy=strategy,
                       **kw)


def serve(sim, rings, call: str, at: float, number: str = "") -> str:
    """A call arrives, is rung to an agent who answers; the caller hangs up 2 s later
    (no wrap-up): the agent is idle again."""
    [(c, agent)] = rings(sim.do("call_arrived", call, number or f"n-{call}", "g", at=at))
    assert c == call
    sim.do("agent_answered", call, agent, at=at + 1)
    sim.do("caller_hung_up", call, at=at + 2)
    return agent


def preamble(sim):
    """a, b, c log in together; a takes a short break, so a's idle time restarts."""
    sim.login("a", "b", "c", at=0)
    sim.do("set_agent_state", "a", "break", at=1)
    sim.do("set_agent_state", "a", "idle", at=2)


def test_longest_idle(make_sim, rings):
    sim = make_sim([group(Strategy.LONGEST_IDLE)])
    preamble(sim)
    order = [serve(sim, rings, f"k{i}", at=10 * (i + 1)) for i in range(6)]
    # b and c idle since 0 (member order), a since 2; then each by the end of their call
    assert order == ["b", "c", "a", "b", "c", "a"]


def test_round_robin(make_sim, rings):
    sim = make_sim([group(Strategy.ROUND_ROBIN)])
    preamble(sim)
    order = [serve(sim, rings, f"k{i}", at=10 * (i + 1)) for i in range(6)]
    # never offered: member order; then whoever was offered longest ago
    assert order == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_skips_unavailable_members_and_keeps_the_cycle(make_sim, rings):
    sim = make_sim([group(Strategy.ROUND_ROBIN, members={"a": 1, "b": 1, "c": 1, "d": 1})])
    sim.login("a", "b", "c", "d", at=0)
    assert serve(sim, rings, "k1", 10) == "a"
    sim.do("set_agent_state", "b", "busy", at=15)
    assert serve(sim, rings, "k2", 20) == "c"
    sim.do("set_agent_state", "b", "idle", at=25)
    assert [serve(sim, rings, f"k{i}", 30 + 10 * i) for i in range(3, 7)] == ["b", "d", "a", "c"]


def test_fewest_calls(make_sim, rings):
    sim = make_sim([group(Strategy.FEWEST_CALLS)])
    sim.login("a", "b", "c", at=0)
    sim.do("set_agent_state", "b", "busy", at=1)
    sim.do("set_agent_state", "c", "busy", at=1)
    assert serve(sim, rings, "k1", 10) == "a"
    assert serve(sim, rings, "k2", 20) == "a"
    sim.do("set_agent_state", "a", "busy", at=25)
    sim.do("set_agent_state", "c", "idle", at=26)
    assert serve(sim, rings, "k3", 30) == "c"
    sim.do("set_agent_state", "b", "idle", at=40)
    sim.do("set_agent_state", "a", "idle", at=41)
    # answered: a 2, b 0, c 1 (longest idle would say c, b, a)
    order = []
    for i, at in enumerate((50, 51, 52)):
        [(_, agent)] = rings(sim.do("call_arrived", f"m{i}", "n", "g", at=at))
        order.append(agent)
    assert order == ["b", "c", "a"]


def test_fewest_calls_ties_go_to_longest_idle(make_sim, rings):
    sim = make_sim([group(Strategy.FEWEST_CALLS)])
    sim.login("c", at=0)
    sim.login("b", at=1)
    sim.login("a", at=2)
    assert [serve(sim, rings, f"k{i}", 10 * (i + 1)) for i in range(4)] == ["c", "b", "a", "c"]


def test_skill_level_highest_first_then_longest_idle(make_sim, rings):
    sim = make_sim([group(Strategy.SKILL_LEVEL, members={"a": 1, "b": 5, "c": 3, "d": 5})])
    for t, agent in enumerate("dcba"):      # d idle longest among the level-5 agents
        sim.login(agent, at=t)
    order = []
    for i in range(4):
        [(_, agent)] = rings(sim.do("call_arrived", f"k{i}", "n", "g", at=10 + i))
        order.append(agent)
    assert order == ["d", "b", "c", "a"]


def test_min_level_keeps_low_skill_members_out(make_sim, rings):
    sim = make_sim([group(Strategy.LONGEST_IDLE, members={"a": 1, "b": 5, "c": 3},
                          min_level=3)])
    sim.login("a", "b", "c", at=0)
    got = [rings(sim.do("call_arrived", f"k{i}", "n", "g", at=10 + i)) for i in range(3)]
    assert got == [[("k0", "b")], [("k1", "c")], []]
    assert sim.core.snapshot_queues(20)["g"]["waiting"] == 1


def test_min_level_also_holds_when_a_low_skill_agent_frees_up(make_sim, rings):
    sim = make_sim([group(Strategy.LONGEST_IDLE, members={"a": 1, "b": 5}, min_level=3)])
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "a", "busy", at=0)
    sim.do("set_agent_state", "b", "busy", at=0)
    sim.do("call_arrived", "k1", "n", "g", at=1)
    assert rings(sim.do("set_agent_state", "a", "idle", at=2)) == []
    assert rings(sim.do("set_agent_state", "b", "idle", at=3)) == [("k1", "b")]


@pytest.mark.parametrize("seed", range(6))
def test_random_follows_the_seeded_rng(make_sim, rings, seed):
    members = {"a": 1, "b": 2, "c": 1, "d": 2, "e": 1}
    sim = make_sim([group(Strategy.RANDOM, members=members)], rng=random.Random(seed))
    sim.login(*members, at=0)
    got = []
    for i in range(5):
        [(_, agent)] = rings(sim.do("call_arrived", f"k{i}", "n", "g", at=1 + i))
        got.append(agent)
    # documented: rng.randrange over the eligible idle agents listed by level (highest
    # first), then member order
    idle, rng, expected = ["b", "d", "a", "c", "e"], random.Random(seed), []
    for _ in range(5):
        expected.append(idle.pop(rng.randrange(len(idle))))
    assert got == expected


def test_random_differs_between_seeds_and_reaches_everyone(make_sim, rings):
    firsts = []
    for seed in range(40):
        sim = make_sim([group(Strategy.RANDOM)], rng=random.Random(seed))
        sim.login("a", "b", "c", at=0)
        [(_, agent)] = rings(sim.do("call_arrived", "k", "n", "g", at=1))
        firsts.append(agent)
    assert set(firsts) == {"a", "b", "c"}


# --- familiar customer ------------------------------------------------------------------------

def familiar_group(**kw) -> GroupConfig:
    return group(Strategy.LONGEST_IDLE, members={"a": 1, "b": 1},
                 familiar_seconds=30, familiar_window=3600, **kw)


def test_familiar_agent_first_if_idle_from_own_memory(make_sim, rings):
    sim = make_sim([familiar_group()])
    sim.login("a", at=0)
    sim.login("b", at=1)
    assert serve(sim, rings, "k1", 10, number="111") == "a"      # a was idle longest
    # b has been idle longest now, but 111 spoke with a
    assert rings(sim.do("call_arrived", "k2", "111", "g", at=20)) == [("k2", "a")]
    assert rings(sim.do("call_arrived", "k3", "999", "g", at=21)) == [("k3", "b")]


def test_familiar_agent_busy_on_a_call_then_fallback_after_its_seconds(make_sim, rings):
    sim = make_sim([familiar_group()])
    sim.core.remember_contact("333", "a", 0.0)       # told by the adapter
    sim.login("a", "b", at=1)
    sim.do("set_agent_state", "b", "busy", at=2)
    assert serve(sim, rings, "k0", 5, number="000") == "a"
    sim.do("set_agent_state", "b", "idle", at=8)
    [(_, a)] = rings(sim.do("call_arrived", "other", "444", "g", at=9))    # a: longest idle
    assert a == "a"
    sim.do("agent_answered", "other", "a", at=10)
    out = sim.do("call_arrived", "k1", "333", "g", at=100)
    assert rings(out) == []                                   # b is idle, but waits for a
    assert sim.core.call_info("k1")["reserved_for"] == "a"
    assert rings(sim.advance(129.9)) == []
    assert rings(sim.advance(130)) == [("k1", "b")]            # familiar_seconds are over
    kinds = [r["kind"] for r in sim.core.call_info("k1")["timeline"]]
    assert kinds.index("familiar") < kinds.index("familiar_released") < kinds.index("offered")


def test_familiar_agent_frees_up_within_its_seconds(make_sim, rings):
    sim = make_sim([familiar_group()])
    sim.core.remember_contact("333", "a", 0.0)
    sim.login("a", "b", at=1)
    sim.do("set_agent_state", "b", "busy", at=1)
    [(_, agent)] = rings(sim.do("call_arrived", "other", "444", "g", at=2))
    assert agent == "a"
    sim.do("agent_answered", "other", "a", at=3)
    sim.do("set_agent_state", "b", "idle", at=4)
    assert rings(sim.do("call_arrived", "k1", "333", "g", at=10)) == []
    assert rings(sim.do("caller_hung_up", "other", at=20)) == [("k1", "a")]


def test_familiar_not_used_when_agent_away_or_contact_too_old(make_sim, rings):
    sim = make_sim([familiar_group()])
    sim.core.remember_contact("old", "a", 0.0)
    sim.core.remember_contact("new", "a", 5000.0)
    sim.login("a", "b", at=4000)
    sim.do("set_agent_state", "a", "busy", at=4001)
    sim.do("set_agent_state", "a", "idle", at=4002)       # b idle longer than a
    assert rings(sim.do("call_arrived", "k1", "old", "g", at=5000)) == [("k1", "b")]
    sim.do("set_agent_state", "a", "break", at=5001)
    assert rings(sim.do("call_arrived", "k2", "new", "g", at=5002)) == []   # b is ringing
    assert sim.core.call_info("k2")["reserved_for"] is None


def test_familiar_hold_released_when_agent_leaves(make_sim, rings):
    sim = make_sim([familiar_group()])
    sim.core.remember_contact("333", "a", 0.0)
    sim.login("a", "b", at=1)
    sim.do("set_agent_state", "b", "busy", at=1)
    [(_, agent)] = rings(sim.do("call_arrived", "other", "444", "g", at=2))
    sim.do("agent_answered", "other", "a", at=3)
    sim.do("set_agent_state", "b", "idle", at=4)
    assert rings(sim.do("call_arrived", "k1", "333", "g", at=10)) == []
    sim.do("set_agent_state", "a", "offline", at=11)           # pending: a is talking
    assert rings(sim.do("caller_hung_up", "other", at=12)) == [("k1", "b")]


def test_familiar_no_answer_falls_back_at_once(make_sim, rings):
    sim = make_sim([familiar_group(ring_timeout=10)])
    sim.core.remember_contact("333", "a", 0.0)
    sim.login("b", at=0)
    sim.login("a", at=1)
    sim.do("set_agent_state", "b", "busy", at=1)
    assert rings(sim.do("call_arrived", "k1", "333", "g", at=5)) == [("k1", "a")]
    sim.do("set_agent_state", "b", "idle", at=6)
    assert rings(sim.advance(15)) == [("k1", "b")]
