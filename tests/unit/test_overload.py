"""Overload: the loop-lag watch (fed samples, no clock) and what the runtime does with it."""
from __future__ import annotations

import structlog

from acd.runtime.overload import LoopLag
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
    await start(env)
    await env.arrive("c1")
    for _ in range(10):
        env.rt.lag.sample(2.0)                  # the loop runs two seconds late, on and on
    env.ami.clear()
    assert await env.arrive("c2") is True       # to the wait: the Redirect comes
    assert env.ami.sent("Setvar") == [{"Channel": "PJSIP/acd-caller-c2", "Variable": "ACD_SOUND",
                                       "Value": "all-circuits-busy-now"}]
    assert [(r["Context"], r["Exten"]) for r in env.ami.sent("Redirect")] == [("acd-dest", "hangup")]
    assert env.rt.call_info("c2")["end_reason"] == "overflow"
    assert env.rt.call_info("c1")["state"] == "waiting"       # the queue is served on
    for _ in range(10):
        env.rt.lag.sample(0.0)
    await env.arrive("c3")
    assert env.rt.call_info("c3")["state"] == "waiting"
