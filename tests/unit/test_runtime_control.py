"""Call control in the runtime against the fake AMI (the actions sent, their order, moves told
from hangups), the HTTP routes on a real aiohttp server, and the rebuild of held and
consulting calls from Asterisk's channels. Real store, real hub, injected clock."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from acd.ami.client import AmiActionError, AmiResponse
from acd.core import AcdError
from acd.web.api import make_app
from tests.unit.test_runtime import T0, env, start  # noqa: F401  (fixtures)
from tests.web_login import login_as, web_for_tests, web_test_config

CALLER = "PJSIP/acd-caller-c1"


def chan(leg: dict) -> str:
    return f"PJSIP/x-{leg['ChannelId']}"


async def connected(env, agent: str = "1001"):
    """c1 talks with ``agent``, both in bridge b1 (as Asterisk reports it)."""
    env.rt.login(agent)
    await env.arrive("c1")
    leg = env.leg(agent)
    env.ringing(leg)
    env.answered(leg)
    await env.settle()
    enter(env, "b1", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    env.ami.clear()
    return leg


def enter(env, bridge: str, *members: tuple[str, str]) -> None:
    for uid, channel in members:
        env.emit(Event="BridgeEnter", Channel=channel, Uniqueid=uid, BridgeUniqueid=bridge)


def leave(env, bridge: str, *members: tuple[str, str]) -> None:
    for uid, channel in members:
        env.emit(Event="BridgeLeave", Channel=channel, Uniqueid=uid, BridgeUniqueid=bridge)


def names(env, *wanted: str) -> list[str]:
    return [n for n, _ in env.ami.actions if n in wanted]


async def test_hold_is_a_dual_redirect_and_its_bridge_leaves_are_no_hangups(env):
    await start(env, "1001")
    leg = await connected(env)
    out = env.rt.hold("1001")
    assert out["control"]["state"] == "held"
    await env.settle()
    [redirect] = env.ami.sent("Redirect")
    assert redirect == {"Channel": CALLER, "Context": "acd-hold", "Exten": "caller",
                        "Priority": 1, "ExtraChannel": chan(leg), "ExtraContext": "acd-hold",
                        "ExtraExten": "agent", "ExtraPriority": 1}
    setvars = {f["Variable"]: f["Value"] for f in env.ami.sent("Setvar")}
    assert setvars["ACD_OWNER"] == "1001" and float(setvars["ACD_HELD_AT"]) == T0
    assert names(env, "Setvar", "Redirect")[-1] == "Redirect"      # the variables first
    # Asterisk moves both out of the bridge: no hangup.
    leave(env, "b1", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    await env.settle()
    assert env.rt.call_info("c1")["state"] == "connected" and env.state("1001") == "talking"
    env.ami.clear()
    env.rt.resume("1001")
    await env.settle()
    # the agent's leg first: a caller who could not join is never put out of a bridge
    assert env.ami.sent("Bridge") == [{"Channel1": chan(leg), "Channel2": CALLER, "Tone": "no"}]
    enter(env, "b2", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    # Now the caller really hangs up: they leave first.
    leave(env, "b2", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    env.hangup(leg["ChannelId"], chan(leg))
    env.hangup("c1", CALLER)
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "caller_hangup"
    call = await env.store.get_call("c1")
    assert [e["kind"] for e in call["events"] if e["kind"] in ("hold", "resume")] == [
        "hold", "resume"]
    assert [(x["agent_id"], x["reason"]) for x in call["legs"]] == [("1001", "caller_hangup")]


async def test_agent_hangup_while_held_ends_the_call_and_hangs_up_the_caller(env):
    await start(env, "1001")
    leg = await connected(env)
    env.rt.hold("1001")
    await env.settle()
    leave(env, "b1", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    env.ami.clear()
    env.hangup(leg["ChannelId"], chan(leg))              # no bridge: the Hangup says it
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "agent_hangup"
    assert {"Channel": CALLER} in env.ami.sent("Hangup")


async def test_transfer_rings_the_target_into_the_waiting_context_then_hands_over(env):
    await start(env, "1001", "1002")
    leg = await connected(env)
    env.rt.login("1002")
    await env.settle()
    env.ami.clear()
    sub = env.subscribe("agent:1001")
    env.rt.transfer("1001", to_agent="1002")
    await env.settle()
    assert names(env, "Redirect", "Originate") == ["Redirect", "Originate"]
    target = env.leg("1002")
    assert (target["Context"], target["Exten"]) == ("acd-hold", "target")
    assert "ACD_ROLE=transfer" in target["Variable"] and "ACD_CALL=c1" in target["Variable"]
    assert target["CallerID"] == '"Caller" <13800138000>'
    leave(env, "b1", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    env.ringing(target)
    env.ami.clear()
    env.answered(target)
    await env.settle()
    # The caller is bridged with the target first, then the first agent's leg is dropped.
    assert names(env, "Bridge", "Hangup") == ["Bridge", "Hangup"]
    assert env.ami.sent("Bridge")[0]["Channel1"] == chan(target)
    assert env.ami.sent("Hangup") == [{"Channel": leg["ChannelId"]}]
    assert [m["event"] for m in env.drain(sub) if m["type"] == "transfer"] == [
        "started", "ringing", "answered", "completed"]
    env.hangup(leg["ChannelId"], chan(leg))              # the dropped leg: no event for it
    await env.settle()
    assert env.rt.call_info("c1")["agent_id"] == "1002"
    assert (env.state("1001"), env.state("1002")) == ("idle", "talking")
    env.clock.now += 30
    env.hangup("c1", CALLER)
    await env.settle()
    # Each agent is credited with their own part of the transferred call.
    totals = await env.store.agent_totals()
    assert totals["1001"]["legs"] == 1 and totals["1002"]["legs"] == 1
    assert totals["1002"]["talk_seconds"] == 30 and totals["1001"]["talk_seconds"] == 0
    legs = (await env.store.get_call("c1"))["legs"]
    assert [(x["agent_id"], x["role"], x["reason"]) for x in legs] == [
        ("1001", "answer", "transferred"), ("1002", "transfer", "caller_hangup")]


async def test_transfer_to_a_group_requeues_the_caller_before_dropping_the_agent(env):
    await start(env, "1001")
    leg = await connected(env)
    env.rt.transfer("1001", to_group="short")
    await env.settle()
    assert names(env, "Redirect", "Hangup") == ["Redirect", "Hangup"]
    assert env.ami.sent("Redirect")[0] == {"Channel": CALLER, "Context": "acd-queue",
                                           "Exten": "s", "Priority": 1}
    setvars = {f["Variable"]: f["Value"] for f in env.ami.sent("Setvar")}
    assert setvars["ACD_BRIDGED"] == "" and setvars["ACD_GROUP"] == "short"
    assert setvars["ACD_PRIORITY"] == "1000"
    assert env.ami.sent("Hangup") == [{"Channel": leg["ChannelId"]}]
    leave(env, "b1", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
    await env.settle()
    info = env.rt.call_info("c1")
    assert (info["state"], info["group"]) == ("waiting", "short")
    # The queue script takes the caller up again: attached, not a new call.
    waiting = await env.rt.caller_arrived(uniqueid="c1", channel=CALLER, caller_number="1",
                                          caller_name="", did="7101", group="short",
                                          priority=1000, entered=T0)
    assert waiting is True


async def test_refused_actions_send_nothing(env):
    await start(env, "1001", "1002")
    await connected(env)
    with pytest.raises(AcdError) as err:
        env.rt.resume("1001")
    assert err.value.id == "call.control_illegal"
    with pytest.raises(AcdError) as err:
        env.rt.transfer("1001", to_agent="1002")         # logged out
    assert err.value.id == "agent.target_unavailable"
    with pytest.raises(AcdError) as err:
        env.rt.dial("1001", "555")                       # talking
    assert err.value.id == "agent.on_a_call"
    await env.settle()
    assert env.ami.actions == []
    assert env.rt.agent("1001")["control"]["state"] == "talking"


async def test_outbound_call_rings_the_agent_then_dials_with_the_caller_id(env):
    await start(env, "1001")
    env.rt.login("1001")
    env.rt.outbound_caller_id = '"ACD" <4000>'
    out = env.rt.dial("1001", "555")
    call_id = out["call_id"]
    await env.settle()
    ring = env.leg("1001")
    assert (ring["Context"], ring["Exten"]) == ("acd-agent", "s")
    assert "ACD_ROLE=outbound" in ring["Variable"] and f"ACD_CALL={call_id}" in ring["Variable"]
    env.ringing(ring)
    env.answered(ring)
    await env.settle()
    [dial] = [f for f in env.ami.sent("Originate") if f["Channel"].startswith("PJSIP/testcust")]
    assert dial["Channel"] == "PJSIP/testcust555@acd-trunk" and dial["CallerID"] == '"ACD" <4000>'
    env.emit(Event="OriginateResponse", Response="Success", Reason="4",
             Channel="PJSIP/acd-trunk-1", Uniqueid=dial["ChannelId"])
    env.leg_up("PJSIP/acd-trunk-1", dial["ChannelId"], dial["Context"])
    await env.settle()
    assert env.ami.sent("Bridge")[-1] == {"Channel1": "PJSIP/acd-trunk-1",
                                          "Channel2": chan(ring), "Tone": "no"}
    env.hangup(dial["ChannelId"], "PJSIP/acd-trunk-1")    # the customer hangs up
    await env.settle()
    call = await env.store.get_call(call_id)
    assert (call["direction"], call["end_reason"], call["caller_number"]) == (
        "outbound", "customer_hangup", "555")
    assert env.state("1001") == "idle"


async def test_http_routes_map_refusals_and_bad_input(env):
    await start(env, "1001", "1002")
    await connected(env)

    class Cfg:
        class agi:  # noqa: N801
            host = "127.0.0.1"

        class hotline:  # noqa: N801
            number = "7000"

    web_ctx = await web_for_tests(env.store, env.rt,
                                  cfg=web_test_config(agents=("1001", "1002", "1003")))
    app = make_app(store=env.store, ami=None, agi=None, cfg=Cfg, runtime=env.rt, hub=env.hub,
                   web_ctx=web_ctx)
    async with TestClient(TestServer(app)) as raw:
        # Call control is the agent's own: each request as the agent it names (separate
        # cookie jars); an id that is no agent's gets no login (see the 9999 case below).
        clients = {}

        async def post(path, body=None):
            agent = path.split("/")[0]
            if agent not in clients:
                from aiohttp import ClientSession, CookieJar
                session = ClientSession(cookie_jar=CookieJar(unsafe=True))
                opened.append(session)
                clients[agent] = await login_as(session, agent if agent != "9999" else "admin",
                                                base=str(raw.make_url("")).rstrip("/"))
            r = await clients[agent].post(f"/api/agents/{path}", json=body)
            return r.status, await r.json()
        opened: list = []

        status, data = await post("1001/call/resume")
        assert (status, data["error"]) == (409, "call.control_illegal")
        assert "resume" in data["message"]
        status, data = await post("1001/call/transfer", {})
        assert (status, data["error"]) == (400, "http.bad_request")
        status, data = await post("1001/call/transfer", {"to_agent": "1002", "to_group": "x"})
        assert status == 400
        status, data = await post("1001/call/transfer", {"to_agent": "1002"})
        assert (status, data["error"]) == (409, "agent.target_unavailable")
        status, data = await post("1001/call/transfer", {"to_group": "nope"})
        assert (status, data["error"]) == (404, "group.unknown")
        status, data = await post("1002/call/dial", {"number": "12ab"})
        assert (status, data["error"]) in ((400, "dial.bad_number"), (409, "agent.not_logged_in"))
        status, data = await post("9999/call/hold")        # no such agent: nobody's own
        assert (status, data["error"]) == (403, "auth.forbidden")
        status, data = await post("1001/call/hold", [1, 2])
        assert status == 400
        assert env.rt.agent("1001")["control"]["state"] == "talking"
        status, data = await post("1001/call/hold")
        assert status == 200 and data["control"]["state"] == "held"
        status, data = await post("1001/call/rating-invite")
        assert status == 200 and data["control"]["invited"] is True
        for session in opened:
            await session.close()
    # Every call-control action was recorded before its answer.
    call = await env.store.get_call("c1")
    assert [e["kind"] for e in call["events"]][-2:] == ["hold", "rating_invited"]


async def test_rebuild_takes_up_a_held_call_and_a_consult(env):
    at = datetime.fromtimestamp(T0 - 100, timezone.utc)
    s = env.store
    for a in ("1001", "1002", "1003"):
        await s.agent_state(a, "idle", reason="login", at=at, previous="offline")
    await s.agent_state("1001", "talking", reason="", at=at + timedelta(seconds=5),
                        previous="ringing", call_uniqueid="h1")
    await s.agent_state("1002", "talking", reason="", at=at + timedelta(seconds=5),
                        previous="ringing", call_uniqueid="h2")
    await s.agent_state("1003", "talking", reason="", at=at + timedelta(seconds=8),
                        previous="ringing", call_uniqueid="h2")
    for uid in ("h1", "h2"):
        await s.call_arrived(uniqueid=uid, channel=f"PJSIP/acd-caller-{uid}",
                             caller_number="111", caller_name="", did="7101", at=at)
        await s.call_update(uid, skill_group="sales", answered_at=at + timedelta(seconds=5))
    # h1 held by 1001 (its leg waiting); h2 held by 1002 who consults 1003 (legs bridged);
    # an unbridged ring leg of a consult nobody will complete.
    env.ami.channels = [
        {"Channel": "PJSIP/acd-caller-h1", "Uniqueid": "h1", "Context": "acd-hold",
         "Exten": "caller", "CallerIDNum": "111", "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/1001-1", "Uniqueid": "l1", "Context": "acd-hold", "Exten": "agent",
         "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/acd-caller-h2", "Uniqueid": "h2", "Context": "acd-hold",
         "Exten": "caller", "CallerIDNum": "111", "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/1002-1", "Uniqueid": "l2", "Context": "acd-hold", "Exten": "agent",
         "BridgeId": "bc", "ChannelState": "6"},
        {"Channel": "PJSIP/1003-1", "Uniqueid": "l3", "Context": "acd-hold", "Exten": "agent",
         "BridgeId": "bc", "ChannelState": "6"},
    ]
    v = env.ami.vars
    for c, group, owner in (("PJSIP/acd-caller-h1", "sales", "1001"),
                            ("PJSIP/acd-caller-h2", "sales", "1002")):
        v.update({(c, "ACD_GROUP"): group, (c, "ACD_ENTERED"): str(T0 - 99),
                  (c, "ACD_OWNER"): owner, (c, "ACD_HELD_AT"): str(T0 - 10)})
    v[("PJSIP/acd-caller-h1", "ACD_SURVEY")] = "1"
    for c, call, agent in (("PJSIP/1001-1", "h1", "1001"), ("PJSIP/1002-1", "h2", "1002"),
                           ("PJSIP/1003-1", "h2", "1003")):
        v.update({(c, "ACD_CALL"): call, (c, "ACD_AGENT"): agent})
    env.ami.contacts = [{"Endpoint": ep, "Uri": f"sip:{ep}@x", "Status": "Reachable"}
                        for ep in ("1001", "1002", "1003")]
    env.ami.conn_cb(True)
    await asyncio.wait_for(env.rt.ready.wait(), 5)
    await env.settle()
    c1 = env.rt.agent("1001")["control"]
    assert (c1["state"], c1["invited"], c1["owner"]) == ("held", True, "1001")
    c2 = env.rt.agent("1002")["control"]
    assert (c2["state"], c2["transfer"]["target_agent"]) == ("consulting", "1003")
    assert env.state("1003") == "talking"
    assert env.ami.sent("Hangup") == []                  # nobody was dropped
    assert (await env.store.get_call("h1"))["end_reason"] is None
    env.ami.clear()
    env.rt.resume("1001")
    env.rt.complete_consult("1002")
    await env.settle()
    bridges = env.ami.sent("Bridge")
    assert {"Channel1": "PJSIP/1001-1", "Channel2": "PJSIP/acd-caller-h1", "Tone": "no"} in bridges
    assert {"Channel1": "PJSIP/1003-1", "Channel2": "PJSIP/acd-caller-h2", "Tone": "no"} in bridges
    assert {"Channel": "l2"} in env.ami.sent("Hangup")    # 1002 drops after the hand-over
    # 1003's leg leaves the consult bridge because we moved it: no hangup of the call.
    leave(env, "bc", ("l3", "PJSIP/1003-1"), ("l2", "PJSIP/1002-1"))
    await env.settle()
    assert env.rt.call_info("h2")["state"] == "connected"
    assert env.rt.call_info("h2")["agent_id"] == "1003"


async def test_rebuild_a_held_caller_whose_agent_left_goes_to_the_consulted_agent_or_the_queue(
        env):
    at = datetime.fromtimestamp(T0 - 100, timezone.utc)
    s = env.store
    for a in ("1001", "1002"):
        await s.agent_state(a, "idle", reason="login", at=at, previous="offline")
    for uid in ("h1", "h2"):
        await s.call_arrived(uniqueid=uid, channel=f"PJSIP/acd-caller-{uid}",
                             caller_number="111", caller_name="", did="7101", at=at)
        await s.call_update(uid, skill_group="sales", answered_at=at + timedelta(seconds=5))
    # h1: its agent 1001 hung up during a consult while we were away; 1002's leg waits.
    # h2: its agent hung up while the caller held; no leg of it is left.
    env.ami.channels = [
        {"Channel": "PJSIP/acd-caller-h1", "Uniqueid": "h1", "Context": "acd-hold",
         "Exten": "caller", "CallerIDNum": "111", "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/1002-1", "Uniqueid": "l2", "Context": "acd-hold", "Exten": "agent",
         "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/acd-caller-h2", "Uniqueid": "h2", "Context": "acd-hold",
         "Exten": "caller", "CallerIDNum": "222", "BridgeId": "", "ChannelState": "6"},
    ]
    v = env.ami.vars
    for c in ("PJSIP/acd-caller-h1", "PJSIP/acd-caller-h2"):
        v.update({(c, "ACD_GROUP"): "sales", (c, "ACD_ENTERED"): str(T0 - 99),
                  (c, "ACD_OWNER"): "1001", (c, "ACD_HELD_AT"): str(T0 - 10)})
    v.update({("PJSIP/1002-1", "ACD_CALL"): "h1", ("PJSIP/1002-1", "ACD_AGENT"): "1002"})
    env.ami.contacts = [{"Endpoint": "1002", "Uri": "sip:1002@x", "Status": "Reachable"}]
    env.ami.conn_cb(True)
    await asyncio.wait_for(env.rt.ready.wait(), 5)
    await env.settle()
    assert env.rt.call_info("h1")["agent_id"] == "1002"
    assert {"Channel1": "PJSIP/1002-1", "Channel2": "PJSIP/acd-caller-h1",
            "Tone": "no"} in env.ami.sent("Bridge")
    h2 = env.rt.call_info("h2")
    assert (h2["state"], h2["group"], h2["priority"]) == ("waiting", "sales", 1000)
    assert {"Channel": "PJSIP/acd-caller-h2", "Context": "acd-queue", "Exten": "s",
            "Priority": 1} in env.ami.sent("Redirect")
    assert env.ami.sent("Hangup") == []
    for uid in ("h1", "h2"):
        assert (await env.store.get_call(uid))["end_reason"] is None


async def test_a_bridge_refused_for_a_moment_is_tried_again(env):
    await start(env, "1001")
    await connected(env)
    env.rt.hold("1001")
    await env.settle()
    real = env.ami.action
    refused = []

    async def flaky(name, **fields):
        if name == "Bridge" and not refused:
            refused.append(fields)
            env.ami.actions.append((name, fields))
            raise AmiActionError(name, "Unable to add Channel1 to bridge: PJSIP/x",
                                 AmiResponse(name, "9", "Error", "Unable to add", {}))
        return await real(name, **fields)
    env.ami.action = flaky
    env.rt.resume("1001")
    await env.settle()
    assert len(env.ami.sent("Bridge")) == 2            # refused once, then bridged
    assert env.rt.agent("1001")["control"]["state"] == "talking"
    # A leg that is gone is not tried again.
    env.rt.hold("1001")
    await env.settle()
    env.ami.clear()
    env.ami.fail["Bridge"] = AmiActionError("Bridge", "Channel1 does not exist: PJSIP/x",
                                            AmiResponse("Bridge", "9", "Error", "", {}))
    env.rt.resume("1001")
    await env.settle()
    assert len(env.ami.sent("Bridge")) == 1


async def test_after_a_transfer_the_first_agent_in_wrap_up_has_no_control_of_the_call(
        tmp_path):
    """Bug: after a completed transfer the transferring agent's page kept the call as
    talking, Hang up and all, after a reload too: their view (in wrap-up, still naming the
    call) carried the call's control, whose state is the new owner's."""
    from dataclasses import replace

    from tests.unit.test_runtime import GROUPS, runtime_env
    groups = (replace(GROUPS[0], wrapup_seconds=30),) + GROUPS[1:]
    async with runtime_env(tmp_path, groups=groups) as env:
        await start(env, "1001", "1002")
        leg = await connected(env)
        env.rt.login("1002")
        await env.settle()
        assert env.rt.agent("1001")["control"]["state"] == "talking"
        env.rt.transfer("1001", to_agent="1002")
        await env.settle()
        target = env.leg("1002")
        # the target being rung sees the transfer, the owner too
        env.ringing(target)
        await env.settle()
        assert env.rt.agent("1001")["control"]["state"] == "transfer_ringing"
        leave(env, "b1", ("c1", CALLER), (leg["ChannelId"], chan(leg)))
        env.answered(target)
        await env.settle()
        env.hangup(leg["ChannelId"], chan(leg))
        await env.settle()
        first, second = env.rt.agent("1001"), env.rt.agent("1002")
        assert first["state"] == "wrapup" and first["call_id"] == "c1"
        assert first["control"] is None
        assert second["control"]["owner"] == "1002" and second["control"]["state"] == "talking"
        with pytest.raises(AcdError):
            env.rt.hangup("1001")
