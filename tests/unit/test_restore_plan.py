"""Restore planning (acd.runtime.plan), pure: one table test per case a restart can find.

Each case is a reading (Asterisk's channels with our variables, the store's rows) and the
plan it must give. No AMI, no SQLite: the plan is data."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from acd.runtime.plan import ENDED_WHILE_DOWN, KeepCaller, KeepLeg, Reading, plan

T0 = 1_800_000_000.0
NOW = T0 + 100
ENDPOINTS = {"1001": "1001", "1002": "1002", "1003": "1003"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


def chan(uid: str, context: str, *, bridge: str = "", exten: str = "s", state: int = 6,
         number: str = "13800138000", name: str = "Caller") -> dict[str, Any]:
    return {"Uniqueid": uid, "Channel": f"PJSIP/x-{uid}", "Context": context, "Exten": exten,
            "BridgeId": bridge, "ChannelState": str(state), "CallerIDNum": number,
            "CallerIDName": name}


def caller(uid: str, group: str = "sales", entered: float = T0, *, context: str = "acd-queue",
           bridge: str = "", exten: str = "s", **more: str) -> tuple[dict, dict]:
    return (chan(uid, context, bridge=bridge, exten=exten),
            {"ACD_GROUP": group, "ACD_PRIORITY": "0", "ACD_ENTERED": f"{entered:.6f}", **more})


def leg(uid: str, call: str, agent: str, *, context: str = "acd-agent", bridge: str = "",
        exten: str = "s", role: str = "", state: int = 6) -> tuple[dict, dict]:
    return (chan(uid, context, bridge=bridge, exten=exten, state=state),
            {"ACD_CALL": call, "ACD_AGENT": agent, "ACD_ROLE": role})


def stored(uid: str, *, arrived: float = T0 - 10, answered: float | None = None,
           events: list[dict] | None = None, group: str = "sales") -> dict[str, Any]:
    return {"uniqueid": uid, "arrived_at": iso(arrived), "skill_group": group,
            "answered_at": iso(answered) if answered else None, "caller_number": "13800138000",
            "key_trail": [{"keys": "1"}], "events": events or []}


def reading(found: list[tuple[dict, dict]], *, open_calls: dict | None = None,
            states: dict | None = None, pending: dict | None = None,
            extra_channels: list[dict] = ()) -> Reading:
    return Reading(started=NOW - 1, channels=[c for c, _ in found] + list(extra_channels),
                   found=found, reachable={"1001": True, "1002": True, "1003": False},
                   states=states or {}, pending=pending or {}, open_calls=open_calls or {},
                   answered={"1001": 3})


def run(r: Reading, wrapup: float = 20.0):
    return plan(r, NOW, ENDPOINTS, lambda group: wrapup if group else 0.0)


def test_connected_call_goes_on_with_its_agent():
    r = reading([caller("c1", bridge="b1"), leg("l1", "c1", "1001", bridge="b1")],
                open_calls={"c1": stored("c1", answered=T0)})
    p = run(r)
    [call] = p.calls
    assert call.kind == "connected" and call.agents == ("1001",)
    [(method, args, kw)] = call.steps
    assert (method, args) == ("restore_connected_call", ("c1", "1001", "sales"))
    assert kw["answered_at"] == pytest.approx(T0) and kw["key_trail"] == ["1"]
    assert call.legs == (KeepLeg("l1", "PJSIP/x-l1", "agent", "1001"),)
    assert call.caller == KeepCaller("c1", "PJSIP/x-c1", "13800138000", "Caller", bridged=True)
    assert p.orphans == [] and p.ended == [] and ("c1", "b1") in p.bridges


def test_connected_call_invited_to_the_survey_keeps_the_invitation():
    r = reading([caller("c1", bridge="b1", ACD_SURVEY="1"), leg("l1", "c1", "1001", bridge="b1")])
    [call] = run(r).calls
    assert [s[0] for s in call.steps] == ["restore_connected_call", "restore_control"]
    assert call.steps[1][2] == {"invited": True}


def test_outbound_call_keeps_both_legs():
    r = reading([(chan("cust", "acd-customer", bridge="b1"), {"ACD_CALL": "out-1",
                                                             "ACD_AGENT": "1002"}),
                 leg("l2", "out-1", "1002", bridge="b1", role="outbound")],
                open_calls={"out-1": stored("out-1", answered=T0 + 5)})
    [call] = run(r).calls
    assert call.kind == "outbound"
    assert call.steps[0][:2] == ("restore_outbound", ("out-1", "1002", "13800138000"))
    assert call.steps[0][2]["answered_at"] == pytest.approx(T0 + 5)
    assert [(k.uid, k.kind) for k in call.legs] == [("l2", "agent"), ("cust", "customer")]
    assert call.caller is None


def test_callback_customer_in_conversation_is_a_connected_callback():
    requested = {"kind": "callback_requested", "at": iso(T0), "detail": {"detail": "139"}}
    r = reading([(chan("cust", "acd-customer", bridge="b1"), {"ACD_CALL": "c9",
                                                             "ACD_AGENT": "1001"}),
                 leg("l1", "c9", "1001", bridge="b1")],
                open_calls={"c9": stored("c9", events=[requested])})
    [call] = run(r).calls
    assert call.kind == "connected" and call.caller is None
    assert call.steps[0][2]["callback_number"] == "139"
    assert [(k.uid, k.kind) for k in call.legs] == [("l1", "agent"), ("cust", "customer")]


def test_ring_answered_while_away_is_bridged_once_resumed():
    r = reading([caller("c1"), leg("l1", "c1", "1001")], open_calls={"c1": stored("c1")})
    [call] = run(r).calls
    assert call.kind == "answered" and call.resume == "1001" and call.unseen_answer
    assert call.steps[0][:2] == ("restore_connected_call", ("c1", "1001", "sales"))
    assert call.caller == KeepCaller("c1", "PJSIP/x-c1", "13800138000", "Caller")
    # A ring not yet answered (still ringing, not up) is an orphan, its caller waits.
    p = run(reading([caller("c1"), leg("l1", "c1", "1001", state=5)]))
    assert [c.kind for c in p.calls] == ["waiting"]
    assert [o[0] for o in p.orphans] == ["l1"]


def test_held_caller_with_its_owner_stays_held():
    r = reading([caller("c1", context="acd-hold", exten="caller", ACD_OWNER="1001",
                        ACD_HELD_AT=f"{T0 + 50:.6f}"),
                 leg("l1", "c1", "1001", context="acd-hold", exten="agent")])
    [call] = run(r).calls
    assert call.kind == "held" and call.resume is None and call.agents == ("1001",)
    assert [s[0] for s in call.steps] == ["restore_connected_call", "restore_control"]
    control = call.steps[1][2]
    assert control["held"] is True and control["held_since"] == pytest.approx(T0 + 50)
    assert control["consult_agent"] is None
    assert [k.uid for k in call.legs] == ["l1"]


def test_held_caller_while_the_owner_consults_another_agent():
    answered = {"kind": "consult_answered", "at": iso(T0 + 60)}
    r = reading([caller("c1", context="acd-hold", exten="caller", ACD_OWNER="1001"),
                 leg("l1", "c1", "1001", context="acd-hold", exten="agent", bridge="b2"),
                 leg("l2", "c1", "1002", context="acd-hold", exten="agent", bridge="b2")],
                open_calls={"c1": stored("c1", events=[answered])})
    [call] = run(r).calls
    assert call.agents == ("1001", "1002")
    control = call.steps[1][2]
    assert control["consult_agent"] == "1002"
    assert control["consult_since"] == pytest.approx(T0 + 60)
    assert {k.uid for k in call.legs} == {"l1", "l2"}


def test_held_caller_whose_owner_left_goes_to_the_consulted_agent():
    r = reading([caller("c1", context="acd-hold", exten="caller", ACD_OWNER="1001"),
                 leg("l2", "c1", "1002", context="acd-hold", exten="agent")])
    [call] = run(r).calls
    assert call.kind == "held" and call.resume == "1002" and call.agents == ("1002",)
    assert call.steps[1][2]["held"] is False


def test_held_caller_with_nobody_left_goes_back_to_the_queue_at_the_front():
    r = reading([caller("c1", context="acd-hold", exten="caller", ACD_OWNER="1001",
                        ACD_PRIORITY="2")])
    [call] = run(r).calls
    assert call.kind == "requeued" and call.agents == () and call.legs == ()
    method, args, kw = call.steps[0]
    assert method == "restore_waiting_call"
    assert args[:3] == ("c1", "13800138000", "sales") and args[3] > 2   # boosted
    assert args[4] == NOW and call.priority == args[3]
    assert call.caller is not None and not call.caller.bridged


def test_waiting_callers_keep_their_original_order():
    r = reading([caller("c3", entered=T0 + 3), caller("c1", entered=T0 + 1),
                 caller("c2b", entered=T0 + 2), caller("c2a", entered=T0 + 2),
                 (chan("c4", "acd-queue"), {"ACD_GROUP": "sales"})])   # never entered: skipped
    p = run(r)
    assert [c.call_id for c in p.calls] == ["c1", "c2a", "c2b", "c3"]
    assert all(c.kind == "waiting" for c in p.calls)
    assert p.calls[0].steps[0][1] == ("c1", "13800138000", "sales", 0, pytest.approx(T0 + 1))


def test_stored_callbacks_are_restored_from_the_store_alone():
    events = [{"kind": "queued", "at": iso(T0), "detail": {"group": "sales",
                                                           "detail": "priority 3"}},
              {"kind": "callback_requested", "at": iso(T0 + 5), "detail": {"detail": "139"}},
              {"kind": "dialing", "at": iso(T0 + 30)}]
    p = run(reading([], open_calls={"cb": stored("cb", events=events)}))
    [call] = p.calls
    assert call.kind == "callback" and call.legs == () and call.caller is None
    method, args, kw = call.steps[0]
    assert args == ("cb", "13800138000", "sales", 3, pytest.approx(T0))
    assert kw["callback_number"] == "139" and kw["callback_attempts"] == 1
    assert kw["callback_requested_at"] == pytest.approx(T0 + 5)
    assert p.ended == []


def test_calls_ended_while_we_were_down_get_their_end_reason():
    p = run(reading([caller("c1")], open_calls={
        "gone": stored("gone"), "c1": stored("c1"),
        "new": stored("new", arrived=NOW)}))    # arrived while we read: not ours to close
    assert p.ended == ["gone"]
    assert ENDED_WHILE_DOWN == "ended_while_server_down"


def test_orphan_legs_are_hung_up():
    r = reading([leg("l1", "gone-call", "1001", context="acd-hold", exten="agent"),
                 leg("l2", "gone-call", "1002", state=5),
                 (chan("cust", "acd-customer"), {"ACD_CALL": "cb", "ACD_AGENT": "1001"}),
                 caller("c1")])
    p = run(r)
    assert sorted(o[0] for o in p.orphans) == ["cust", "l1", "l2"]
    assert [c.kind for c in p.calls] == ["waiting"]


def test_agents_take_their_stored_states():
    at = datetime.fromtimestamp(T0, timezone.utc)
    states = {"1001": {"state": "talking", "reason": "", "at": at},
              "1002": {"state": "wrapup", "reason": "", "at": at, "call_uniqueid": "old"},
              "1003": {"state": "break", "reason": "lunch", "at": at},
              "9999": {"state": "idle", "reason": "", "at": at},        # not configured
              "1004": {"state": "offline", "reason": "", "at": at}}
    pending = {"1001": {"state": "break", "reason": "coffee"},
               "1002": {"state": "meeting", "reason": ""}}
    r = Reading(started=NOW, channels=[], found=[], reachable={"1001": True, "1003": False},
                states=states, pending=pending, open_calls={},
                calls={"old": stored("old", group="support")}, answered={"1001": 4})
    p = plan(r, NOW, {**ENDPOINTS}, lambda group: {"support": 30.0}.get(group, 0.0))
    by = {a.agent_id: a for a in p.agents}
    assert set(by) == {"1001", "1002", "1003"}
    assert (by["1001"].state, by["1001"].reason) == ("break", "coffee")   # after the call
    assert by["1001"].kw == {"reachable": True, "calls_answered": 4}
    assert by["1002"].state == "wrapup"
    assert by["1002"].kw["wrapup_until"] == pytest.approx(T0 + 30)
    assert by["1002"].kw["pending"] == "meeting"
    assert (by["1003"].state, by["1003"].reason, by["1003"].kw["reachable"]) == (
        "break", "lunch", False)
    assert p.pending == {"1001": ("break", "coffee"), "1002": ("meeting", ""),
                         "1003": (None, "")}
