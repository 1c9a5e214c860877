"""The benchmarks' pure parts: statistics, the load generator's plans (arrival processes,
talk times), call tracking from AMI events, outcomes, derived figures, targets, the report
writer, and the app_queue arm's rendered configuration."""
from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from acd import config as configmod
from acd.tools import load, load_calls
from acd.asterisk.render import Layout, render
from acd.errors import UserError
from bench import instance as inst
from bench import report, stats, svg
from bench.measures import (RunResult, agent_free_latencies, arm_order, idle_agent_latencies,
                            ours_breakdown, screen_pop_latencies, server_log_times)


# ============================================================================ statistics

def test_percentile_interpolates_between_ranks():
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]             # order does not matter
    assert stats.percentile(xs, 0) == 1.0
    assert stats.percentile(xs, 50) == 3.0
    assert stats.percentile(xs, 100) == 5.0
    assert stats.percentile(xs, 95) == pytest.approx(4.8)     # (5-1)*0.95 = 3.8 -> 4 + 0.8
    assert stats.percentile(xs, 25) == pytest.approx(2.0)
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_percentile_refuses_nothing_and_bad_p():
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summary_scales_rounds_and_handles_empty():
    s = stats.summary([0.001, 0.002, 0.003, 0.004], scale=1000, digits=3)
    assert s == {"n": 4, "min": 1.0, "p50": 2.5, "p95": 3.85, "p99": 3.97, "max": 4.0,
                 "mean": 2.5}
    assert stats.summary([]) == {"n": 0, "min": None, "p50": None, "p95": None, "p99": None,
                                 "max": None, "mean": None}


def test_cdf_is_monotone_thinned_and_keeps_both_ends():
    xs = [random.Random(1).random() for _ in range(5000)]
    c = stats.cdf(xs, points=100)
    assert len(c) <= 100
    assert c[0] == (min(xs), 1 / 5000) and c[-1] == (max(xs), 1.0)
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in zip(c, c[1:]))
    assert stats.cdf([]) == []
    assert stats.cdf([2.0, 1.0]) == [(1.0, 0.5), (2.0, 1.0)]


def test_ratio_and_growth():
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(None, 2.0) is None and stats.ratio(1.0, 0) is None
    flat = stats.growth({100: 10.0, 1000: 10.5, 10000: 11.0})
    assert flat["sizes"] == 100 and flat["exponent"] < 0.05
    linear = stats.growth({100: 1.0, 10000: 100.0})
    assert linear["exponent"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.growth({100: 1.0})


# ============================================================================ arrivals

def test_fixed_arrivals_are_evenly_spaced_from_zero():
    assert load.arrival_offsets("fixed", 4, duration=1.0) == [0.0, 0.25, 0.5, 0.75]
    assert load.arrival_offsets("fixed", 2, count=3) == [0.0, 0.5, 1.0]
    # both given: whichever ends first
    assert load.arrival_offsets("fixed", 10, duration=0.35, count=100) == [0.0, 0.1, 0.2, 0.3]
    assert len(load.arrival_offsets("fixed", 20, duration=600)) == 12000


def test_poisson_arrivals_repeat_with_the_seed_and_differ_without():
    a = load.arrival_offsets("poisson", 5, duration=60, rng=random.Random(7))
    b = load.arrival_offsets("poisson", 5, duration=60, rng=random.Random(7))
    c = load.arrival_offsets("poisson", 5, duration=60, rng=random.Random(8))
    assert a == b and a != c
    assert all(x < y for x, y in zip(a, a[1:])) and 0 < a[0] and a[-1] < 60


def test_poisson_arrivals_have_exponential_gaps_at_the_rate():
    rate = 20.0
    xs = load.arrival_offsets("poisson", rate, count=40000, rng=random.Random(2024))
    assert len(xs) == 40000
    gaps = [xs[0]] + [b - a for a, b in zip(xs, xs[1:])]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1 / rate, rel=0.02)
    # exponential: P(gap <= t) = 1 - exp(-rate t), at the mean and at twice it
    for t in (1 / rate, 2 / rate):
        share = sum(1 for g in gaps if g <= t) / len(gaps)
        assert share == pytest.approx(1 - math.exp(-rate * t), abs=0.01)
    # counts per second are Poisson: variance close to the mean
    per_second = [0] * int(xs[-1])
    for x in xs:
        if int(x) < len(per_second):
            per_second[int(x)] += 1
    m = sum(per_second) / len(per_second)
    var = sum((n - m) ** 2 for n in per_second) / len(per_second)
    assert m == pytest.approx(rate, rel=0.03) and var == pytest.approx(m, rel=0.2)


@pytest.mark.parametrize("kwargs, error", [
    ({"kind": "bursty", "rate": 1, "duration": 1}, "load.arrivals"),
    ({"kind": "fixed", "rate": 0, "duration": 1}, "load.rate"),
    ({"kind": "fixed", "rate": -2, "duration": 1}, "load.rate"),
    ({"kind": "fixed", "rate": float("inf"), "duration": 1}, "load.rate"),
    ({"kind": "fixed", "rate": 1}, "load.length"),
    ({"kind": "fixed", "rate": 1, "duration": 0}, "load.length"),
    ({"kind": "fixed", "rate": 1, "count": -1}, "load.length"),
    ({"kind": "poisson", "rate": 1, "duration": 5}, "load.seed"),
])
def test_bad_arrival_plans_are_refused_with_an_id(kwargs, error):
    kind, rate = kwargs.pop("kind"), kwargs.pop("rate")
    with pytest.raises(UserError) as e:
        load.arrival_offsets(kind, rate, **kwargs)
    assert e.value.id == error


