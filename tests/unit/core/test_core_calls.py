"""Call flows: no answer, overflow, closed, callbacks, pending states, reachability, restore,
announcements, late events, the call table and the timeline."""
from __future__ import annotations

import itertools

import pytest

from acd.core import (Acd, Announce, BridgeCall, CallbackSettings, CancelRing, CancelTimer,
                      Destination, DialCustomer, GroupConfig, IllegalCallTransition,
                      Notify, RecordCallEvent, RingAgent, RingAgentForCallback, SendToDestination,
                      WidenStep)
from acd.core.calls import TABLE, CallEvent, CallState, EndReason, Move, next_state
from acd.core.errors import AcdError


def of(out, kind):
    return [d for d in out if isinstance(d, kind)]


def agent_of(sim, agent):
    return sim.core.snapshot_agents(sim.now)[agent]


def info(sim, call):
    return sim.core.call_info(call)


def kinds(sim, call):
    return [r["kind"] for r in info(sim, call)["timeline"]]


def positions(sim, group="g"):
    return [c["call_id"] for c in sim.core.snapshot_queues(sim.now)[group]["calls"]]


# --- no answer --------------------------------------------------------------------------------

def test_no_answer_agent_to_break_caller_keeps_place_and_rings_next(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1}, ring_timeout=10)])
    sim.login("a", at=0)
    sim.login("b", at=1)
    sim.do("set_agent_state", "b", "busy", at=2)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=10)) == [("k1", "a")]
    assert rings(sim.do("call_arrived", "k2", "222", "g", at=11)) == []
    out = sim.advance(20)
    assert CancelRing("k1", "a") in out
    a = agent_of(sim, "a")
    assert (a["state"], a["reason"], a["unavailable_reason"]) == ("break", "no answer",
                                                                 "break: no answer")
    assert positions(sim) == ["k1", "k2"]                       # k1 kept its place
    assert rings(sim.do("set_agent_state", "b", "idle", at=25)) == [("k1", "b")]
    assert kinds(sim, "k1") == ["arrived", "queued", "offered", "no_answer", "offered"]


def test_no_answer_without_break_does_not_re_offer_at_once(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, ring_timeout=10, no_answer_break=False,
                                retry_seconds=5)])
    sim.login("a", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=1)) == [("k1", "a")]
    assert rings(sim.advance(11)) == []
    assert agent_of(sim, "a")["state"] == "idle"
    assert not sim.core.is_eligible("k1", "a")
    assert rings(sim.advance(16)) == [("k1", "a")]               # retry_seconds later


def test_ring_failed_counts_as_no_answer_with_its_cause(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", "b", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=1)) == [("k1", "a")]
    out = sim.do("ring_failed", "k1", "a", "BUSY", at=2)
    assert rings(out) == [("k1", "b")]
    assert not of(out, CancelRing)                              # the ring is already over
    assert (agent_of(sim, "a")["state"], agent_of(sim, "a")["reason"]) == (
        "break", "ring failed: busy")


def test_a_ring_asterisk_never_answered_is_no_fault_of_the_agent(make_sim, rings):
    """Under overload the ring's AMI request times out: the agent is not sent to break
    (breaks for every such ring left nobody to serve the callers once the load passed);
    the caller goes to the next agent, and back to this one after retry_seconds."""
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", "b", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=1)) == [("k1", "a")]
    out = sim.do("ring_failed", "k1", "a", "asterisk_unanswered", at=2)
    assert rings(out) == [("k1", "b")]
    assert agent_of(sim, "a")["state"] == "idle"
    out = sim.do("ring_failed", "k1", "b", "BUSY", at=3)
    assert agent_of(sim, "b")["state"] == "break"               # a busy phone still counts


def test_no_offers_while_held_then_queue_order_once_released(make_sim, rings):
    """The link to Asterisk is down: a ring could only fail and send the caller from agent
    to agent. Offers are held (callers still queue, timers still fire, the ring under way
    ends without a cascade); released, the waiting calls go out in queue order."""
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1}, max_wait=60,
                                max_wait_destination=Destination.voicemail("100"))])
    sim.login("a", "b", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=1)) == [("k1", "a")]
    assert sim.do("hold_offers", True, at=2) == [] and sim.core.offers_held
    assert rings(sim.do("ring_failed", "k1", "a", "asterisk_unanswered", at=3)) == []
    assert rings(sim.do("call_arrived", "k2", "222", "g", at=4)) == []
    assert rings(sim.do("call_arrived", "k3", "333", "g", at=5)) == []
    assert [info(sim, k)["state"] for k in ("k1", "k2", "k3")] == ["waiting"] * 3
    assert of(sim.advance(61.5), SendToDestination)         # k1's maximum wait still counts
    out = rings(sim.do("hold_offers", False, at=62))
    assert [c for c, _ in out] == ["k2", "k3"] and {a for _, a in out} == {"a", "b"}
    assert not sim.core.offers_held


