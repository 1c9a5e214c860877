"""The decision contract: one union of every decision type, and the decisions that say what
records used to imply (ReleaseLegs after an end, RegroupCaller after an overflow)."""
from __future__ import annotations

import dataclasses
import typing

import pytest

import acd.core
from acd.core import (DECISION_TYPES, CallEventKind, Decision, Destination, EndReason,
                      GroupConfig, OutboundEnded, RecordCallEvent, RegroupCaller, ReleaseLegs,
                      RequeueCaller)
from acd.core import decisions as decisions_module
from tests.unit.core.test_core_random import Adapter

HANGUP_ENDS = {EndReason.CALLER_HANGUP, EndReason.AGENT_HANGUP}


def of(out, kind):
    return [d for d in out if isinstance(d, kind)]


def check_release_after_ends(out: list[Decision]) -> int:
    """Every ``ended`` record is followed at once by ReleaseLegs (caller_too for a hangup),
    every OutboundEnded by ReleaseLegs(caller_too=False), and no ReleaseLegs comes alone.
    Returns how many ends were seen."""
    ends = 0
    for i, d in enumerate(out):
        if isinstance(d, RecordCallEvent) and d.record.kind is CallEventKind.ENDED:
            ends += 1
            assert out[i + 1] == ReleaseLegs(d.call_id, d.record.end_reason in HANGUP_ENDS), (
                out[i:i + 2])
        elif isinstance(d, OutboundEnded):
            ends += 1
            assert out[i + 1] == ReleaseLegs(d.call_id, caller_too=False)
        elif isinstance(d, ReleaseLegs):
            before = out[i - 1] if i else None
            assert isinstance(before, (RecordCallEvent, OutboundEnded)), before
            assert before.call_id == d.call_id
    return ends


# --- one union ----------------------------------------------------------------------------------

def test_decision_types_are_every_decision_class_and_the_union():
    classes = {c for c in vars(decisions_module).values()
               if isinstance(c, type) and dataclasses.is_dataclass(c)
               and c.__module__ == decisions_module.__name__}
    assert set(DECISION_TYPES) == classes
    assert len(DECISION_TYPES) == len(classes)
    assert set(typing.get_args(Decision)) == classes
    for cls in DECISION_TYPES:
        assert cls.__dataclass_params__.frozen, cls
        assert getattr(acd.core, cls.__name__) is cls       # exported by acd.core


# --- ReleaseLegs ----------------------------------------------------------------------------------

GROUPS = [GroupConfig("g", members={"a": 1, "b": 1}, ring_timeout=10, wrapup_seconds=0),
          GroupConfig("h", members={"b": 1}, wrapup_seconds=0)]


@pytest.mark.parametrize("end, caller_too", [
    ("caller_hung_up", True), ("agent_hung_up", True), ("hang_up", True),
    ("to_survey", True), ("abandoned", False), ("lost", False)])
def test_ended_call_is_followed_by_release_legs(make_sim, end, caller_too):
    sim = make_sim(GROUPS)
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    if end == "abandoned":
        out = sim.do("caller_hung_up", "k1", at=2)
    else:
        sim.do("agent_answered", "k1", "a", at=2)
        if end == "caller_hung_up":
            out = sim.do("caller_hung_up", "k1", at=3)
        elif end == "agent_hung_up":
            out = sim.do("agent_hung_up", "k1", "a", at=3)
        elif end == "lost":
            out = sim.do("channels_lost", "asterisk_restart", at=3)
        else:
            out = sim.do(end, "a", at=3)
    assert of(out, ReleaseLegs) == [ReleaseLegs("k1", caller_too)]
    assert check_release_after_ends(out) == 1


def test_overflow_to_a_destination_releases_without_the_caller(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1}, max_wait=30,
                                max_wait_destination=Destination.ivr("sorry"))])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    out = sim.advance(30)
    assert of(out, ReleaseLegs) == [ReleaseLegs("k1", caller_too=False)]
    assert check_release_after_ends(out) == 1