def test_talk_times_fixed_exponential_and_capped():
    assert load.talk_durations("fixed", 3, 4) == [3.0] * 4
    xs = load.talk_durations("exponential", 2.0, 20000, random.Random(5))
    assert sum(xs) / len(xs) == pytest.approx(2.0, rel=0.03)
    assert max(load.talk_durations("exponential", 2.0, 5000, random.Random(5), cap=4.0)) == 4.0
    shifted = load.talk_durations("exponential", 2.0, 20000, random.Random(6), minimum=1.0)
    assert min(shifted) >= 1.0 and sum(shifted) / len(shifted) == pytest.approx(2.0, rel=0.03)
    with pytest.raises(UserError):
        load.talk_durations("exponential", 2.0, 1, random.Random(1), minimum=2.0)
    t1, t2 = load.TalkTimes("exponential", 2.0, 9), load.TalkTimes("exponential", 2.0, 9)
    assert [t1() for _ in range(5)] == [t2() for _ in range(5)]
    with pytest.raises(UserError):
        load.talk_durations("normal", 2, 1)
    with pytest.raises(UserError):
        load.TalkTimes("fixed", 0, 1)


def test_caller_numbers_are_unique_digits():
    nums = {load.caller_number(3, n) for n in range(5000)}
    assert len(nums) == 5000 and all(n.isdigit() for n in nums)
    assert load.caller_number(1, 1) != load.caller_number(2, 1)


def test_agent_lists():
    assert load.agent_list("2001-2003") == ["2001", "2002", "2003"]
    assert load.agent_list("2001,2005, 2007-2008") == ["2001", "2005", "2007", "2008"]
    assert load.agent_list("a01-a03") == ["a01", "a02", "a03"]
    for bad in ("2003-2001", "2001,2001"):
        with pytest.raises(UserError):
            load.agent_list(bad)


# ============================================================================ following calls

@dataclass
class Ev:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)


def _call_events(tracker: load_calls.CallTracker, *, caller: str, ts: float, agent: str = "2001",
                 app: str = "Queue", data: str = "acd-bench", n: int = 1) -> None:
    uid, leg = f"1700.{n}", f"1700.{n}a"
    for e in (
        Ev("Newchannel", {"Channel": f"PJSIP/acd-caller-0{n}", "Uniqueid": uid,
                          "CallerIDNum": caller, "Timestamp": f"{ts}"}),
        Ev("Newexten", {"Uniqueid": uid, "Application": "Answer", "Timestamp": f"{ts + 0.01}"}),
        Ev("Newexten", {"Uniqueid": uid, "Application": app, "AppData": data,
                        "Timestamp": f"{ts + 0.02}"}),
        Ev("Newchannel", {"Channel": f"PJSIP/{agent}-0{n}", "Uniqueid": leg,
                          "Timestamp": f"{ts + 0.025}"}),
        Ev("BridgeEnter", {"BridgeUniqueid": f"b{n}", "Uniqueid": leg, "Timestamp": f"{ts + 0.3}"}),
        Ev("BridgeEnter", {"BridgeUniqueid": f"b{n}", "Uniqueid": uid, "Timestamp": f"{ts + 0.301}"}),
        Ev("HangupRequest", {"Uniqueid": leg, "Timestamp": f"{ts + 2.3}"}),
        Ev("Hangup", {"Uniqueid": leg, "Cause": "16", "Timestamp": f"{ts + 2.31}"}),
        Ev("Hangup", {"Uniqueid": uid, "Cause": "16", "Timestamp": f"{ts + 2.32}"}),
    ):
        tracker.on_event(e)


def test_tracker_follows_a_call_through_ami_events_with_asterisks_times():
    tracker = load_calls.CallTracker(["2001", "2002"])
    rec = load_calls.LoadCall(n=0, caller_number="55001000000", planned=0.0, trunk_uid="t0")
    other = load_calls.LoadCall(n=1, caller_number="55001000001", planned=1.0, trunk_uid="t1")
    tracker.add(rec)
    tracker.add(other)
    _call_events(tracker, caller=rec.caller_number, ts=100.0)
    assert rec.call_uid == "1700.1" and rec.incoming_at == 100.0
    assert rec.queued_at == pytest.approx(100.02)       # the Queue() step, not Answer()
    assert rec.agent == "2001" and rec.invite_at == pytest.approx(100.025)
    assert rec.bridged_at == pytest.approx(100.301)      # both channels in the bridge
    assert rec.agent_end_at == pytest.approx(102.31) and rec.ended_at == pytest.approx(102.32)
    assert rec.end_cause == 16
    assert rec.queue_to_invite == pytest.approx(0.005)
    assert other.call_uid is None                         # another caller's events only
    assert tracker.legs["1700.1a"].call_uid == "1700.1"