def test_caller_hangup_while_ringing_returns_agent_to_their_idle_place(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", at=0)
    sim.login("b", at=1)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=5)) == [("k1", "a")]
    out = sim.do("caller_hung_up", "k1", at=6)
    assert CancelRing("k1", "a") in out
    assert info(sim, "k1")["end_reason"] == "abandoned"
    assert rings(sim.do("call_arrived", "k2", "222", "g", at=7)) == [("k2", "a")]


# --- overflow ---------------------------------------------------------------------------------

def test_overflow_by_wait_time(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, max_wait=60,
                                max_wait_destination=Destination.voicemail("100"))])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    assert not of(sim.advance(59.9), SendToDestination)
    out = sim.advance(60)
    assert of(out, SendToDestination) == [
        SendToDestination("k1", Destination.voicemail("100"), "max_wait")]
    assert info(sim, "k1")["end_reason"] == "overflow"
    q = sim.core.snapshot_queues(60)["g"]
    assert (q["overflowed"], q["abandoned"], q["waiting"]) == (1, 0, 0)


def test_max_wait_reached_while_ringing_overflows_when_the_ring_ends(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, ring_timeout=30, max_wait=20,
                                max_wait_destination=Destination.ivr("sorry"))])
    sim.login("a", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=0)) == [("k1", "a")]
    assert not of(sim.advance(25), SendToDestination)
    out = sim.advance(30)
    assert of(out, SendToDestination) == [
        SendToDestination("k1", Destination.ivr("sorry"), "max_wait")]


def test_overflow_by_queue_length(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, max_queue_length=2,
                                queue_full_destination=Destination.ivr("full"))])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    sim.do("call_arrived", "k2", "222", "g", at=1)
    out = sim.do("call_arrived", "k3", "333", "g", at=2)
    assert of(out, SendToDestination) == [
        SendToDestination("k3", Destination.ivr("full"), "queue_full")]
    assert info(sim, "k3")["end_reason"] == "overflow"
    sim.do("caller_hung_up", "k1", at=3)
    assert not of(sim.do("call_arrived", "k4", "444", "g", at=4), SendToDestination)
    assert positions(sim) == ["k2", "k4"]


def test_an_overloaded_server_sends_new_callers_to_the_overload_destination(make_sim, rings):
    """Past what the server can serve, a new caller gets the group's overload destination (a
    message by default) and no place in the queue; callers already waiting keep theirs, and
    new ones are queued again once the overload is over."""
    sim = make_sim([GroupConfig("g", members={"a": 1}),
                    GroupConfig("h", members={"a": 1},
                                overload_destination=Destination.callback(),
                                callback=CallbackSettings())])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    out = sim.do("call_arrived", "k2", "222", "g", at=1, overloaded=True)
    assert of(out, SendToDestination) == [
        SendToDestination("k2", Destination.hangup("all-circuits-busy-now"), "overload")]
    assert info(sim, "k2")["end_reason"] == "overflow"
    assert kinds(sim, "k2")[-2:] == ["sent", "ended"]
    out = sim.do("call_arrived", "k3", "333", "h", at=2, overloaded=True)   # a callback offer
    assert of(out, SendToDestination) == [SendToDestination("k3", Destination.callback(),
                                                            "overload")]
    assert info(sim, "k3")["state"] == "callback_waiting"
    sim.do("call_arrived", "k4", "444", "g", at=3)
    assert positions(sim) == ["k1", "k4"]
    assert sim.core.snapshot_queues(60)["g"]["overflowed"] == 1


def test_overflow_to_another_group_moves_the_call_inside_the_core(make_sim, rings):
    sim = make_sim([GroupConfig("g1", members={"a": 1}, max_wait=30,
                                max_wait_destination=Destination.group("g2")),
                    GroupConfig("g2", members={"x": 1})])
    sim.login("x", at=0)
    sim.do("call_arrived", "k1", "111", "g1", at=0)
    out = sim.advance(30)
    assert not of(out, SendToDestination)
    assert rings(out) == [("k1", "x")]
    assert of(out, RingAgent)[0].group == "g2"
    assert info(sim, "k1")["group"] == "g2"
    q = sim.core.snapshot_queues(30)
    assert (q["g1"]["overflowed"], q["g1"]["offered"], q["g2"]["offered"]) == (1, 1, 1)


def test_widen_to_lower_skill_levels_after_n_seconds(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 5, "b": 1}, min_level=5,
                                widen=(WidenStep(after=20, min_level=1),))])
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "a", "busy", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=1)) == []
    assert rings(sim.advance(20.9)) == []
    assert rings(sim.advance(21)) == [("k1", "b")]
    assert "widened" in kinds(sim, "k1")


