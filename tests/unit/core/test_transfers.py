"""Call control in the core: the tables, hold, transfers (to an agent, to a group), consults,
the owner hanging up mid-transfer, survey, rating invitations, outbound calls, legs and
restore. Every refused action is checked to change nothing."""
from __future__ import annotations

import itertools

import pytest

from acd.core import (BridgeCall, BridgeConsult, BridgeTarget, CancelRing, DialCustomer,
                      DropLeg, GroupConfig, HoldCaller, InviteRating, Notify, OutboundEnded,
                      OutboundStarted, RecordControl, RecordLeg, RecordLegWrapup, RequeueCaller,
                      ResumeCaller, RingAgent, RingAgentForOutbound, RingTarget, SendToSurvey)
from acd.core.errors import AcdError
from acd.core.transfers import (OUTBOUND_END_REASONS, OUTBOUND_TABLE, TABLE, ControlAction,
                                ControlIllegal, ControlState, Move, OutboundEvent,
                                OutboundIllegal, OutboundMove, OutboundState, TransferEvent,
                                next_outbound, next_state)

S, A, T = ControlState, ControlAction, TransferEvent


def of(out, kind):
    return [d for d in out if isinstance(d, kind)]


def notes(out, agent, event):
    return [d.payload for d in out if isinstance(d, Notify) and d.agent_id == agent
            and d.event == event]


def state(sim, agent):
    return sim.core.snapshot_agents(sim.now)[agent]["state"]


def snapshot(sim):
    """Everything a refused action must leave as it was."""
    core = sim.core
    calls = {c: core.call_info(c) for c in list(core._calls)}      # noqa: SLF001
    return (core.snapshot_agents(sim.now), calls,
            {c: core.control_info(c) for c in calls}, core.timers())


def refused(sim, method, *args, error, **kw):
    before = snapshot(sim)
    with pytest.raises(AcdError) as exc:
        getattr(sim.core, method)(*args, now=sim.now, **kw)
    assert exc.value.id == error, exc.value.message
    assert snapshot(sim) == before
    return exc.value


def GROUPS(**kw):
    return [GroupConfig("g", members={"a": 1, "b": 1, "c": 1}, ring_timeout=10,
                        wrapup_seconds=5, **kw),
            GroupConfig("h", members={"b": 1, "c": 1}, wrapup_seconds=0),
            GroupConfig("shut", members={"c": 1}, open=False)]


@pytest.fixture
def talking(make_sim):
    """Agents a, b, c logged in; caller k1 talks with a (answered at 10)."""
    sim = make_sim(GROUPS())
    sim.login("a", at=0)
    sim.login("b", "c", at=1)
    sim.do("call_arrived", "k1", "13800138000", "g", at=5)
    sim.do("agent_answered", "k1", "a", at=10)
    assert state(sim, "a") == "talking"
    return sim


# --- the tables -------------------------------------------------------------------------------

