"""The runtime when Asterisk stops or restarts under it and when an agent's phone dies, against
the fake AMI of test_runtime (the real-Asterisk versions are tests/asterisk/test_faults_*)."""
from __future__ import annotations

from typing import Any

from acd.ami.client import AmiResponse
from tests.unit.test_runtime import Env, env, start  # noqa: F401


def _core_status(e: Env, started: str) -> None:
    """The fake AMI answers CoreStatus with Asterisk's start time."""
    plain = e.ami.action

    async def action(name: str, **fields: Any) -> AmiResponse:
        if name == "CoreStatus":
            e.ami.actions.append((name, fields))
            day, at = started.split(" ")
            return AmiResponse(name, "1", "Success", None,
                               {"CoreStartupDate": day, "CoreStartupTime": at})
        return await plain(name, **fields)
    e.ami.action = action


async def _three_calls(e: Env) -> tuple[dict, dict]:
    """c1 connected to 1001, c2 ringing 1002, c3 waiting."""
    e.rt.login("1001")
    await e.arrive("c1")
    leg1 = e.leg("1001")
    e.ringing(leg1)
    e.answered(leg1)
    e.rt.login("1002")
    await e.arrive("c2")
    leg2 = e.leg("1002")
    e.ringing(leg2)
    await e.arrive("c3")
    assert [e.state(a) for a in ("1001", "1002")] == ["talking", "ringing"]
    return leg1, leg2


async def _lost_records(e: Env, cause: str) -> None:
    for c in ("c1", "c2", "c3"):
        call = await e.store.get_call(c)
        kinds = [x["kind"] for x in call["events"]]
        assert call["end_reason"] == "lost" and kinds.count("ended") == 1, kinds
        lost = [x for x in call["events"] if x["kind"] == "lost"]
        assert len(lost) == 1 and lost[0]["detail"]["detail"] == cause


async def test_asterisk_shutting_down_loses_its_calls_and_frees_the_agents(env):
    _core_status(env, "2027-01-15 08:00:00")
    await start(env, "1001", "1002")
    leg1, leg2 = await _three_calls(env)
    env.ami.clear()
    # core stop now: the shutdown flag on every channel first, then the hangups.
    for uid in ("c1", leg1["ChannelId"], "c2", leg2["ChannelId"], "c3"):
        env.emit(Event="SoftHangupRequest", Channel=f"PJSIP/{uid}", Uniqueid=uid, Cause="4")
    env.emit(Event="BridgeLeave", Channel=f"PJSIP/x-{leg1['ChannelId']}",
             Uniqueid=leg1["ChannelId"], BridgeUniqueid="b1")
    for uid in ("c1", leg1["ChannelId"], "c2", leg2["ChannelId"], "c3"):
        env.hangup(uid, f"PJSIP/acd-caller-{uid}", cause="0")
    env.emit(Event="Shutdown", Shutdown="Cleanly", Restart="False")
    await env.settle()
    await _lost_records(env, "asterisk_shutdown")
    # No ring to anybody while Asterisk is away; the agents are where they truly are.
    assert env.ami.sent("Originate") == []
    agents = env.rt.agents()
    assert {a: (agents[a]["state"], agents[a]["reachable"]) for a in ("1001", "1002")} == {
        "1001": ("idle", False), "1002": ("idle", False)}
    rows = await env.store.agent_states("1002")
    assert [r["state"] for r in rows] == ["idle", "ringing", "idle"]     # no break
    # Back: Asterisk wrote its registrations out at the stop: they count at once.
    _core_status(env, "2027-01-15 08:00:09")
    env.ami.conn_cb(False)
    env.ami.channels = []
    env.ami.contacts = [{"Endpoint": "1001", "Uri": "sip:1001@127.0.0.1:5000",
                         "Status": "Reachable"},
                        {"Endpoint": "1002", "Uri": "sip:1002@127.0.0.1:5000",
                         "Status": "NonQualified"}]
    env.ami.conn_cb(True)
    await env.settle()
    assert env.rt.agent("1001")["reachable"] is True
    assert env.rt.agent("1002")["reachable"] is True
    await env.arrive("c4")
    assert env.leg("1001")["Variable"][0] == "ACD_CALL=c4"


async def test_asterisk_found_restarted_after_a_silent_crash(env):
    _core_status(env, "2027-01-15 08:00:00")
    await start(env, "1001", "1002")
    await _three_calls(env)
    env.ami.conn_cb(False)                          # a crash: no event at all
    _core_status(env, "2027-01-15 08:00:05")
    env.rt.set_state("1001", "busy")                # (so that c9 waits)
    await env.arrive("c9")                          # reached the new Asterisk already
    env.ami.channels = [{"Channel": "PJSIP/acd-caller-c9", "Uniqueid": "c9",
                         "Context": "acd-queue", "BridgeId": ""}]
    env.ami.contacts = [{"Endpoint": "1002", "Uri": "sip:1002@127.0.0.1:5000",
                         "Status": "NonQualified"}]
    env.ami.conn_cb(True)
    await env.settle()
    await _lost_records(env, "asterisk_restart")
    assert [env.state(a) for a in ("1001", "1002")] == ["busy", "idle"]
    # A registration read back after a crash counts once its qualify answers: no ring to it
    # before (c9 waits), then c9 goes to 1002.
    assert env.rt.call_info("c9")["state"] == "waiting"
    assert env.rt.agent("1002")["reachable"] is False
    env.reachable("1002")
    await env.settle()
    assert env.leg("1002")["Variable"][0] == "ACD_CALL=c9"