def test_widen_to_other_groups_keeps_queue_order_there(make_sim, rings):
    sim = make_sim([GroupConfig("g1", members={"a": 1},
                                widen=(WidenStep(after=15, groups=("g2",)),)),
                    GroupConfig("g2", members={"x": 1})])
    sim.login("a", "x", at=0)
    sim.do("set_agent_state", "a", "busy", at=0)
    sim.do("set_agent_state", "x", "busy", at=0)
    sim.do("call_arrived", "k1", "111", "g1", at=0)
    sim.do("call_arrived", "m1", "222", "g2", at=5)
    sim.advance(15)
    assert sim.core.is_eligible("k1", "x")
    out = sim.do("set_agent_state", "x", "idle", at=20)
    assert rings(out) == [("k1", "x")]                  # k1 waited longer than g2's m1
    assert of(out, RingAgent)[0].group == "g1"
    assert info(sim, "k1")["timeline"][-1]["detail"] == "via g2"


def test_closed_destination_and_reopening(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1},
                                closed_destination=Destination.ivr("closed-msg"))])
    sim.login("a", at=0)
    sim.do("set_group_open", "g", False, at=1)
    out = sim.do("call_arrived", "k1", "111", "g", at=2)
    assert of(out, SendToDestination) == [
        SendToDestination("k1", Destination.ivr("closed-msg"), "closed")]
    assert rings(out) == []
    assert info(sim, "k1")["end_reason"] == "closed"
    q = sim.core.snapshot_queues(2)["g"]
    assert (q["closed"], q["offered"], q["open"]) == (1, 0, False)
    sim.do("set_group_open", "g", True, at=3)
    assert rings(sim.do("call_arrived", "k2", "222", "g", at=4)) == [("k2", "a")]


def test_closed_group_still_serves_callers_already_waiting(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1})])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    sim.do("set_group_open", "g", False, at=1)
    assert rings(sim.do("agent_login", "a", "PJSIP/a", at=2)) == [("k1", "a")]


def test_no_agents_destination(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1},
                                no_agents_destination=Destination.voicemail("9"))])
    out = sim.do("call_arrived", "k1", "111", "g", at=0)
    assert of(out, SendToDestination) == [
        SendToDestination("k1", Destination.voicemail("9"), "no_agents")]
    assert info(sim, "k1")["end_reason"] == "no_agents"
    sim.login("a", at=1)
    sim.do("set_agent_state", "a", "break", at=1)       # logged in: callers wait
    assert not of(sim.do("call_arrived", "k2", "222", "g", at=2), SendToDestination)


# --- callbacks --------------------------------------------------------------------------------

CB = CallbackSettings(attempts=2, gap=60, expiry=600, dial_timeout=20)


def test_callback_keeps_place_rings_agent_then_dials_customer(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CB)])
    sim.login("a", at=0)
    sim.do("set_agent_state", "a", "busy", at=0)
    for i, t in enumerate((1, 2, 3), start=1):
        sim.do("call_arrived", f"k{i}", f"55{i}", "g", at=t)
    sim.do("callback_requested", "k2", "0301234", at=5)
    assert info(sim, "k2")["state"] == "callback_waiting"
    assert sim.do("caller_hung_up", "k2", at=6) == []          # the caller's leg goes away
    assert positions(sim) == ["k1", "k2", "k3"]
    assert rings(sim.do("set_agent_state", "a", "idle", at=10)) == [("k1", "a")]
    sim.do("agent_answered", "k1", "a", at=11)
    out = sim.do("caller_hung_up", "k1", at=20)
    assert of(out, RingAgentForCallback) == [
        RingAgentForCallback("k2", "a", "PJSIP/a", "g", 15.0, "0301234")]
    out = sim.do("agent_answered", "k2", "a", at=21)
    assert of(out, DialCustomer) == [DialCustomer("k2", "a", "0301234", 20)]
    assert not of(out, BridgeCall)
    out = sim.do("customer_answered", "k2", at=25)
    assert of(out, BridgeCall) == [BridgeCall("k2", "a")]
    out = sim.do("agent_hung_up", "k2", "a", at=60)
    assert rings(out) == [("k3", "a")]
    assert info(sim, "k2")["end_reason"] == "agent_hangup"
    q = sim.core.snapshot_queues(60)["g"]
    assert (q["abandoned"], q["callbacks_requested"], q["answered"]) == (0, 1, 2)
    assert kinds(sim, "k2") == ["arrived", "queued", "callback_requested", "offered",
                                "dialing", "answered", "ended", "wrapup", "wrapup_ended"]