def _one_incoming_call() -> tuple[load_calls.CallTracker, load_calls.LoadCall]:
    """A tracker following one caller (number 55) whose incoming leg ``u`` appeared at 10."""
    tracker = load_calls.CallTracker(["2001"])
    rec = load_calls.LoadCall(n=0, caller_number="55", planned=0.0, trunk_uid="t")
    tracker.add(rec)
    tracker.on_event(Ev("Newchannel", {"Channel": "PJSIP/acd-caller-1", "Uniqueid": "u",
                                       "CallerIDNum": "55", "Timestamp": "10"}))
    return tracker, rec


def test_tracker_takes_ours_queue_entry_from_the_fastagi_queue_script():
    tracker, rec = _one_incoming_call()
    tracker.on_event(Ev("Newexten", {"Uniqueid": "u", "Application": "AGI",
                                     "AppData": "agi://127.0.0.1:4573/ivr", "Timestamp": "10.1"}))
    assert rec.queued_at is None                          # the IVR is not the queue
    tracker.on_event(Ev("Newexten", {"Uniqueid": "u", "Application": "AGI",
                                     "AppData": "agi://127.0.0.1:4573/queue,bench,0,,,,7801", "Timestamp": "10.2"}))
    assert rec.queued_at == pytest.approx(10.2)


def test_tracker_sees_a_caller_the_queue_script_sent_away():
    """Turned away (overload, a closed group): the queue script ran, then the destination's
    dialplan (the message and goodbye), and no agent: ``sent_away``, not a caller who gave
    up waiting."""
    tracker, rec = _one_incoming_call()
    tracker.on_event(Ev("Newexten", {"Uniqueid": "u", "Application": "Playback",
                                     "Context": "acd-dest", "Timestamp": "10.1"}))
    assert rec.sent_away_at is None                       # not queued yet: not sent away
    tracker.on_event(Ev("Newexten", {"Uniqueid": "u", "Application": "AGI", "Context": "acd-queue",
                                     "AppData": "agi://127.0.0.1:4573/queue,bench,0,,,,7801", "Timestamp": "10.2"}))
    tracker.on_event(Ev("Newexten", {"Uniqueid": "u", "Application": "Playback",
                                     "Context": "acd-dest", "Timestamp": "10.3"}))
    tracker.on_event(Ev("Hangup", {"Uniqueid": "u", "Channel": "PJSIP/acd-caller-1",
                                   "Cause": "16", "Timestamp": "13"}))
    assert rec.sent_away_at == pytest.approx(10.3)
    assert load_calls.classify(rec) == "sent_away"


def test_tracker_asks_for_keys_once_when_the_flow_reads_digits():
    asked = []
    tracker = load_calls.CallTracker(["2001"])
    tracker.on_ask = asked.append
    a = load_calls.LoadCall(n=0, caller_number="1", planned=0.0, trunk_uid="ta")
    b = load_calls.LoadCall(n=1, caller_number="2", planned=0.0, trunk_uid="tb")
    tracker.add(a)
    tracker.add(b)
    for num, uid in (("1", "ua"), ("2", "ub")):
        tracker.on_event(Ev("Newchannel", {"Channel": "PJSIP/acd-caller-x", "Uniqueid": uid,
                                           "CallerIDNum": num, "Timestamp": "1"}))
    tracker.on_event(Ev("AGIExecStart", {"Uniqueid": "ua", "Command": "GET DATA vm-enter 8000 20",
                                         "Timestamp": "2"}))
    tracker.on_event(Ev("AGIExecStart", {"Uniqueid": "ua", "Command": "GET DATA again",
                                         "Timestamp": "3"}))
    tracker.on_event(Ev("Newexten", {"Uniqueid": "ub", "Application": "Read", "Timestamp": "4"}))
    assert asked == [a, b] and a.asked_at == 2.0 and b.asked_at == 4.0


def _one_call():
    """A tracker with one load call whose incoming leg (Uniqueid ``u``) is known."""
    asked: list = []
    tracker = load_calls.CallTracker(["2001"])
    tracker.on_ask = asked.append
    rec = load_calls.LoadCall(n=0, caller_number="1", planned=0.0, trunk_uid="t")
    tracker.add(rec)
    tracker.on_event(Ev("Newchannel", {"Channel": "PJSIP/acd-caller-x", "Uniqueid": "u",
                                       "CallerIDNum": "1", "Timestamp": "1"}))
    return tracker, rec, asked


def test_a_yaml_menu_prompt_with_escape_digits_asks_for_keys():
    """The YAML hotline's menu plays its prompt with escape digits, then waits for a digit:
    either is where a load caller keys in (it never sent GET DATA, so no key was sent)."""
    assert load_calls.asks_for_keys('STREAM FILE dir-welcome "12"')
    assert load_calls.asks_for_keys("STREAM FILE dir-welcome 12")
    assert load_calls.asks_for_keys("WAIT FOR DIGIT 5000")
    assert load_calls.asks_for_keys("GET DATA vm-enter 8000 20")
    assert not load_calls.asks_for_keys('STREAM FILE queue-youarenext ""')
    assert not load_calls.asks_for_keys("SET MUSIC on default")
    tracker, rec, asked = _one_call()
    tracker.on_event(Ev("AGIExecStart", {"Uniqueid": "u", "Command": 'STREAM FILE dir-welcome "12"',
                                         "Timestamp": "2"}))
    assert asked == [rec] and rec.asked_at == 2.0