async def test_same_asterisk_after_a_cut_link_loses_nothing(env):
    _core_status(env, "2027-01-15 08:00:00")
    await start(env, "1001")
    env.rt.login("1001")
    env.rt.set_state("1001", "break")
    await env.arrive("c1")
    env.ami.conn_cb(False)
    env.ami.channels = [{"Channel": "PJSIP/acd-caller-c1", "Uniqueid": "c1",
                         "Context": "acd-queue", "BridgeId": ""}]
    env.ami.conn_cb(True)
    await env.settle()
    assert env.rt.call_info("c1")["state"] == "waiting"


async def test_no_ring_while_the_link_is_down_then_the_waiting_caller_rings(env):
    """A ring with no link fails at once: offered anyway, a caller went from agent to agent
    (2,961 rings in one overload run). Offers wait for the link and its reconcile."""
    _core_status(env, "2027-01-15 08:00:00")
    await start(env, "1001")
    env.ami.conn_cb(False)
    env.rt.login("1001")
    await env.arrive("c1")
    assert env.ami.sent("Originate") == []
    assert env.rt.call_info("c1")["state"] == "waiting"
    env.ami.channels = [{"Channel": "PJSIP/acd-caller-c1", "Uniqueid": "c1",
                         "Context": "acd-queue", "BridgeId": ""}]
    env.ami.conn_cb(True)
    await env.settle()
    assert [f["Channel"] for f in env.ami.sent("Originate")] == ["PJSIP/1001"]
    assert env.rt.call_info("c1")["state"] == "ringing"


async def test_phone_unreachable_mid_call_requeues_the_caller_at_the_front(env):
    await start(env, "1001", "1002")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    env.ringing(leg)
    env.answered(leg)
    env.rt.login("1002")
    env.rt.set_state("1002", "busy")
    await env.arrive("c2")
    await env.settle()
    env.ami.clear()
    env.reachable("1001", "Unreachable")
    await env.settle()
    redirect = env.ami.sent("Redirect")
    assert redirect == [{"Channel": "PJSIP/acd-caller-c1", "Context": "acd-queue", "Exten": "s",
                         "Priority": 1}]
    prio = [s for s in env.ami.sent("Setvar") if s["Variable"] == "ACD_PRIORITY"]
    assert prio and int(prio[0]["Value"]) > 0
    assert {"Channel": leg["ChannelId"]} in env.ami.sent("Hangup")
    assert {"Channel": "PJSIP/acd-caller-c1"} not in env.ami.sent("Hangup")   # not dropped
    assert (env.state("1001"), env.rt.agent("1001")["reason"]) == ("break", "phone lost")
    assert [c["call_id"] for c in env.rt.queues()["sales"]["calls"]] == ["c1", "c2"]
    call = await env.store.get_call("c1")
    assert call["end_reason"] is None
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "requeued"] == [
        "unreachable"]
    # The phone is back: still on break (the agent says when); 1002 takes c1 first.
    env.reachable("1001")
    env.rt.set_state("1002", "idle")
    await env.settle()
    assert env.leg("1002")["Variable"][0] == "ACD_CALL=c1"
    assert env.state("1001") == "break"


async def test_phone_unregistered_is_no_phone_lost(env):
    """A clean unregister (Removed) makes the agent unreachable; a call in progress is left
    to its own hangup (a phone says BYE before it unregisters)."""
    await start(env, "1001")
    env.rt.login("1001")
    leg = await env.connected("c1", "1001")
    env.ami.clear()
    env.reachable("1001", "Removed")
    await env.settle()
    assert env.ami.sent("Redirect") == [] and env.state("1001") == "talking"
    assert env.rt.agent("1001")["reachable"] is False


# --- the phones' timings: config keys and the rendered pjsip.conf -------------------------

def test_phone_timings_are_config_keys_rendered_into_the_agents_aors(tmp_path):
    from dataclasses import replace

    from acd import config as configmod
    from acd.asterisk.render import Layout, render

    cfg = configmod.load(None, environ={})
    assert (cfg.asterisk.qualify_seconds, cfg.asterisk.qualify_timeout,
            cfg.asterisk.registration_seconds) == (15, 3.0, 120)
    cfg = replace(configmod.with_secrets(replace(cfg, data_dir=str(tmp_path)))[0],
                  asterisk=replace(cfg.asterisk, qualify_seconds=4, qualify_timeout=1.5,
                                   registration_seconds=30))
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out"))
    pjsip = next(p for p in files if p.name == "pjsip.conf").read_text()
    for line in ("qualify_frequency = 4", "qualify_timeout = 1.5", "maximum_expiration = 30",
                 "default_expiration = 30", "minimum_expiration = 30"):
        assert f"\n{line}\n" in pjsip, line


def test_phone_timings_that_cannot_work_are_refused(tmp_path):
    import pytest

    from acd import config as configmod
    from acd.config import ConfigError

    for text, key in (("asterisk:\n  qualify_seconds: 0\n", "asterisk.qualify_seconds"),
                      ("asterisk:\n  qualify_seconds: 2\n  qualify_timeout: 2\n",
                       "asterisk.qualify_timeout"),
                      ("asterisk:\n  registration_seconds: -1\n",
                       "asterisk.registration_seconds")):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            configmod.load(path, environ={})
        assert info.value.key == key, text
