"""The agent state machine: the table, every illegal move, pending states, and the API's errors."""
from __future__ import annotations

import itertools

import pytest

from acd.core import (Acd, AgentState, GroupConfig, IllegalAgentTransition, NotLoggedIn,
                      RecordAgentState)
from acd.core.agent_states import TABLE, AgentEvent, Move, Step, next_state
from acd.core.errors import AcdError

S, E = AgentState, AgentEvent
MANUAL = [S.IDLE, S.BUSY, S.BREAK, S.MEETING]
ASK = {E.GO_IDLE: S.IDLE, E.GO_BUSY: S.BUSY, E.GO_BREAK: S.BREAK, E.GO_MEETING: S.MEETING,
       E.LOGOUT: S.OFFLINE}

# The specification, written out independently of the module's table.
LEGAL: dict[tuple[AgentState, AgentEvent], Move] = {(S.OFFLINE, E.LOGIN): Move(S.IDLE)}
for state in MANUAL:
    for event, target in ASK.items():
        LEGAL[(state, event)] = Move(target)
for state in (S.RINGING, S.TALKING, S.WRAPUP):
    for event, target in ASK.items():
        LEGAL[(state, event)] = Move(target, deferred=True)
LEGAL.update({
    (S.IDLE, E.OFFER): Move(S.RINGING),
    (S.RINGING, E.ANSWER): Move(S.TALKING),
    (S.RINGING, E.NO_ANSWER): Move(S.BREAK),
    (S.RINGING, E.RING_CANCELLED): Move(S.IDLE),
    (S.TALKING, E.CALL_ENDED): Move(S.WRAPUP),
    (S.WRAPUP, E.WRAPUP_END): Move(S.IDLE),
})

ILLEGAL = [(s, e) for s, e in itertools.product(S, E) if (s, e) not in LEGAL]


def test_table_is_the_specification():
    assert TABLE == LEGAL


@pytest.mark.parametrize(("state", "event"), sorted(LEGAL, key=str))
def test_legal_moves(state, event):
    move = LEGAL[(state, event)]
    assert next_state("a1", state, event) == Step(move.target, deferred=move.deferred)


def test_there_are_illegal_moves_for_every_state():
    assert {s for s, _ in ILLEGAL} == set(S)
    assert len(ILLEGAL) == len(S) * len(E) - len(LEGAL)


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=[f"{s}-{e}" for s, e in ILLEGAL])
def test_every_illegal_move_raises_naming_state_and_event(state, event):
    with pytest.raises(IllegalAgentTransition) as exc:
        next_state("a1", state, event)
    err = exc.value
    assert err.state == state.value and err.event == event.value
    assert repr(state.value) in err.message and repr(event.value) in err.message
    assert "a1" in err.message
    if state is S.OFFLINE:
        assert err.id == "agent.not_logged_in"
    elif event is E.LOGIN:
        assert err.id == "agent.already_logged_in"
    else:
        assert err.id == "agent.illegal_transition"


@pytest.mark.parametrize("system", [S.RINGING, S.TALKING, S.WRAPUP])
def test_pending_state_wins_when_leaving_a_system_state(system):
    leave = {S.RINGING: E.NO_ANSWER, S.TALKING: None, S.WRAPUP: E.WRAPUP_END}[system]
    if leave is None:     # talking -> wrap-up stays in the system states: pending is kept
        assert next_state("a", system, E.CALL_ENDED, pending=S.BREAK) == Step(S.WRAPUP)
        return
    assert next_state("a", system, leave, pending=S.MEETING) == Step(S.MEETING,
                                                                     took_pending=True)
    assert next_state("a", system, leave) == Step(TABLE[(system, leave)].target)


def test_answer_keeps_the_pending_state_for_later():
    assert next_state("a", S.RINGING, E.ANSWER, pending=S.BREAK) == Step(S.TALKING)


# --- through the Acd -------------------------------------------------------------------------

def acd() -> Acd:
    return Acd([GroupConfig("g", members={"a1": 1, "a2": 1}, wrapup_seconds=10)])


def states(decisions):
    return [(d.agent_id, d.previous.value, d.state.value, d.reason) for d in decisions
            if isinstance(d, RecordAgentState)]