LEGAL = {
    (S.TALKING, A.HOLD): Move(S.HELD),
    (S.HELD, A.RESUME): Move(S.TALKING),
    (S.TALKING, A.TRANSFER): Move(S.TRANSFER_RINGING, (T.STARTED,)),
    (S.HELD, A.TRANSFER): Move(S.TRANSFER_RINGING, (T.STARTED,)),
    (S.TRANSFER_RINGING, A.TARGET_RINGING): Move(S.TRANSFER_RINGING, (T.RINGING,)),
    (S.TRANSFER_RINGING, A.TARGET_ANSWERED): Move(S.TALKING, (T.ANSWERED, T.COMPLETED)),
    (S.TRANSFER_RINGING, A.CANCEL): Move(S.PREVIOUS, (T.CANCELLED,)),
    (S.TRANSFER_RINGING, A.TARGET_FAILED): Move(S.PREVIOUS, (T.FAILED,)),
    (S.TRANSFER_RINGING, A.OWNER_HANGUP): Move(S.TRANSFER_RINGING),
    (S.TALKING, A.TRANSFER_GROUP): Move(S.LEFT, (T.STARTED, T.COMPLETED)),
    (S.HELD, A.TRANSFER_GROUP): Move(S.LEFT, (T.STARTED, T.COMPLETED)),
    (S.TALKING, A.CONSULT): Move(S.CONSULT_RINGING, (T.STARTED,)),
    (S.HELD, A.CONSULT): Move(S.CONSULT_RINGING, (T.STARTED,)),
    (S.CONSULT_RINGING, A.TARGET_RINGING): Move(S.CONSULT_RINGING, (T.RINGING,)),
    (S.CONSULT_RINGING, A.TARGET_ANSWERED): Move(S.CONSULTING, (T.ANSWERED,)),
    (S.CONSULT_RINGING, A.CANCEL): Move(S.PREVIOUS, (T.CANCELLED,)),
    (S.CONSULT_RINGING, A.RETURN): Move(S.TALKING, (T.CANCELLED,)),
    (S.CONSULT_RINGING, A.TARGET_FAILED): Move(S.PREVIOUS, (T.FAILED,)),
    (S.CONSULT_RINGING, A.OWNER_HANGUP): Move(S.TRANSFER_RINGING),
    (S.CONSULTING, A.COMPLETE): Move(S.TALKING, (T.COMPLETED,)),
    (S.CONSULTING, A.RETURN): Move(S.TALKING, (T.CANCELLED,)),
    (S.CONSULTING, A.TARGET_HANGUP): Move(S.PREVIOUS, (T.FAILED,)),
    (S.CONSULTING, A.OWNER_HANGUP): Move(S.TALKING, (T.COMPLETED,)),
    (S.TALKING, A.SURVEY): Move(S.LEFT),
    (S.HELD, A.SURVEY): Move(S.LEFT),
    (S.TALKING, A.INVITE_RATING): Move(S.TALKING),
    (S.HELD, A.INVITE_RATING): Move(S.HELD),
    (S.TALKING, A.HANGUP): Move(S.LEFT),
    (S.HELD, A.HANGUP): Move(S.LEFT),
}
RESTING = [S.TALKING, S.HELD, S.TRANSFER_RINGING, S.CONSULT_RINGING, S.CONSULTING]
ILLEGAL = [(s, a) for s, a in itertools.product(RESTING, A) if (s, a) not in LEGAL]


def test_control_table_is_the_specification():
    assert TABLE == LEGAL
    # one transfer or consult at a time: none can start while one is under way
    for s in (S.TRANSFER_RINGING, S.CONSULT_RINGING, S.CONSULTING):
        for a in (A.TRANSFER, A.TRANSFER_GROUP, A.CONSULT, A.HOLD, A.RESUME, A.SURVEY,
                  A.HANGUP):
            assert (s, a) not in TABLE


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{s}-{a}" for s, a in ILLEGAL])
def test_illegal_control_moves_name_state_and_action(state, action):
    with pytest.raises(ControlIllegal) as exc:
        next_state("k1", state, action)
    assert exc.value.id == "call.control_illegal"
    assert (exc.value.state, exc.value.event) == (state.value, action.value)
    assert action.value.replace("_", " ") in exc.value.message


def test_previous_resolves_to_the_state_before_the_transfer():
    assert next_state("k", S.TRANSFER_RINGING, A.CANCEL, S.HELD).target is S.HELD
    assert next_state("k", S.CONSULT_RINGING, A.TARGET_FAILED).target is S.TALKING


def test_outbound_table_every_end_has_one_reason():
    O, E = OutboundState, OutboundEvent
    assert OUTBOUND_TABLE == {
        (O.AGENT_RINGING, E.AGENT_ANSWERED): OutboundMove(O.DIALING),
        (O.AGENT_RINGING, E.AGENT_FAILED): OutboundMove(O.ENDED, "agent_no_answer"),
        (O.AGENT_RINGING, E.AGENT_HANGUP): OutboundMove(O.ENDED, "cancelled"),
        (O.DIALING, E.CUSTOMER_ANSWERED): OutboundMove(O.CONNECTED),
        (O.DIALING, E.CUSTOMER_FAILED): OutboundMove(O.ENDED, "customer_unreachable"),
        (O.DIALING, E.AGENT_HANGUP): OutboundMove(O.ENDED, "cancelled"),
        (O.CONNECTED, E.AGENT_HANGUP): OutboundMove(O.ENDED, "agent_hangup"),
        (O.CONNECTED, E.CUSTOMER_HANGUP): OutboundMove(O.ENDED, "customer_hangup"),
    }
    assert all((m.target is O.ENDED) == (m.end_reason is not None)
               for m in OUTBOUND_TABLE.values())
    assert len(OUTBOUND_END_REASONS) == 5
    with pytest.raises(OutboundIllegal) as exc:
        next_outbound("o1", O.ENDED, E.AGENT_HANGUP)
    assert exc.value.id == "call.outbound_illegal"


