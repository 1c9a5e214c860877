"""Each node kind on real calls with real DTMF: play (a recording, keys that interrupt), collect
(a wrong entry, then a right one), say digits and numbers, set, branch, http (a real HTTP
server on 127.0.0.1), verify_identity against an HTTP directory (found, and one that hangs:
the failure branch, and the caller is transferred), transfer, menu (no input, an invalid key,
the fallback), hours (closed on a holiday), voicemail, hangup."""
from __future__ import annotations

import math
import struct
import wave
from datetime import datetime, timedelta, timezone

from tests.asterisk.acd_fixtures import (Caller, acd_config, after, kinds, mark,  # noqa: F401
                                         stored)
from tests.asterisk.calls import field
from tests.asterisk.flow_fixtures import (agi_command, agi_replies, business,  # noqa: F401
                                          flow_servers, flows_config, nth_command, trail)


def _tone(path, rate: int = 22050, seconds: float = 1.0) -> None:
    """A recording as an admin might bring it: not 8 kHz (the loader converts it)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(rate * seconds))))


WALK = """
    name: walk
    language: en
    nodes:
      welcome:
        kind: play
        prompt: [{file: tone.wav}, demo-congrats]
        keys: {"0": order}
        next: order
      order:
        kind: collect
        prompt: vm-enter-num-to-call
        var: order
        min_digits: 4
        max_digits: 8
        pattern: "[1-9][0-9]*"
        retries: 1
        next: readback
        fallback: bye
      readback:
        kind: say
        digits: ${order}
        next: tag
      tag:
        kind: set
        vars: {group: orders, note: "order ${order}"}
        next: ticket
      ticket:
        kind: http
        url: %(url)s
        body: {caller: "${caller_number}", order: "${order}", note: "${note}"}
        save: {ticket: ticket.id}
        ok: which
        failed: bye
      which:
        kind: branch
        cases:
          - {var: ticket, equals: T-4711, caller: "^139", next: vip}
        else: bye
      vip:
        kind: say
        number: ${order}
        next: bye
      bye:
        kind: hangup
        prompt: vm-goodbye
"""


async def test_walk_play_collect_say_set_http_branch_hangup(flow_servers, ami, business, agi_replies,
                                                            asterisk):
    _tone(flow_servers.dir / "tone.wav")
    flow_servers.write("walk", WALK % {"url": business.url("/ticket")})
    srv = await flow_servers.start()
    assert srv.flows.registry.status()["status"] == "ok", srv.flows.registry.status()["errors"]
    m = mark(ami)
    caller = await Caller(ami, "7302", "13900000009").dial()
    # The recording plays (converted to 8 kHz and published), then the long prompt, which
    # the caller cuts short with 0.
    await nth_command(ami, m, caller.channel, "STREAM FILE", 2, "the second prompt")
    await caller.send_dtmf("0")
    await nth_command(ami, m, caller.channel, "STREAM FILE", 3, "the collect prompt")
    await caller.send_dtmf("12#")                 # too short: asked again
    await nth_command(ami, m, caller.channel, "STREAM FILE", 5, "the prompt again")
    await caller.send_dtmf("4711#")
    await caller.gone(m)
    call = await stored(srv, caller.uniqueid)
    assert trail(call) == [("welcome", "0"), ("order", "12#"), ("order", "4711#")]
    assert call["end_reason"] == "ivr_hangup"
    sent = [c for c in _commands(ami, caller.channel, m)]
    assert "SAY DIGITS 4711 \"\"" in sent and "SAY NUMBER 4711 \"\"" in sent
    assert sent[-2:] == ['STREAM FILE vm-goodbye ""', "HANGUP"]
    # The business system got the call's variables; its answer went into a variable that the
    # branch then matched (the number was said only on that branch).
    assert business.requests == [{"path": "/ticket", "body": {
        "caller": "13900000009", "order": "4711", "note": "order 4711"}}]
    assert [e["detail"] for e in call["events"] if e["kind"] == "http"] == [
        {"node": "ticket", "status": 200, "ok": True}]
    # The recording was converted and played to the end (a second of 8 kHz samples).
    tone = next(r for uid, name, args, r in agi_replies if uid == caller.uniqueid
                and name == "STREAM FILE" and "/acd-flows/" in args[0])
    assert tone.result == "0" and 7000 < int(tone.extra["endpos"]) <= 8100, tone
    stop = next(r for uid, name, args, r in agi_replies if uid == caller.uniqueid
                and name == "STREAM FILE" and args[0] == "demo-congrats")
    assert stop.result == str(ord("0"))           # cut short by the key


def _commands(ami, channel, since):
    return [field(e, "Command") for e in ami.events.events[since:]
            if e.name == "AGIExecStart" and field(e, "Channel") == channel]


VERIFY = """
    name: verify
    nodes:
      check:
        kind: verify_identity
        prompt: vm-enter-num-to-call
        ask: id_number
        match_caller: false
        tries: 2
        verified: thanks
        failed: to_person
      thanks:
        kind: hangup
        prompt: auth-thankyou
      to_person:
        kind: transfer
        number: "5550100"
        prompt: pls-hold-while-try
