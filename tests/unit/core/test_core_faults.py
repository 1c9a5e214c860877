"""Faults at the core: Asterisk lost every channel (channels_lost), an agent's phone died
(phone_lost)."""
from __future__ import annotations

from acd.core import (BridgeCall, CallbackSettings, CancelRing, DropLeg, GroupConfig,
                      RequeueCaller, RingAgentForCallback)
from acd.core.calls import TABLE, CallEvent, CallState, EndReason
from acd.core.transfers import TRANSFER_PRIORITY_BOOST
from tests.unit.core.test_core_calls import agent_of, info, kinds, positions


def three_calls(sim):
    """k1 connected to a, k2 ringing b, k3 waiting."""
    sim.login("a", "b", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    sim.do("call_arrived", "k2", "222", "g", at=3)
    sim.do("call_arrived", "k3", "333", "g", at=4)
    assert (agent_of(sim, "a")["state"], agent_of(sim, "b")["state"]) == ("talking", "ringing")


def test_lost_is_an_end_from_every_live_state_with_a_caller():
    for state in (CallState.NEW, CallState.WAITING, CallState.RINGING, CallState.CONNECTED):
        move = TABLE[(state, CallEvent.LOST)]
        assert (move.target, move.end_reason) == (CallState.ENDED, EndReason.LOST)
    for state in (CallState.CALLBACK_WAITING, CallState.CALLBACK_RETRY):
        assert (state, CallEvent.LOST) not in TABLE


def test_channels_lost_ends_calls_once_and_returns_agents_to_their_true_states(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1}, wrapup_seconds=10)])
    three_calls(sim)
    out = sim.do("channels_lost", "asterisk_restart", at=5)
    assert CancelRing("k2", "b") in out
    for call in ("k1", "k2", "k3"):
        assert info(sim, call)["end_reason"] == "lost"
        k = kinds(sim, call)
        assert k.count("ended") == 1 and k.count("lost") == 1, k
        lost = next(r for r in info(sim, call)["timeline"] if r["kind"] == "lost")
        assert lost["detail"] == "asterisk_restart"
    assert agent_of(sim, "a")["state"] == "wrapup"          # talked: the group's wrap-up
    assert agent_of(sim, "b")["state"] == "idle"            # rang: no fault of theirs
    sim.advance(20)
    assert agent_of(sim, "a")["state"] == "idle"
    again = sim.do("channels_lost", "asterisk_restart", at=21)     # nothing left to lose
    assert [d for d in again if type(d).__name__ not in ("Notify",)] == []
    assert sim.core.snapshot_queues(sim.now)["g"]["waiting"] == 0


def test_channels_lost_keeps_callbacks_in_their_place(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1}, callback=CallbackSettings())])
    sim.login("a", at=0)
    sim.do("set_agent_state", "a", "busy", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("callback_requested", "k1", "13800138000", at=2)
    out = sim.do("set_agent_state", "a", "idle", at=3)
    assert [d.call_id for d in out if isinstance(d, RingAgentForCallback)] == ["k1"]
    sim.do("contact_status", "PJSIP/a", False, at=4)       # Asterisk going: no phone rings
    sim.do("channels_lost", "asterisk_shutdown", at=4)
    assert info(sim, "k1")["state"] == "callback_waiting"
    assert agent_of(sim, "a")["state"] == "idle"
    assert "ended" not in kinds(sim, "k1")
    out = sim.do("contact_status", "PJSIP/a", True, at=9)  # back: the callback rings again
    assert [d.call_id for d in out if isinstance(d, RingAgentForCallback)] == ["k1"]


def test_phone_lost_mid_call_requeues_the_caller_at_the_front(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "b", "busy", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    sim.do("call_arrived", "k2", "222", "g", at=3)
    sim.do("contact_status", "PJSIP/a", False, at=4)
    out = sim.do("phone_lost", "a", "unreachable", at=4)
    assert RequeueCaller("k1", "g", TRANSFER_PRIORITY_BOOST, 4) in out
    assert DropLeg("k1", "a") in out
    assert not [d for d in out if isinstance(d, BridgeCall)]
    assert info(sim, "k1")["state"] == "waiting" and info(sim, "k1")["end_reason"] is None
    assert positions(sim) == ["k1", "k2"]
    a = agent_of(sim, "a")
    assert (a["state"], a["reason"], a["call_id"]) == ("break", "phone lost", None)
    assert "requeued" in kinds(sim, "k1")
    assert rings(sim.do("set_agent_state", "b", "idle", at=5)) == [("k1", "b")]


def test_phone_lost_while_ringing_is_a_failed_ring(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})])
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.login("b", at=2)
    out = sim.do("phone_lost", "a", "unreachable", at=3)
    assert CancelRing("k1", "a") in out
    assert rings(out) == [("k1", "b")]
    assert agent_of(sim, "a")["state"] == "break"           # the group's no-answer break


def test_phone_lost_without_a_call_changes_nothing(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1})])
    sim.login("a", at=0)
    assert [d for d in sim.do("phone_lost", "a", "unreachable", at=1)
            if type(d).__name__ != "Notify"] == []
    assert agent_of(sim, "a")["state"] == "idle"


def _talking_with_grace(make_sim):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})], phone_grace=18.0)
    sim.login("a", "b", at=0)
    sim.do("set_agent_state", "b", "busy", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    sim.do("contact_status", "PJSIP/a", False, at=10)
    return sim, sim.do("phone_lost", "a", "unreachable", at=10)


def test_phone_lost_mid_call_waits_the_grace_and_keeps_a_phone_that_answers_again(make_sim):
    """One failed qualify is no proof (a busy machine answers late): the conversation stays
    while the phone has its grace; it answers again: nothing happens to the call."""
    sim, out = _talking_with_grace(make_sim)
    assert not [d for d in out if isinstance(d, (DropLeg, RequeueCaller))]
    assert sim.timers == {"phone:a": 28.0}
    assert info(sim, "k1")["state"] == "connected"
    sim.do("contact_status", "PJSIP/a", True, at=20)
    assert "phone:a" not in sim.timers
    sim.advance(60)
    assert info(sim, "k1")["state"] == "connected" and agent_of(sim, "a")["state"] == "talking"
    assert "requeued" not in kinds(sim, "k1")


def test_phone_still_unreachable_after_the_grace_is_lost_and_the_caller_requeued(make_sim):
    sim, _ = _talking_with_grace(make_sim)
    sim.do("phone_lost", "a", "unreachable", at=15)      # said again: the clock stays
    assert sim.timers == {"phone:a": 28.0}
    out = sim.advance(28)
    assert RequeueCaller("k1", "g", TRANSFER_PRIORITY_BOOST, 28) in out
    assert DropLeg("k1", "a") in out
    a = agent_of(sim, "a")
    assert (a["state"], a["reason"]) == ("break", "phone lost")
    assert info(sim, "k1")["state"] == "waiting"


def test_phone_lost_grace_ends_quietly_when_the_call_ended_first(make_sim):
    sim, _ = _talking_with_grace(make_sim)
    sim.do("caller_hung_up", "k1", at=12)
    sim.advance(40)
    assert info(sim, "k1")["end_reason"] == "caller_hangup"
    assert "requeued" not in kinds(sim, "k1")


def test_phone_lost_while_ringing_is_a_failed_ring_at_once_even_with_a_grace(make_sim, rings):
    sim = make_sim([GroupConfig("g", members={"a": 1, "b": 1})], phone_grace=18.0)
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.login("b", at=2)
    out = sim.do("phone_lost", "a", "unreachable", at=3)
    assert CancelRing("k1", "a") in out and rings(out) == [("k1", "b")]