def test_callback_attempts_and_gap(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CB)])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    sim.do("callback_requested", "k1", "999", at=1)
    assert rings(sim.do("agent_login", "a", "PJSIP/a", at=2)) == [("k1", "a")]
    sim.do("agent_answered", "k1", "a", at=3)
    out = sim.do("customer_dial_failed", "k1", "no_answer", at=10)
    assert CancelRing("k1", "a") in out
    assert rings(out) == []
    assert info(sim, "k1")["state"] == "callback_retry"
    assert agent_of(sim, "a")["state"] == "idle"
    assert rings(sim.advance(69)) == []
    assert rings(sim.advance(70)) == [("k1", "a")]             # gap over: same place
    out = sim.do("agent_answered", "k1", "a", at=71)
    assert of(out, DialCustomer)[0].number == "999"
    sim.do("customer_dial_failed", "k1", "busy", at=80)
    assert info(sim, "k1")["end_reason"] == "callback_failed"
    q = sim.core.snapshot_queues(80)["g"]
    assert (q["abandoned"], q["callbacks_failed"]) == (0, 1)


def test_callback_expiry(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CB)])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    sim.do("callback_requested", "k1", "999", at=10)
    sim.advance(609)
    assert info(sim, "k1")["state"] == "callback_waiting"
    sim.advance(610)
    assert info(sim, "k1")["end_reason"] == "callback_expired"
    q = sim.core.snapshot_queues(610)["g"]
    assert (q["abandoned"], q["callbacks_expired"], q["callbacks"]) == (0, 1, 0)


def test_callback_expiry_during_an_attempt_ends_it_when_the_attempt_fails(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1},
                                callback=CallbackSettings(attempts=5, gap=1, expiry=100))])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    sim.do("callback_requested", "k1", "999", at=0)
    sim.login("a", at=90)
    sim.do("agent_answered", "k1", "a", at=95)
    sim.advance(100)
    assert info(sim, "k1")["state"] == "callback_dialing"
    sim.do("customer_dial_failed", "k1", "busy", at=101)
    assert info(sim, "k1")["end_reason"] == "callback_expired"


def test_callback_requested_while_ringing_cancels_the_ring(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CB)])
    sim.login("a", at=0)
    sim.do("call_arrived", "k0", "000", "g", at=0)
    out = sim.do("callback_requested", "k0", "999", at=1)
    assert CancelRing("k0", "a") in out
    assert of(out, RingAgentForCallback) == [
        RingAgentForCallback("k0", "a", "PJSIP/a", "g", 15.0, "999")]


def test_callback_as_overflow_destination(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CB, max_wait=30,
                                max_wait_destination=Destination.callback())])
    sim.do("call_arrived", "k1", "0307777", "g", at=0)
    out = sim.advance(30)
    assert of(out, SendToDestination) == [
        SendToDestination("k1", Destination.callback(), "max_wait")]
    c = info(sim, "k1")
    assert (c["state"], c["callback"]["number"], c["end_reason"]) == (
        "callback_waiting", "0307777", None)


def test_callback_refused_when_group_has_none_or_call_is_connected(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}),
                    GroupConfig("h", members={"a": 1}, callback=CB)])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    with pytest.raises(AcdError) as exc:
        sim.do("callback_requested", "k1", "999", at=1)
    assert exc.value.id == "call.callback_disabled"
    sim.login("a", at=2)
    sim.do("agent_answered", "k1", "a", at=3)
    sim.do("call_arrived", "k2", "222", "h", at=4)
    with pytest.raises(AcdError) as exc:
        sim.do("callback_requested", "k2", "", at=5)
    assert exc.value.id == "call.callback_number_missing"
    sim.do("caller_hung_up", "k1", at=6)
    sim.do("agent_answered", "k2", "a", at=7)
    with pytest.raises(IllegalCallTransition) as exc:
        sim.do("callback_requested", "k2", "999", at=8)
    assert (exc.value.state, exc.value.event) == ("connected", "callback_request")
    assert "'connected'" in exc.value.message and "'callback_request'" in exc.value.message


# --- agent states around calls ----------------------------------------------------------------

def test_state_asked_during_a_call_applies_after_wrapup(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, wrapup_seconds=30)])
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    sim.do("set_agent_state", "a", "break", reason="lunch", at=3)
    a = agent_of(sim, "a")
    assert (a["state"], a["pending"], a["pending_reason"]) == ("talking", "break", "lunch")
    sim.do("caller_hung_up", "k1", at=10)
    assert (agent_of(sim, "a")["state"], agent_of(sim, "a")["pending"]) == ("wrapup", "break")
    sim.do("call_arrived", "k2", "222", "g", at=11)
    sim.advance(39.9)
    assert agent_of(sim, "a")["state"] == "wrapup"
    assert rings(sim.advance(40)) == []                        # break, not idle
    a = agent_of(sim, "a")
    assert (a["state"], a["reason"], a["pending"]) == ("break", "lunch", None)


