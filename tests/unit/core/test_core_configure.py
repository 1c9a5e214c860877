"""Skill groups and agents changed while running (Acd.configure_groups, Acd.forget_agent): a
new group takes callers once it has members, a new wrap-up applies to the next call, a new
strategy to the next offer, a group with calls cannot go, a logged-in agent cannot go."""
from __future__ import annotations

from dataclasses import replace

import pytest

from acd.core import GroupConfig, Strategy
from acd.core.errors import AgentLoggedIn, ConfigInvalid, GroupHasCalls, UnknownGroup


def groups():
    return [GroupConfig("sales", members={"a": 1, "b": 1}, strategy=Strategy.LONGEST_IDLE),
            GroupConfig("support", members={"b": 1})]


def test_a_new_group_takes_callers_once_it_has_a_member(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", "b", at=0)
    sim.do("configure_groups", groups() + [GroupConfig("vip", members={"ignored": 1})], at=1)
    assert sim.core.snapshot_queues(sim.now)["vip"]["agents"] == {}     # members: set_member
    assert rings(sim.do("call_arrived", "c1", "n1", "vip", at=2)) == []
    assert rings(sim.do("set_member", "vip", "a", 1, at=3)) == [("c1", "a")]


def test_a_new_wrapup_applies_to_the_next_call(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", at=0)
    sim.do("call_arrived", "c1", "n1", "sales", at=1)
    sim.do("agent_answered", "c1", "a", at=2)
    changed = [replace(groups()[0], wrapup_seconds=30.0), groups()[1]]
    sim.do("configure_groups", changed, at=3)
    assert sim.core.snapshot_queues(sim.now)["sales"]["agents"]["talking"] == 1  # call goes on
    sim.do("caller_hung_up", "c1", at=4)
    assert sim.core.agent_snapshot("a", sim.now)["state"] == "wrapup"
    # and the members stay as they were (the settings' members are not the truth)
    assert set(sim.core.snapshot_queues(sim.now)["sales"]["agents"]) <= {"wrapup", "idle",
                                                                          "offline"}


def test_a_new_strategy_rebuilds_the_idle_index(make_sim, rings):
    sim = make_sim([GroupConfig("sales", members={"a": 1, "b": 5})])
    sim.login("a", at=0)
    sim.login("b", at=1)
    sim.do("configure_groups", [GroupConfig("sales", strategy=Strategy.SKILL_LEVEL)], at=2)
    assert rings(sim.do("call_arrived", "c1", "n1", "sales", at=3)) == [("c1", "b")]


def test_a_group_with_calls_cannot_go_and_nothing_changes(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "a", "break", at=0)
    sim.do("set_agent_state", "b", "break", at=0)
    sim.do("call_arrived", "c1", "n1", "support", at=1)
    with pytest.raises(GroupHasCalls) as err:
        sim.do("configure_groups", [groups()[0]], at=2)
    assert err.value.id == "group.has_calls"
    assert "support" in sim.core.snapshot_queues(sim.now)
    with pytest.raises(ConfigInvalid):
        sim.do("configure_groups", groups() + [GroupConfig("sales")], at=2)
    sim.do("caller_hung_up", "c1", at=3)
    sim.do("configure_groups", [groups()[0]], at=4)
    assert "support" not in sim.core.snapshot_queues(sim.now)
    with pytest.raises(UnknownGroup):
        sim.do("call_arrived", "c2", "n2", "support", at=5)


def test_only_a_logged_out_agent_is_forgotten(make_sim, rings):
    sim = make_sim(groups())
    sim.login("a", "b", at=0)
    with pytest.raises(AgentLoggedIn) as err:
        sim.do("forget_agent", "a", at=1)
    assert err.value.id == "agent.logged_in"
    sim.do("agent_logout", "a", at=2)
    sim.do("forget_agent", "a", at=3)
    q = sim.core.snapshot_queues(sim.now)
    assert sum(q["sales"]["agents"].values()) == 1       # b alone
    assert rings(sim.do("call_arrived", "c1", "n1", "sales", at=4)) == [("c1", "b")]