def test_keys_are_not_sent_into_the_queue():
    tracker, _rec, asked = _one_call()
    tracker.on_event(Ev("Newexten", {"Uniqueid": "u", "Application": "AGI",
                                     "AppData": "agi://127.0.0.1:4573/queue", "Timestamp": "2"}))
    tracker.on_event(Ev("AGIExecStart", {"Uniqueid": "u", "Command": "WAIT FOR DIGIT 30001",
                                         "Timestamp": "3"}))
    assert asked == []


def test_tracker_marks_a_refused_originate():
    tracker = load_calls.CallTracker([])
    rec = load_calls.LoadCall(n=0, caller_number="1", planned=0.0, trunk_uid="t")
    tracker.add(rec)
    tracker.on_event(Ev("OriginateResponse", {"Uniqueid": "t", "Response": "Failure"}))
    assert load_calls.classify(rec) == "originate_failed"


def _rec(**kw: Any) -> load_calls.LoadCall:
    base = dict(n=0, caller_number="1", planned=0.0, trunk_uid="t", call_uid="u",
                queued_at=1.0, invite_at=1.01, bridged_at=1.3, answered_at=1.3,
                talk_end_at=3.3, agent_end_at=3.31, ended_at=3.32, end_cause=16, agent="2001")
    base.update(kw)
    return load_calls.LoadCall(**base)


@pytest.mark.parametrize("kw, outcome", [
    ({}, "completed"),
    ({"call_uid": None}, "no_incoming_leg"),
    ({"queued_at": None}, "not_queued"),
    ({"queued_at": None, "ended_at": None}, "unfinished"),
    ({"bridged_at": None}, "not_connected"),
    ({"bridged_at": None, "sent_away_at": 2.0}, "sent_away"),
    ({"talk_end_at": None}, "dropped"),                 # cut before the talk time was up
    ({"talk_end_at": None, "ended_at": None}, "unfinished"),
    ({"ended_at": None}, "unfinished"),
    ({"outcome": "originate_failed"}, "originate_failed"),
])
def test_outcomes(kw, outcome):
    assert load_calls.classify(_rec(**kw)) == outcome


def test_phone_calls_are_matched_by_agent_and_caller_number():
    a = _rec(caller_number="551", agent="2001", talk_end_at=None, answered_at=None)
    b = _rec(caller_number="552", agent="2002", talk_end_at=None, answered_at=None)
    calls = [load.PhoneCall("2001", "551", 10.0, 2.0, hangup_sent_at=12.0),
             load.PhoneCall("2002", "552", 11.0, 2.0, hangup_sent_at=None, closed_early=True),
             load.PhoneCall("2002", "551", 11.0, 2.0, hangup_sent_at=13.0)]
    load.attach_phone_calls([a, b], calls)
    assert (a.answered_at, a.talk_end_at) == (10.0, 12.0)
    assert (b.answered_at, b.talk_end_at) == (11.0, None)   # closed early: not a completion
    assert load._uri_user("sip:5500123@127.0.0.1:25060") == "5500123"
    assert load._uri_user("<sip:7@h>") == "7" and load._uri_user("garbage") == ""


# ============================================================================ derived figures

def _run(records, legs, agents=("2001", "2002"), **kw) -> RunResult:
    base = dict(arm="ours", label="x", profile={"rate": 5.0}, talk={}, records=records,
                legs=legs, started=0.0, seconds=10.0,
                cpu={"asterisk": 1.0, "server": 2.0, "phones": 0.5, "loadgen": 0.2,
                     "machine_busy": 8.0, "machine_total": 20.0},
                load_before=[0.1], load_after=[0.2], ami_disconnects=0, agents=list(agents))
    base.update(kw)
    return RunResult(**base)


def test_idle_agent_latency_counts_only_callers_who_found_an_idle_agent():
    legs = [load_calls.AgentLeg("l1", "2001", 1.0, 5.0), load_calls.AgentLeg("l2", "2002", 2.0, 6.0)]
    recs = [_rec(queued_at=0.99, invite_at=1.0),          # both idle
            _rec(queued_at=1.99, invite_at=2.0),          # 2001 busy, 2002 idle
            _rec(queued_at=3.0, invite_at=5.2)]           # both busy: waited for an agent
    assert idle_agent_latencies(_run(recs, legs), 2) == pytest.approx([0.01, 0.01])


def test_agent_free_latency_needs_a_waiting_caller():
    legs = [load_calls.AgentLeg("a1", "2001", 1.0, 3.0), load_calls.AgentLeg("a2", "2001", 3.5, 6.0),
            load_calls.AgentLeg("a3", "2001", 9.0, 10.0)]
    recs = [_rec(queued_at=2.0, invite_at=3.5),           # waiting when a1 ended at 3.0
            _rec(queued_at=8.0, invite_at=9.0)]           # nobody waited when a2 ended at 6.0
    assert agent_free_latencies(_run(recs, legs)) == pytest.approx([0.5])


def test_screen_pop_latency_and_lost_ring_events():
    recs = [_rec(invite_at=1.0, ring_at=1.02), _rec(invite_at=2.0, ring_at=None),
            _rec(invite_at=3.0, ring_at=None, bridged_at=None)]   # not connected: not counted
    lat, rings, lost = screen_pop_latencies(_run(recs, []))
    assert lat == pytest.approx([0.02]) and (rings, lost) == (1, 1)


