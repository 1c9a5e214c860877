"""The ACD on real calls: overflow by wait time and by queue length, position announcements,
closed hours (to voicemail), and a callback that keeps the caller's place."""
from __future__ import annotations

from tests.asterisk.acd_fixtures import (Caller, acd_config, acd_server, after,  # noqa: F401
                                         agents, kinds, mark, stored)
from tests.asterisk.calls import field, talk_entered


def _app(ami, channel: str, app: str, data: str, since: int = 0):
    """A dialplan application run on the channel, with its data."""
    def ran(e) -> bool:
        if e.name != "Newexten" or field(e, "Channel") != channel:
            return False
        if field(e, "Application") == "ExecIf":    # ExecIf(cond?App(data)), cond true
            return field(e, "AppData") == f"1?{app}({data})"
        return field(e, "Application") == app and field(e, "AppData") == data
    return after(ami, since, ran, f"{app}({data})")


def _agi(ami, channel: str, prefix: str, since: int = 0):
    return after(ami, since, lambda e: e.name == "AGIExecStart" and field(e, "Channel") == channel
                 and field(e, "Command").startswith(prefix), f"AGI {prefix}")


async def test_overflow_by_wait_time_to_another_group(acd_server, agents, ami):
    srv = acd_server
    agents.login("1001")                       # in ovtarget only; ovwait has no members
    await agents.phone("1001", answer="auto")
    m = mark(ami)
    caller = await Caller(ami, "7107").dial()
    await caller.queued(m)
    assert srv.runtime.queues()["ovwait"]["waiting"] == 1
    assert await caller.bridged(m) == "1001"   # after the 2 s maximum wait, in ovtarget
    # The channel says where the caller waits now (what a restart would read).
    assert [e for e in ami.events.events[m:] if e.name == "VarSet"
            and field(e, "Channel") == caller.channel and field(e, "Variable") == "ACD_GROUP"
            and field(e, "Value") == "ovtarget"]
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    assert [e["detail"]["group"] for e in call["events"] if e["kind"] == "queued"] == [
        "ovwait", "ovtarget"]
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "sent"] == [
        "group:ovtarget (max_wait)"]
    assert call["skill_group"] == "ovtarget" and call["end_reason"] == "caller_hangup"


async def test_overflow_by_queue_length_and_position_announcements(acd_server, ami):
    srv = acd_server                           # nobody of ovlen is logged in: callers wait
    m = mark(ami)
    first = await Caller(ami, "7109").dial()
    await first.queued(m)
    second = await Caller(ami, "7109").dial()  # the queue holds one: to the goodbye
    await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Channel") == second.channel
                and field(e, "Context") == "acd-dest" and field(e, "Exten") == "hangup",
                "the second caller sent to the goodbye")
    await second.gone(m)
    # The first caller hears their position and the estimated wait (the dialplan's
    # announcement, reached with an AMI Redirect), then music again.
    said = await _app(ami, first.channel, "Playback", "queue-youarenext", m)
    at = ami.events.events.index(said)
    await _app(ami, first.channel, "Playback", "queue-holdtime", at)
    await _app(ami, first.channel, "SayNumber", "3", at)   # 180 s handle time, nobody working
    await _app(ami, first.channel, "BridgeWait", f"acd-{first.uniqueid},participant,m(default)",
               at)
    assert not first.hung_up_before(mark(ami))
    assert srv.runtime.queues()["ovlen"]["waiting"] == 1
    call = await stored(srv, second.uniqueid, ended=True)
    assert call["end_reason"] == "overflow"
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "sent"] == [
        "hangup (queue_full)"]
    await first.hangup()
    assert (await stored(srv, first.uniqueid, ended=True))["end_reason"] == "abandoned"