# --- hold -------------------------------------------------------------------------------------

def test_hold_and_resume(talking):
    sim = talking
    out = sim.do("hold_call", "a", at=20)
    assert of(out, HoldCaller) == [HoldCaller("k1", "a")]
    assert notes(out, "a", "hold") == [{"call_id": "k1", "held": True}]
    assert sim.core.control_info("k1")["state"] == "held"
    assert state(sim, "a") == "talking"
    out = sim.do("resume_call", "a", at=50)
    assert of(out, ResumeCaller) == [ResumeCaller("k1", "a")]
    assert [r.kind for r in of(out, RecordControl)] == ["resume"]
    out = sim.do("caller_hung_up", "k1", at=70)
    assert of(out, RecordLeg) == [RecordLeg("k1", "a", "answer", 10, 70, 30, 30,
                                            "caller_hangup")]


def test_refused_hold_actions_change_nothing(talking):
    sim = talking
    refused(sim, "resume_call", "a", error="call.control_illegal")        # not held
    sim.do("hold_call", "a", at=20)
    err = refused(sim, "hold_call", "a", error="call.control_illegal")    # held already
    assert (err.state, err.event) == ("held", "hold")
    refused(sim, "hold_call", "b", error="agent.no_call")                 # b has no call
    refused(sim, "hold_call", "zz", error="agent.not_logged_in")
    refused(sim, "complete_consult", "a", error="call.control_illegal")
    refused(sim, "cancel_transfer", "a", error="call.control_illegal")


# --- transfer to an agent ---------------------------------------------------------------------

def test_transfer_to_an_idle_agent_completes_when_they_answer(talking):
    sim = talking
    out = sim.do("transfer", "a", to_agent="b", at=20)
    assert of(out, HoldCaller) == [HoldCaller("k1", "a")]       # the caller holds meanwhile
    assert of(out, RingTarget) == [RingTarget("k1", "b", "PJSIP/b", 10, "13800138000",
                                              "transfer", "a")]
    assert notes(out, "a", "transfer")[0]["event"] == "started"
    assert notes(out, "b", "ring")[0]["transfer"] == {"from_agent": "a"}
    assert state(sim, "b") == "ringing"
    assert sim.core.control_info("k1")["transfer"]["target_agent"] == "b"
    out = sim.do("agent_ringing", "k1", "b", at=21)
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["ringing"]
    out = sim.do("agent_answered", "k1", "b", at=25)
    assert of(out, BridgeTarget) == [BridgeTarget("k1", "b")]
    assert of(out, DropLeg) == [DropLeg("k1", "a")]
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["answered", "completed"]
    assert (state(sim, "a"), state(sim, "b")) == ("wrapup", "talking")
    info = sim.core.call_info("k1")
    assert (info["state"], info["agent_id"]) == ("connected", "b")
    assert of(out, RecordLeg) == [RecordLeg("k1", "a", "answer", 10, 25, 10, 5,
                                            "transferred")]
    # b's own part, and a's wrap-up, are theirs
    out = sim.do("caller_hung_up", "k1", at=40)
    assert of(out, RecordLeg) == [RecordLeg("k1", "b", "transfer", 25, 40, 15, 0,
                                            "caller_hangup")]
    sim.advance(50)
    assert of(sim.log, RecordLegWrapup) == [RecordLegWrapup("k1", "a", 5),
                                            RecordLegWrapup("k1", "b", 5)]
    assert (state(sim, "a"), state(sim, "b")) == ("idle", "idle")