def test_outbound_end_is_followed_by_release_legs(make_sim):
    sim = make_sim(GROUPS)
    sim.login("a", at=0)
    sim.do("dial", "a", "+8613800138000", call_id="o1", at=1)
    sim.do("agent_answered", "o1", "a", at=2)
    sim.do("customer_answered", "o1", at=3)
    out = sim.do("caller_hung_up", "o1", at=4)
    assert of(out, ReleaseLegs) == [ReleaseLegs("o1", caller_too=False)]
    assert check_release_after_ends(out) == 1
    sim.do("dial", "a", "+8613800138000", call_id="o2", at=5)
    out = sim.advance(40)                                       # the agent never answers
    assert of(out, ReleaseLegs) == [ReleaseLegs("o2", caller_too=False)]
    assert check_release_after_ends(out) == 1


@pytest.mark.parametrize("seed", range(5))
def test_every_end_in_random_runs_is_followed_by_release_legs(seed):
    seen: list[Decision] = []

    class Recording(Adapter):
        def feed(self, out) -> None:
            seen.extend(out)
            check_release_after_ends(out)
            super().feed(out)

    adapter = Recording(seed)
    for _ in range(300):
        adapter.step()
    adapter.drain()
    assert check_release_after_ends(seen) == len(adapter.arrived)


# --- RegroupCaller --------------------------------------------------------------------------------

OVERFLOW = [GroupConfig("g1", members={"a": 1}, max_wait=30,
                        max_wait_destination=Destination.group("g2")),
            GroupConfig("g2", members={"x": 1}),
            GroupConfig("shut", members={"x": 1}, open=False,
                        closed_destination=Destination.group("g2"))]


def test_overflow_to_another_group_regroups_the_caller_once(make_sim):
    sim = make_sim(OVERFLOW)
    out = sim.do("call_arrived", "k1", "111", "g1", at=0)
    assert not of(out, RegroupCaller)
    out = sim.advance(30)
    assert of(out, RegroupCaller) == [RegroupCaller("k1", "g2", 30)]
    i = out.index(RegroupCaller("k1", "g2", 30))
    queued = out[i - 1]
    assert isinstance(queued, RecordCallEvent) and queued.record.kind is CallEventKind.QUEUED
    assert queued.record.group == "g2"
    assert not of(sim.advance(100), RegroupCaller)


def test_arrival_in_a_closed_group_sent_to_another_regroups(make_sim):
    sim = make_sim(OVERFLOW)
    out = sim.do("call_arrived", "k1", "111", "shut", at=5)
    assert of(out, RegroupCaller) == [RegroupCaller("k1", "g2", 5)]
    assert sim.core.call_group("k1") == "g2"


def test_transfer_to_a_group_requeues_without_regroup(make_sim):
    sim = make_sim(GROUPS)
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    out = sim.do("transfer", "a", to_group="h", at=10)
    assert of(out, RequeueCaller) == [RequeueCaller("k1", "h", 1000, 10)]
    assert not of(out, RegroupCaller)
    sim.login("b", at=11)
    sim.do("agent_answered", "k1", "b", at=12)
    out = sim.do("transfer", "b", to_group="g", at=13)          # and back: still none
    assert of(out, RequeueCaller) == [RequeueCaller("k1", "g", 2000, 13)]
    assert not of(out, RegroupCaller)


def test_phone_lost_requeues_without_regroup(make_sim):
    sim = make_sim(GROUPS)
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    out = sim.do("phone_lost", "a", "unreachable", at=3)
    assert of(out, RequeueCaller) == [RequeueCaller("k1", "g", 1000, 3)]
    assert not of(out, RegroupCaller)


def test_restored_caller_regroups_on_overflow_and_callbacks_never(make_sim):
    groups = [GroupConfig("g1", members={"a": 1}, max_wait=30,
                          max_wait_destination=Destination.group("g2"),
                          callback=acd.core.CallbackSettings()),
              GroupConfig("g2", members={"x": 1})]
    sim = make_sim(groups)
    sim.do("restore_waiting_call", "k1", "111", "g1", 0, 0)
    sim.do("restore_waiting_call", "k2", "222", "g1", 0, 0, callback_number="222")
    sim.do("resume")
    out = sim.advance(30)
    assert of(out, RegroupCaller) == [RegroupCaller("k1", "g2", 30)]


