"""Hostile callers on real calls: caller IDs made of HTML, quotes, SQL, control characters
(CR/LF that would forge FastAGI headers, a NUL), non-ASCII and 1,000 characters, sent in the
From header of a hand-made SIP INVITE (tests/asterisk/hostile.py) exactly as a hostile carrier
would; and DTMF floods and long digit strings in the IVR menu, the identity check and the
queue.

What the caller ID becomes, the documented form (docs/reliability.md):
- Asterisk (PJSIP) takes the number from the From URI's user part, percent-decoded, cut at a
  NUL and at a ';', and the name from the display name as sent (a quoted-pair keeps its
  backslash); it keeps at most 79 bytes of each, never half a UTF-8 character.
- Our dialplan ([acd-callerid]) takes out control characters (0x01-0x1F, 0x7F) of both
  before any FastAGI script runs: res_agi writes them unescaped into the AGI environment.
- The rest (HTML, quotes, SQL, non-ASCII) is stored as it came: it is data, bound as a
  parameter, shown as text.
Every such call is answered and served: queued, rung to an agent, talked, recorded whole;
through an IVR flow too, where the caller ID is data for the directory and http nodes (a
number that is not written like a phone number is never looked up).

DTMF: the key trail keeps at most 64 entries per node of a call, then one "truncated" entry
(agi/flows/runner.py); an identity check's entry longer than max_digits is a wrong entry.
"""
from __future__ import annotations

import asyncio
import io
import re
import sys

import pytest

from acd import log as acdlog
from acd.directory import DatabaseDirectory
from tests.asterisk.acd_fixtures import (Agents, Caller, acd_config, acd_server,  # noqa: F401
                                         after, agents, kinds, mark, stored)
from tests.asterisk.calls import field, talk_entered
from tests.asterisk.flow_fixtures import (agi_command, agi_replies, business,  # noqa: F401
                                          commands, flow_servers, flows_config, in_queue,
                                          trail)
from tests.asterisk.hostile import CASES, HostileCaller, flood, pct

SALES = "7101"          # skill group sales: members 1001-1003, no wrap-up

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")


@pytest.fixture
def log_text(monkeypatch):
    """Everything our server logs (structlog, console format, debug level) from here on; to be
    asked for before the server fixture, whose loggers bind the output when they are made."""
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    acdlog.configure("debug", "console")
    yield buf
    monkeypatch.undo()
    acdlog.configure("debug", "console")


async def test_hostile_caller_ids_are_served_and_stored_in_the_documented_form(
        log_text, acd_server, acd_config, agents, ami):
    srv = acd_server
    a = acd_config.asterisk
    agents.login("1001")
    await agents.phone("1001", answer="auto")
    w = agents.watch["1001"]
    log_text.seek(0)
    log_text.truncate()                 # the log lines of the hostile calls only, below
    served = []
    for what, display, user, name, number in CASES:
        since = len(w.messages)
        caller = HostileCaller(a.sip_host, a.sip_port, SALES, user=user, display=display)
        try:
            assert await caller.call() == "SIP/2.0 200 OK", what
            ring = await w.wait(lambda m: m["type"] == "ring", since, what=f"{what}: ring")
            call_id = ring["call_id"]
            await w.wait(lambda m: m["type"] == "answered" and m["call_id"] == call_id, since,
                         what=f"{what}: answered")
            rec = await stored(srv, call_id)
            # The caller and the agent's leg are in one bridge: the call is served.
            m = mark(ami)
            enter = await after(ami, 0, lambda e: talk_entered(e)
                                and field(e, "Channel") == rec["channel"], f"{what}: bridged")
            assert rec["caller_name"] == name, (what, rec["caller_name"])
            assert rec["caller_number"] == number, (what, rec["caller_number"])
            # The ring towards the agent carried a caller ID that cannot break an AMI header
            # or the quoting of CallerID.
            agent_leg = await after(ami, 0, lambda e: talk_entered(e)
                                    and field(e, "BridgeUniqueid") == field(enter, "BridgeUniqueid")
                                    and field(e, "Channel").startswith("PJSIP/1001-"),
                                    f"{what}: the agent's leg bridged")
            shown = [field(agent_leg, k) for k in ("CallerIDName", "CallerIDNum")]
            shown = "".join(x for x in shown if x != "<unknown>")      # AMI's word for empty
            assert not re.search(r'[\x00-\x1f\x7f"<>\\]', shown), (what, shown)
            assert await caller.bye() in ("SIP/2.0 200 OK", "ended by Asterisk")
            await after(ami, m, lambda e: e.name == "Hangup" and field(e, "Channel") == rec["channel"],
                        f"{what}: hung up")
            await w.wait(lambda m: m["type"] == "ended" and m["call_id"] == call_id, since,
                         what=f"{what}: ended")
            served.append(call_id)
        finally:
            caller.close()
    for call_id, (what, _d, _u, name, number) in zip(served, CASES):
        rec = await stored(srv, call_id, ended=True)
        assert [leg["agent_id"] for leg in rec["legs"]] == ["1001"], (what, rec["legs"])
        assert rec["end_reason"] == "caller_hangup" and rec["skill_group"] == "sales", (what, rec)
        assert kinds(rec).count("ended") == 1 and "answered" in kinds(rec), (what, kinds(rec))
    # SQL is data: every call, the "DROP TABLE calls" one included, is still on record.
    recent = {c["uniqueid"]: c for c in await srv.store.recent_calls(limit=50)}
    assert set(served) <= set(recent)
    assert srv.runtime.agent("1001")["state"] == "idle"
    # Every line our server logged meanwhile is one log line: no caller's CR/LF split one.
    text = log_text.getvalue()
    lines = text.splitlines()
    assert len(lines) > 20 and all(LOG_LINE.match(ln) for ln in lines), \
        [ln for ln in lines if not LOG_LINE.match(ln)][:5]
    assert "Traceback" not in text and "agi.bad_header" not in text