def test_transfer_cancelled_while_ringing_goes_back(talking):
    sim = talking
    sim.do("hold_call", "a", at=15)
    sim.do("transfer", "a", to_agent="b", at=20)
    out = sim.do("cancel_transfer", "a", at=22)
    assert of(out, CancelRing) == [CancelRing("k1", "b")]
    assert of(out, ResumeCaller) == []                   # was held: stays held
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["cancelled"]
    assert sim.core.control_info("k1")["state"] == "held"
    assert state(sim, "b") == "idle"
    # b keeps their place among the idle agents (no "no answer" break)
    assert sim.core.snapshot_agents(sim.now)["b"]["available"]


def test_transfer_target_not_answering_returns_the_caller(talking):
    sim = talking
    sim.do("transfer", "a", to_agent="b", at=20)
    out = sim.advance(30)                                # the ring timeout (10 s)
    assert of(out, CancelRing) == [CancelRing("k1", "b")]
    assert of(out, ResumeCaller) == [ResumeCaller("k1", "a")]
    assert notes(out, "a", "transfer")[0]["cause"] == "no_answer"
    assert state(sim, "b") == "break" and state(sim, "a") == "talking"
    assert sim.core.control_info("k1")["state"] == "talking"


def test_transfer_target_refusing(talking):
    sim = talking
    sim.do("transfer", "a", to_agent="b", at=20)
    out = sim.do("agent_hung_up", "k1", "b", at=22)       # rejected the ring
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["failed"]
    assert notes(out, "a", "transfer")[0]["cause"] == "rejected"
    assert state(sim, "b") == "idle"
    out = sim.do("transfer", "a", to_agent="c", at=23)     # another try is fine
    assert of(out, RingTarget)[0].agent_id == "c"


def test_refused_transfers_change_nothing(talking):
    sim = talking
    sim.do("set_agent_state", "c", "break", at=12)
    refused(sim, "transfer", "a", to_agent="c", error="agent.target_unavailable")  # on break
    refused(sim, "transfer", "a", to_agent="a", error="agent.target_is_self")
    refused(sim, "transfer", "a", to_agent="zz", error="agent.target_unavailable")
    sim.do("phone_in_use", "PJSIP/b", True, at=12)        # b idle, its phone on a call
    err = refused(sim, "transfer", "a", to_agent="b", error="agent.target_unavailable")
    assert "phone in use" in err.message
    refused(sim, "consult", "a", to_agent="b", error="agent.target_unavailable")
    sim.do("phone_in_use", "PJSIP/b", False, at=13)
    refused(sim, "transfer", "a", error="control.target_missing")
    refused(sim, "transfer", "a", to_agent="b", to_group="h", error="control.target_missing")
    refused(sim, "transfer", "a", to_group="nope", error="group.unknown")
    refused(sim, "transfer", "a", to_group="shut", error="call.group_closed")
    sim.do("transfer", "a", to_agent="b", at=20)
    refused(sim, "transfer", "a", to_agent="c", error="call.control_illegal")  # one at a time
    refused(sim, "consult", "a", to_agent="c", error="call.control_illegal")
    refused(sim, "hang_up", "a", error="call.control_illegal")
    refused(sim, "hold_call", "a", error="call.control_illegal")
    refused(sim, "to_survey", "a", error="call.control_illegal")
    # the target is busy with this transfer: nobody else may have them
    sim.do("set_agent_state", "c", "idle", at=21)
    sim.do("call_arrived", "k2", "222", "h", at=21)
    assert sim.core.call_info("k2")["agent_id"] == "c"
    sim.do("agent_answered", "k2", "c", at=22)
    refused(sim, "transfer", "c", to_agent="b", error="agent.target_unavailable")


# --- transfer to a group ----------------------------------------------------------------------

