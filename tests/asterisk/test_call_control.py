"""Call control on real calls through the real Asterisk, agents on registered baresip phones:
hold and resume, transfers (to an agent: completed, cancelled, refused, not answered; to a
skill group), consults (complete, return), the satisfaction survey (after a transfer to it,
after an invitation), an agent's outbound call, and refused actions that change nothing."""
from __future__ import annotations

import pytest

from acd.core import AcdError
from tests.asterisk.acd_fixtures import (Agents, acd_config, after, events_of,  # noqa: F401
                                         kinds, mark)
from tests.asterisk.calls import field, talk_entered
from tests.asterisk.control_fixtures import (CALLER_ID, caller_hangs_up,  # noqa: F401
                                             connected_call, control_config, control_server,
                                             ctl_agents, joined, leg_hangup, legs_of,
                                             moh_started, moh_stopped, phone_dial_server,
                                             stored, transfer_event)


def agent_leg(ami, agent: str, since: int = 0) -> str:
    return field(legs_of(ami, agent, since)[-1], "Channel")


def frozen(srv) -> tuple:
    """The agents, their calls and the queues, without what the clock changes."""
    agents = {a: {k: v for k, v in srv.runtime.agent(a).items() if k != "in_state_for"}
              for a in ("1001", "1002", "1003")}
    queues = {g: {k: v for k, v in q.items() if k not in ("longest_wait", "calls")}
              for g, q in srv.runtime.queues().items()}
    return agents, queues


async def test_hold_then_resume_the_caller_hears_music_and_gets_the_same_agent_back(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    caller = await connected_call(srv, agents, ami)
    alice_leg = agent_leg(ami, "1001")
    since = agents.mark("1001")
    m = mark(ami)
    out = srv.runtime.hold("1001")
    assert (out["state"], out["control"]["state"], out["control"]["held"]) == (
        "talking", "held", True)
    await moh_started(ami, caller, m)
    # The agent's leg waits in silence, apart from the caller.
    await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Channel") == alice_leg
                and field(e, "Context") == "acd-hold" and field(e, "Application") == "BridgeWait",
                "the agent's leg waiting in silence")
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "hold" and msg["held"], since)
    assert not [e for e in ami.events.events[m:] if e.name == "Hangup"]

    m2 = mark(ami)
    out = srv.runtime.resume("1001")
    await moh_stopped(ami, caller, m2)
    assert await joined(ami, caller, m2) == "1001"        # the same agent, the same leg
    enter = await after(ami, m2, lambda e: talk_entered(e)
                        and field(e, "Channel") == alice_leg, "the agent's leg bridged")
    assert field(enter, "BridgeUniqueid")
    assert srv.runtime.agent("1001")["control"]["state"] == "talking"

    await caller.hangup()
    await agents.wait_state("1001", "idle", since)
    call = await stored(srv, caller.uniqueid)
    assert call["end_reason"] == "caller_hangup"
    k = kinds(call)
    assert k.index("answered") < k.index("hold") < k.index("resume") < k.index("ended")
    [leg] = call["legs"]
    assert (leg["agent_id"], leg["role"], leg["reason"]) == ("1001", "answer", "caller_hangup")
    assert leg["hold_seconds"] > 0 and leg["talk_seconds"] > 0 and leg["wrapup_seconds"] == 0


