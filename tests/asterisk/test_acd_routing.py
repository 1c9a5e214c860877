"""The ACD on real calls: routing to idle, reachable agents of the caller's group, the ring
event on the agent's screen while the phone rings, strategies, no answer."""
from __future__ import annotations

import random

import pytest

from tests.asterisk.acd_fixtures import (RANDOM_SEED, Caller, acd_config, acd_server,  # noqa: F401
                                         after, agents, kinds, mark, stored)
from tests.asterisk.calls import field
from tests.conftest import BOTH_DATABASES


@BOTH_DATABASES
async def test_caller_reaches_an_idle_reachable_agent_and_the_screen_pops_while_ringing(
        acd_server, agents, ami):
    srv = acd_server
    agents.login("1001", "1002", "1003")
    srv.runtime.set_state("1002", "break", "coffee")     # reachable, but on break
    alice = await agents.phone("1001", answer="auto", answer_delay=1.5)
    await agents.phone("1002", answer="auto")
    # 1003 is logged in and idle, but has no phone registered: unreachable.
    assert srv.runtime.agent("1003")["reachable"] is False
    assert srv.runtime.agent("1001")["available"] is True

    m = mark(ami)
    caller = await Caller(ami, "7101").dial()
    ring = await agents.watch["1001"].wait(lambda msg: msg["type"] == "ring", what="ring event")
    # The ring event arrived while the phone rang: not yet answered, by the phone or Asterisk.
    assert ring["call_id"] == caller.uniqueid and ring["caller_number"] == caller.caller_num
    assert ring["group"] == "sales"
    assert not [e for e in alice.events if e.get("type") == "CALL_ESTABLISHED"]
    assert not [e for e in ami.events.events[m:] if e.name == "OriginateResponse"
                and field(e, "Channel").startswith("PJSIP/1001-")]
    ringing = [e for e in ami.events.events[m:] if e.name == "Newstate"
               and field(e, "Channel").startswith("PJSIP/1001-") and field(e, "ChannelState") == "5"]
    assert ringing, "the phone rings"

    assert await caller.bridged(m) == "1001"
    await alice.wait_established()
    answered = await agents.watch["1001"].wait(lambda msg: msg["type"] == "answered")
    assert answered["call_id"] == caller.uniqueid
    # Only the idle, reachable agent was rung.
    assert not [e for e in ami.events.events[m:] if e.name == "Newchannel"
                and field(e, "Channel").startswith(("PJSIP/1002-", "PJSIP/1003-"))]
    assert srv.runtime.agent("1001")["state"] == "talking"

    since = agents.mark("1001")
    await caller.hangup()
    await agents.wait_state("1001", "idle", since)
    call = await stored(srv, caller.uniqueid, ended=True)
    assert call["end_reason"] == "caller_hangup" and call["skill_group"] == "sales"
    assert call["did"] == "7101" and call["answered_at"] is not None
    k = kinds(call)
    assert k[0] == "arrived" and k[-1] in ("ended", "wrapup_ended", "wrapup")
    for kind in ("queued", "offered", "ringing", "answered", "wrapup", "ended"):
        assert kind in k, k
    assert k.index("offered") < k.index("ringing") < k.index("answered") < k.index("ended")
    assert k.count("ended") == 1
    states = await srv.store.agent_states("1001")
    assert [s["state"] for s in states] == ["idle", "ringing", "talking", "wrapup", "idle"]