def test_arms_alternate():
    assert [arm_order(i) for i in range(3)] == [("ours", "app_queue"), ("app_queue", "ours"),
                                               ("ours", "app_queue")]


def test_ours_breakdown_from_the_server_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(
        '{"event": "agi.session_start", "uniqueid": "u", "timestamp": "2026-01-01T00:00:01.000000Z"}\n'
        'not json at all agi.session_start\n'
        '{"event": "runtime.caller_queued", "call": "u", "timestamp": "2026-01-01T00:00:01.010000Z"}\n'
        '{"event": "runtime.ring", "call": "u", "timestamp": "2026-01-01T00:00:01.011000Z"}\n'
        '{"event": "runtime.ring", "call": "u", "timestamp": "2026-01-01T00:00:09.000000Z"}\n')
    times = server_log_times(log)
    t0 = times["agi.session_start"]["u"]
    assert times["runtime.ring"]["u"] - t0 == pytest.approx(0.011, abs=1e-5)   # the first ring
    rec = _rec(call_uid="u", queued_at=t0 - 0.002, invite_at=t0 + 0.012)
    parts = ours_breakdown([rec], times)
    assert parts["fastagi_connect"] == pytest.approx([0.002], abs=1e-5)
    assert parts["queue_script_to_core"] == pytest.approx([0.010], abs=1e-5)
    assert parts["core_to_ring_decision"] == pytest.approx([0.001], abs=1e-5)
    assert parts["originate_to_channel"] == pytest.approx([0.001], abs=1e-5)
    assert server_log_times(tmp_path / "missing.log")["runtime.ring"] == {}


# ============================================================================ steps and targets

def _step_run(n=1000, failed=0, p95=0.05, disconnects=0, arm="ours", rate=10.0):
    recs = []
    for i in range(n):
        r = _rec(n=i, queued_at=1.0, invite_at=1.0 + (p95 if i >= n * 0.9 else 0.001))
        if i < failed:
            r.outcome = "dropped"
        else:
            r.outcome = "completed"
        recs.append(r)
    return _run(recs, [], arm=arm, profile={"rate": rate}, ami_disconnects=disconnects)


def test_a_step_passes_or_stops_on_each_criterion():
    ok = report.step_figures(_step_run(), 60.0)
    assert ok["passed"] and ok["completed"] == 1000 and ok["achieved_cps"] == pytest.approx(16.67)
    assert ok["cpu_ms_per_call"] == {"asterisk": 1.0, "server": 2.0, "together": 3.0,
                                     "phones": 0.5, "loadgen": 0.2}
    one = report.step_figures(_step_run(failed=1), 60.0)       # 0.1% exactly: still passes
    assert one["passed"]
    two = report.step_figures(_step_run(failed=2), 60.0)
    assert not two["passed"] and "2 of 1000 calls failed" in two["reason"]
    slow = report.step_figures(_step_run(p95=1.5), 60.0)
    assert not slow["passed"] and "p95" in slow["reason"]
    cut = report.step_figures(_step_run(disconnects=1), 60.0)
    assert not cut["passed"] and "AMI disconnect" in cut["reason"]


def test_throughput_summary_takes_each_arms_highest_passing_step():
    steps = [report.step_figures(_step_run(arm=a, rate=r, failed=f), 60.0)
             for a, r, f in (("ours", 5, 0), ("app_queue", 5, 0), ("ours", 10, 0),
                             ("app_queue", 10, 0), ("ours", 15, 9), ("app_queue", 15, 0))]
    t = report.throughput_summary(steps, [5, 10, 15])
    assert t["ours"]["rate"] == 10 and t["ours"]["stopped_at"] == 15
    assert t["app_queue"]["rate"] == 15 and t["app_queue"]["stopped_at"] is None
    assert t["cpu_rate"] == 10        # the highest rate both sustained


def _overload(met=True, failed_other=0, p95=40.0, not_placed=0, ref_not_placed=0):
    return {"met": met, "rate": 40.0, "sustained_rate": 20.0, "seconds": 60.0,
            "queue_to_invite_ms": {"p50": 3.0, "p95": 9.0}, "server_log": {"episodes": 1},
            "served": 2000, "turned_away": 300, "gave_up": 0,
            "failed_other": failed_other + not_placed, "not_placed": not_placed,
            "failed_after_arrival": failed_other,
            "not_placed_ok": not_placed <= 1.1 * ref_not_placed,
            "reference": {"calls": 2300, "served": 1500, "not_placed": ref_not_placed,
                          "outcomes": {"completed": 1500}, "ami_disconnects": 0,
                          "after": {"calls": 600, "completed": 600}},
            "calls": 2300 + failed_other + not_placed, "ami_disconnects": 0,
            "server_alive": True, "recovered": True, "outcomes": {"completed": 2000},
            "api_during": {"ms": {"p95": p95}, "errors": 0},
            "after": {"rate": 20.0, "completed": 600, "calls": 600}}


