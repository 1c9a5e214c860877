"""The soak's verdict (bench/soak_judge.py), pure: how a call ended as the caller lived it,
what is wrong with its record, what is wrong with an agent's state, and the memory growth
fit."""
from __future__ import annotations

from acd.tools.load import PhoneCall
from acd.tools.load_calls import LoadCall
from bench.soak_judge import (agent_problems, call_outcome, memory_growth, memory_met,
                              record_problems)


def rec(**kw) -> LoadCall:
    base = dict(n=1, caller_number="55001000001", planned=0.0, trunk_uid="t1",
                call_uid="c1", queued_at=100.0, bridged_at=101.0, ended_at=110.0)
    base.update(kw)
    return LoadCall(**base)


def phone(agent="1001", at=101.0, hung_up=109.9, early=False) -> PhoneCall:
    return PhoneCall(agent, "55001000001", at, 8.0, hangup_sent_at=hung_up, closed_early=early)


def test_the_agents_phone_hanging_up_completes_the_call():
    assert call_outcome(rec(), [phone()], None, False) == "completed"


def test_after_a_transfer_the_last_agent_counts():
    first = phone("1001", 101.0, None, early=True)       # cut by the transfer
    assert call_outcome(rec(), [first, phone("1002", 104.0)], None, False) == "completed"
    assert call_outcome(rec(), [phone("1002", 104.0), first], None, False) == "dropped"


def test_a_caller_hanging_up_first_is_their_choice():
    assert call_outcome(rec(), [phone(hung_up=None, early=True)], 109.0, False) == "caller_hung_up"
    assert call_outcome(rec(bridged_at=None), [], 105.0, False) == "caller_hung_up"
    # Whoever hung up first ended it; at (nearly) the same moment, either may have.
    assert call_outcome(rec(), [phone(hung_up=107.0)], 109.0, False) == "completed"
    assert call_outcome(rec(), [phone(hung_up=108.9)], 109.0, False) == "both_hung_up"


def test_calls_nobody_ended_are_lost():
    assert call_outcome(rec(), [phone(hung_up=None, early=True)], None, False) == "dropped"
    assert call_outcome(rec(bridged_at=None), [], None, False) == "dropped"
    assert call_outcome(rec(queued_at=None, bridged_at=None), [], None, False) == "not_queued"
    assert call_outcome(rec(ended_at=None), [], None, False) == "unfinished"
    assert call_outcome(rec(call_uid=None), [], None, False) == "no_incoming_leg"
    assert call_outcome(rec(outcome="originate_failed"), [], None, False) == "refused_by_asterisk"
    assert call_outcome(rec(bridged_at=None), [], None, True) == "no_agent_in_time"


def stored(reason="agent_hangup", kinds=("arrived", "queued", "offered", "ringing", "answered",
                                          "ended", "wrapup", "wrapup_ended"),
           legs=("1001",), ended_reason=None):
    return {"end_reason": reason,
            "events": [{"kind": k, "detail": {"reason": ended_reason or reason} if k == "ended"
                        else {}} for k in kinds],
            "legs": [{"agent_id": a} for a in legs]}


def test_a_whole_record_has_no_problems():
    assert record_problems(stored(), "completed", ["1001"]) == []
    assert record_problems(stored("abandoned", ("arrived", "queued", "ended"), ()),
                           "caller_hung_up", []) == []


def test_each_defect_of_a_record_is_named():
    assert record_problems(None, "completed", ["1001"]) == ["no record"]
    assert "no end reason" in record_problems(stored(reason=None, ended_reason="x"),
                                              "completed", ["1001"])
    assert record_problems(stored("caller_hangup"), "completed", ["1001"]) == [
        "end reason caller_hangup, the caller's side saw completed"]
    assert record_problems(stored(ended_reason="abandoned"), "completed", ["1001"]) == [
        "ended event says abandoned, the call agent_hangup"]
    two = ("arrived", "queued", "answered", "ended", "ended")
    assert record_problems(stored(kinds=two), "completed", ["1001"]) == ["2 ended events"]
    late = ("arrived", "queued", "answered", "ended", "offered")
    assert record_problems(stored(kinds=late), "completed", ["1001"]) == [
        "after ended: ['offered']"]
    assert record_problems(stored(kinds=("queued", "answered", "ended")), "completed",
                           ["1001"]) == ["timeline does not start with arrived: "
                                         "['queued', 'answered', 'ended']"]
    assert record_problems(stored(legs=("1001",)), "completed", ["1001", "1002"]) == [
        "legs ['1001'], the caller talked with ['1001', '1002']"]


def test_agent_state_against_the_truth():
    ok = {"state": "idle", "pending": None, "reachable": True}
    assert agent_problems("1001", ok, 0, True) == []
    assert agent_problems("1001", {**ok, "state": "talking"}, 0, True) == [
        "talking with no channel in Asterisk", "talking, should be idle"]
    assert agent_problems("1001", ok, 1, True) == ["idle with 1 channel(s) in Asterisk"]
    assert agent_problems("1001", {**ok, "state": "break"}, 0, True) == ["break, should be idle"]
    assert agent_problems("1001", {**ok, "pending": "break"}, 0, True) == [
        "pending break left over"]
    assert agent_problems("1001", ok, 0, False) == ["reachable True, phone not registered"]


def test_memory_growth_is_the_slope_after_the_warm_up():
    flat_after_warmup = [(t, (50_000 + (t * 100 if t < 100 else 10_000)) * 1024)
                         for t in range(0, 300, 10)]
    g = memory_growth(flat_after_warmup)
    assert g["slope_kib_per_min"] == 0.0 and g["first_kib"] == 50_000
    assert g["peak_kib"] == 60_000 and g["samples"] == 30
    growing = [(t, (50_000 + t) * 1024) for t in range(0, 600, 10)]
    assert memory_growth(growing)["slope_kib_per_min"] == 60.0
    assert memory_met(memory_growth(growing), 10, 64.0) is True
    assert memory_met(memory_growth(growing), 10, 30.0) is False
    assert memory_met(memory_growth(growing), 2, 30.0) is None      # too short to judge
    assert memory_growth([]) == {"samples": 0, "slope_kib_per_min": None}