async def test_no_ring_while_the_agents_phone_is_in_use(acd_server, agents, ami):
    """As app_queue's ringinuse=no: an idle agent on a call of their own is not rung, and
    after a call the next caller rings the phone only once its last leg is gone."""
    srv = acd_server
    agents.login("1001")
    await agents.phone("1001", answer="auto")
    m = mark(ami)
    own = await ami.action("Originate", Channel="PJSIP/1001", Application="Wait", Data="60",
                           Async="true")
    done = await after(ami, m, lambda e: e.name == "OriginateResponse"
                       and field(e, "ActionID") == own.action_id, "the agent's own call")
    assert field(done, "Reason") == "4"                     # answered
    own_channel = field(done, "Channel")
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "state"
                                    and msg["phone_in_use"] is True, what="phone in use")
    snap = srv.runtime.agent("1001")
    assert (snap["state"], snap["unavailable_reason"]) == ("idle", "phone in use")

    first = await Caller(ami, "7101").dial()
    await first.queued(m)
    second = await Caller(ami, "7101").dial()
    await second.queued(m)
    assert srv.runtime.queues()["sales"]["calls"][0]["state"] == "waiting"
    free = mark(ami)
    await ami.action("Hangup", Channel=own_channel)
    assert await first.bridged(free) == "1001"
    legs = [e for e in ami.events.events[m:] if e.name == "Newchannel"
            and field(e, "Channel").startswith("PJSIP/1001-")]
    assert [field(e, "Channel") for e in legs][0] == own_channel
    gone = ami.events.events.index(next(
        e for e in ami.events.events[m:] if e.name == "Hangup"
        and field(e, "Channel") == own_channel))
    ring = ami.events.events.index(legs[1])
    assert gone < ring, "the ring came while the phone still had its own call"

    # The caller hangs up: the second caller's ring follows the first leg's hangup.
    talked = field(legs[1], "Channel")
    m2 = mark(ami)
    await first.hangup()
    assert await second.bridged(m2) == "1001"
    after_first = ami.events.events[m2:]
    gone = next(i for i, e in enumerate(after_first)
                if e.name == "Hangup" and field(e, "Channel") == talked)
    ring = next(i for i, e in enumerate(after_first) if e.name == "Newchannel"
                and field(e, "Channel").startswith("PJSIP/1001-"))
    assert gone < ring, "the next ring came before the last call's leg was gone"
    await second.hangup()


async def _one_call_each(agents, ami, number: str, n: int) -> list[str]:
    """n calls one after the other; each is answered, then the caller hangs up and the
    agent is idle again before the next. Returns who took each call."""
    order = []
    for _ in range(n):
        m = mark(ami)
        caller = await Caller(ami, number).dial()
        agent = await caller.bridged(m)
        order.append(agent)
        since = agents.mark(agent)
        await caller.hangup()
        await agents.wait_free(agent, since)
    return order


async def _phones(agents, *ids: str) -> None:
    for a in ids:
        await agents.phone(a, answer="auto")


async def test_longest_idle_first(acd_server, agents, ami):
    agents.login("1002", "1003", "1001")            # idle since: 1002, then 1003, then 1001
    await _phones(agents, "1001", "1002", "1003")
    assert await _one_call_each(agents, ami, "7101", 4) == ["1002", "1003", "1001", "1002"]


async def test_round_robin_in_member_order(acd_server, agents, ami):
    agents.login("1003", "1002", "1001")            # longest idle would start with 1003
    await _phones(agents, "1001", "1002", "1003")
    assert await _one_call_each(agents, ami, "7102", 4) == ["1001", "1002", "1003", "1001"]


async def test_fewest_calls_first_then_longest_idle(acd_server, agents, ami):
    srv = acd_server
    agents.login("1001", "1002", "1003")
    await _phones(agents, "1001", "1002", "1003")
    order = await _one_call_each(agents, ami, "7103", 1)
    srv.runtime.set_state("1002", "break")          # 1002 comes back: idle for the shortest
    srv.runtime.set_state("1002", "idle")
    order += await _one_call_each(agents, ami, "7103", 3)
    # Longest idle would give 1001 the third call; 1002 has answered none yet.
    assert order == ["1001", "1003", "1002", "1001"]


async def test_highest_skill_level_first(acd_server, agents, ami):
    agents.login("1001", "1002", "1003")             # levels: 1002: 5, 1003: 3, 1001: 1
    await _phones(agents, "1001", "1002", "1003")
    callers, order = [], []
    for _ in range(3):                              # the calls stay up: each takes the next
        m = mark(ami)
        c = await Caller(ami, "7104").dial()
        order.append(await c.bridged(m))
        callers.append(c)
    for c, a in zip(callers, order):
        since = agents.mark(a)
        await c.hangup()
        await agents.wait_free(a, since)
    order += await _one_call_each(agents, ami, "7104", 1)
    assert order == ["1002", "1003", "1001", "1002"]


async def test_random_draws_from_the_injected_generator(acd_server, agents, ami):
    agents.login("1001", "1002", "1003")
    await _phones(agents, "1001", "1002", "1003")
    rng = random.Random(RANDOM_SEED)                 # the server's generator, same seed
    expected = [["1001", "1002", "1003"][rng.randrange(3)] for _ in range(4)]
    assert await _one_call_each(agents, ami, "7105", 4) == expected


