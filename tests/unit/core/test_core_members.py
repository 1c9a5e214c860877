"""Memberships changed while running (Acd.set_member): a member added while callers wait is
offered one at once; one removed during a call keeps the call and gets no more; levels."""
from __future__ import annotations

import pytest

from acd.core import AgentState, GroupConfig, Strategy
from acd.core.errors import UnknownGroup


def groups():
    return [GroupConfig("sales", members={"a": 1}, strategy=Strategy.LONGEST_IDLE),
            GroupConfig("support", members={"b": 1}, min_level=2)]


def test_an_agent_added_while_a_caller_waits_is_rung_at_once(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "a", "break", at=1)
    assert rings(sim.do("call_arrived", "c1", "n1", "sales", at=2)) == []
    assert rings(sim.do("set_member", "sales", "b", 3, at=3)) == [("c1", "b")]
    q = sim.core.snapshot_queues(sim.now)["sales"]
    assert q["agents"]["ringing"] == 1 and q["agents"]["break"] == 1


def test_a_member_removed_during_a_call_keeps_it_and_gets_no_more(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", at=0)
    [(call, agent)] = rings(sim.do("call_arrived", "c1", "n1", "sales", at=1))
    sim.do("agent_answered", "c1", "a", at=2)
    sim.do("set_member", "sales", "a", None, at=3)
    assert sim.core.agent_snapshot("a", sim.now)["state"] == "talking"
    sim.do("caller_hung_up", "c1", at=4)
    assert sim.core.agent_snapshot("a", sim.now)["state"] == "idle"
    assert rings(sim.do("call_arrived", "c2", "n2", "sales", at=5)) == []
    assert sim.core.snapshot_queues(sim.now)["sales"]["waiting"] == 1


def test_levels_count_against_the_groups_minimum(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", "b", at=0)
    sim.do("set_member", "support", "b", None, at=1)
    sim.do("set_member", "support", "a", 1, at=2)          # below support's min_level 2
    assert rings(sim.do("call_arrived", "c1", "n1", "support", at=3)) == []
    assert rings(sim.do("set_member", "support", "a", 5, at=4)) == [("c1", "a")]


def test_counts_follow_membership_and_bad_input_changes_nothing(make_sim):
    sim = make_sim(groups())
    sim.login("a", at=0)
    sim.do("set_member", "support", "a", 2, at=1)
    assert sim.core.snapshot_queues(sim.now)["support"]["agents"]["idle"] == 1
    with pytest.raises(UnknownGroup):
        sim.do("set_member", "nope", "a", 1, at=2)
    with pytest.raises(ValueError):
        sim.do("set_member", "sales", "a", -1, at=2)
    sim.do("set_member", "support", "a", None, at=3)
    sim.do("set_member", "support", "a", None, at=4)       # twice: nothing more
    assert sim.core.snapshot_queues(sim.now)["support"]["agents"].get("idle", 0) == 0
    assert sim.core.agent_snapshot("a", sim.now)["state"] == AgentState.IDLE.value