def test_wrapup_ended_early(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, wrapup_seconds=30)])
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    sim.do("agent_hung_up", "k1", "a", at=10)
    sim.do("call_arrived", "k2", "222", "g", at=11)
    out = sim.do("end_wrapup", "a", at=12)
    assert CancelTimer("wrapup:a") in out
    assert rings(out) == [("k2", "a")]
    assert "wrapup:a" not in sim.core.timers()


def test_logout_during_a_call_is_pending(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1})])
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_logout", "a", at=2)                          # while ringing
    assert agent_of(sim, "a")["pending"] == "offline"
    sim.do("agent_answered", "k1", "a", at=3)
    sim.do("caller_hung_up", "k1", at=4)
    a = agent_of(sim, "a")
    assert (a["state"], a["endpoint"]) == ("offline", None)
    sim.login("a", at=5)                                       # endpoint free again


def test_pending_state_beats_the_no_answer_break(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, ring_timeout=5)])
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("set_agent_state", "a", "meeting", reason="team", at=2)
    sim.advance(6)
    a = agent_of(sim, "a")
    assert (a["state"], a["reason"]) == ("meeting", "team")


def test_unreachable_phone_gets_no_calls(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", at=0)
    sim.login("b", at=1)
    sim.do("contact_status", "PJSIP/a", False, at=2)
    a = agent_of(sim, "a")
    assert (a["state"], a["reachable"], a["available"], a["unavailable_reason"]) == (
        "idle", False, False, "phone unreachable")
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=3)) == [("k1", "b")]
    assert rings(sim.do("call_arrived", "k2", "222", "g", at=4)) == []
    assert rings(sim.do("contact_status", "PJSIP/a", True, at=5)) == [("k2", "a")]


def test_phone_in_use_gets_no_calls_until_free(make_sim, rings):
    """As app_queue's ringinuse=no: an idle agent whose phone has a channel up (a call of
    ours still hanging up, or their own call) is not offered calls."""
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", at=0)
    sim.login("b", at=1)
    out = sim.do("phone_in_use", "PJSIP/a", True, at=2)
    assert [n.payload["phone_in_use"] for n in of(out, Notify) if n.agent_id == "a"] == [True]
    a = agent_of(sim, "a")
    assert (a["state"], a["phone_in_use"], a["available"], a["unavailable_reason"]) == (
        "idle", True, False, "phone in use")
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=3)) == [("k1", "b")]
    assert rings(sim.do("call_arrived", "k2", "222", "g", at=4)) == []
    assert rings(sim.do("phone_in_use", "PJSIP/a", True, at=5)) == []      # no change
    assert rings(sim.do("phone_in_use", "PJSIP/a", False, at=6)) == [("k2", "a")]
    assert agent_of(sim, "a")["phone_in_use"] is False
    # The phone of an agent who is not logged in: remembered for the login.
    sim.do("agent_logout", "b", at=7)
    sim.do("phone_in_use", "PJSIP/b", True, at=8)
    sim.do("caller_hung_up", "k1", at=9)
    sim.login("b", at=10)
    assert rings(sim.do("call_arrived", "k3", "333", "g", at=11)) == []
    assert rings(sim.do("phone_in_use", "PJSIP/b", False, at=12)) == [("k3", "b")]


def test_unreachable_before_login(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1})])
    sim.do("contact_status", "PJSIP/a", False, at=0)
    sim.login("a", at=1)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=2)) == []
    assert agent_of(sim, "a")["unavailable_reason"] == "phone unreachable"


# --- restore ----------------------------------------------------------------------------------

def test_restore_keeps_the_original_order(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1, "c": 1}, wrapup_seconds=10)])
    core = sim.core
    sim.absorb(core.restore_agent("a", "PJSIP/a", "idle", since=50))
    sim.absorb(core.restore_agent("b", "PJSIP/b", "break", since=60, reason="lunch"))
    sim.absorb(core.restore_agent("c", "PJSIP/c", "idle", since=70))
    sim.absorb(core.restore_connected_call("kc", "c", "g", 100, caller_number="777",
                                           answered_at=80, entered_at=70))
    # restored in a shuffled order; the entry times and priorities decide
    for call, entered, prio in (("k3", 30, 0), ("k1", 10, 0), ("k0", 40, 5), ("k2", 20, 0)):
        out = core.restore_waiting_call(call, f"n{call}", "g", prio, entered, 100)
        assert rings(sim.absorb(out)) == []
    sim.now = 100
    assert positions(sim) == ["k0", "k1", "k2", "k3"]
    assert rings(sim.do("resume")) == [("k0", "a")]
    assert rings(sim.do("set_agent_state", "b", "idle", at=101)) == [("k1", "b")]
    assert agent_of(sim, "c")["state"] == "talking"
    sim.do("caller_hung_up", "kc", at=102)
    assert info(sim, "kc")["end_reason"] == "caller_hangup"
    assert rings(sim.advance(112)) == [("k2", "c")]            # after c's wrap-up