def test_login_then_manual_states_are_recorded_with_times():
    core = acd()
    assert states(core.agent_login("a1", "PJSIP/a1", 1.0)) == [("a1", "offline", "idle", "login")]
    out = core.set_agent_state("a1", "break", 2.0, "lunch")
    assert states(out) == [("a1", "idle", "break", "lunch")]
    assert [d.at for d in out if isinstance(d, RecordAgentState)] == [2.0]
    assert states(core.set_agent_state("a1", S.MEETING, 3.0)) == [("a1", "break", "meeting", "")]
    assert states(core.set_agent_state("a1", "busy", 4.0)) == [("a1", "meeting", "busy", "")]
    assert states(core.set_agent_state("a1", "idle", 5.0)) == [("a1", "busy", "idle", "")]
    assert states(core.agent_logout("a1", 6.0)) == [("a1", "idle", "offline", "logout")]
    assert core.snapshot_agents(6.0)["a1"]["endpoint"] is None


def test_an_agent_never_logged_in_has_no_time_in_state():
    """Bug: the wall board showed `offline 498954:58:02` (since the epoch) for an agent who
    never logged in. Once logged in and out, the time counts from the logout."""
    core = acd()
    never = core.snapshot_agents(1_796_237_678.0)["a1"]
    assert (never["state"], never["since"], never["in_state_for"]) == ("offline", None, None)
    core.agent_login("a1", "PJSIP/a1", 100.0)
    core.agent_logout("a1", 160.0)
    out = core.snapshot_agents(190.0)["a1"]
    assert (out["state"], out["since"], out["in_state_for"]) == ("offline", 160.0, 30.0)


def test_idle_agents_without_a_usable_phone_are_counted_apart():
    """The wall board showed them as idle, like agents who get calls."""
    core = acd()
    core.agent_login("a1", "PJSIP/a1", 1.0)
    core.agent_login("a2", "PJSIP/a2", 1.0)
    q = core.snapshot_queues(2.0)["g"]
    assert (q["agents"], q["available"], q["idle_no_phone"]) == ({"idle": 2}, 2, 0)
    core.contact_status("PJSIP/a2", False, 3.0)
    q = core.snapshot_queues(4.0)["g"]
    assert (q["agents"], q["available"], q["idle_no_phone"]) == ({"idle": 2}, 1, 1)


def test_setting_the_same_state_and_reason_records_nothing():
    core = acd()
    core.agent_login("a1", "PJSIP/a1", 1.0)
    core.set_agent_state("a1", "break", 2.0, "lunch")
    assert states(core.set_agent_state("a1", "break", 3.0, "lunch")) == []
    assert states(core.set_agent_state("a1", "break", 3.0, "coffee")) == [
        ("a1", "break", "break", "coffee")]


def test_api_errors_carry_stable_ids():
    core = acd()
    with pytest.raises(NotLoggedIn) as exc:
        core.set_agent_state("a1", "break", 1.0)
    assert exc.value.id == "agent.not_logged_in"
    assert "'offline'" in exc.value.message and "'go_break'" in exc.value.message
    with pytest.raises(NotLoggedIn):
        core.agent_logout("nobody", 1.0)
    core.agent_login("a1", "PJSIP/a1", 1.0)
    with pytest.raises(AcdError) as exc:
        core.agent_login("a1", "PJSIP/a1", 2.0)
    assert exc.value.id == "agent.already_logged_in"
    with pytest.raises(AcdError) as exc:
        core.agent_login("a2", "PJSIP/a1", 2.0)
    assert exc.value.id == "agent.endpoint_in_use"
    with pytest.raises(AcdError) as exc:
        core.agent_login("a2", "", 2.0)
    assert exc.value.id == "agent.endpoint_missing"
    for bad in ("talking", "ringing", "wrapup", "napping"):
        with pytest.raises(AcdError) as exc:
            core.set_agent_state("a1", bad, 2.0)
        assert exc.value.id == "agent.not_a_manual_state"
    with pytest.raises(IllegalAgentTransition) as exc:
        core.end_wrapup("a1", 2.0)
    assert (exc.value.id, exc.value.state, exc.value.event) == (
        "agent.illegal_transition", "idle", "wrapup_end")
    # refused events change nothing
    assert core.snapshot_agents(3.0)["a1"]["state"] == "idle"
    assert core.snapshot_agents(3.0)["a2"]["state"] == "offline"


def test_agent_not_in_any_group_may_log_in():
    core = acd()
    assert states(core.agent_login("temp", "PJSIP/t", 1.0)) == [("temp", "offline", "idle",
                                                                 "login")]
    assert core.snapshot_agents(1.0)["temp"]["groups"] == {}