LOOKUP_FLOW = """
    name: lookup
    nodes:
      who:
        kind: verify_identity
        prompt: vm-enter-num-to-call
        ask: phone
        match_caller: true
        tries: 1
        timeout: 1
        verified: tell
        failed: tell
      tell:
        kind: http
        url: %(url)s
        body: {caller: "${caller_number}", name: "${caller_name}"}
        ok: agents
        failed: agents
      agents:
        kind: queue
        group: sales
"""


async def test_a_hostile_caller_id_through_an_ivr_flow_is_data_for_the_directory_and_http(
        flow_servers, flows_config, ami, business):
    """The IVR flow's side: the caller ID (HTML around a customer's number, with a CR/LF)
    reaches the flow's variables cleaned of the CR/LF, goes to a business system as JSON
    strings, finds no customer by the digits inside it (it is no phone number), and the
    caller is queued and served."""
    flow_servers.write("lookup", LOOKUP_FLOW % {"url": business.url("/ticket")})
    srv = await flow_servers.start()
    assert srv.flows.registry.status()["status"] == "ok", srv.flows.registry.status()["errors"]
    staff = Agents(srv, flows_config)
    a = flows_config.asterisk
    caller = HostileCaller(a.sip_host, a.sip_port, "7304", user=pct(b"<b>13911112222</b>\r\n"),
                           display=b'"<img src=x onerror=alert(1)> \'; DROP TABLE customers; --"')
    try:
        staff.login("1001")
        await staff.phone("1001", answer="auto")
        since = staff.mark("1001")
        assert await caller.call() == "SIP/2.0 200 OK"
        ring = await staff.watch["1001"].wait(lambda m: m["type"] == "ring", since, what="ring")
        await staff.watch["1001"].wait(lambda m: m["type"] == "answered", since, what="answered")
        call = await stored(srv, ring["call_id"])
        number, name = "<b>13911112222</b>", "<img src=x onerror=alert(1)> '; DROP TABLE customers; --"
        assert (call["caller_number"], call["caller_name"]) == (number, name)
        assert business.requests == [{"path": "/ticket", "body": {"caller": number, "name": name}}]
        assert (call["verification"], call["verification_method"]) == ("failed", "keyed_phone")
        assert "queued" in kinds(call) and "answered" in kinds(call)
        assert await caller.bye() in ("SIP/2.0 200 OK", "ended by Asterisk")
        call = await stored(srv, ring["call_id"], ended=True)
        assert call["end_reason"] == "caller_hangup" and kinds(call).count("ended") == 1
        # The customers are all still there: the name was data.
        assert (await DatabaseDirectory(srv.store).lookup("phone", "13911112222")).name == "Li Lei"
    finally:
        caller.close()
        await staff.close()


# --------------------------------------------------------------------------- DTMF floods

FLOOD_FLOW = """
    name: verify
    nodes:
      main:
        kind: menu
        prompt: dir-welcome
        keys: {"1": check}
        timeout: 3
        retries: 10
        fallback: main
      check:
        kind: verify_identity
        prompt: vm-enter-num-to-call
        ask: phone
        match_caller: false
        tries: 2
        timeout: 3
        verified: agents
        failed: agents
      agents:
        kind: queue
        group: sales
"""