def _results(idle=(12.0, 1.0), free=(3.0, 600.0), cps=(20, 20), cpu=(30.0, 26.0, 5.0),
             pop=(20.0, 40.0, 0), core=(60.0, 0.02), mem=(0.01, 4000), overload=None):
    d = lambda o, a: {"ours": {"ms": {"p50": o / 2, "p95": o}}, "app_queue": {"ms": {"p50": a / 2, "p95": a}}}  # noqa: E731
    return {"measures": {
        "idle_agent": d(*idle), "agent_free": d(*free),
        "throughput": {"rates": [5, 10, 20], "ours": {"rate": cps[0]}, "app_queue": {"rate": cps[1]},
                       "cpu_rate": 20, "cpu_ms_per_call": {
                           "ours": {"together": cpu[0], "asterisk": cpu[0] - cpu[2], "server": cpu[2]},
                           "app_queue": {"together": cpu[1], "asterisk": cpu[1]}}},
        "overload": overload if overload is not None else _overload(),
        "screen_pop": {"ms": {"p95": pop[0], "p99": pop[1]}, "lost": pop[2], "connected_calls": 100,
                       "rate": 20},
        "core": {"routing_p99_us_at_max": core[0], "sizes": [100, 1000, 10000],
                 "growth": {"agent_free_ring": {"exponent": core[1]},
                            "caller_arrives_ring": {"exponent": core[1]}}},
        "memory": {"with_callers": {"VmRSS": 300 * 2**20}, "callers": 10000, "agents": 5000,
                   "waiting": 10000, "steady_cpu_share": mem[0], "per_caller_bytes": mem[1]}}}


def test_targets_met_and_missed():
    met = {t["id"]: t["met"] for t in report.evaluate(_results())}
    assert met == {1: True, 2: False, 3: True, 4: None, 5: True, 6: True, "6b": True, 7: True,
                   8: None, 9: None, "core": True}
    met = {t["id"]: t["met"] for t in report.evaluate(_results(
        idle=(2.0, 1.5), free=(60.0, 600.0), cps=(19, 10), cpu=(40.0, 26.0, 5.0),
        pop=(20.0, 140.0, 1), core=(250.0, 0.02), mem=(0.2, 4000),
        overload=_overload(met=False, failed_other=3)))}
    assert met == {1: False, 2: True, 3: False, 4: None, 5: False, 6: True, "6b": False,
                   7: False, 8: None, 9: None, "core": False}
    met = {t["id"]: t["met"] for t in report.evaluate(_results(cps=(20, 30), core=(60.0, 0.9),
                                                               cpu=(30.0, 26.0, 7.0)))}
    assert met[6] is False and met["core"] is False and met[1] is False  # server alone > 6 ms
    assert {t["id"]: t["met"] for t in report.evaluate({"measures": {}})}[1] is None
    r = report.ratios(_results())
    assert r["idle_agent_p95"] == 12.0 and r["sustained_cps"] == 1.0


def test_the_page_has_the_tables_and_plots_and_escapes_text(tmp_path):
    res = _results()
    dist = lambda xs: {"ms": stats.summary(xs, 1000, 3), "cdf_ms": [(x * 1000, f) for x, f in stats.cdf(xs)]}  # noqa: E731
    res["measures"]["idle_agent"] = {"ours": dist([0.012, 0.015, 0.02]),
                                     "app_queue": dist([0.001, 0.0012, 0.002]),
                                     "ours_breakdown_ms": {"fastagi_connect": {"p50": 1.0, "p95": 2.0}}}
    steps = [report.step_figures(_step_run(arm=a, rate=5), 60.0) for a in ("ours", "app_queue")]
    res["measures"]["throughput"] = report.throughput_summary(steps, [5])
    res.update({"command": "make bench", "generated_at": "2026-01-01T00:00:00+00:00",
                "machine": {"cores": 2, "cpu_model": "<script>x</script>"}, "setup": {},
                "machine_load": {"idle": {"busy": 0.5, "bench": 0.3, "others": 0.2}}})
    res["targets"] = report.evaluate(res)
    res["ratios"] = report.ratios(res)
    md = report.write_docs(res, tmp_path).read_text()
    assert "# Benchmarks" in md and "| 2 | queue entry -> agent INVITE" in md
    assert "## Past the sustained rate" in md and "| turned away with the group's overload treatment | 300 |" in md
    assert "![distribution of queue entry to INVITE](benchmarks/idle_agent.svg)" in md
    assert "Asterisk opens the FastAGI session" in md
    for name in ("idle_agent.svg", "throughput.svg", "cpu_per_call.svg", "throughput_latency.svg"):
        root = ET.fromstring((tmp_path / "benchmarks" / name).read_text())   # well-formed XML
        assert root.tag.endswith("svg")
    # text in a plot is escaped
    out = svg.lines("a <b> & c", {"<x>": [(1.0, 1.0), (2.0, 2.0)]}, "x", "y")
    assert "<b>" not in out and "&lt;x&gt;" in out
    ET.fromstring(out)
    ET.fromstring(svg.bars("t", ["5/s"], {"ours": [1.0], "app_queue": [None]}, "x", "y"))


def test_load_share_separates_the_bench_from_other_processes():
    share = report.load_share([_run([], [])])
    assert share == {"busy": 0.4, "bench": 0.185, "others": 0.215}


# ============================================================================ the bench instance

def _bench_cfg(tmp_path, **kw):
    s = inst.BenchSetup(agents=6, phones=3, run_dir=tmp_path, **kw)
    cfg, path = inst.write_config(s)
    return s, cfg


