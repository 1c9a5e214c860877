"""Overload: the loop-lag watch (fed samples, no clock) and what the runtime does with it."""
from __future__ import annotations

import structlog

from acd.runtime.overload import LoopLag
from acd.runtime.queue import SentOn
from tests.unit.test_runtime import env, start  # noqa: F401 - the runtime fixture


def test_overloaded_while_the_loop_runs_late_for_a_while_not_after_one_pause():
    with structlog.testing.capture_logs() as logs:
        lag = LoopLag(0.5, structlog.get_logger(), window=5)
        for x in (0.01, 0.2, 3.0, 0.01, 0.01):  # one long pause: not an overload
            lag.sample(x)
        assert not lag.overloaded and lag.admit()
        lag.sample(0.8)
        assert not lag.overloaded
        lag.sample(0.9)                         # late again and again: overloaded
        assert lag.overloaded
        assert [lag.admit() for _ in range(3)] == [False] * 3
        for x in (0.7, 0.01, 0.02):
            lag.sample(x)
            assert lag.overloaded               # most of the recent samples still late
        lag.sample(0.01)
        assert not lag.overloaded and lag.admit()
    assert [(e["event"], e.get("turned_away")) for e in logs] == [
        ("runtime.overload_started", None), ("runtime.overload_ended", 3)]


async def test_a_new_caller_of_an_overloaded_server_hears_the_message(env):  # noqa: F811
    env.rt.lag.max_lag = 0.5                    # the default (the test env raises it)
    await start(env)
    await env.arrive("c1")
    for _ in range(10):
        env.rt.lag.sample(2.0)                  # the loop runs two seconds late, on and on
    env.ami.clear()
    # The queue script sends the caller on itself: not one AMI action per caller turned away
    assert await env.arrive("c2") == SentOn("acd-dest,hangup,1",
                                            {"ACD_SOUND": "all-circuits-busy-now"})
    assert env.ami.sent("Setvar") == [] and env.ami.sent("Redirect") == []
    assert env.rt.call_info("c2")["end_reason"] == "overflow"
    assert env.rt.call_info("c1")["state"] == "waiting"       # the queue is served on
    for _ in range(10):
        env.rt.lag.sample(0.0)
    await env.arrive("c3")
    assert env.rt.call_info("c3")["state"] == "waiting"


def test_overloaded_while_asterisk_answers_late_even_with_an_idle_loop():
    """Asterisk falls behind first on a machine it shares with its phones: our loop is
    idle, its Pings come back late. A lost link tells nothing: the last samples stand."""
    with structlog.testing.capture_logs() as logs:
        lag = LoopLag(0.5, structlog.get_logger(), window=5, max_asterisk=1.0)
        for _ in range(5):
            lag.sample(0.001)
        lag.asterisk_sample(0.01)
        lag.asterisk_sample(0.01)
        lag.asterisk_sample(4.0)                # one slow answer: the median is not late
        assert not lag.overloaded
        lag.asterisk_sample(5.0)                # most of the last three: late
        assert lag.overloaded and not lag.admit()
        lag.asterisk_sample(None)               # the link went (to a saturated Asterisk?):
        assert lag.overloaded                   # no sign that it recovered
        for rtt in (0.01, 0.02):
            lag.asterisk_sample(rtt)
        assert not lag.overloaded
        for rtt in (2.0, 2.0):
            lag.asterisk_sample(rtt)
        assert lag.overloaded
    starts = [e for e in logs if e["event"] == "runtime.overload_started"]
    assert [e["cause"] for e in starts] == ["asterisk", "asterisk"]
    assert starts[0]["asterisk_ms"] == 4000.0


def test_asterisk_is_not_watched_when_max_asterisk_is_zero():
    lag = LoopLag(0.5, structlog.get_logger(), max_asterisk=0.0)
    for rtt in (9.0, 9.0, 9.0):
        lag.asterisk_sample(rtt)
    assert not lag.overloaded


async def test_the_runtime_measures_asterisks_ping_round_trip(env):  # noqa: F811
    await start(env)
    rtt = await env.rt._asterisk_round_trip()
    assert rtt is not None and 0 <= rtt < 5.0
    assert any(a[0] == "Ping" for a in env.ami.actions)
    env.rt._ami_up = False
    assert await env.rt._asterisk_round_trip() is None