async def test_no_answer_sends_the_agent_to_break_and_the_caller_keeps_their_place(
        acd_server, agents, ami):
    srv = acd_server
    agents.login("1001", "1002")
    srv.runtime.set_state("1002", "busy")
    alice = await agents.phone("1001", answer="manual")     # rings, nobody answers
    await agents.phone("1002", answer="auto")
    m = mark(ami)
    first = await Caller(ami, "7106").dial()
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "ring")
    second = await Caller(ami, "7106").dial()
    await second.queued(m)
    since = agents.mark("1001")
    await agents.wait_state("1001", "break", since)          # ring timeout: 3 s
    assert srv.runtime.agent("1001")["reason"] == "no answer"
    await alice.wait_event("CALL_CLOSED")
    q = srv.runtime.queues()["noans"]
    assert [c["call_id"] for c in q["calls"]] == [first.uniqueid, second.uniqueid]
    assert q["calls"][0]["state"] == "waiting"

    m2 = mark(ami)
    srv.runtime.set_state("1002", "idle")
    assert await first.bridged(m2) == "1002"                 # the first caller, not the second
    assert [c["call_id"] for c in srv.runtime.queues()["noans"]["calls"]] == [second.uniqueid]
    await first.hangup()
    call = await stored(srv, first.uniqueid, ended=True)
    offers = [(e["kind"], e["detail"].get("agent")) for e in call["events"]
              if e["kind"] in ("offered", "no_answer", "answered")]
    assert offers == [("offered", "1001"), ("no_answer", "1001"), ("offered", "1002"),
                      ("answered", "1002")]
    assert call["end_reason"] == "caller_hangup"
    # 1002 is free again: now the second caller's turn (1001 is still on break).
    assert await second.bridged(m2) == "1002"
    await second.hangup()
    assert (await stored(srv, second.uniqueid, ended=True))["end_reason"] == "caller_hangup"


async def test_state_asked_during_a_call_applies_after_wrap_up(acd_server, agents, ami):
    srv = acd_server
    agents.login("1003")
    await agents.phone("1003", answer="auto")
    m = mark(ami)
    caller = await Caller(ami, "7112").dial()
    assert await caller.bridged(m) == "1003"
    out = srv.runtime.set_state("1003", "break", "lunch")
    assert (out["state"], out["pending"], out["call"]["call_id"]) == ("talking", "break",
                                                                      caller.uniqueid)
    with pytest.raises(Exception) as err:                   # refused: nothing changes
        srv.runtime.set_state("1003", "ringing")
    assert err.value.id == "agent.not_a_manual_state"
    assert srv.runtime.agent("1003")["pending"] == "break"
    since = agents.mark("1003")
    await caller.hangup()
    await agents.wait_state("1003", "wrapup", since)
    assert srv.runtime.agent("1003")["pending"] == "break"    # still pending in wrap-up
    srv.runtime.end_wrapup("1003")
    await agents.wait_state("1003", "break", since)
    assert srv.runtime.agent("1003")["reason"] == "lunch"
    assert srv.runtime.agent("1003")["pending"] is None
    await srv.runtime.quiesce()
    states = await srv.store.agent_states("1003")
    assert [s["state"] for s in states] == ["idle", "ringing", "talking", "wrapup", "break"]
    assert states[-1]["reason"] == "lunch"
    assert states[-1]["at"] >= states[-2]["at"]


async def test_hotline_ivr_hands_the_caller_to_the_first_group_with_the_key_trail(
        acd_server, agents, ami):
    srv = acd_server
    agents.login("1001")
    await agents.phone("1001", answer="auto")
    m = mark(ami)
    caller = await Caller(ami, "7000").dial()
    await after(ami, m, lambda e: e.name == "AGIExecStart" and field(e, "Channel") == caller.channel
                and field(e, "Command").startswith("GET DATA"), "the IVR asking")
    await caller.send_dtmf("4711#")
    ring = await agents.watch["1001"].wait(lambda msg: msg["type"] == "ring")
    assert (ring["call_id"], ring["group"], ring["key_trail"]) == (caller.uniqueid, "sales",
                                                                   ["4711"])
    assert await caller.bridged(m) == "1001"
    # The IVR's Goto lands on the queue's first priority (AGI EXEC Goto in autoloop).
    assert [e for e in ami.events.events[m:] if e.name == "Newexten"
            and field(e, "Channel") == caller.channel and field(e, "Context") == "acd-queue"
            and field(e, "Priority") == "1"]
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    assert call["did"] == "7000" and call["end_reason"] == "caller_hangup"
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("collect_number", "4711")]
    k = kinds(call)
    assert k.index("ivr") < k.index("to_queue") < k.index("queued") < k.index("answered")
    assert k.count("ended") == 1