# --- timer keys and the number pattern ----------------------------------------------------------

def test_timer_keys_are_kind_and_id_from_one_module(make_sim):
    from acd.core import timers
    assert timers.timer_key(timers.T_RING, "k1") == "ring:k1"
    assert timers.split_key("wrapup:a:b") == ("wrapup", "a:b")
    kinds = [getattr(timers, n) for n in timers.__all__ if n.startswith("T_")]
    assert len(set(kinds)) == len(kinds)
    assert set(timers.CALL_TIMERS) | set(timers.CONTROL_TIMERS) | set(timers.AGENT_TIMERS) == set(
        kinds)
    sim = make_sim(GROUPS)
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    for key in sim.core.timers():
        assert timers.split_key(key)[0] in kinds


@pytest.mark.parametrize("number, ok", [("+8613800138000", True), ("*21#", True),
                                        ("12a", False), ("", False), ("1" * 33, False)])
def test_outbound_numbers_follow_the_one_number_pattern(make_sim, number, ok):
    from acd.core.numbers import is_number
    assert is_number(number) is ok
    sim = make_sim(GROUPS)
    sim.login("a", at=0)
    if ok:
        assert sim.do("dial", "a", number, call_id="o1", at=1)
    else:
        with pytest.raises(acd.core.AcdError) as exc:
            sim.do("dial", "a", number, call_id="o1", at=1)
        assert exc.value.id == "dial.bad_number"


# --- public queries -------------------------------------------------------------------------------

def test_agent_snapshot_is_the_snapshot_of_one_agent(make_sim):
    sim = make_sim(GROUPS)
    sim.login("a", "b", at=0)
    sim.do("contact_status", "PJSIP/b", False, at=1)
    sim.do("call_arrived", "k1", "111", "g", at=2)
    sim.do("set_agent_state", "a", "break", at=3, reason="lunch")
    all_agents = sim.core.snapshot_agents(sim.now)
    for agent_id in ("a", "b"):
        assert sim.core.agent_snapshot(agent_id, sim.now) == all_agents[agent_id]
    assert sim.core.agent_snapshot("a", sim.now)["pending"] == "break"
    assert sim.core.agent_snapshot("b", sim.now)["reachable"] is False
    assert sim.core.agent_snapshot("nobody", sim.now) is None


def test_wrapup_seconds_per_group():
    core = acd.core.Acd([GroupConfig("g", members={"a": 1}, wrapup_seconds=7),
                         GroupConfig("h", members={"a": 1})])
    assert core.wrapup_seconds("g") == 7.0
    assert isinstance(core.wrapup_seconds("g"), float)
    assert core.wrapup_seconds("nope") == 0.0
    assert core.wrapup_seconds(None) == 0.0


def test_call_state_and_group(make_sim):
    sim = make_sim(OVERFLOW)
    assert sim.core.call_state("k1") is None and sim.core.call_group("k1") is None
    sim.do("call_arrived", "k1", "111", "g1", at=0)
    assert (sim.core.call_state("k1"), sim.core.call_group("k1")) == ("waiting", "g1")
    sim.advance(30)
    assert (sim.core.call_state("k1"), sim.core.call_group("k1")) == ("waiting", "g2")
    sim.do("caller_hung_up", "k1", at=31)
    assert (sim.core.call_state("k1"), sim.core.call_group("k1")) == ("ended", "g2")
    assert sim.core.call_state("k1") == sim.core.call_info("k1")["state"]


def test_phone_reachable_is_the_fact_used_for_routing(make_sim, rings):
    sim = make_sim(GROUPS)
    assert sim.core.phone_reachable("PJSIP/a") is True          # unknown: reachable
    sim.login("a", at=0)
    sim.do("contact_status", "PJSIP/a", False, at=1)
    assert sim.core.phone_reachable("PJSIP/a") is False
    assert not rings(sim.do("call_arrived", "k1", "111", "g", at=2))
    out = sim.do("contact_status", "PJSIP/a", True, at=3)
    assert sim.core.phone_reachable("PJSIP/a") is True
    assert rings(out) == [("k1", "a")]