def test_transfer_to_a_group_queues_ahead_of_new_arrivals(make_sim):
    sim = make_sim(GROUPS())
    sim.login("a", at=0)
    sim.do("call_arrived", "k1", "111", "g", at=1)
    sim.do("agent_answered", "k1", "a", at=2)
    sim.do("call_arrived", "w1", "222", "h", at=3)       # waits in h: nobody logged in
    out = sim.do("transfer", "a", to_group="h", at=10)
    assert of(out, RequeueCaller) == [RequeueCaller("k1", "h", 1000, 10)]
    assert of(out, DropLeg) == [DropLeg("k1", "a")]
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["started", "completed"]
    assert state(sim, "a") == "wrapup"
    info = sim.core.call_info("k1")
    assert (info["state"], info["group"], info["priority"], info["agent_id"]) == (
        "waiting", "h", 1000, None)
    q = sim.core.snapshot_queues(sim.now)["h"]["calls"]
    assert [c["call_id"] for c in q] == ["k1", "w1"]       # ahead of the earlier caller
    out = sim.do("agent_login", "b", "PJSIP/b", at=12)
    assert [(d.call_id, d.agent_id) for d in of(out, RingAgent)] == [("k1", "b")]
    out = sim.do("agent_answered", "k1", "b", at=13)
    assert of(out, BridgeCall) == [BridgeCall("k1", "b")]
    out = sim.do("caller_hung_up", "k1", at=20)
    assert [(leg.agent_id, leg.role) for leg in of(out, RecordLeg)] == [("b", "answer")]
    assert sim.core.call_info("k1")["end_reason"] == "caller_hangup"


# --- consult ----------------------------------------------------------------------------------

def test_consult_then_complete(talking):
    sim = talking
    out = sim.do("consult", "a", to_agent="b", at=20)
    assert of(out, HoldCaller) == [HoldCaller("k1", "a")]
    assert of(out, RingTarget)[0].role == "consult"
    out = sim.do("agent_answered", "k1", "b", at=22)
    assert of(out, BridgeConsult) == [BridgeConsult("k1", "a", "b")]
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["answered"]
    assert sim.core.control_info("k1")["state"] == "consulting"
    assert (state(sim, "a"), state(sim, "b")) == ("talking", "talking")
    refused(sim, "cancel_transfer", "a", error="call.control_illegal")   # answered: no cancel
    out = sim.do("complete_consult", "a", at=30)
    assert of(out, BridgeTarget) == [BridgeTarget("k1", "b")]
    assert of(out, DropLeg) == [DropLeg("k1", "a")]
    assert (state(sim, "a"), state(sim, "b")) == ("wrapup", "talking")
    assert of(out, RecordLeg) == [RecordLeg("k1", "a", "answer", 10, 30, 10, 10,
                                            "transferred")]
    out = sim.do("agent_hung_up", "k1", "b", at=40)
    assert of(out, RecordLeg) == [RecordLeg("k1", "b", "consult", 22, 40, 18, 0,
                                            "agent_hangup")]
    assert sim.core.call_info("k1")["end_reason"] == "agent_hangup"


def test_consult_then_return(talking):
    sim = talking
    sim.do("consult", "a", to_agent="b", at=20)
    sim.do("agent_answered", "k1", "b", at=22)
    out = sim.do("return_from_consult", "a", at=30)
    assert of(out, DropLeg) == [DropLeg("k1", "b")]
    assert of(out, ResumeCaller) == [ResumeCaller("k1", "a")]
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["cancelled"]
    assert of(out, RecordLeg) == [RecordLeg("k1", "b", "consult", 22, 30, 8, 0,
                                            "consult_ended")]
    assert (state(sim, "a"), state(sim, "b")) == ("talking", "wrapup")
    assert sim.core.control_info("k1")["state"] == "talking"
    out = sim.do("caller_hung_up", "k1", at=40)
    assert of(out, RecordLeg) == [RecordLeg("k1", "a", "answer", 10, 40, 20, 10,
                                            "caller_hangup")]


def test_consulted_agent_hangs_up_back_to_hold(talking):
    sim = talking
    sim.do("hold_call", "a", at=15)
    sim.do("consult", "a", to_agent="b", at=20)
    sim.do("agent_answered", "k1", "b", at=22)
    out = sim.do("agent_hung_up", "k1", "b", at=25)
    assert notes(out, "a", "transfer")[0]["cause"] == "target_hangup"
    assert of(out, ResumeCaller) == []
    assert sim.core.control_info("k1")["state"] == "held"
    assert state(sim, "b") == "wrapup"