def test_restore_waiting_callback_and_wrapup(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CB)])
    core = sim.core
    sim.absorb(core.restore_agent("a", "PJSIP/a", "wrapup", since=90, wrapup_until=105,
                                  pending="break", pending_reason="lunch"))
    sim.absorb(core.restore_waiting_call("k1", "111", "g", 0, 10, 100, callback_number="999",
                                         callback_requested_at=20))
    sim.now = 100
    sim.do("resume")
    assert info(sim, "k1")["state"] == "callback_waiting"
    sim.advance(105)
    assert agent_of(sim, "a")["state"] == "break"
    assert rings(sim.do("set_agent_state", "a", "idle", at=106)) == [("k1", "a")]
    assert sim.timers["cbexpire:k1"] == 20 + CB.expiry


def test_restore_refusals(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1})])
    with pytest.raises(AcdError) as exc:
        sim.core.restore_connected_call("k1", "a", "g", 0)
    assert exc.value.id == "core.restore_invalid"
    with pytest.raises(AcdError):
        sim.core.restore_agent("a", "PJSIP/a", "talking", since=0)
    with pytest.raises(AcdError):
        sim.core.restore_agent("a", "PJSIP/a", "wrapup", since=0)
    sim.core.restore_agent("a", "PJSIP/a", "idle", since=0)
    with pytest.raises(AcdError):
        sim.core.restore_agent("a", "PJSIP/a", "idle", since=0)


# --- announcements ----------------------------------------------------------------------------

def test_position_and_estimated_wait_announcements(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1}, announce_every=30,
                                expected_handle_time=60)])
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "b", "busy", at=0)
    sim.do("call_arrived", "k0", "000", "g", at=0)
    sim.do("agent_answered", "k0", "a", at=0)                  # one working agent
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("call_arrived", "k2", "222", "g", at=2)
    out = sim.advance(32)
    assert of(out, Announce) == [Announce("k1", 1, 60.0), Announce("k2", 2, 120.0)]
    sim.do("caller_hung_up", "k1", at=40)
    assert of(sim.advance(62), Announce) == [Announce("k2", 1, 60.0)]


def test_announcement_parts_can_be_switched_off(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1}, announce_every=10,
                                announce_estimated_wait=False)])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    assert of(sim.advance(10), Announce) == [Announce("k1", 1, None)]


# --- late, repeated and wrong events ----------------------------------------------------------

def test_late_and_unknown_events(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1}, ring_timeout=10)])
    sim.login("a", "b", at=0)
    assert rings(sim.do("call_arrived", "k1", "111", "g", at=1)) == [("k1", "a")]
    assert sim.do("agent_answered", "k1", "b", at=2) == [CancelRing("k1", "b")]
    sim.do("caller_hung_up", "k1", at=3)
    assert sim.do("agent_answered", "k1", "a", at=3.1) == [CancelRing("k1", "a")]
    assert sim.do("caller_hung_up", "k1", at=4) == []
    assert sim.do("agent_hung_up", "k1", "a", at=4) == []
    assert sim.do("ring_failed", "k1", "a", "busy", at=4) == []
    assert sim.core.timer_fired("ring:k1", 5) == []
    assert sim.core.timer_fired("nonsense", 5) == []
    with pytest.raises(AcdError) as exc:
        sim.do("caller_hung_up", "nope", at=5)
    assert exc.value.id == "call.unknown"
    with pytest.raises(AcdError) as exc:
        sim.do("call_arrived", "k1", "111", "g", at=5)
    assert exc.value.id == "call.duplicate"
    with pytest.raises(AcdError) as exc:
        sim.do("call_arrived", "k9", "111", "nope", at=5)
    assert exc.value.id == "group.unknown"
    # answered twice: the second is ignored
    sim.do("call_arrived", "k2", "222", "g", at=6)
    assert of(sim.do("agent_answered", "k2", "a", at=7), BridgeCall)
    assert sim.do("agent_answered", "k2", "a", at=7) == []


def test_answered_call_timeline_has_exactly_one_end(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, wrapup_seconds=5)])
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1, key_trail="12", verification="pin_ok")
    sim.do("agent_ringing", "k1", "a", at=1.5)
    sim.do("agent_answered", "k1", "a", at=3)
    sim.do("caller_hung_up", "k1", at=60)
    sim.advance(65)
    timeline = info(sim, "k1")["timeline"]
    assert [r["kind"] for r in timeline] == ["arrived", "queued", "offered", "ringing",
                                             "answered", "ended", "wrapup", "wrapup_ended"]
    assert [r["at"] for r in timeline] == [1, 1, 1, 1.5, 3, 60, 60, 65]
    assert [r["end_reason"] for r in timeline if r["end_reason"]] == ["caller_hangup"]
    stored = [d.record.kind.value for d in sim.log
              if isinstance(d, RecordCallEvent) and d.call_id == "k1"]
    assert stored == [r["kind"] for r in timeline]
    assert info(sim, "k1")["key_trail"] == ["1", "2"]
    q = sim.core.snapshot_queues(65)["g"]
    assert (q["offered"], q["answered"], q["answered_within_sl"], q["service_level"]) == (
        1, 1, 1, 1.0)