async def test_closed_hours_send_the_caller_to_the_closed_destination(acd_server, ami, asterisk):
    srv = acd_server
    assert srv.runtime.queues()["closed"]["open"] is False      # today is a holiday
    m = mark(ami)
    caller = await Caller(ami, "7110").dial()
    vm = await after(ami, m, lambda e: e.name == "UserEvent" and field(e, "UserEvent") == "AcdVoicemail"
                     and field(e, "Channel") == caller.channel, "the mailbox")
    await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Channel") == caller.channel
                and field(e, "Application") == "Record", "the recording")
    await caller.send_dtmf("#")                 # ends the message
    await after(ami, m, lambda e: e.name == "VarSet" and field(e, "Channel") == caller.channel
                and field(e, "Variable") == "RECORD_STATUS", "the message recorded")
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    assert call["end_reason"] == "closed"
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "sent"] == [
        "voicemail:closedbox (closed)"]
    path = field(vm, "File")
    assert path.endswith(f"/acd-voicemail/closedbox/{caller.uniqueid}.wav")
    assert [e["detail"] for e in call["events"] if e["kind"] == "voicemail"] == [
        {"file": path, "mailbox": "closedbox"}]
    assert asterisk.install.host_path(path).exists()
    assert "queued" not in kinds(call) and kinds(call).count("ended") == 1


async def test_callback_keeps_the_place_and_rings_the_agent_before_the_customer(
        acd_server, agents, ami):
    srv = acd_server
    agents.login("1001")
    srv.runtime.set_state("1001", "break")
    await agents.phone("1001", answer="auto")
    m = mark(ami)
    first = await Caller(ami, "7111", caller_num="13800138000").dial()
    await first.queued(m)
    second = await Caller(ami, "7111").dial()
    await second.queued(m)

    await first.send_dtmf("*")                             # the callback key
    await _agi(ami, first.channel, "SAY DIGITS 13800138000", m)   # the number read back
    await first.send_dtmf("1")                             # confirmed
    await _agi(ami, first.channel, "STREAM FILE auth-thankyou", m)
    q = srv.runtime.queues()["cb"]
    assert [(c["call_id"], c["state"]) for c in q["calls"]] == [
        (first.uniqueid, "callback_waiting"), (second.uniqueid, "waiting")]

    m2 = mark(ami)
    srv.runtime.set_state("1001", "idle")
    ring = await agents.watch["1001"].wait(lambda msg: msg["type"] == "ring" and msg["callback"])
    assert ring["call_id"] == first.uniqueid and ring["number"] == "13800138000"
    agent_up = await after(ami, m2, lambda e: e.name == "OriginateResponse"
                           and field(e, "Channel").startswith("PJSIP/1001-")
                           and field(e, "Reason") == "4", "the agent answered")
    dial = await after(ami, m2, lambda e: e.name == "Newchannel" and field(e, "Channel").startswith(
        "PJSIP/acd-trunk-") and field(e, "Uniqueid").startswith("acd-"), "the customer dialled")
    assert ami.events.events.index(agent_up) < ami.events.events.index(dial)   # agent first
    customer = await after(ami, m2, lambda e: e.name == "UserEvent"
                           and field(e, "UserEvent") == "AcdTestCustomer", "the customer answers")
    assert field(customer, "Number") == "13800138000"
    enter = await after(ami, m2, lambda e: talk_entered(e)
                        and field(e, "Channel") == field(dial, "Channel"), "customer bridged")
    await after(ami, m2, lambda e: talk_entered(e) and field(e, "Channel").startswith(
        "PJSIP/1001-") and field(e, "BridgeUniqueid") == field(enter, "BridgeUniqueid"),
        "agent bridged with the customer")
    assert [c["call_id"] for c in srv.runtime.queues()["cb"]["calls"]] == [second.uniqueid]
    await first.gone(m)                                    # thanked and hung up long ago

    # The customer hangs up; then the agent takes the second caller, who kept waiting.
    since = agents.mark("1001")
    await ami.action("Hangup", Channel=field(customer, "Channel"))
    await agents.wait_state("1001", "idle", since)
    call = await stored(srv, first.uniqueid, ended=True)
    assert call["end_reason"] == "caller_hangup"
    k = kinds(call)
    for kind in ("queued", "callback_requested", "offered", "ringing", "dialing", "answered",
                 "ended"):
        assert kind in k, k
    assert k.index("callback_requested") < k.index("offered") < k.index("dialing") < k.index(
        "answered")
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "callback_requested"] == [
        "13800138000"]
    assert await second.bridged(m2) == "1001"
    await second.hangup()
    assert (await stored(srv, second.uniqueid, ended=True))["end_reason"] == "caller_hangup"