def test_consult_a_group_picks_by_its_strategy_or_refuses(talking):
    sim = talking
    out = sim.do("consult", "a", to_group="h", at=20)
    assert of(out, RingTarget)[0].agent_id == "b"          # h's longest idle
    sim.do("cancel_transfer", "a", at=21)
    sim.do("set_agent_state", "b", "break", at=22)
    sim.do("set_agent_state", "c", "break", at=22)
    refused(sim, "consult", "a", to_group="h", error="call.no_agent_available")
    refused(sim, "consult", "a", to_group="nope", error="group.unknown")


def test_owner_hangs_up_while_consult_rings_the_target_gets_the_caller(talking):
    sim = talking
    sim.do("consult", "a", to_agent="b", at=20)
    out = sim.do("agent_hung_up", "k1", "a", at=21)
    assert state(sim, "a") == "wrapup"
    assert sim.core.call_info("k1")["state"] == "connected"       # the caller stays
    assert sim.core.control_info("k1")["transfer"]["ownerless"] is True
    out = sim.do("agent_answered", "k1", "b", at=23)
    assert of(out, BridgeTarget) == [BridgeTarget("k1", "b")]
    assert sim.core.call_info("k1")["agent_id"] == "b"


def test_owner_hangs_up_during_a_consult_completes_it(talking):
    sim = talking
    sim.do("consult", "a", to_agent="b", at=20)
    sim.do("agent_answered", "k1", "b", at=22)
    out = sim.do("agent_hung_up", "k1", "a", at=25)
    assert of(out, BridgeTarget) == [BridgeTarget("k1", "b")]
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["completed"]
    assert sim.core.call_info("k1")["agent_id"] == "b"


def test_ownerless_transfer_nobody_answers_the_caller_queues_again(talking):
    sim = talking
    sim.do("transfer", "a", to_agent="b", at=20)
    sim.do("agent_hung_up", "k1", "a", at=21)
    out = sim.advance(30)                                   # b does not answer
    assert of(out, RequeueCaller) == [RequeueCaller("k1", "g", 1000, 30)]
    # a is wrapping up, b on break: c takes the caller
    assert [(d.call_id, d.agent_id) for d in of(out, RingAgent)] == [("k1", "c")]


def test_caller_hangs_up_during_a_consult_frees_the_target(talking):
    sim = talking
    sim.do("consult", "a", to_agent="b", at=20)
    sim.do("agent_answered", "k1", "b", at=22)
    out = sim.do("caller_hung_up", "k1", at=25)
    assert DropLeg("k1", "b") in of(out, DropLeg)
    assert (state(sim, "a"), state(sim, "b")) == ("wrapup", "wrapup")
    assert [n["event"] for n in notes(out, "a", "transfer")] == ["failed"]
    assert sim.core.control_info("k1") is None


# --- survey and hang up -----------------------------------------------------------------------

def test_transfer_to_survey_drops_the_agent(talking):
    sim = talking
    out = sim.do("to_survey", "a", at=20)
    assert of(out, InviteRating) == [InviteRating("k1")]
    assert of(out, SendToSurvey) == [SendToSurvey("k1", redirect=False)]
    assert sim.core.call_info("k1")["end_reason"] == "agent_hangup"
    assert state(sim, "a") == "wrapup"
    assert of(out, RecordLeg)[0].reason == "survey"


def test_invited_rating_sends_the_caller_to_the_survey_after_the_agent(talking):
    sim = talking
    out = sim.do("invite_rating", "a", at=15)
    assert of(out, InviteRating) == [InviteRating("k1")]
    assert sim.core.control_info("k1")["invited"] is True
    out = sim.do("agent_hung_up", "k1", "a", at=30)
    assert of(out, SendToSurvey) == [SendToSurvey("k1", redirect=False)]


def test_invited_and_held_the_caller_is_taken_to_the_survey(talking):
    sim = talking
    sim.do("invite_rating", "a", at=15)
    sim.do("hold_call", "a", at=16)
    out = sim.do("hang_up", "a", at=30)
    assert of(out, SendToSurvey) == [SendToSurvey("k1", redirect=True)]
    assert sim.core.call_info("k1")["end_reason"] == "agent_hangup"