def test_service_level_counts_late_answers_and_abandons(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1}, service_level_seconds=20)])
    sim.do("call_arrived", "k1", "111", "g", at=0)
    sim.do("call_arrived", "k2", "222", "g", at=0)
    sim.do("caller_hung_up", "k2", at=5)
    sim.login("a", at=30)
    sim.do("agent_answered", "k1", "a", at=31)
    q = sim.core.snapshot_queues(31)["g"]
    assert (q["offered"], q["answered"], q["answered_within_sl"], q["abandoned"],
            q["service_level"]) == (2, 1, 0, 1, 0.0)
    sim.core.reset_stats()
    assert sim.core.snapshot_queues(31)["g"]["offered"] == 0


# --- the call table ---------------------------------------------------------------------------

C, V, R = CallState, CallEvent, EndReason
LEGAL = {
    (C.NEW, V.QUEUE): Move(C.WAITING),
    (C.NEW, V.SEND_CLOSED): Move(C.ENDED, R.CLOSED),
    (C.NEW, V.SEND_NO_AGENTS): Move(C.ENDED, R.NO_AGENTS),
    (C.NEW, V.SEND_OVERFLOW): Move(C.ENDED, R.OVERFLOW),
    (C.NEW, V.RESTORE_CONNECTED): Move(C.CONNECTED),
    (C.NEW, V.LOST): Move(C.ENDED, R.LOST),
    (C.WAITING, V.QUEUE): Move(C.WAITING),
    (C.WAITING, V.OFFER): Move(C.RINGING),
    (C.WAITING, V.CALLBACK_REQUEST): Move(C.CALLBACK_WAITING),
    (C.WAITING, V.CALLER_HANGUP): Move(C.ENDED, R.ABANDONED),
    (C.WAITING, V.SEND_CLOSED): Move(C.ENDED, R.CLOSED),
    (C.WAITING, V.SEND_NO_AGENTS): Move(C.ENDED, R.NO_AGENTS),
    (C.WAITING, V.SEND_OVERFLOW): Move(C.ENDED, R.OVERFLOW),
    (C.WAITING, V.LOST): Move(C.ENDED, R.LOST),
    (C.RINGING, V.ANSWER): Move(C.CONNECTED),
    (C.RINGING, V.RING_RETURNED): Move(C.WAITING),
    (C.RINGING, V.CALLBACK_REQUEST): Move(C.CALLBACK_WAITING),
    (C.RINGING, V.CALLER_HANGUP): Move(C.ENDED, R.ABANDONED),
    (C.RINGING, V.LOST): Move(C.ENDED, R.LOST),
    (C.CONNECTED, V.CALLER_HANGUP): Move(C.ENDED, R.CALLER_HANGUP),
    (C.CONNECTED, V.AGENT_HANGUP): Move(C.ENDED, R.AGENT_HANGUP),
    (C.CONNECTED, V.LOST): Move(C.ENDED, R.LOST),
    (C.CALLBACK_WAITING, V.OFFER): Move(C.CALLBACK_RINGING),
    (C.CALLBACK_WAITING, V.EXPIRE): Move(C.ENDED, R.CALLBACK_EXPIRED),
    (C.CALLBACK_RINGING, V.ANSWER): Move(C.CALLBACK_DIALING),
    (C.CALLBACK_RINGING, V.RING_RETURNED): Move(C.CALLBACK_WAITING),
    (C.CALLBACK_DIALING, V.CUSTOMER_ANSWER): Move(C.CONNECTED),
    (C.CALLBACK_DIALING, V.DIAL_FAILED): Move(C.CALLBACK_RETRY),
    (C.CALLBACK_DIALING, V.GIVE_UP): Move(C.ENDED, R.CALLBACK_FAILED),
    (C.CALLBACK_DIALING, V.EXPIRE): Move(C.ENDED, R.CALLBACK_EXPIRED),
    (C.CALLBACK_RETRY, V.RETRY_DUE): Move(C.CALLBACK_WAITING),
    (C.CALLBACK_RETRY, V.EXPIRE): Move(C.ENDED, R.CALLBACK_EXPIRED),
}
ILLEGAL = [(s, e) for s, e in itertools.product(C, V) if (s, e) not in LEGAL]


