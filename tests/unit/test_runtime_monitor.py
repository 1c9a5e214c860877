"""Monitoring on the fake AMI: which AMI actions listen, whisper, barge and stop are, and
what ends a session (the real calls, measured in the audio: tests/asterisk/test_monitor.py)."""
from __future__ import annotations

import pytest

from acd.errors import UserError
from tests.unit.test_runtime import Env, runtime_env, start


@pytest.fixture
async def env(tmp_path):
    async with runtime_env(tmp_path, supervisor_phones={"sup1": "9001"}) as e:
        await start(e, "1001")
        e.rt.login("1001")
        yield e


async def _monitoring(env: Env, mode: str, **which: str) -> str:
    """Agent 1001 talks with caller c1 and sup1 monitors: the Uniqueid of sup1's channel."""
    await env.connected("c1", "1001")
    env.rt.monitor("sup1", mode, **which)
    await env.settle()
    return _spy(env)["ChannelId"]


def _spy(env: Env) -> dict:
    [o] = [o for o in env.ami.sent("Originate") if o["Channel"] == "PJSIP/9001"]
    return o


async def test_listen_rings_the_supervisors_phone_into_chanspy_on_the_agents_leg(env):
    leg = await env.connected("c1", "1001")
    env.ami.clear()
    view = env.rt.monitor("sup1", "listen", agent_id="1001")
    await env.settle()
    assert (view["call_id"], view["mode"], view["answered"]) == ("c1", "listen", False)
    o = _spy(env)
    assert (o["Context"], o["Exten"]) == ("acd-monitor", "listen")
    assert o["Variable"] == [f"ACD_SPY=PJSIP/x-{leg['ChannelId']}"]
    assert o["ChannelId"].startswith("mon-") and not o["ChannelId"].startswith("acd-")
    uid, channel = o["ChannelId"], "PJSIP/9001-00000001"
    env.emit(Event="Newchannel", Channel=channel, Uniqueid=uid, ChannelState="0")
    env.emit(Event="OriginateResponse", Response="Success", Reason="4", Channel=channel,
             Uniqueid=uid)
    await env.settle()
    assert env.rt.monitoring("sup1")["answered"] is True
    # a mode change is a Redirect of the supervisor's channel; stop hangs it up
    env.rt.monitor_mode("sup1", "whisper")
    await env.settle()
    assert [(r["Channel"], r["Exten"]) for r in env.ami.sent("Redirect")] == [(channel, "whisper")]
    env.rt.monitor_stop("sup1")
    await env.settle()
    assert [h["Channel"] for h in env.ami.sent("Hangup")] == [channel]
    assert env.rt.monitoring("sup1") is None
    # the supervisor's leg never reached the core: the agent still talks, one leg on record
    env.hangup(uid, channel)
    await env.settle()
    assert env.rt.agent("1001")["state"] == "talking"
    assert env.rt.call_info("c1")["state"] == "connected"


async def test_the_session_ends_with_the_supervisors_channel(env):
    uid = await _monitoring(env, "barge", call_id="c1")
    env.emit(Event="Newchannel", Channel="PJSIP/9001-00000002", Uniqueid=uid, ChannelState="0")
    env.hangup(uid, "PJSIP/9001-00000002")    # ChanSpy's E: the agent's leg went
    await env.settle()
    assert env.rt.monitoring("sup1") is None


async def test_a_phone_that_does_not_answer_ends_the_session(env):
    uid = await _monitoring(env, "listen", agent_id="1001")
    env.emit(Event="OriginateResponse", Response="Failure", Reason="3", Channel="PJSIP/9001",
             Uniqueid=uid)
    await env.settle()
    assert env.rt.monitoring("sup1") is None


async def test_stopped_before_the_channel_was_there_it_is_hung_up_when_it_comes(env):
    uid = await _monitoring(env, "listen", agent_id="1001")
    env.rt.monitor_stop("sup1")
    await env.settle()
    assert env.ami.sent("Hangup") == []
    env.emit(Event="Newchannel", Channel="PJSIP/9001-00000003", Uniqueid=uid, ChannelState="0")
    await env.settle()
    assert [h["Channel"] for h in env.ami.sent("Hangup")] == ["PJSIP/9001-00000003"]


async def test_refusals_change_nothing(env):
    with pytest.raises(UserError) as e:
        env.rt.monitor("sup1", "listen", agent_id="1001")      # on no call
    assert e.value.id == "monitor.no_call"
    await env.connected("c1", "1001")
    for user, mode, kw, err in (
            ("sup2", "listen", {"agent_id": "1001"}, "monitor.no_phone"),
            ("sup1", "shout", {"agent_id": "1001"}, "monitor.bad_mode"),
            ("sup1", "listen", {"call_id": "nope"}, "monitor.no_call"),
            ("sup1", "listen", {"call_id": "c1", "agent_id": "1002"}, "monitor.no_call"),
            ("sup1", "listen", {"agent_id": "9999"}, "agent.unknown"),
            ("sup1", "listen", {}, "monitor.no_call")):
        with pytest.raises(UserError) as e:
            env.rt.monitor(user, mode, **kw)
        assert e.value.id == err, (user, mode, kw)
    for call in (lambda: env.rt.monitor_mode("sup1", "barge"), lambda: env.rt.monitor_stop("sup1")):
        with pytest.raises(UserError) as e:
            call()
        assert e.value.id == "monitor.none"
    await env.settle()
    assert [o for o in env.ami.sent("Originate") if o["Channel"] == "PJSIP/9001"] == []
    assert env.rt.monitoring("sup1") is None