async def test_dtmf_floods_in_the_menu_the_identity_check_and_the_queue(
        flow_servers, flows_config, ami, agi_replies):
    """120 wrong keys as fast as Asterisk takes them in a menu that loops back to itself, a
    300-digit "phone number" in the identity check, and the rest of that flood while the
    caller waits in the queue (our server hears every key over AMI, looking for a callback
    key). The flow takes its error paths (the invalid prompt and a retry; the check fails),
    the key trail stays bounded (64 entries per node, then one "truncated" mark), the caller
    is never dropped: they reach an agent, and the next caller is served as usual."""
    flow_servers.write("verify", FLOOD_FLOW)
    srv = await flow_servers.start()
    assert srv.flows.registry.status()["status"] == "ok", srv.flows.registry.status()["errors"]
    staff = Agents(srv, flows_config)
    try:
        m = mark(ami)
        caller = await Caller(ami, "7303", "13800000077").dial()
        await agi_command(ami, m, caller.channel, "STREAM FILE dir-welcome", "the menu")
        # The menu flood: every key is a wrong one; the menu loops back to itself.
        assert await flood(ami, caller.trunk_channel, "9" * 120) == 120
        # Until the menu's key trail is full (the mark after 64 entries): some keys are lost
        # on the way (res_agi drops those that come between two commands).
        deadline = asyncio.get_running_loop().time() + 60
        while ("main", "truncated") not in trail(await srv.store.get_call(caller.uniqueid)
                                                 or {"key_trail": []}):
            assert asyncio.get_running_loop().time() < deadline, "the menu's key trail never filled"
            await asyncio.sleep(0.2)    # polling the store, bounded
        # The way out: 1. A key that lands between two AGI commands is dropped by res_agi;
        # then the menu plays on, and the caller presses 1 again.
        for _ in range(10):
            await caller.send_dtmf("1")
            got = max(i for i, e in enumerate(ami.events.events) if e.name == "DTMFEnd"
                      and field(e, "Channel") == caller.channel and field(e, "Digit") == "1")
            nxt = await after(ami, got, lambda e: e.name == "AGIExecStart"
                              and field(e, "Channel") == caller.channel
                              and field(e, "Command").startswith("STREAM FILE"), "the next prompt")
            if field(nxt, "Command").startswith("STREAM FILE vm-enter-num-to-call"):
                break
        else:
            raise AssertionError("the menu never took the 1")
        at_check = mark(ami)
        # A 300-digit phone number, and the rest of it while the caller waits in the queue.
        keys = asyncio.get_running_loop().create_task(flood(ami, caller.trunk_channel, "5" * 300))
        await in_queue(ami, at_check, caller.channel)
        in_q = mark(ami)
        # The caller waits in Asterisk: their keys reach our server as AMI DTMFEnd events
        # (asked for from [acd-queue] only); none is the callback key, so none changes a thing.
        deadline = asyncio.get_running_loop().time() + 60
        while sum(1 for e in ami.events.events[in_q:] if e.name == "DTMFEnd"
                  and field(e, "Channel") == caller.channel and field(e, "Digit") == "5"
                  and field(e, "Context") == "acd-queue") < 10:
            assert asyncio.get_running_loop().time() < deadline, "no ten keys in the queue"
            await asyncio.sleep(0.1)    # polling the event log, bounded
        staff.login("1001")
        await staff.phone("1001", answer="auto")
        assert await caller.bridged(in_q) == "1001"
        keys.cancel()
        call = await stored(srv, caller.uniqueid)
        trail_ = trail(call)
        menu = [k for n, k in trail_ if n == "main"]
        assert menu == ["9"] * 64 + ["truncated"], menu
        check = [k for n, k in trail_ if n == "check"]
        assert len(check) == 2 and all(k == "5" * 21 for k in check), check
        assert (call["verification"], call["verification_method"]) == ("failed", "keyed_phone")
        sent = commands(ami, caller.channel, m)
        assert sent.count('STREAM FILE pm-invalid-option 0123456789*#') >= 64
        assert sent.count('STREAM FILE vm-invalid-password 0123456789*#') == 1
        assert "queued" in kinds(call) and "answered" in kinds(call)
        since = staff.mark("1001")
        await caller.hangup()
        call = await stored(srv, caller.uniqueid, ended=True)
        assert call["end_reason"] == "caller_hangup" and kinds(call).count("ended") == 1
        # The next caller is served as usual.
        await staff.wait_state("1001", "idle", since)
        m = mark(ami)
        nxt = await Caller(ami, SALES, "13800000078").dial()
        assert await nxt.bridged(m) == "1001"
        await nxt.hangup()
        rec = await stored(srv, nxt.uniqueid, ended=True)
        assert rec["end_reason"] == "caller_hangup" and "answered" in kinds(rec)
    finally:
        await staff.close()