def test_call_table_is_the_specification():
    assert TABLE == LEGAL
    # every way to end names exactly one reason; every reason is reachable
    assert {m.end_reason for m in TABLE.values() if m.target is C.ENDED} == set(R)
    assert all((m.end_reason is None) == (m.target is not C.ENDED) for m in TABLE.values())


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=[f"{s}-{e}" for s, e in ILLEGAL])
def test_illegal_call_moves_name_state_and_event(state, event):
    with pytest.raises(IllegalCallTransition) as exc:
        next_state("k1", state, event)
    assert exc.value.id == "call.illegal_transition"
    assert (exc.value.state, exc.value.event) == (state.value, event.value)
    assert repr(state.value) in exc.value.message and repr(event.value) in exc.value.message


# --- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("groups", [
    [GroupConfig("a", closed_destination=Destination.group("b")),
     GroupConfig("b", max_wait_destination=Destination.group("a"))],
    [GroupConfig("a", widen=(WidenStep(10, groups=("zz",)),))],
    [GroupConfig("a", max_wait_destination=Destination.callback())],
    [GroupConfig("a", max_wait_destination=Destination.ivr(""))],
    [GroupConfig("a", members={"x": -1})],
    [GroupConfig("a", ring_timeout=0)],
    [GroupConfig("a"), GroupConfig("a")],
    [GroupConfig("a", widen=(WidenStep(20), WidenStep(10)))],
])
def test_bad_configuration_is_refused(groups):
    with pytest.raises(AcdError) as exc:
        Acd(groups)
    assert exc.value.id == "core.config_invalid"


def test_overflow_chains_without_loops_are_fine():
    Acd([GroupConfig("a", closed_destination=Destination.group("b")),
         GroupConfig("b", closed_destination=Destination.group("c")),
         GroupConfig("c", max_wait_destination=Destination.ivr("sorry"))])


# --- the offer is the decision's time -----------------------------------------------------------

def test_a_caller_who_entered_earlier_keeps_the_place_but_is_offered_now(make_sim, rings):
    """The queue script may register a caller a moment after they entered the queue (the
    channel's entry time): the place, the queue record and the maximum wait count from the
    entry; the offer and its ring timer from the decision."""
    sim = make_sim([GroupConfig("g", members={"a": 1}, ring_timeout=10, max_wait=60)])
    sim.login("a")
    out = sim.do("call_arrived", "c1", "100", "g", at=5.0, entered_at=3.1)
    assert rings(out) == [("c1", "a")]
    timeline = {r["kind"]: r["at"] for r in info(sim, "c1")["timeline"]}
    assert (timeline["arrived"], timeline["queued"], timeline["offered"]) == (3.1, 3.1, 5.0)
    assert sim.timers["ring:c1"] == 5.0 + 10             # not 3.1 + 10
    assert sim.timers["maxwait:c1"] == 3.1 + 60
    assert info(sim, "c1")["entered_at"] == 3.1
    # An entry time later than now (a clock step) counts as now.
    sim.do("call_arrived", "c2", "100", "g", at=6.0, entered_at=9.0)
    assert info(sim, "c2")["entered_at"] == 6.0


def test_the_ring_shows_the_caller_id_as_it_came_even_when_it_is_no_number():
    """Bug: a caller id that is not a dialable number ("anonymous", a SIP user) was left out
    of the ring message, so the agent's tab read "unknown" until the pop loaded. It is data:
    sent as text; the core still keeps only a dialable number for callbacks and routing."""
    core = Acd([GroupConfig("g", members={"a": 1})])
    core.agent_login("a", "PJSIP/a", 0.0)
    out = core.call_arrived("k1", "", "g", 1.0, caller_text="anonymous <b>")
    [ring] = [n for n in of(out, Notify) if n.event == "ring"]
    assert ring.payload["caller_number"] == "anonymous <b>"
    assert core.call_info("k1")["caller_number"] == ""
    out = core.call_arrived("k2", "5551234", "g", 2.0)
    assert info_number(core, "k2") == "5551234"


def info_number(core, call):
    return core.call_info(call)["caller_number"]


def test_the_core_keeps_the_last_ended_calls_it_was_told_to(make_sim):
    """core.ended_calls_kept: the newest ended calls stay known (late events, look-ups); older
    ones are forgotten (the store has them), so the core's memory is bounded."""
    sim = make_sim([GroupConfig("g", members={"a": 1})], keep_ended=2)
    for i, at in enumerate((5, 6, 7)):
        sim.do("call_arrived", f"k{i}", "111", "g", at=at)
        sim.do("caller_hung_up", f"k{i}", at=at + 0.5)
    assert sim.core.call_state("k0") is None
    with pytest.raises(AcdError):
        sim.core.call_info("k0")
    assert [info(sim, k)["end_reason"] for k in ("k1", "k2")] == ["abandoned", "abandoned"]
