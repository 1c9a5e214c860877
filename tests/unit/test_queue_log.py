"""queue_log lines (acd/reports/queue_log.py) from hand-written call records and agent rows.

Each line is ``epoch|callid|queuename|agent|event|data...`` as Asterisk's ast_queue_log()
writes it; the data fields are checked one by one against their meaning in Asterisk's
"Queue Logs" documentation and app_queue.c.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from acd.reports import queue_log

T0 = datetime(2026, 12, 4, 10, 0, 0, tzinfo=timezone.utc)
E0 = 1796378400                                      # T0 as UNIX seconds


def at(seconds: float) -> str:
    """T0 + seconds, as the store writes times (ISO 8601, UTC)."""
    return (T0 + timedelta(seconds=seconds)).isoformat()


def ev(kind: str, seconds: float, **detail) -> dict:
    return {"kind": kind, "at": at(seconds), "detail": detail}


def leg(agent: str, start: float, end: float, reason: str, role: str = "answer") -> dict:
    return {"agent_id": agent, "role": role, "started_at": at(start), "ended_at": at(end),
            "talk_seconds": end - start, "hold_seconds": 0.0, "wrapup_seconds": 10.0,
            "reason": reason}


def call(uid: str, events: list, legs: list, end_reason: str, ended: float,
         caller: str = "+4930123456") -> dict:
    return {"uniqueid": uid, "caller_number": caller, "did": "+4930999000",
            "arrived_at": at(0), "answered_at": None, "ended_at": at(ended),
            "end_reason": end_reason, "events": events, "legs": legs}


def fields(lines: list[str]) -> list[list[str]]:
    for ln in lines:
        assert "\n" not in ln and "\r" not in ln
    return [ln.split("|") for ln in lines]


# ------------------------------------------------------------------------------ the calls

def test_an_answered_call():
    rec = call("1796378400.10", [
        ev("acd_arrived", 0, group=None),
        ev("queued", 2, group="sales", detail="priority 0"),
        ev("offered", 10, group="sales", agent="bob"),
        ev("ringing", 10.2, group="sales", agent="bob"),
        ev("no_answer", 25.5, group="sales", agent="bob", detail="no_answer"),
        ev("offered", 26, group="sales", agent="alice"),
        ev("answered", 31, group="sales", agent="alice"),
        ev("hold", 60, agent="alice"), ev("resume", 70, agent="alice"),
        ev("wrapup", 151, group="sales", agent="alice", detail="10 s"),
        {"kind": "ended", "at": at(151), "detail": {"reason": "caller_hangup"}},
    ], [leg("alice", 31, 151, "caller_hangup")], "caller_hangup", 151)
    enter, rna, connect, complete = fields(queue_log.call_lines(rec))
    # ENTERQUEUE(url|callerid|origposition): no url, the caller's number, first in line
    assert enter == [str(E0 + 2), "1796378400.10", "sales", "NONE", "ENTERQUEUE",
                     "", "+4930123456", "1"]
    # RINGNOANSWER(ringtime): bob rang from 10 s to 25.5 s: 15,500 ms
    assert rna == [str(E0 + 25), "1796378400.10", "sales", "bob", "RINGNOANSWER", "15500"]
    # CONNECT(holdtime|bridgedchanneluniqueid|ringtime): waited 2 -> 31 s, no agent channel
    # id kept, alice's phone rang 26 -> 31 s
    assert connect == [str(E0 + 31), "1796378400.10", "sales", "alice", "CONNECT",
                       "29", "", "5"]
    # COMPLETECALLER(holdtime|calltime|origposition): the caller hung up after 120 s
    assert complete == [str(E0 + 151), "1796378400.10", "sales", "alice", "COMPLETECALLER",
                        "29", "120", "1"]


def test_an_agent_who_hangs_up_completes_as_the_agent():
    rec = call("u2", [ev("queued", 0, group="sales"), ev("offered", 1, group="sales",
                                                            agent="alice"),
                      ev("answered", 4, group="sales", agent="alice"),
                      {"kind": "ended", "at": at(64), "detail": {"reason": "agent_hangup"}}],
               [leg("alice", 4, 64, "agent_hangup")], "agent_hangup", 64)
    last = fields(queue_log.call_lines(rec))[-1]
    # COMPLETEAGENT(holdtime|calltime|origposition)
    assert last == [str(E0 + 64), "u2", "sales", "alice", "COMPLETEAGENT", "4", "60", "1"]


def test_a_call_transferred_to_a_group_starts_again_there():
    rec = call("u3", [
        ev("queued", 0, group="sales"),
        ev("offered", 3, group="sales", agent="alice"),
        ev("answered", 5, group="sales", agent="alice"),
        ev("transfer_started", 100, agent="alice", target_agent=None, target_group="billing"),
        ev("transfer_completed", 100, agent="alice", target_agent=None,
           target_group="billing"),
        ev("wrapup", 100, group="sales", agent="alice"),
        ev("queued", 100, group="billing", detail="priority 5"),
        ev("offered", 105, group="billing", agent="carol"),
        ev("answered", 108, group="billing", agent="carol"),
        {"kind": "ended", "at": at(200), "detail": {"reason": "agent_hangup"}},
    ], [leg("alice", 5, 100, "transferred"), leg("carol", 108, 200, "agent_hangup")],
        "agent_hangup", 200)
    got = fields(queue_log.call_lines(rec))
    assert [f[4] for f in got] == ["ENTERQUEUE", "CONNECT", "TRANSFER", "ENTERQUEUE",
                                   "CONNECT", "COMPLETEAGENT"]
    # TRANSFER(extension|context|holdtime|calltime|origposition): to the billing group,
    # after 5 s in the queue and 95 s with alice
    assert got[2] == [str(E0 + 100), "u3", "sales", "alice", "TRANSFER",
                      "billing", "group", "5", "95", "1"]
    # the caller enters billing's queue: a new story there
    assert got[3] == [str(E0 + 100), "u3", "billing", "NONE", "ENTERQUEUE",
                      "", "+4930123456", "1"]
    assert got[4] == [str(E0 + 108), "u3", "billing", "carol", "CONNECT", "8", "", "3"]
    assert got[5] == [str(E0 + 200), "u3", "billing", "carol", "COMPLETEAGENT",
                      "8", "92", "1"]


def test_a_consult_completed_to_an_agent_ends_with_a_transfer_to_that_agent():
    rec = call("u4", [
        ev("queued", 0, group="sales"),
        ev("offered", 2, group="sales", agent="alice"),
        ev("answered", 4, group="sales", agent="alice"),
        ev("consult_started", 30, agent="alice", target_agent="dave", target_group=None),
        ev("consult_answered", 35, agent="alice", target_agent="dave", target_group=None),
        ev("consult_completed", 50, agent="alice", target_agent="dave", target_group=None),
        {"kind": "ended", "at": at(90), "detail": {"reason": "caller_hangup"}},
    ], [leg("alice", 4, 50, "transferred"), leg("dave", 35, 90, "caller_hangup", "consult")],
        "caller_hangup", 90)
    got = fields(queue_log.call_lines(rec))
    # as with Asterisk, the transfer ends the call's story in the queue: dave's talk after
    # it is no queue line
    assert [f[4] for f in got] == ["ENTERQUEUE", "CONNECT", "TRANSFER"]
    assert got[2] == [str(E0 + 50), "u4", "sales", "alice", "TRANSFER",
                      "dave", "agent", "4", "46", "1"]


def test_an_abandoned_call():
    rec = call("u5", [
        ev("queued", 1, group="support"),
        ev("offered", 5, group="support", agent="bob"),
        ev("ring_cancelled", 9, group="support", agent="bob", detail="abandoned"),
        {"kind": "ended", "at": at(9.4), "detail": {"reason": "abandoned"}},
    ], [], "abandoned", 9.4)
    got = fields(queue_log.call_lines(rec))
    # RINGCANCELED(ringtime in ms, as app_queue.c writes it): bob rang 5 -> 9 s
    assert got[1] == [str(E0 + 9), "u5", "support", "bob", "RINGCANCELED", "4000"]
    # ABANDON(position|origposition|waittime): nobody else kept a place; waited 1 -> 9 s
    assert got[2] == [str(E0 + 9), "u5", "support", "NONE", "ABANDON", "1", "1", "8"]
    assert len(got) == 3


def test_sent_on_by_maximum_wait_then_no_agents():
    rec = call("u6", [
        ev("queued", 0, group="sales"),
        ev("sent", 120, group="sales", detail="group:billing (max_wait)"),
        ev("sent", 120, group="billing", detail="hangup (no_agents)"),
        {"kind": "ended", "at": at(120), "detail": {"reason": "no_agents"}},
    ], [], "no_agents", 120)
    got = fields(queue_log.call_lines(rec))
    # EXITWITHTIMEOUT(position|origposition|waittime): the maximum wait was reached
    assert got == [[str(E0), "u6", "sales", "NONE", "ENTERQUEUE", "", "+4930123456", "1"],
                   [str(E0 + 120), "u6", "sales", "NONE", "EXITWITHTIMEOUT", "1", "1", "120"]]
    rec = call("u7", [
        ev("queued", 0, group="sales"),
        ev("sent", 30, group="sales", detail="voicemail:sales (no_agents)"),
        {"kind": "ended", "at": at(31), "detail": {"reason": "no_agents"}},
    ], [], "no_agents", 31)
    # EXITEMPTY(position|origposition|waittime): nobody logged in to take the call
    assert fields(queue_log.call_lines(rec))[-1] == [
        str(E0 + 30), "u7", "sales", "NONE", "EXITEMPTY", "1", "1", "30"]


def test_an_overflow_leaves_one_queue_and_enters_the_next():
    rec = call("u8", [
        ev("queued", 0, group="sales"),
        ev("sent", 60, group="sales", detail="group:billing (max_wait)"),
        ev("queued", 60, group="billing"),
        {"kind": "ended", "at": at(75), "detail": {"reason": "abandoned"}},
    ], [], "abandoned", 75)
    got = fields(queue_log.call_lines(rec))
    assert [(f[2], f[4]) for f in got] == [("sales", "ENTERQUEUE"),
                                           ("sales", "EXITWITHTIMEOUT"),
                                           ("billing", "ENTERQUEUE"), ("billing", "ABANDON")]
    assert got[3][5:] == ["1", "1", "15"]


def test_a_callback_keeps_its_place_until_the_customer_answers():
    rec = call("u9", [
        ev("queued", 0, group="sales"),
        ev("sent", 90, group="sales", detail="callback (max_wait)"),
        ev("callback_requested", 90, group="sales", detail="+4930123456"),
        ev("offered", 300, group="sales", agent="alice"),
        ev("dialing", 302, group="sales", agent="alice", detail="attempt 1 of 3"),
        ev("answered", 310, group="sales", agent="alice", detail="callback"),
        {"kind": "ended", "at": at(400), "detail": {"reason": "caller_hangup"}},
    ], [leg("alice", 302, 400, "caller_hangup", "callback")], "caller_hangup", 400)
    got = fields(queue_log.call_lines(rec))
    assert [f[4] for f in got] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    assert got[1][5:] == ["310", "", "10"]
    assert got[2][5:] == ["310", "90", "1"]


def test_a_lost_call_and_an_outbound_call_write_no_closing_line():
    lost = call("u10", [ev("queued", 0, group="sales"),
                        ev("answered", 3, group="sales", agent="alice"),
                        {"kind": "ended", "at": at(9), "detail": {"reason": "lost"}}],
                [leg("alice", 3, 9, "lost")], "lost", 9)
    assert [f[4] for f in fields(queue_log.call_lines(lost))] == ["ENTERQUEUE", "CONNECT"]
    outbound = call("u11", [ev("dialing", 0, agent="alice", number="+4930111"),
                            ev("answered", 5, agent="alice")],
                    [leg("alice", 5, 50, "agent_hangup", "outbound")], "agent_hangup", 50)
    assert queue_log.call_lines(outbound) == []


def test_a_record_without_legs_still_closes_from_its_end_reason():
    rec = call("u12", [ev("queued", 0, group="sales"),
                       ev("answered", 7, group="sales", agent="alice")], [], "caller_hangup", 67)
    last = fields(queue_log.call_lines(rec))[-1]
    assert last == [str(E0 + 67), "u12", "sales", "alice", "COMPLETECALLER", "7", "60", "1"]


def test_a_hostile_caller_id_cannot_break_the_line_format():
    caller = "123|evil\n1796378400|x|sales|NONE|ABANDON\r\u2028\x85\t"
    rec = call("u13", [ev("queued", 0, group="sa|les\n"),
                       {"kind": "ended", "at": at(5), "detail": {"reason": "abandoned"}}],
               [], "abandoned", 5, caller=caller)
    lines = queue_log.call_lines(rec)
    assert len(lines) == 2
    enter = fields(lines)[0]
    # one line, the same 8 fields: every | and line break became _
    assert enter == [str(E0), "u13", "sa_les_", "NONE", "ENTERQUEUE", "",
                     "123_evil_1796378400_x_sales_NONE_ABANDON____", "1"]
    assert "".join(lines).count("\n") == 0
    assert queue_log.field("Zoë 李雷") == "Zoë 李雷"                 # other text is kept


# ---------------------------------------------------------------------------- the agents

def row(agent: str, seconds: float, previous: str | None, state: str, reason: str = "") -> dict:
    return {"agent_id": agent, "state": state, "reason": reason, "at": at(seconds),
            "previous": previous}


def test_agent_states_as_member_lines():
    rows = [row("alice", 0, "offline", "idle"),
            row("alice", 5, "idle", "ringing"), row("alice", 8, "ringing", "talking"),
            row("alice", 60, "talking", "wrapup"), row("alice", 70, "wrapup", "idle"),
            row("alice", 100, "idle", "break", "lunch"),
            row("alice", 200, "break", "break", "coffee"),
            row("alice", 300, "break", "idle"),
            row("alice", 400, "idle", "meeting"),
            row("alice", 500, "meeting", "offline")]
    got = fields(queue_log.agent_lines(rows))
    assert got == [
        # ADDMEMBER: logged in; PAUSE(reason) / UNPAUSE: callid NONE, as app_queue writes
        [str(E0), "NONE", "NONE", "alice", "ADDMEMBER", ""],
        [str(E0 + 100), "NONE", "NONE", "alice", "PAUSE", "lunch"],
        [str(E0 + 200), "NONE", "NONE", "alice", "PAUSE", "coffee"],     # a new reason
        [str(E0 + 300), "NONE", "NONE", "alice", "UNPAUSE", ""],
        [str(E0 + 400), "NONE", "NONE", "alice", "PAUSE", "meeting"],    # no reason: the state
        [str(E0 + 500), "NONE", "NONE", "alice", "REMOVEMEMBER", ""]]


def test_agent_lines_per_group_in_time_order():
    rows = [row("bob", 50, "idle", "busy", "phone in use"), row("alice", 10, None, "break",
                                                               "late|start\n")]
    got = fields(queue_log.agent_lines(rows, groups={"alice": ["sales", "billing"]}))
    assert got == [
        [str(E0 + 10), "NONE", "sales", "alice", "ADDMEMBER", ""],
        [str(E0 + 10), "NONE", "billing", "alice", "ADDMEMBER", ""],
        [str(E0 + 10), "NONE", "sales", "alice", "PAUSE", "late_start_"],
        [str(E0 + 10), "NONE", "billing", "alice", "PAUSE", "late_start_"],
        [str(E0 + 50), "NONE", "NONE", "bob", "PAUSE", "phone in use"]]