def test_caller_hanging_up_gets_no_survey(talking):
    sim = talking
    sim.do("invite_rating", "a", at=15)
    assert of(sim.do("caller_hung_up", "k1", at=30), SendToSurvey) == []


def test_hang_up(talking):
    sim = talking
    out = sim.do("hang_up", "a", at=30)
    assert sim.core.call_info("k1")["end_reason"] == "agent_hangup"
    assert state(sim, "a") == "wrapup"
    assert of(out, SendToSurvey) == []
    refused(sim, "hang_up", "a", error="agent.no_call")


# --- outbound ---------------------------------------------------------------------------------

def test_outbound_call_rings_the_agent_then_the_customer(make_sim):
    sim = make_sim(GROUPS())
    sim.login("a", at=0)
    out = sim.do("dial", "a", "+8613800138000", call_id="o1", at=5)
    assert of(out, OutboundStarted) == [OutboundStarted("o1", "a", "+8613800138000", 5)]
    assert of(out, RingAgentForOutbound) == [RingAgentForOutbound("o1", "a", "PJSIP/a", 20,
                                                                  "+8613800138000")]
    assert state(sim, "a") == "ringing"
    sim.do("call_arrived", "k1", "111", "g", at=6)              # a is not offered it
    assert sim.core.call_info("k1")["state"] == "waiting"
    out = sim.do("agent_answered", "o1", "a", at=7)
    assert of(out, DialCustomer) == [DialCustomer("o1", "a", "+8613800138000", 45)]
    out = sim.do("customer_answered", "o1", at=9)
    assert of(out, BridgeCall) == [BridgeCall("o1", "a")]
    assert sim.core.control_info("o1")["state"] == "connected"
    out = sim.do("caller_hung_up", "o1", at=19)                 # the customer's leg
    assert of(out, OutboundEnded) == [OutboundEnded("o1", "a", "customer_hangup", 19)]
    assert of(out, RecordLeg) == [RecordLeg("o1", "a", "outbound", 9, 19, 10, 0,
                                            "customer_hangup")]
    # wrap-up 0: idle again at once, and the waiting caller comes
    assert [(d.call_id, d.agent_id) for d in of(out, RingAgent)] == [("k1", "a")]


def test_outbound_failures(make_sim):
    sim = make_sim(GROUPS())
    sim.login("a", "b", at=0)
    sim.do("dial", "a", "555", call_id="o1", at=1)
    out = sim.advance(21)                                       # a never answers
    assert of(out, OutboundEnded) == [OutboundEnded("o1", "a", "agent_no_answer", 21,
                                                    "no_answer")]
    assert state(sim, "a") == "idle"
    sim.do("dial", "a", "555", call_id="o2", at=22)
    sim.do("agent_answered", "o2", "a", at=23)
    out = sim.do("customer_dial_failed", "o2", "busy", at=25)
    assert of(out, OutboundEnded)[0].reason == "customer_unreachable"
    assert of(out, CancelRing) == [CancelRing("o2", "a")]
    assert state(sim, "a") == "idle"
    sim.do("dial", "a", "555", call_id="o3", at=26)
    sim.do("agent_answered", "o3", "a", at=27)
    out = sim.do("hang_up", "a", at=28)                         # gives up while dialling
    assert of(out, OutboundEnded)[0].reason == "cancelled"
    refused(sim, "dial", "a", "12ab", call_id="o4", error="dial.bad_number")
    refused(sim, "dial", "a", "555", call_id="o1", error="call.duplicate")
    sim.do("call_arrived", "k9", "999", "h", at=29)       # b talks
    sim.do("agent_answered", "k9", "b", at=29)
    refused(sim, "dial", "b", "555", call_id="o5", error="agent.on_a_call")
    refused(sim, "dial", "zz", "555", call_id="o6", error="agent.not_logged_in")
    sim.do("phone_in_use", "PJSIP/a", True, at=30)             # a's own call on the phone
    err = refused(sim, "dial", "a", "555", call_id="o7", error="agent.on_a_call")
    assert "phone in use" in err.message


