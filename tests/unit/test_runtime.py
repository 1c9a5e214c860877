"""The runtime between the ACD core and Asterisk, against a fake AMI client that records the
actions it is sent, a real store (SQLite file) and the real hub. Time is an injected clock;
timers are fired by hand."""
from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import structlog

from acd import config as configmod
from acd.ami.client import AmiActionError, AmiDisconnected, AmiResponse
from acd.ami.events import parse_event
from acd.core import Acd, AcdError
from acd.errors import UserError
from acd.runtime import AcdRuntime
from acd.runtime.queue import SentOn
from acd.store.db import Store, migrate_async
from acd.web.hub import Hub

T0 = 1_800_000_000.0


class FakeAmi:
    def __init__(self) -> None:
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self.channels: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self.vars: dict[tuple[str, str], str] = {}
        self.fail: dict[str, Exception] = {}
        self.event_cb = self.conn_cb = None

    def on_event(self, cb):
        self.event_cb = cb

    def on_connection(self, cb):
        self.conn_cb = cb

    async def action(self, name: str, **fields: Any) -> AmiResponse:
        self.actions.append((name, fields))
        await asyncio.sleep(0)
        if name in self.fail:
            raise self.fail[name]
        value = {}
        if name == "Getvar":
            value = {"Value": self.vars.get((fields["Channel"], fields["Variable"]), "")}
        return AmiResponse(name, "1", "Success", None, value)

    async def action_list(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        self.actions.append((name, fields))
        if name == "CoreShowChannels":
            return list(self.channels)
        if name == "PJSIPShowContacts":
            if not self.contacts:
                raise AmiActionError(name, "No Contacts found",
                                     AmiResponse(name, "1", "Error", "No Contacts found", {}))
            return list(self.contacts)
        return []

    def sent(self, name: str) -> list[dict[str, Any]]:
        return [f for n, f in self.actions if n == name]

    def clear(self) -> None:
        self.actions.clear()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


GROUPS = (
    configmod.GroupConfig(name="sales", number="7101", members={"1001": 1, "1002": 1},
                          ring_timeout=10, callback=configmod.CallbackConfig(key="*")),
    configmod.GroupConfig(name="closed", number="7102", members={"1001": 1},
                          holidays=("2027-01-15",), closed_destination="voicemail:after-hours"),
    configmod.GroupConfig(name="short", number="7103", members={"1002": 1}, max_wait=30,
                          max_wait_destination="group:sales"),
    configmod.GroupConfig(name="wrap", members={"1003": 1}, wrapup_seconds=20),
)
AGENTS = tuple(configmod.AgentConfig(id=a, name=a) for a in ("1001", "1002", "1003"))


class Env:
    def __init__(self, rt: AcdRuntime, ami: FakeAmi, store: Store, hub: Hub, clock: Clock):
        self.rt, self.ami, self.store, self.hub, self.clock = rt, ami, store, hub, clock
        self.subs: dict[str, Any] = {}

    def emit(self, **fields: Any) -> None:
        self.rt.on_ami_event(parse_event(fields))

    def reachable(self, endpoint: str, status: str = "Reachable") -> None:
        self.emit(Event="ContactStatus", EndpointName=endpoint, AOR=endpoint,
                  URI=f"sip:{endpoint}@127.0.0.1:5000", ContactStatus=status)

    async def settle(self) -> None:
        await self.rt.quiesce()

    def subscribe(self, topic: str):
        sub = self.hub.subscribe(topic)
        self.subs[topic] = sub
        return sub

    @staticmethod
    def drain(sub) -> list[dict[str, Any]]:
        out = []
        while not sub.queue.empty():
            out.append(sub.queue.get_nowait())
        return out

    async def arrive(self, uid: str, group: str = "sales", number: str = "13800138000",
                     priority: int = 0):
        handle = await self.rt.caller_arrived(
            uniqueid=uid, channel=f"PJSIP/acd-caller-{uid}", caller_number=number,
            caller_name="Caller", did="7101", group=group, priority=priority,
            entered=self.clock())
        await self.settle()
        return handle

    def leg(self, agent: str) -> dict[str, Any]:
        """The newest Originate to the agent's phone."""
        return [f for f in self.ami.sent("Originate") if f["Channel"] == f"PJSIP/{agent}"][-1]

    def ringing(self, leg: dict[str, Any], n: int = 1) -> None:
        self.emit(Event="Newchannel", Channel=f"PJSIP/x-{leg['ChannelId']}", Uniqueid=leg["ChannelId"],
                  ChannelState="0")
        self.emit(Event="Newstate", Channel=f"PJSIP/x-{leg['ChannelId']}", Uniqueid=leg["ChannelId"],
                  ChannelState="5")

    def answered(self, leg: dict[str, Any]) -> None:
        """As Asterisk reports an answered leg: the OriginateResponse, then the leg's entering
        its holding bridge once its dialplan runs (only then may it be bridged)."""
        self.emit(Event="OriginateResponse", Response="Success", Reason="4",
                  Channel=f"PJSIP/x-{leg['ChannelId']}", Uniqueid=leg["ChannelId"])
        self.leg_up(f"PJSIP/x-{leg['ChannelId']}", leg["ChannelId"], leg["Context"], leg["Exten"])

    def leg_up(self, channel: str, uid: str, context: str, exten: str = "s") -> None:
        """The leg enters the holding bridge of its dialplan (BridgeWait)."""
        self.emit(Event="BridgeEnter", Channel=channel, Uniqueid=uid, Context=context,
                  Exten=exten, BridgeUniqueid=f"hold-{uid}", BridgeType="base",
                  BridgeTechnology="holding_bridge", BridgeCreator="BridgeWait",
                  BridgeName=f"acd-{uid}", BridgeNumChannels="1")

    async def connected(self, uid: str = "c1", agent: str = "1001") -> dict[str, Any]:
        """A caller arrives and the agent's phone rings and answers; returns the leg."""
        await self.arrive(uid)
        leg = self.leg(agent)
        self.ringing(leg)
        self.answered(leg)
        await self.settle()
        return leg

    def hangup(self, uid: str, channel: str, cause: str = "16") -> None:
        self.emit(Event="Hangup", Channel=channel, Uniqueid=uid, Cause=cause)

    def state(self, agent: str) -> str:
        return self.rt.agent(agent)["state"]


@contextlib.asynccontextmanager
async def runtime_env(tmp_path, groups: tuple = GROUPS, **runtime_kw: Any):
    """A runtime on the fake AMI over a fresh store, the test agents and ``groups``; stopped
    after."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    await migrate_async(url)
    store = Store(url)
    ami, hub, clock = FakeAmi(), Hub(), Clock()
    cfg = configmod.Config(agents=AGENTS, groups=groups)
    # The overload guard has its own tests (test_overload.py); here a busy test machine (a
    # database copied in a fixture, another run beside) must not turn the test's callers away.
    runtime_kw.setdefault("max_lag", 30.0)
    rt = AcdRuntime(Acd(configmod.core_groups(cfg)), ami, store, hub,
                    endpoints={a.id: a.id for a in AGENTS}, groups=groups, clock=clock,
                    **runtime_kw)
    rt.attach()
    await rt.start()
    try:
        yield Env(rt, ami, store, hub, clock)
    finally:
        await rt.stop()
        await store.close()


@pytest.fixture
async def env(tmp_path):
    async with runtime_env(tmp_path, customer_dial="PJSIP/testcust{number}@acd-trunk",
                           hotline_number="7000") as e:
        yield e


async def start(e: Env, *reachable: str) -> None:
    e.ami.contacts = [{"Endpoint": ep, "Uri": f"sip:{ep}@127.0.0.1:5000", "Status": "Reachable"}
                      for ep in reachable]
    e.ami.conn_cb(True)
    await asyncio.wait_for(e.rt.ready.wait(), 5)
    await e.settle()
    e.ami.clear()


# ---------------------------------------------------------------------------------------------

async def test_not_ready_before_first_login_and_unknown_agent(env):
    with pytest.raises(UserError) as err:
        env.rt.login("1001")
    assert err.value.id == "acd.starting"
    await start(env, "1001")
    with pytest.raises(UserError) as err:
        env.rt.login("9999")
    assert err.value.id == "agent.unknown"
    assert env.rt.agent("1001")["state"] == "offline"
    assert env.rt.agent("1001")["reachable"] is True
    assert env.rt.agent("1002")["reachable"] is False       # no contact at all


async def test_caller_rings_only_an_idle_reachable_agent(env):
    await start(env, "1001")
    env.rt.login("1001")
    env.rt.login("1002")           # logged in, but its phone is not registered
    env.rt.set_state("1001", "break", "coffee")
    await env.settle()
    await env.arrive("c1")
    assert env.ami.sent("Originate") == []        # nobody idle and reachable
    env.reachable("1002")
    await env.settle()
    leg = env.leg("1002")
    assert leg["Context"] == "acd-agent" and leg["Exten"] == "s" and leg["Async"] == "true"
    assert leg["Timeout"] == 12000                 # the core's ring timeout + grace
    assert leg["CallerID"] == '"Caller" <13800138000>'
    assert "ACD_CALL=c1" in leg["Variable"] and "ACD_AGENT=1002" in leg["Variable"]
    assert [f for f in env.ami.sent("Originate") if f["Channel"] == "PJSIP/1001"] == []


async def test_ring_event_reaches_the_agent_when_the_phone_rings_then_bridge(env):
    await start(env, "1001")
    sub = env.subscribe("agent:1001")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    assert [m["type"] for m in env.drain(sub) if m["type"] != "state"] == []   # not yet
    env.ringing(leg)
    ring = [m for m in env.drain(sub) if m["type"] == "ring"]
    assert len(ring) == 1 and ring[0]["call_id"] == "c1" and ring[0]["caller_number"] == "13800138000"
    env.answered(leg)
    await env.settle()
    names = [n for n, _ in env.ami.actions if n in ("Setvar", "Bridge")]
    assert names == ["Bridge", "Setvar"]           # the bridge, then ACD_BRIDGED
    assert env.ami.sent("Setvar")[0] == {"Channel": "PJSIP/acd-caller-c1", "Variable": "ACD_BRIDGED",
                                         "Value": "1"}
    bridge = env.ami.sent("Bridge")[0]
    assert bridge["Channel1"] == "PJSIP/acd-caller-c1"
    assert bridge["Channel2"] == f"PJSIP/x-{leg['ChannelId']}"
    assert [m["type"] for m in env.drain(sub) if m["type"] != "state"] == ["answered"]
    assert env.state("1001") == "talking"
    timeline = [r["kind"] for r in env.rt.call_info("c1")["timeline"]]
    assert timeline[:5] == ["arrived", "queued", "offered", "ringing", "answered"]


async def test_agent_hangup_ends_the_call_and_the_callers_side(env):
    await start(env, "1001")
    env.rt.login("1001")
    leg = await env.connected("c1", "1001")
    env.ami.clear()
    env.hangup(leg["ChannelId"], f"PJSIP/x-{leg['ChannelId']}")
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "agent_hangup"
    assert {"Channel": "PJSIP/acd-caller-c1"} in env.ami.sent("Hangup")
    assert env.state("1001") == "idle"              # no wrap-up in this group
    call = await env.store.get_call("c1")
    assert call["end_reason"] == "agent_hangup" and call["skill_group"] == "sales"
    assert call["answered_at"] is not None
    kinds = [e["kind"] for e in call["events"]]
    for k in ("arrived", "acd_arrived", "queued", "offered", "ringing", "answered", "wrapup",
              "ended"):
        assert k in kinds, kinds
    rows = await env.store.agent_states("1001")
    assert [r["state"] for r in rows] == ["idle", "ringing", "talking", "wrapup", "idle"]
    assert rows[2]["call_uniqueid"] == "c1" and rows[2]["previous"] == "ringing"


async def test_caller_hangup_while_ringing_cancels_the_ring(env):
    await start(env, "1001")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    env.ringing(leg)
    env.hangup("c1", "PJSIP/acd-caller-c1")
    await env.settle()
    assert {"Channel": leg["ChannelId"]} in env.ami.sent("Hangup")
    assert env.rt.call_info("c1")["end_reason"] == "abandoned"
    assert env.state("1001") == "idle"


async def test_zombie_hangup_of_the_caller_is_not_a_hangup(env):
    await start(env, "1001")
    await env.arrive("c1")
    env.hangup("c1", "Surrogate/PJSIP/acd-caller-c1")
    await env.settle()
    assert env.rt.call_info("c1")["state"] == "waiting"


async def test_no_answer_puts_agent_on_break_and_rings_the_next_keeping_the_place(env):
    await start(env, "1001", "1002")
    env.rt.login("1001")
    env.clock.now += 1
    env.rt.login("1002")
    await env.arrive("c1")
    env.clock.now += 1
    await env.arrive("c2")
    first = env.leg("1001")          # longest idle first
    env.ringing(first)
    env.clock.now += 10
    env.ami.clear()
    env.rt.fire_timer("ring:c1")
    await env.settle()
    assert {"Channel": first["ChannelId"]} in env.ami.sent("Hangup")
    assert env.rt.agent("1001")["state"] == "break"
    assert env.rt.agent("1001")["reason"] == "no answer"
    q = env.rt.queues()["sales"]
    assert [c["call_id"] for c in q["calls"]] == ["c1", "c2"]   # c1 keeps its place
    # c2 rang 1002 at once; c1 waits for the next agent. A late answer of the old leg is
    # hung up, never bridged.
    env.answered(first)
    await env.settle()
    assert env.ami.sent("Bridge") == []
    assert [h for h in env.ami.sent("Hangup") if h["Channel"] == first["ChannelId"]]


async def test_failed_originate_is_a_ring_failure(env):
    await start(env, "1001", "1002")
    env.rt.login("1001")
    env.clock.now += 1
    env.rt.login("1002")
    env.ami.fail["Originate"] = AmiActionError(
        "Originate", "Originate failed",
        AmiResponse("Originate", "1", "Error", "Originate failed", {}))
    await env.arrive("c1")
    assert env.rt.agent("1001")["state"] == "break"
    assert env.rt.agent("1001")["reason"] == "ring failed: originate_failed"
    calls = await env.store.get_call("c1")
    assert any(e["kind"] == "no_answer" and e["detail"]["detail"] == "originate_failed"
               for e in calls["events"])


async def test_a_ring_request_asterisk_never_answered_sends_nobody_to_break(env):
    await start(env, "1001", "1002")
    env.rt.login("1001")
    env.clock.now += 1
    env.rt.login("1002")
    env.ami.fail["Originate"] = AmiDisconnected("link dropped")
    await env.arrive("c1")
    assert env.rt.agent("1001")["state"] == "idle"
    assert env.rt.agent("1002")["state"] == "idle"         # its ring failed the same way
    calls = await env.store.get_call("c1")
    assert any(e["kind"] == "no_answer" and e["detail"]["detail"] == "asterisk_unanswered"
               for e in calls["events"])
    # both agents declined it for now; the caller is tried again after retry_seconds
    assert len(env.ami.sent("Originate")) == 2 and "retry:c1" in env.rt.timers()
    del env.ami.fail["Originate"]
    env.clock.now += 10
    env.rt.fire_timer("retry:c1")
    await env.settle()
    assert len(env.ami.sent("Originate")) == 3
    assert env.rt.agent(env.ami.sent("Originate")[-1]["Channel"][6:])["state"] == "ringing"


async def test_rejected_ring_cause_comes_from_the_hangup(env):
    await start(env, "1001")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    env.ringing(leg)
    env.emit(Event="HangupRequest", Channel=f"PJSIP/x-{leg['ChannelId']}",
             Uniqueid=leg["ChannelId"], Cause="17")
    env.emit(Event="OriginateResponse", Response="Failure", Reason="0", Channel="PJSIP/1001",
             Uniqueid=leg["ChannelId"])
    await env.settle()
    assert env.rt.agent("1001")["reason"] == "ring failed: busy"


async def test_cancelled_leg_whose_channel_appears_later_is_hung_up(env):
    await start(env, "1001")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    env.ami.clear()
    env.hangup("c1", "PJSIP/acd-caller-c1")         # before the leg's channel exists
    await env.settle()
    assert env.ami.sent("Hangup") == [{"Channel": leg["ChannelId"]}]
    env.emit(Event="Newchannel", Channel="PJSIP/1001-0001", Uniqueid=leg["ChannelId"],
             ChannelState="0")
    await env.settle()
    assert len(env.ami.sent("Hangup")) == 2


async def test_refused_requests_raise_and_change_nothing(env):
    await start(env, "1001")
    sub = env.subscribe("agent:1001")
    with pytest.raises(AcdError) as err:
        env.rt.set_state("1001", "break")
    assert err.value.id == "agent.not_logged_in"
    with pytest.raises(AcdError) as err:
        env.rt.end_wrapup("1001")
    await env.settle()
    assert env.drain(sub) == []
    assert await env.store.agent_states("1001") == []
    # An AMI event the core refuses is logged, not raised.
    env.emit(Event="Newstate", Channel="PJSIP/1001-9", Uniqueid="unknown-leg", ChannelState="5")


async def test_closed_group_sends_the_caller_to_voicemail(env):
    env.clock.now = datetime(2027, 1, 15, 12, tzinfo=timezone.utc).timestamp()
    await start(env, "1001")
    assert env.rt.queues()["closed"]["open"] is False
    # the queue script sends the caller on itself: no AMI action
    assert await env.arrive("c1", group="closed") == SentOn("acd-voicemail,s,1",
                                                            {"ACD_VM_BOX": "after_hours"})
    assert env.ami.sent("Setvar") == [] and env.ami.sent("Redirect") == []
    assert env.rt.call_info("c1")["end_reason"] == "closed"
    # The caller's hangup in the mailbox changes nothing; the file is stored with the call.
    env.emit(Event="UserEvent", UserEvent="AcdVoicemail", Channel="PJSIP/acd-caller-c1",
             Uniqueid="c1", Call="c1", Mailbox="after-hours", File="/spool/x/c1.wav")
    env.hangup("c1", "PJSIP/acd-caller-c1")
    await env.settle()
    call = await env.store.get_call("c1")
    assert call["end_reason"] == "closed"
    vm = [e for e in call["events"] if e["kind"] == "voicemail"]
    assert vm and vm[0]["detail"]["file"] == "/spool/x/c1.wav"


async def test_overflow_to_another_group_moves_the_channel_variables(env):
    await start(env, "1001")
    await env.arrive("c1", group="short")
    env.clock.now += 30
    env.rt.fire_timer("maxwait:c1")
    await env.settle()
    assert env.rt.call_info("c1")["group"] == "sales"
    sets = {f["Variable"]: f["Value"] for f in env.ami.sent("Setvar")}
    assert sets["ACD_GROUP"] == "sales"
    assert float(sets["ACD_ENTERED"]) == pytest.approx(env.clock.now)


async def test_an_announcement_redirects_the_waiting_caller_to_it(env):
    """The caller waits in Asterisk: an announcement is one AMI Redirect to the dialplan's
    announcement (exten P*M*L), which goes back to the wait."""
    from acd.core import Announce
    await start(env)
    await env.arrive("c1")
    await env.arrive("c2")
    env.ami.clear()
    env.rt.apply([Announce("c1", 1, 60.0), Announce("c2", 2, 30.0), Announce("c1", None, None)])
    await env.settle()
    # One at a time: c1's second waits until c1 is back at the wait (UserEvent AcdWaiting).
    assert [(r["Channel"], r["Context"], r["Exten"]) for r in env.ami.sent("Redirect")] == [
        ("PJSIP/acd-caller-c1", "acd-queue", "1*1*0"), ("PJSIP/acd-caller-c2", "acd-queue", "2*1*1")]
    env.emit(Event="UserEvent", UserEvent="AcdWaiting", Channel="PJSIP/acd-caller-c1",
             Uniqueid="c1", Call="c1")
    env.rt.apply([Announce("c1", None, None)])
    await env.settle()
    assert env.ami.sent("Redirect")[-1]["Exten"] == "0*0*0"
    env.hangup("c2", "PJSIP/acd-caller-c2")           # gone: nothing more for them
    await env.settle()
    env.ami.clear()
    env.rt.apply([Announce("c2", 1, 60.0)])
    await env.settle()
    assert env.ami.sent("Redirect") == []


async def test_the_callback_key_of_a_waiting_caller_redirects_them_to_confirm(env):
    """Keys come over AMI (DTMFEnd from channels in [acd-queue]): the group's callback key
    sends the caller to confirm their number; other keys, other groups, keys while
    confirming, and keys the caller did not send change nothing."""
    await start(env)
    await env.arrive("c1")
    await env.arrive("q1", group="wrap")             # a group without a callback key
    env.ami.clear()
    key = dict(Event="DTMFEnd", Context="acd-queue", Direction="Received", DurationMs="120")
    env.emit(**key, Channel="PJSIP/acd-caller-c1", Uniqueid="c1", Digit="5")
    env.emit(**key, Channel="PJSIP/acd-caller-q1", Uniqueid="q1", Digit="*")
    env.emit(**{**key, "Direction": "Sent"}, Channel="PJSIP/acd-caller-c1", Uniqueid="c1",
             Digit="*")
    await env.settle()
    assert env.ami.sent("Redirect") == []
    env.emit(**key, Channel="PJSIP/acd-caller-c1", Uniqueid="c1", Digit="*")
    env.emit(**key, Channel="PJSIP/acd-caller-c1", Uniqueid="c1", Digit="*")   # confirming
    await env.settle()
    assert [(r["Context"], r["Exten"]) for r in env.ami.sent("Redirect")] == [
        ("acd-queue", "callback")]
    assert env.rt.caller_number("c1") == "13800138000"
    env.rt.callback_not_requested("c1")              # not confirmed: waits on, key again
    env.emit(**key, Channel="PJSIP/acd-caller-c1", Uniqueid="c1", Digit="*")
    await env.settle()
    assert len(env.ami.sent("Redirect")) == 2


async def test_callback_keeps_the_place_rings_the_agent_then_dials_the_customer(env):
    await start(env, "1001")
    await env.arrive("c1")
    await env.arrive("c2")
    assert env.rt.callback_key("c1") == "*"
    env.rt.callback_requested("c1", "13900139000")
    env.hangup("c1", "PJSIP/acd-caller-c1")            # the caller hangs up: ignored
    await env.settle()
    assert env.rt.call_info("c1")["state"] == "callback_waiting"
    env.rt.login("1001")
    await env.settle()
    leg = env.leg("1001")
    assert "ACD_CALL=c1" in leg["Variable"]             # the callback first: its place kept
    assert leg["CallerID"] == '"Callback 13900139000" <13900139000>'
    env.ringing(leg)
    env.answered(leg)
    await env.settle()
    cust = [f for f in env.ami.sent("Originate") if f["Channel"].startswith("PJSIP/testcust")]
    assert cust and cust[0]["Channel"] == "PJSIP/testcust13900139000@acd-trunk"
    assert cust[0]["Context"] == "acd-customer" and cust[0]["CallerID"] == "<7000>"
    assert env.rt.call_info("c1")["state"] == "callback_dialing"
    env.ami.clear()
    env.emit(Event="OriginateResponse", Response="Success", Reason="4",
             Channel="PJSIP/acd-trunk-77", Uniqueid=cust[0]["ChannelId"])
    await env.settle()
    assert env.ami.sent("Bridge") == []            # answered, its dialplan not yet started
    env.leg_up("PJSIP/acd-trunk-77", cust[0]["ChannelId"], cust[0]["Context"])
    await env.settle()
    assert env.ami.sent("Setvar") == []                 # no ACD_BRIDGED on a customer leg
    assert env.ami.sent("Bridge") == [{"Channel1": "PJSIP/acd-trunk-77",
                                       "Channel2": f"PJSIP/x-{leg['ChannelId']}", "Tone": "no"}]
    env.hangup(cust[0]["ChannelId"], "PJSIP/acd-trunk-77")
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "caller_hangup"
    call = await env.store.get_call("c1")
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "callback_requested"] == [
        "13900139000"]


async def test_customer_not_reached_is_a_failed_attempt(env):
    await start(env, "1001")
    await env.arrive("c1")
    env.rt.callback_requested("c1", "13900139000")
    env.rt.login("1001")
    await env.settle()
    leg = env.leg("1001")
    env.answered(leg)
    await env.settle()
    cust = [f for f in env.ami.sent("Originate") if f["Channel"].startswith("PJSIP/testcust")][0]
    env.ami.clear()
    env.emit(Event="OriginateResponse", Response="Failure", Reason="3", Channel="x",
             Uniqueid=cust["ChannelId"])
    await env.settle()
    assert env.rt.call_info("c1")["state"] == "callback_retry"
    assert {"Channel": leg["ChannelId"]} in env.ami.sent("Hangup")   # the agent's leg goes


async def test_state_change_during_call_applies_after_wrapup(env):
    await start(env, "1003")
    env.rt.login("1003")
    await env.arrive("c1", group="wrap")
    leg = env.leg("1003")
    env.answered(leg)
    await env.settle()
    out = env.rt.set_state("1003", "break", "lunch")
    assert out["state"] == "talking" and out["pending"] == "break"
    assert out["call"]["call_id"] == "c1"
    env.hangup(leg["ChannelId"], "PJSIP/x")
    await env.settle()
    assert env.state("1003") == "wrapup"
    env.clock.now += 20
    env.rt.fire_timer("wrapup:1003")
    await env.settle()
    assert env.state("1003") == "break" and env.rt.agent("1003")["reason"] == "lunch"
    rows = await env.store.agent_states("1003")
    assert [r["state"] for r in rows][-3:] == ["talking", "wrapup", "break"]
    assert (await env.store.latest_agent_pending())["1003"]["state"] is None


async def test_contact_status_makes_agents_unreachable_and_back(env):
    await start(env, "1001")
    env.rt.login("1001")
    env.reachable("1001", "Unreachable")
    await env.arrive("c1")
    assert env.ami.sent("Originate") == []
    assert env.rt.agent("1001")["reachable"] is False
    env.reachable("1001", "Reachable")
    await env.settle()
    assert env.leg("1001")


async def test_supervisor_snapshot_once_per_turn_with_the_last_state(env):
    await start(env, "1001", "1002")
    sub = env.subscribe("supervisor")
    env.rt.login("1001")
    env.rt.login("1002")
    env.rt.set_state("1002", "break")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    snaps = env.drain(sub)
    assert len(snaps) == 1
    assert snaps[0]["agents"]["1002"]["state"] == "break"
    assert snaps[0]["agents"]["1001"]["state"] == "idle"


async def test_no_supervisor_snapshot_is_built_while_nobody_watches(env):
    await start(env, "1001")
    built = []
    real = env.rt.acd.snapshot_agents
    env.rt.acd.snapshot_agents = lambda now: built.append(now) or real(now)
    env.rt.login("1001")
    env.rt.set_state("1001", "break")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert built == []
    sub = env.subscribe("supervisor")
    env.rt.set_state("1001", "idle")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(built) == 1 and env.drain(sub)[0]["agents"]["1001"]["state"] == "idle"


async def test_rebuild_from_asterisk_and_the_store(env):
    # The store: 1001 was talking (with a pending break), 1002 idle, 1003 logged out.
    at = datetime.fromtimestamp(T0 - 100, timezone.utc)
    s = env.store
    await s.agent_state("1001", "idle", reason="login", at=at, previous="offline")
    await s.agent_state("1001", "talking", reason="", at=at + timedelta(seconds=5),
                        previous="ringing", call_uniqueid="c0")
    await s.agent_pending("1001", "break", reason="lunch", at=at + timedelta(seconds=6))
    await s.agent_state("1002", "idle", reason="login", at=at + timedelta(seconds=1),
                        previous="offline")
    await s.agent_state("1003", "offline", reason="logout", at=at, previous="idle")
    await s.call_arrived(uniqueid="c0", channel="PJSIP/acd-caller-c0", caller_number="111",
                         caller_name="", did="7101", at=at)
    await s.call_update("c0", skill_group="sales", answered_at=at + timedelta(seconds=5))
    await s.call_arrived(uniqueid="gone", channel="PJSIP/acd-caller-g", caller_number="333",
                         caller_name="", did="7101", at=at)
    # Asterisk: c0 bridged with 1001's leg; c2 and c1 waiting (c1 entered first); an orphan
    # ring leg of a call that is waiting.
    env.ami.channels = [
        {"Channel": "PJSIP/acd-caller-c0", "Uniqueid": "c0", "Context": "acd-queue",
         "CallerIDNum": "111", "BridgeId": "b1", "ChannelState": "6"},
        {"Channel": "PJSIP/1001-1", "Uniqueid": "leg-0", "Context": "acd-agent",
         "BridgeId": "b1", "ChannelState": "6"},
        {"Channel": "PJSIP/acd-caller-c2", "Uniqueid": "c2", "Context": "acd-queue",
         "CallerIDNum": "222", "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/acd-caller-c1", "Uniqueid": "c1", "Context": "acd-queue",
         "CallerIDNum": "111", "BridgeId": "", "ChannelState": "6"},
        {"Channel": "PJSIP/1002-7", "Uniqueid": "leg-9", "Context": "acd-agent",
         "BridgeId": "", "ChannelState": "5"},
    ]
    v = env.ami.vars
    v.update({("PJSIP/acd-caller-c0", "ACD_GROUP"): "sales",
              ("PJSIP/acd-caller-c0", "ACD_ENTERED"): str(T0 - 99),
              ("PJSIP/acd-caller-c0", "ACD_BRIDGED"): "1",
              ("PJSIP/1001-1", "ACD_CALL"): "c0", ("PJSIP/1001-1", "ACD_AGENT"): "1001",
              ("PJSIP/acd-caller-c1", "ACD_GROUP"): "sales",
              ("PJSIP/acd-caller-c1", "ACD_ENTERED"): str(T0 - 50),
              ("PJSIP/acd-caller-c2", "ACD_GROUP"): "sales",
              ("PJSIP/acd-caller-c2", "ACD_ENTERED"): str(T0 - 40),
              ("PJSIP/1002-7", "ACD_CALL"): "c1", ("PJSIP/1002-7", "ACD_AGENT"): "1002"})
    env.ami.contacts = [{"Endpoint": ep, "Uri": f"sip:{ep}@x", "Status": "Reachable"}
                        for ep in ("1001", "1002")]
    env.ami.conn_cb(True)
    await asyncio.wait_for(env.rt.ready.wait(), 5)
    await env.settle()
    a1 = env.rt.agent("1001")
    assert a1["state"] == "talking" and a1["pending"] == "break" and a1["call_id"] == "c0"
    assert env.rt.agent("1003")["state"] == "offline"
    q = env.rt.queues()["sales"]
    assert [c["call_id"] for c in q["calls"]] == ["c1", "c2"]
    assert {"Channel": "leg-9"} in env.ami.sent("Hangup")           # the orphan ring leg
    # 1002 is idle, but its phone still has the orphan leg: no ring until it is gone.
    a2 = env.rt.agent("1002")
    assert (a2["state"], a2["phone_in_use"], a2["unavailable_reason"]) == (
        "idle", True, "phone in use")
    assert [c["state"] for c in q["calls"]] == ["waiting", "waiting"]
    assert env.ami.sent("Originate") == []
    env.hangup("leg-9", "PJSIP/1002-7")
    await env.settle()
    q = env.rt.queues()["sales"]
    assert q["calls"][0]["state"] == "ringing" and q["calls"][0]["agent_id"] == "1002"
    assert [f["Channel"] for f in env.ami.sent("Originate")] == ["PJSIP/1002"]
    assert (await env.store.get_call("gone"))["end_reason"] == "ended_while_server_down"
    assert (await env.store.get_call("c0"))["end_reason"] is None
    # The restored call goes on: the caller hangs up, the agent takes the pending break.
    env.hangup("c0", "PJSIP/acd-caller-c0")
    await env.settle()
    assert env.rt.call_info("c0")["end_reason"] == "caller_hangup"
    assert env.state("1001") == "break"


async def test_events_during_the_rebuild_are_held_and_applied_after(env):
    env.ami.channels = [{"Channel": "PJSIP/acd-caller-c1", "Uniqueid": "c1",
                         "Context": "acd-queue", "CallerIDNum": "111", "BridgeId": ""}]
    env.ami.vars.update({("PJSIP/acd-caller-c1", "ACD_GROUP"): "sales",
                         ("PJSIP/acd-caller-c1", "ACD_ENTERED"): str(T0 - 5)})
    env.ami.conn_cb(True)
    env.hangup("c1", "PJSIP/acd-caller-c1")              # arrives while rebuilding
    await asyncio.wait_for(env.rt.ready.wait(), 5)
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "abandoned"


async def test_reconnect_feeds_what_was_missed(env):
    await start(env, "1001")
    env.rt.login("1001")
    env.rt.set_state("1001", "break")
    await env.arrive("c1")
    await env.arrive("c2")
    env.ami.conn_cb(False)
    env.ami.channels = [{"Channel": "PJSIP/acd-caller-c2", "Uniqueid": "c2",
                         "Context": "acd-queue", "BridgeId": ""}]
    env.ami.contacts = []
    env.ami.conn_cb(True)
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "abandoned"
    assert env.rt.call_info("c2")["state"] == "waiting"
    assert env.rt.agent("1001")["reachable"] is False


async def test_no_ring_while_the_agents_phone_is_in_use(env):
    """An idle agent on their own call (a channel of their endpoint that is not ours) is not
    rung; the caller rings them once that channel is gone. Another endpoint's channel whose
    name starts alike does not count."""
    await start(env, "1001")
    env.rt.login("1001")
    env.emit(Event="Newchannel", Channel="PJSIP/1001-0000000a", Uniqueid="own-1",
             ChannelState="4")
    env.emit(Event="Newchannel", Channel="PJSIP/10011-0000000b", Uniqueid="other",
             ChannelState="4")
    await env.settle()
    assert env.rt.agent("1001")["unavailable_reason"] == "phone in use"
    await env.arrive("c1")
    assert env.ami.sent("Originate") == []
    env.hangup("own-1", "PJSIP/renamed-0000000a")     # renamed by then: same Uniqueid
    await env.settle()
    assert env.leg("1001")["Channel"] == "PJSIP/1001"
    assert env.rt.queues()["sales"]["calls"][0]["state"] == "ringing"


async def test_reconnect_takes_the_phones_in_use_from_asterisk(env):
    """After a cut: a phone's channel whose Hangup was missed no longer counts, one that
    came meanwhile does, and a Hangup seen while the channels were being read is not undone
    by the older list."""
    await start(env, "1001", "1002")
    env.rt.login("1001")
    env.rt.login("1002")
    env.emit(Event="Newchannel", Channel="PJSIP/1001-1", Uniqueid="own-1", ChannelState="4")
    await env.settle()
    env.ami.conn_cb(False)
    env.ami.channels = [{"Channel": "PJSIP/1002-2", "Uniqueid": "own-2", "Context": "x",
                         "BridgeId": ""}]
    await env.settle()
    env.ami.conn_cb(True)
    await env.settle()
    assert (env.rt.agent("1001")["phone_in_use"], env.rt.agent("1002")["phone_in_use"]) == (
        False, True)

    listing = env.ami.action_list

    async def stale_list(name, **fields):
        out = await listing(name, **fields)
        if name == "CoreShowChannels":       # the Hangup overtakes the list
            env.hangup("own-2", "PJSIP/1002-2")
        return out
    env.ami.action_list = stale_list
    env.ami.conn_cb(False)
    env.ami.conn_cb(True)
    await env.settle()
    assert env.rt.agent("1002")["phone_in_use"] is False
    await env.arrive("c1")
    assert len(env.ami.sent("Originate")) == 1


async def test_the_phone_check_frees_a_phone_whose_hangup_never_came(env):
    await start(env, "1001")
    env.rt.login("1001")
    await env.rt.check_phones()
    assert env.ami.sent("CoreShowChannels") == []          # nothing in use: nothing read
    env.emit(Event="Newchannel", Channel="PJSIP/1001-1", Uniqueid="own-1", ChannelState="4")
    await env.arrive("c1")
    env.ami.channels = [{"Channel": "PJSIP/1001-1", "Uniqueid": "own-1", "Context": "x"}]
    await env.rt.check_phones()                            # still up: still in use
    assert env.rt.agent("1001")["phone_in_use"] is True and env.ami.sent("Originate") == []
    env.ami.channels = []
    await env.rt.check_phones()
    await env.settle()
    assert env.rt.agent("1001")["phone_in_use"] is False
    assert env.leg("1001")["Channel"] == "PJSIP/1001"


async def test_caller_back_in_the_queue_after_a_cut_is_attached_again(env):
    await start(env, "1001")
    assert await env.arrive("c1") is True
    assert await env.arrive("c1") is True                 # the session again: attached
    assert env.rt.queues()["sales"]["waiting"] == 1
    env.hangup("c1", "PJSIP/acd-caller-c1")
    await env.settle()
    assert await env.arrive("c1") is False                # over: the script sends it away


async def test_store_write_failure_is_logged_not_dropped_silently(env):
    await start(env)
    with structlog.testing.capture_logs() as logs:
        env.rt.writer.submit("x", env.store.call_event, "no-such-call", "queued",
                             at=datetime.now(timezone.utc), bind={"call": "no-such-call"})
        await env.settle()
    assert env.rt.writer.failed == 1
    assert [(e["event"], e["call"], e["log_level"]) for e in logs] == [
        ("store.write_failed", "no-such-call", "error")]


async def test_who_left_the_bridge_first_hung_up_whatever_the_hangup_order(env):
    await start(env, "1001")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    env.answered(leg)
    await env.settle()
    agent_chan = f"PJSIP/x-{leg['ChannelId']}"
    for uid, chan in (("c1", "PJSIP/acd-caller-c1"), (leg["ChannelId"], agent_chan)):
        env.emit(Event="BridgeEnter", Channel=chan, Uniqueid=uid, BridgeUniqueid="b")
    # The caller hangs up: they leave the bridge first; the agent's Hangup event comes first.
    env.emit(Event="BridgeLeave", Channel="PJSIP/acd-caller-c1", Uniqueid="c1", BridgeUniqueid="b")
    env.emit(Event="BridgeLeave", Channel=agent_chan, Uniqueid=leg["ChannelId"], BridgeUniqueid="b")
    env.hangup(leg["ChannelId"], agent_chan)
    env.hangup("c1", "PJSIP/acd-caller-c1")
    await env.settle()
    assert env.rt.call_info("c1")["end_reason"] == "caller_hangup"
    assert (await env.store.get_call("c1"))["end_reason"] == "caller_hangup"


async def test_caller_for_an_unknown_group_is_refused_and_recorded(env):
    await start(env)
    with pytest.raises(AcdError) as err:
        await env.arrive("c1", group="nope")
    assert err.value.id == "group.unknown"
    await env.settle()
    call = await env.store.get_call("c1")
    assert call["end_reason"] == "refused"
    assert [e["detail"] for e in call["events"] if e["kind"] == "refused"] == [
        {"group": "nope", "error": "group.unknown"}]
    assert env.ami.sent("Originate") == []


async def test_rebuild_restores_a_waiting_callback_from_the_store(env):
    at = datetime.fromtimestamp(T0 - 300, timezone.utc)
    s = env.store
    await s.call_arrived(uniqueid="cb1", channel="PJSIP/acd-caller-cb1", caller_number="111",
                         caller_name="", did="7101", at=at)
    await s.call_event("cb1", "queued", at=at, detail={"group": "sales", "detail": "priority 2"})
    await s.call_event("cb1", "callback_requested", at=at + timedelta(seconds=30),
                       detail={"group": "sales", "detail": "13900139000"})
    await s.call_arrived(uniqueid="w1", channel="PJSIP/acd-caller-w1", caller_number="222",
                         caller_name="", did="7101", at=at)
    env.ami.channels = [{"Channel": "PJSIP/acd-caller-w1", "Uniqueid": "w1",
                         "Context": "acd-queue", "CallerIDNum": "222", "BridgeId": ""}]
    env.ami.vars.update({("PJSIP/acd-caller-w1", "ACD_GROUP"): "sales",
                         ("PJSIP/acd-caller-w1", "ACD_ENTERED"): str(T0 - 200)})
    await start(env, "1001")
    info = env.rt.call_info("cb1")
    assert info["state"] == "callback_waiting" and info["priority"] == 2
    assert info["callback"]["number"] == "13900139000"
    assert info["entered_at"] == pytest.approx(T0 - 300)
    env.rt.login("1001")
    await env.settle()
    leg = env.leg("1001")
    assert "ACD_CALL=cb1" in leg["Variable"]           # priority 2 goes first
    assert (await env.store.get_call("cb1"))["end_reason"] is None


class ScriptedSession:
    """A stand-in AGI session for the queue script's dialogue: digits pressed during the
    read-back (per prompt) and what GET DATA collects, in order."""

    def __init__(self, pressed: dict[str, str] | None = None, collected: list[str] = ()) -> None:
        self.pressed = dict(pressed or {})
        self.collected = list(collected)
        self.said: list[str] = []

    async def stream_file(self, name: str, escape: str = "") -> str | None:
        self.said.append(name)
        return self.pressed.pop(name, None)

    async def say_digits(self, digits: str, escape: str = "") -> str | None:
        self.said.append(f"digits:{digits}")
        return self.pressed.pop(f"digits:{digits}", None)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        self.said.append(prompt)
        got = self.collected.pop(0) if self.collected else ""
        return got, not got


async def test_callback_number_confirmed_during_the_read_back():
    from agi.queue import CallbackScript
    s = ScriptedSession(pressed={"digits:13800138000": "1"})
    assert await CallbackScript._confirm_number(s, "13800138000") == "13800138000"
    assert s.said == ["telephone-number", "digits:13800138000"]     # cut short by the 1


async def test_callback_to_another_number_is_read_back_and_confirmed():
    from agi.queue import CallbackScript
    s = ScriptedSession(collected=["13900139000", "1"])
    assert await CallbackScript._confirm_number(s, "13800138000") == "13900139000"
    assert "digits:13900139000" in s.said


async def test_callback_without_a_number_or_an_answer_is_not_requested():
    from agi.queue import CallbackScript
    assert await CallbackScript._confirm_number(ScriptedSession(), "13800138000") is None
    # No usable caller number: 1 alone confirms nothing; a keyed number does.
    assert await CallbackScript._confirm_number(ScriptedSession(collected=["1", ""]), "anonymous") is None
    s = ScriptedSession(collected=["555123", "1"])
    assert await CallbackScript._confirm_number(s, "") == "555123"


async def test_rebuild_keeps_an_agents_wrap_up_and_pending_state(env):
    at = datetime.fromtimestamp(T0 - 5, timezone.utc)
    s = env.store
    await s.call_arrived(uniqueid="w9", channel="c", caller_number="1", caller_name="",
                         did="7112", at=at)
    await s.call_update("w9", skill_group="wrap")
    await s.agent_state("1003", "idle", reason="login", at=at, previous="offline")
    await s.agent_state("1003", "wrapup", reason="", at=at, previous="talking",
                        call_uniqueid="w9")
    await s.agent_pending("1003", "meeting", reason="team", at=at)
    await s.call_ended("w9", reason="caller_hangup", at=at)
    await start(env, "1003")
    a = env.rt.agent("1003")
    assert (a["state"], a["pending"]) == ("wrapup", "meeting")
    assert env.rt.timers()["wrapup:1003"] == pytest.approx(T0 + 15)   # 20 s after it began
    env.clock.now = T0 + 15
    env.rt.fire_timer("wrapup:1003")
    await env.settle()
    a = env.rt.agent("1003")
    assert (a["state"], a["reason"], a["pending"]) == ("meeting", "team", None)
    assert (await env.store.latest_agent_pending())["1003"]["state"] is None


async def test_the_offer_is_stamped_when_it_is_made_not_at_queue_entry(env):
    """The queue script registers a caller 1.9 s after they entered the queue (ACD_ENTERED):
    the timeline shows that wait between the queue entry and the offer, and the ring timer
    starts with the ring."""
    await start(env, "1001")
    env.rt.login("1001")
    await env.settle()
    entered = env.clock.now
    env.clock.now += 1.9
    await env.rt.caller_arrived(uniqueid="c1", channel="PJSIP/acd-caller-c1",
                                caller_number="13800138000", caller_name="Caller", did="7101",
                                group="sales", priority=0, entered=entered)
    await env.settle()
    timeline = {r["kind"]: r["at"] for r in env.rt.call_info("c1")["timeline"]}
    assert timeline["queued"] == pytest.approx(entered)
    assert timeline["offered"] == pytest.approx(entered + 1.9)
    assert env.rt.timers()["ring:c1"] == pytest.approx(entered + 1.9 + 10)
    events = {e["kind"]: e["at"] for e in (await env.store.get_call("c1"))["events"]}
    offered = datetime.fromisoformat(events["offered"]) - datetime.fromisoformat(events["queued"])
    assert offered.total_seconds() == pytest.approx(1.9, abs=1e-3)


async def test_the_ivr_hands_the_key_trail_over_and_nothing_waits_on_the_store(env):
    """The keys come with the hand-over from the IVR: the caller is offered without a read of
    the store, even with the database hanging."""
    await start(env, "1001")
    env.rt.login("1001")
    await env.settle()
    reads = []

    async def hanging(uid):
        reads.append(uid)
        await asyncio.Event().wait()
    env.store.get_call = hanging
    env.rt.expect_caller("c1", ("2", "1#"))
    await asyncio.wait_for(env.arrive("c1"), 5)
    assert reads == [] and env.rt.call_info("c1")["key_trail"] == ["2", "1#"]
    assert "ACD_CALL=c1" in env.leg("1001")["Variable"]


async def test_without_a_hand_over_a_hanging_store_delays_the_offer_a_moment_only(env):
    await start(env, "1001")
    env.rt.login("1001")
    await env.settle()

    async def hanging(uid):
        await asyncio.Event().wait()
    env.store.get_call = hanging
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(env.arrive("c1"), 5)
    assert "ACD_CALL=c1" in env.leg("1001")["Variable"]
    assert env.rt.call_info("c1")["key_trail"] == []
    assert [e["call"] for e in logs if e["event"] == "runtime.key_trail_unread"] == ["c1"]


@pytest.mark.parametrize("leaves_first", ["agent", "caller"])
async def test_the_side_left_in_a_dissolving_bridge_is_left_to_the_dialplan(env, monkeypatch,
                                                                            leaves_first):
    """After a conversation the dialplan hangs up the side still in the bridge: no AMI
    Hangup races it (it met "No such channel" on every call). Should that side still be up
    a while later, the runtime hangs it up itself."""
    import acd.runtime.telephony as tel
    await start(env, "1001", "1002")
    env.rt.login("1001")
    for call, agent in (("c1", "1001"), ("c2", "1002")):
        if call == "c2":
            env.rt.set_state("1001", "break", "coffee")
            env.rt.login("1002")
            await env.settle()
        leg = await env.connected(call, agent)
        agent_chan = f"PJSIP/x-{leg['ChannelId']}"
        sides = {"caller": (call, f"PJSIP/acd-caller-{call}"),
                 "agent": (leg["ChannelId"], agent_chan)}
        for uid, chan in sides.values():
            env.emit(Event="BridgeEnter", Channel=chan, Uniqueid=uid, BridgeUniqueid=f"b{call}")
        await env.settle()
        env.ami.clear()
        first = sides[leaves_first]
        other = sides["caller" if leaves_first == "agent" else "agent"]
        monkeypatch.setattr(tel, "DISSOLVE_GRACE", 600.0 if call == "c1" else 0.2)
        env.emit(Event="BridgeLeave", Channel=first[1], Uniqueid=first[0],
                 BridgeUniqueid=f"b{call}")
        await env.settle()
        assert env.rt.call_info(call)["state"] == "ended"
        if call == "c1":               # the dialplan hangs it up: nothing more
            assert env.ami.sent("Hangup") == []
            env.emit(Event="BridgeLeave", Channel=other[1], Uniqueid=other[0],
                     BridgeUniqueid=f"b{call}")
            env.hangup(other[0], other[1])
            env.hangup(first[0], first[1])
            await asyncio.sleep(0.1)
            await env.settle()
            assert env.ami.sent("Hangup") == []
        else:                          # both stay up: hung up after the grace
            await asyncio.sleep(0.4)
            await env.settle()
            assert sorted(h["Channel"] for h in env.ami.sent("Hangup")) == sorted(
                [sides["agent"][0], sides["caller"][1]])


async def test_the_link_lost_is_a_warning_and_our_own_close_is_not(env):
    """A newcomer read `runtime.ami_down` as a warning on every clean Ctrl-C: the client
    closing the link itself is said at info; a link lost under a running server stays a
    warning."""
    await start(env)
    with structlog.testing.capture_logs() as logs:
        env.ami.conn_cb(False)
        env.ami.closing = True
        env.ami.conn_cb(False)
    assert [(e["event"], e["log_level"]) for e in logs
            if e["event"].startswith("runtime.ami_")] == [
        ("runtime.ami_down", "warning"), ("runtime.ami_closed", "info")]