def test_bench_config_is_valid_and_apart_from_run_and_test_ports(tmp_path):
    s, cfg = _bench_cfg(tmp_path)
    assert [a.id for a in cfg.agents] == ["2001", "2002", "2003", "2004", "2005", "2006"]
    assert all(a.password for a in cfg.agents)                      # generated
    g = cfg.groups[0]
    assert (g.name, g.number, sorted(g.members)) == ("bench", "7801", ["2001", "2002", "2003"])
    assert cfg.asterisk.loopback_trunk and cfg.asterisk.instance == "bench"
    test_ports = {15060 + 10 * i for i in range(20)} | {5060}
    assert cfg.asterisk.sip_port not in test_ports
    assert cfg.asterisk.rtp_start > 40999                          # above every test slot's RTP
    with pytest.raises(UserError):
        inst.config_data(inst.BenchSetup(agents=2, phones=3))


def test_app_queue_arm_is_rendered_beside_the_acd(tmp_path):
    s, cfg = _bench_cfg(tmp_path)
    files = render(cfg, Layout(inside="/srv/acd/bench", host=tmp_path / "etc"),
                   extra=inst.app_queue_values(cfg, s))
    text = {p.name: p.read_text() for p in files}
    q = text["queues.conf"]
    assert "[acd-bench]" in q and "strategy = leastrecent" in q and "autofill = yes" in q
    assert "ringinuse = no" in q and "timeout = 15" in q and "wrapuptime = 0" in q
    assert "retry = 1" in q
    assert [l for l in q.splitlines() if l.startswith("member =>")] == [
        "member => PJSIP/2001,0,2001", "member => PJSIP/2002,0,2002", "member => PJSIP/2003,0,2003"]
    ext = text["extensions.conf"]
    assert "exten => 7802,1,NoOp(app_queue bench call" in ext and "Queue(acd-bench)" in ext
    assert "exten => 7803,1," in ext and "Read(ACD_DIGITS,vm-enter-num-to-call" in ext
    assert "{{" not in q + ext
    # without the bench's values nothing of it is rendered
    plain = {p.name: p.read_text() for p in render(cfg, Layout(inside="/x", host=tmp_path / "plain"))}
    assert "acd-bench" not in plain["queues.conf"] and "7802" not in plain["extensions.conf"]


def test_load_cli_checks_its_arguments(tmp_path):
    s, cfg = _bench_cfg(tmp_path)
    args = SimpleNamespace(number="7801", dtmf="", duration=None, count=10, answer_delay=0.2,
                           max_wait=60, agents="2001-2002",
                           arrivals="fixed", rate=1.0, seed=1, talk_dist="fixed", talk=2.0,
                           talk_min=0.0)
    assert load._check_args(cfg, args) == ["2001", "2002"]
    for change, error in (({"agents": "2001,9999"}, "agent.unknown"),
                          ({"count": None}, "load.length"),
                          ({"rate": 0.0}, "load.rate"),
                          ({"answer_delay": -1.0}, "load.usage"),
                          ({"talk": -1.0}, "load.talk"),
                          ({"number": "78;01"}, "load.number"),
                          ({"dtmf": "1x"}, "load.dtmf")):
        bad = SimpleNamespace(**{**vars(args), **change})
        with pytest.raises(UserError) as e:
            load._check_args(cfg, bad)
        assert e.value.id == error
    no_trunk = configmod.load(tmp_path / "config.yaml", environ={"ACD_ASTERISK__LOOPBACK_TRUNK": "false"})
    with pytest.raises(UserError) as e:
        load._check_args(no_trunk, args)
    assert e.value.id == "load.no_trunk"


def test_load_run_refuses_bad_keys_and_numbers():
    prof = load.LoadProfile(number="7801", rate=1.0, count=1, dtmf="12a")
    with pytest.raises(UserError) as e:
        load.LoadRun(None, load_calls.CallTracker([]), prof, talk_max=1.0)
    assert e.value.id == "load.dtmf"
    prof = load.LoadProfile(number="78;01", rate=1.0, count=1)
    with pytest.raises(UserError) as e:
        load.LoadRun(None, load_calls.CallTracker([]), prof, talk_max=1.0)
    assert e.value.id == "load.number"


def test_gap_notes_explain_each_missed_target_with_the_figures():
    res = _results(idle=(15.0, 1.0), cps=(10, 20), cpu=(80.0, 26.0, 40.0),
                   overload=_overload(met=False, failed_other=7))
    res["measures"]["idle_agent"]["ours_breakdown_ms"] = {
        "fastagi_connect": {"p50": 1.5}, "queue_script_to_core": {"p50": 9.0},
        "core_to_ring_decision": {"p50": 0.2}, "originate_to_channel": {"p50": 1.1}}
    res["measures"]["server_profile"] = {"completed": 100, "ami_messages": 13000, "by_package": [
        {"what": "sqlalchemy", "share": 0.33}, {"what": "acd/ami/client.py", "share": 0.06}]}
    res["targets"] = report.evaluate(res)
    notes = "\n".join(report.gap_notes(res))
    assert "Why (2) is missed" in notes and "(9 ms)" in notes
    assert "Why (1) is missed" in notes and "130 AMI messages read per call" in notes
    assert "33%" in notes and "40 ms of CPU" in notes
    assert "Why (6b) is missed" in notes and "7 calls failed after reaching the queue" in notes
    res["measures"]["overload"] = _overload(met=False, not_placed=90, ref_not_placed=20)
    notes = "\n".join(report.gap_notes(res))
    assert "Asterisk did not place 90 of our calls against 20 of app_queue's" in notes
    assert "Why (5)" not in notes and "Why (7)" not in notes   # met: nothing to explain
    assert report.gap_notes({"measures": {}, "targets": []}) == []