def test_outbound_call_from_a_break_returns_to_the_break(make_sim):
    sim = make_sim(GROUPS())
    sim.login("a", at=0)
    sim.do("set_agent_state", "a", "break", reason="lunch", at=1)
    sim.do("dial", "a", "555", call_id="o1", at=2)
    snap = sim.core.snapshot_agents(sim.now)["a"]
    assert (snap["state"], snap["pending"], snap["pending_reason"]) == ("ringing", "break",
                                                                       "lunch")
    sim.do("call_arrived", "k1", "111", "g", at=3)        # not offered to a meanwhile
    sim.do("agent_answered", "o1", "a", at=4)
    sim.do("customer_answered", "o1", at=5)
    sim.do("hang_up", "a", at=9)
    snap = sim.core.snapshot_agents(sim.now)["a"]
    assert (snap["state"], snap["reason"], snap["pending"]) == ("break", "lunch", None)
    assert sim.core.call_info("k1")["state"] == "waiting"


# --- restore ----------------------------------------------------------------------------------

def test_restore_a_held_call_and_a_consult(make_sim):
    sim = make_sim(GROUPS())
    core = sim.core
    for a in ("a", "b", "c"):
        core.restore_agent(a, f"PJSIP/{a}", "idle", 0)
    core.restore_connected_call("k1", "a", "g", 10, answered_at=5)
    core.restore_control("k1", 10, held=True, held_since=8, invited=True)
    core.restore_connected_call("k2", "b", "g", 10, answered_at=6)
    core.restore_control("k2", 10, consult_agent="c", consult_since=9)
    sim.absorb(core.resume(10))
    assert core.control_info("k1")["state"] == "held" and core.control_info("k1")["invited"]
    assert core.control_info("k2")["state"] == "consulting"
    assert state(sim, "c") == "talking"
    out = sim.do("resume_call", "a", at=20)
    assert of(out, ResumeCaller) == [ResumeCaller("k1", "a")]
    out = sim.do("complete_consult", "b", at=21)
    assert of(out, BridgeTarget) == [BridgeTarget("k2", "c")]
    assert (state(sim, "b"), state(sim, "c")) == ("wrapup", "talking")
    with pytest.raises(AcdError) as exc:
        core.restore_control("nope", 22, held=True)
    assert exc.value.id == "core.restore_invalid"


# --- memberships changed mid-transfer (issue 15's bad input) ----------------------------------

def test_members_taken_out_mid_transfer_keep_the_transfer_and_leave_after(talking):
    """The agent transferring and the agent being rung both taken out of the call's group
    while the target rings: the transfer goes on and completes as if nothing changed; after
    it neither gets the group's calls; the caller's record and the legs are whole."""
    sim = talking
    sim.do("transfer", "a", to_agent="b", at=20)
    assert state(sim, "b") == "ringing"
    sim.do("set_member", "g", "a", None, at=21)
    sim.do("set_member", "g", "b", None, at=21)
    assert sim.core.control_info("k1")["transfer"]["target_agent"] == "b"
    out = sim.do("agent_answered", "k1", "b", at=25)
    assert of(out, BridgeTarget) == [BridgeTarget("k1", "b")]
    assert (state(sim, "a"), state(sim, "b")) == ("wrapup", "talking")
    out = sim.do("caller_hung_up", "k1", at=40)
    assert of(out, RecordLeg) == [RecordLeg("k1", "b", "transfer", 25, 40, 15, 0,
                                            "caller_hangup")]
    sim.advance(50)
    out = sim.do("call_arrived", "k2", "13900139000", "g", at=60)
    assert [d.agent_id for d in of(out, RingAgent)] == ["c"]      # the one member left


def test_a_group_transfer_to_a_group_the_agent_just_left(talking):
    """An agent taken out of group h while a caller is being transferred to h is not offered
    that caller; another member of h is."""
    sim = talking
    sim.do("set_member", "h", "b", None, at=19)
    out = sim.do("transfer", "a", to_group="h", at=20)
    rung = [d.agent_id for d in of(out, RingTarget)] + [d.agent_id for d in of(out, RingAgent)]
    assert rung == ["c"]