"""


async def test_verify_by_id_number_through_an_http_directory(flow_servers, ami, business):
    flow_servers.write("verify", VERIFY)
    srv = await flow_servers.start(directory={"backend": "http", "url": business.url("/lookup"),
                                              "timeout": 5.0})
    m = mark(ami)
    caller = await Caller(ami, "7303", "13800000003").dial()
    await agi_command(ami, m, caller.channel, "STREAM FILE", "the prompt")
    await caller.send_dtmf("11010519491231002*#")     # * stands for the X
    await caller.gone(m)
    call = await stored(srv, caller.uniqueid)
    assert trail(call) == [("check", "11010519491231002*#")]
    assert (call["verification"], call["verification_method"]) == ("verified", "keyed_id_number")
    assert call["end_reason"] == "ivr_hangup"
    assert business.requests == [{"path": "/lookup",
                                  "query": {"kind": "id_number", "value": "11010519491231002X"}}]


async def test_a_hanging_directory_takes_the_failure_branch_and_the_caller_is_transferred(
        flow_servers, ami, business):
    flow_servers.write("verify", VERIFY)
    srv = await flow_servers.start(directory={"backend": "http", "url": business.url("/hang"),
                                              "timeout": 1.0})
    m = mark(ami)
    caller = await Caller(ami, "7303", "13800000004").dial()
    await agi_command(ami, m, caller.channel, "STREAM FILE", "the prompt")
    await caller.send_dtmf("4242#")
    # The lookup never answers; after the timeout the flow goes on: the caller is connected
    # to the external number (a test customer answering on the loopback trunk).
    reached = await after(ami, m, lambda e: e.name == "UserEvent"
                          and field(e, "UserEvent") == "AcdTestCustomer", "the transfer answered")
    assert field(reached, "Number") == "5550100"
    call = await stored(srv, caller.uniqueid)
    assert business.requests == [{"path": "/hang"}]
    assert trail(call) == [("check", "4242#")]
    assert (call["verification"], call["verification_method"]) == ("failed", "lookup_error")
    assert call["end_reason"] == "transferred"
    assert [e["detail"] for e in call["events"] if e["kind"] == "transfer"] == [
        {"number": "5550100", "node": "to_person"}]
    await caller.hangup()


MENU = """
    name: menu
    nodes:
      main:
        kind: menu
        prompt: dir-welcome
        keys: {"1": bye}
        timeout: 1
        retries: 1
        no_input_prompt: hello
        invalid_prompt: pm-invalid-option
        fallback: when
      when:
        kind: hours
        hours: ["mon-sun 00:00-24:00"]
        holidays: [%(holidays)s]
        timezone: UTC
        open: bye
        closed: message
      message:
        kind: voicemail
        box: flowbox
      bye:
        kind: hangup
"""


async def test_menu_no_input_then_invalid_key_falls_back_to_closed_hours_and_voicemail(
        flow_servers, ami, asterisk):
    today = datetime.now(timezone.utc).date()
    holidays = ", ".join(str(today + timedelta(days=d)) for d in (-1, 0, 1))
    flow_servers.write("menu", MENU % {"holidays": holidays})
    srv = await flow_servers.start()
    m = mark(ami)
    caller = await Caller(ami, "7305", "13800000005").dial()
    # First round: no key within the timeout. Second: the no-input prompt, the menu again,
    # and the caller presses 7, which is no option: after the retries, the fallback.
    await nth_command(ami, m, caller.channel, "STREAM FILE dir-welcome", 2, "the menu again")
    await caller.send_dtmf("7")
    vm = await after(ami, m, lambda e: e.name == "UserEvent" and field(e, "UserEvent") == "AcdVoicemail"
                     and field(e, "Channel") == caller.channel, "the mailbox")
    await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Channel") == caller.channel
                and field(e, "Application") == "Record", "the recording")
    await caller.send_dtmf("#")
    await after(ami, m, lambda e: e.name == "VarSet" and field(e, "Channel") == caller.channel
                and field(e, "Variable") == "RECORD_STATUS", "the message recorded")
    await caller.hangup()
    call = await stored(srv, caller.uniqueid)
    assert trail(call) == [("main", "7")]
    sent = [c for c in _commands(ami, caller.channel, m) if c.startswith(("STREAM", "WAIT"))]
    assert sent[:4] == ['STREAM FILE dir-welcome 0123456789*#', "WAIT FOR DIGIT 1000",
                        'STREAM FILE hello 0123456789*#', 'STREAM FILE dir-welcome 0123456789*#']
    assert call["end_reason"] == "voicemail"
    path = field(vm, "File")
    assert path.endswith(f"/acd-voicemail/flowbox/{caller.uniqueid}.wav")
    assert [e["detail"] for e in call["events"] if e["kind"] == "voicemail"] == [
        {"file": path, "mailbox": "flowbox"}]
    assert asterisk.install.host_path(path).exists()
    assert "queued" not in kinds(call) and kinds(call).count("ended") == 1