async def test_transfer_to_an_idle_agent_completes_when_they_answer(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002")
    await agents.phone("1002", answer="auto", answer_delay=1)
    caller = await connected_call(srv, agents, ami)
    alice_leg = agent_leg(ami, "1001")
    since, since_b = agents.mark("1001"), agents.mark("1002")
    m = mark(ami)
    out = srv.runtime.transfer("1001", to_agent="1002")
    assert out["control"]["transfer"]["target_agent"] == "1002"
    await moh_started(ami, caller, m)                # the caller holds while 1002 rings
    await transfer_event(agents, "1001", "started", since)
    await transfer_event(agents, "1001", "ringing", since)
    ring = await agents.watch["1002"].wait(lambda msg: msg["type"] == "ring", since_b)
    assert ring["call_id"] == caller.uniqueid and ring["transfer"] == {"from_agent": "1001"}
    await transfer_event(agents, "1001", "completed", since)
    assert await joined(ami, caller, m) == "1002"
    await leg_hangup(ami, "1001", m)                 # the first agent drops ...
    await agents.wait_state("1001", "idle", since)   # ... and is free (no wrap-up in ctl)
    assert field(events_of(ami, "Hangup", Channel=alice_leg)[-1], "Channel") == alice_leg
    assert srv.runtime.agent("1002")["state"] == "talking"
    assert not caller.hung_up_before(len(ami.events.events))

    await caller.hangup()
    await agents.wait_state("1002", "wrapup", since_b)
    call = await stored(srv, caller.uniqueid)
    assert call["end_reason"] == "caller_hangup"
    k = kinds(call)
    for kind in ("transfer_started", "transfer_ringing", "transfer_answered",
                 "transfer_completed"):
        assert kind in k, k
    legs = [(x["agent_id"], x["role"], x["reason"]) for x in call["legs"]]
    assert legs == [("1001", "answer", "transferred"), ("1002", "transfer", "caller_hangup")]
    assert call["legs"][0]["hold_seconds"] > 0       # 1001's caller held while 1002 rang


async def test_transfer_cancelled_while_the_target_rings(control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002")
    bob = await agents.phone("1002", answer="manual")
    caller = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    m = mark(ami)
    srv.runtime.transfer("1001", to_agent="1002")
    await bob.wait_event("CALL_INCOMING")
    await transfer_event(agents, "1001", "ringing", since)
    srv.runtime.cancel_transfer("1001")
    await transfer_event(agents, "1001", "cancelled", since)
    await bob.wait_event("CALL_CLOSED")
    assert await joined(ami, caller, m) == "1001"    # back with the first agent
    assert srv.runtime.agent("1002")["state"] == "idle"
    assert srv.runtime.agent("1001")["control"]["state"] == "talking"
    await caller_hangs_up(agents, caller, "1001")
    call = await stored(srv, caller.uniqueid)
    assert "transfer_cancelled" in kinds(call) and call["end_reason"] == "caller_hangup"
    assert [x["agent_id"] for x in call["legs"]] == ["1001"]


async def test_transfer_target_refusing_then_not_answering(control_server, ctl_agents, ami):
    """1002 refuses the ring (its phone rejects the INVITE: 486 Busy Here); 1003 lets it
    ring. baresip 1.1.0 was seen to exit now and then just after rejecting an incoming
    call, so the second attempt rings another phone."""
    srv, agents = control_server, ctl_agents
    agents.login("1002", "1003")
    bob = await agents.phone("1002", answer="manual")
    carol = await agents.phone("1003", answer="manual")
    caller = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    m = mark(ami)
    srv.runtime.transfer("1001", to_agent="1002")
    await bob.wait_event("CALL_INCOMING")
    await bob.hangup()                                  # refuses the ring
    failed = await transfer_event(agents, "1001", "failed", since)
    assert failed["cause"] in ("busy", "rejected")
    assert await joined(ami, caller, m) == "1001"
    assert srv.runtime.agent("1002")["state"] == "idle"

    since2 = agents.mark("1001")
    m2 = mark(ami)
    srv.runtime.transfer("1001", to_agent="1003")
    await carol.wait_event("CALL_INCOMING")            # rings; nobody answers (5 s)
    failed = await transfer_event(agents, "1001", "failed", since2)
    assert failed["cause"] == "no_answer"
    assert await joined(ami, caller, m2) == "1001"
    out = srv.runtime.agent("1003")
    assert (out["state"], out["reason"]) == ("break", "no answer")
    assert srv.runtime.agent("1001")["control"]["state"] == "talking"
    await caller_hangs_up(agents, caller, "1001")
    call = await stored(srv, caller.uniqueid)
    assert kinds(call).count("transfer_failed") == 2
    assert [x["agent_id"] for x in call["legs"]] == ["1001"]


async def test_transfer_to_a_group_queues_the_caller_and_frees_the_agent(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002", "1003")
    await agents.phone("1002", answer="auto")
    await agents.phone("1003", answer="auto")
    caller = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    m = mark(ami)
    srv.runtime.transfer("1001", to_group="ctlxfer")
    await transfer_event(agents, "1001", "completed", since, target_group="ctlxfer")
    await leg_hangup(ami, "1001", m)
    await agents.wait_state("1001", "idle", since)
    assert await joined(ami, caller, m) == "1002"      # round robin: ctlxfer's first member
    assert not caller.hung_up_before(len(ami.events.events))
    await caller_hangs_up(agents, caller, "1002")
    call = await stored(srv, caller.uniqueid)
    assert call["skill_group"] == "ctlxfer" and call["end_reason"] == "caller_hangup"
    k = kinds(call)
    assert k.index("transfer_completed") < k.index("queued", k.index("transfer_started"))
    assert [(x["agent_id"], x["reason"]) for x in call["legs"]] == [
        ("1001", "transferred"), ("1002", "caller_hangup")]
    q = srv.runtime.queues()["ctlxfer"]
    assert (q["offered"], q["answered"]) == (1, 1)


async def test_consult_then_complete(control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002")
    await agents.phone("1002", answer="auto")
    caller = await connected_call(srv, agents, ami)
    alice_leg = agent_leg(ami, "1001")
    since = agents.mark("1001")
    m = mark(ami)
    srv.runtime.consult("1001", to_agent="1002")
    await moh_started(ami, caller, m)
    await transfer_event(agents, "1001", "answered", since, kind="consult")
    # The two agents talk: both legs in one bridge, the caller alone with the music.
    bob_leg = agent_leg(ami, "1002", m)
    enter = await after(ami, m, lambda e: talk_entered(e)
                        and field(e, "Channel") == bob_leg, "the consulted agent bridged")
    await after(ami, m, lambda e: talk_entered(e) and field(e, "Channel") == alice_leg
                and field(e, "BridgeUniqueid") == field(enter, "BridgeUniqueid"),
                "the two agents in one bridge")
    assert srv.runtime.agent("1002")["state"] == "talking"
    assert srv.runtime.agent("1001")["control"]["state"] == "consulting"

    m2 = mark(ami)
    srv.runtime.complete_consult("1001")
    await transfer_event(agents, "1001", "completed", since)
    assert await joined(ami, caller, m2) == "1002"
    await leg_hangup(ami, "1001", m2)
    await agents.wait_state("1001", "idle", since)
    await caller_hangs_up(agents, caller, "1002")
    call = await stored(srv, caller.uniqueid)
    k = kinds(call)
    assert k.index("consult_started") < k.index("consult_answered") < k.index(
        "consult_completed")
    assert [(x["agent_id"], x["role"], x["reason"]) for x in call["legs"]] == [
        ("1001", "answer", "transferred"), ("1002", "consult", "caller_hangup")]


async def test_consult_a_group_then_return_to_the_caller(control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002", "1003")
    await agents.phone("1002", answer="auto")
    await agents.phone("1003", answer="auto")
    caller = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    srv.runtime.consult("1001", to_group="ctlxfer")
    answered = await transfer_event(agents, "1001", "answered", since)
    target = answered["target_agent"]
    assert target == "1002"                             # round robin's first
    since_t = agents.mark(target)
    m2 = mark(ami)
    srv.runtime.return_from_consult("1001")
    await transfer_event(agents, "1001", "cancelled", since)
    assert await joined(ami, caller, m2) == "1001"
    await leg_hangup(ami, target, m2)
    await agents.wait_state(target, "wrapup", since_t)   # ctlxfer: 2 s of wrap-up
    assert srv.runtime.agent("1001")["state"] == "talking"
    await caller_hangs_up(agents, caller, "1001")
    call = await stored(srv, caller.uniqueid)
    assert "consult_cancelled" in kinds(call)
    assert [(x["agent_id"], x["reason"]) for x in call["legs"]] == [
        (target, "consult_ended"), ("1001", "caller_hangup")]


async def _rate(ami, caller, since: int, keys: str) -> None:
    """The caller keys in ``keys``, each while the survey plays a prompt (the question, or
    after a key that is no rating, "invalid option")."""
    for k in keys:
        prompt = await after(ami, since, lambda e: e.name == "AGIExecStart"
                             and field(e, "Channel") == caller.channel
                             and field(e, "Command").startswith("STREAM FILE"),
                             "a survey prompt")
        since = ami.events.events.index(prompt) + 1
        await caller.send_dtmf(k)


async def test_transfer_to_the_survey_the_agent_drops_and_the_caller_rates(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    caller = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    m = mark(ami)
    srv.runtime.to_survey("1001")
    await leg_hangup(ami, "1001", m)
    await agents.wait_state("1001", "idle", since)
    await _rate(ami, caller, m, "74")                   # 7 is no rating: asked again
    await caller.gone(m)                                # thanked and hung up
    call = await stored(srv, caller.uniqueid)
    assert call["rating"] == 4 and call["end_reason"] == "agent_hangup"
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("survey", "7"),
                                                                   ("survey", "4")]
    k = kinds(call)
    assert k.index("to_survey") < k.index("survey_started") < k.index("rated")


async def test_invited_rating_the_caller_rates_after_the_agent_hangs_up(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    caller = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    out = srv.runtime.invite_rating("1001")
    assert out["control"]["invited"] is True
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "rating_invited", since)
    m = mark(ami)
    await agents.phones["1001"].hangup()                # the agent ends the call
    await _rate(ami, caller, m, "5")
    await caller.gone(m)
    call = await stored(srv, caller.uniqueid)
    assert call["rating"] == 5 and call["end_reason"] == "agent_hangup"
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("survey", "5")]
    assert "rating_invited" in kinds(call)


async def test_invited_while_held_the_caller_is_taken_to_the_survey_when_the_agent_hangs_up(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    caller = await connected_call(srv, agents, ami)
    srv.runtime.invite_rating("1001")
    m = mark(ami)
    srv.runtime.hold("1001")
    await moh_started(ami, caller, m)
    m = mark(ami)
    await agents.phones["1001"].hangup()                # no bridge to leave: a Redirect
    await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Channel") == caller.channel
                and field(e, "Context") == "acd-survey", "the held caller taken to the survey")
    await _rate(ami, caller, m, "3")
    await caller.gone(m)
    call = await stored(srv, caller.uniqueid)
    assert call["rating"] == 3 and call["end_reason"] == "agent_hangup"


async def test_agent_outbound_call_reaches_the_customer_with_the_caller_id(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002")
    bob = await agents.phone("1002", answer="auto", answer_delay=1)
    since = agents.mark("1002")
    m = mark(ami)
    out = srv.runtime.dial("1002", "5550123")
    call_id = out["call_id"]
    assert out["state"] == "ringing" and out["control"]["state"] == "agent_ringing"
    await bob.wait_event("CALL_INCOMING")               # the agent's phone rings first ...
    assert not [e for e in ami.events.events[m:] if e.name == "UserEvent"
                and field(e, "UserEvent") == "AcdTestCustomer"]
    customer = await after(ami, m, lambda e: e.name == "UserEvent"
                           and field(e, "UserEvent") == "AcdTestCustomer"
                           and field(e, "Number") == "5550123", "the customer answering")
    # ... then the customer, who sees the configured caller id.
    incoming = next(e for e in ami.events.events[m:] if e.name == "Newchannel"
                    and field(e, "Exten") == "testcust5550123")
    assert field(incoming, "CallerIDNum") == "4000123"
    assert CALLER_ID.startswith('"ACD Outbound"')
    bob_leg = agent_leg(ami, "1002", m)
    await after(ami, m, lambda e: talk_entered(e) and field(e, "Channel") == bob_leg,
                "the agent bridged with the customer")
    await agents.watch["1002"].wait(lambda msg: msg["type"] == "outbound"
                                    and msg["state"] == "connected", since)
    assert srv.runtime.agent("1002")["state"] == "talking"
    srv.runtime.hangup("1002")
    await leg_hangup(ami, "1002", m)
    await agents.wait_state("1002", "idle", since)
    assert field(customer, "Channel")
    call = await stored(srv, call_id)
    assert (call["direction"], call["caller_number"], call["end_reason"]) == (
        "outbound", "5550123", "agent_hangup")
    k = kinds(call)
    assert k.index("outbound") < k.index("dialing") < k.index("answered") < k.index("ended")
    [leg] = call["legs"]
    assert (leg["agent_id"], leg["role"]) == ("1002", "outbound")


async def test_outbound_call_rings_a_real_customer_phone(phone_dial_server, control_config,
                                                      ami):
    """The customer is a registered baresip phone (endpoint 1003, not logged in as an
    agent): it rings with the configured caller id, answers, and the two talk."""
    srv = phone_dial_server
    agents = Agents(srv, control_config)
    try:
        agents.login("1002")
        bob = await agents.phone("1002", answer="auto")
        customer = await agents.phone("1003", answer="auto", answer_delay=1)
        since = agents.mark("1002")
        out = srv.runtime.dial("1002", "1003")
        await bob.wait_established()                   # the agent first ...
        incoming = await customer.wait_event("CALL_INCOMING")   # ... then the customer
        assert "4000123" in incoming["peeruri"], incoming
        await customer.wait_established()
        await agents.watch["1002"].wait(lambda msg: msg["type"] == "outbound"
                                        and msg["state"] == "connected", since)
        await customer.hangup()                         # the customer ends the call
        await agents.wait_state("1002", "idle", since)
        call = await stored(srv, out["call_id"])
        assert (call["direction"], call["caller_number"], call["end_reason"]) == (
            "outbound", "1003", "customer_hangup")
        assert [(x["agent_id"], x["role"]) for x in call["legs"]] == [("1002", "outbound")]
    finally:
        await agents.close()


async def test_refused_actions_leave_the_call_and_both_agents_as_they_were(
        control_server, ctl_agents, ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002")
    await agents.phone("1002", answer="auto")
    caller = await connected_call(srv, agents, ami)
    srv.runtime.set_state("1002", "break", "coffee")
    before = frozen(srv)
    m = mark(ami)
    for action, kw, error in (("resume", {}, "call.control_illegal"),
                              ("complete_consult", {}, "call.control_illegal"),
                              ("cancel_transfer", {}, "call.control_illegal"),
                              ("transfer", {"to_agent": "1002"}, "agent.target_unavailable"),
                              ("consult", {"to_agent": "1001"}, "agent.target_is_self"),
                              ("transfer", {"to_group": "closed"}, "call.group_closed"),
                              ("consult", {"to_group": "ctlxfer"}, "call.no_agent_available")):
        with pytest.raises(AcdError) as err:
            getattr(srv.runtime, action)("1001", **kw)
        assert err.value.id == error, (action, err.value.message)
    with pytest.raises(AcdError) as err:
        srv.runtime.hold("1002")                          # has no call
    assert err.value.id == "agent.no_call"
    await srv.runtime.quiesce()
    assert frozen(srv) == before
    # Nothing was sent to Asterisk: no move of the caller, no ring of 1002.
    assert not [e for e in ami.events.events[m:] if e.name in ("BridgeLeave", "Newchannel",
                                                               "MusicOnHoldStart", "Hangup")]
    # The call goes on as before: the same two talk, and it can still be held.
    srv.runtime.hold("1001")
    await moh_started(ami, caller, m)
    await caller_hangs_up(agents, caller, "1001")
    call = await stored(srv, caller.uniqueid)
    assert call["end_reason"] == "caller_hangup" and "transfer_started" not in kinds(call)