def test_server_profile_is_summed_by_package(tmp_path):
    import cProfile

    from bench.profile_server import by_package, calls_of
    from acd.ami.client import parse_message
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(50):
        parse_message("Event: Newchannel\r\nChannel: PJSIP/1-1")
    prof.disable()
    path = tmp_path / "p.prof"
    prof.dump_stats(str(path))
    rows = by_package(str(path))
    assert any(r["what"] == "acd/ami/client.py" for r in rows)
    assert abs(sum(r["share"] for r in rows) - 1.0) < 0.05
    assert calls_of(str(path), "acd/ami/client.py", "parse_message") == 50


def test_a_step_is_doomed_only_once_it_cannot_pass_any_more():
    from bench.measures import doomed
    fine = [_rec(n=i, queued_at=10.0, invite_at=10.01, bridged_at=10.3, ended_at=None)
            for i in range(100)]
    assert doomed(fine, 1000, now=20.0) is None
    # one failure in 1,000 planned is still within 0.1%; two are not
    one = fine + [_rec(n=100, bridged_at=None, ended_at=12.0)]
    assert doomed(one, 1000, now=20.0) is None
    two = one + [_rec(n=101, outcome="originate_failed", call_uid=None)]
    assert "2 calls failed" in doomed(two, 1000, now=20.0)
    # callers still waiting count by how long they have waited so far
    waiting = fine + [_rec(n=200 + i, queued_at=18.5, invite_at=None, bridged_at=None,
                           ended_at=None) for i in range(51)]
    assert doomed(waiting, 1000, now=19.0) is None             # 0.5 s so far
    assert "51 callers waited over 1 s" in doomed(waiting, 1000, now=19.6)


def test_arrivals_and_talk_times_are_independent_streams_of_one_seed():
    """With one generator for both, each talk time was a function of an arrival gap
    (correlation 1 for exponential draws of the same uniforms): waiting times came out low."""
    prof = load.LoadProfile(number="7801", rate=2.0, count=3000, duration=None, seed=7)
    offsets = prof.offsets()
    gaps = [b - a for a, b in zip([0.0, *offsets], offsets)]
    talk = load.TalkTimes("exponential", 30.0, 7)
    times = [talk() for _ in gaps]
    n = len(gaps)
    mg, mt = sum(gaps) / n, sum(times) / n
    cov = sum((g - mg) * (t - mt) for g, t in zip(gaps, times)) / n
    sd = (sum((g - mg) ** 2 for g in gaps) / n * sum((t - mt) ** 2 for t in times) / n) ** 0.5
    assert abs(cov / sd) < 0.1
    assert prof.offsets() == offsets                       # still repeatable from the seed


def test_recording_figures_give_the_cost_of_a_recorded_call_and_the_size_per_hour(tmp_path):
    def run(completed, ast, srv, files=0, size=0, secs=0.0):
        return {"calls": completed, "completed": completed,
                "cpu": {"asterisk": ast, "server": srv}, "files": files, "bytes": size,
                "audio_seconds": secs}
    x = report.recording_figures({"none": [run(100, 3.0, 1.0), run(100, 3.2, 1.0)],
                                  "all": [run(100, 4.0, 1.5, 100, 32_000 * 300 + 4400, 300.0),
                                          run(100, 4.2, 1.5, 100, 32_000 * 300 + 4400, 300.0)]},
                                 10.0)
    assert x["none"]["cpu_ms_per_call"] == {"asterisk": 31.0, "server": 10.0, "together": 41.0}
    assert x["all"]["cpu_ms_per_call"] == {"asterisk": 41.0, "server": 15.0, "together": 56.0}
    assert x["extra_ms_per_recorded_call"] == {"asterisk": 10.0, "server": 5.0, "together": 15.0}
    assert x["all"]["files"] == 200 and x["bytes_per_second"] == 32_015
    assert x["extra_ms_per_audio_second"] == {"asterisk": 3.33, "server": 1.67, "together": 5.0}
    assert x["mb_per_hour"] == 115.3
    # No CPU figure for a part: no cost, never a made-up one.
    y = report.recording_figures({"none": [run(10, None, 1.0)], "all": [run(10, 2.0, 1.0)]}, 5.0)
    assert y["extra_ms_per_recorded_call"]["asterisk"] is None
    assert y["bytes_per_second"] is None
    res = {"measures": {"recording": x}}
    md = report.markdown(res, [])
    assert "## What recording a call costs" in md and "**15 ms** of CPU more" in md
    assert "**5 ms per second of recorded conversation**" in md
    assert "**115.3 MB an hour**" in md


def test_the_bench_group_is_recorded_only_when_asked(tmp_path):
    _, cfg = _bench_cfg(tmp_path)
    assert cfg.groups[0].record == "none"
    _, cfg = _bench_cfg(tmp_path, record="all")
    assert cfg.groups[0].record == "all"
