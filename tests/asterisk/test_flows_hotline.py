"""The example hotline (ivr_flows/) on real calls: greeting in synthesized Mandarin, service
hours, the main menu, identity verification for payments (keyed in, or by the calling
number), and the caller queued into the right skill group."""
from __future__ import annotations

from tests.asterisk.acd_fixtures import (Caller, acd_config, after, kinds, mark,  # noqa: F401
                                         stored)
from tests.asterisk.calls import field
from tests.asterisk.flow_fixtures import (agi_command, agi_end, agi_replies,  # noqa: F401
                                          flow_servers, flows_config, in_queue, nth_command,
                                          trail)


async def test_payments_caller_keys_in_customer_number_and_is_queued_to_payments(
        flow_servers, ami, asterisk, agi_replies):
    flow_servers.copy_examples()
    srv = await flow_servers.start()
    assert srv.flows.registry.status()["status"] == "ok", srv.flows.registry.status()["errors"]
    m = mark(ami)
    caller = await Caller(ami, "7301", "13800000001").dial()        # not in the directory
    # The greeting is Mandarin text, synthesized at load and published where Asterisk reads it.
    greet = await agi_end(ami, m, caller.channel, "STREAM FILE")
    played = field(greet, "Command").split()[2]
    assert "/sounds/acd-flows/" in played
    assert asterisk.install.host_path(played + ".wav").exists()
    # Asterisk found and played it to the end: result 0 (no key), endpos past a second of
    # 8 kHz samples (a missing file answers result=-1 endpos=0).
    reply = next(r for uid, name, args, r in agi_replies
                 if uid == caller.uniqueid and name == "STREAM FILE" and args[0] == played)
    assert reply.result == "0" and int(reply.extra["endpos"]) > 8000, reply
    # The menu prompt plays; the caller presses 2 (payments and finance) during it.
    await nth_command(ami, m, caller.channel, "STREAM FILE", 2, "the menu prompt")
    m2 = mark(ami)
    await caller.send_dtmf("2")
    # payments: the calling number is not on file, so the customer number is asked for.
    await agi_command(ami, m2, caller.channel, "STREAM FILE", "the verification prompt")
    await caller.send_dtmf("12345#")
    await in_queue(ami, m2, caller.channel)
    call = await stored(srv, caller.uniqueid)
    assert trail(call) == [("main_menu", "2"), ("verify", "12345#")]
    assert call["verification"] == "verified"
    assert call["verification_method"] == "keyed_customer_number"
    assert call["skill_group"] == "payments"
    flows = [e["detail"]["flow"] for e in call["events"] if e["kind"] == "ivr"]
    assert flows == ["hotline", "payments"]
    assert [e["detail"]["group"] for e in call["events"] if e["kind"] == "to_queue"] == ["payments"]
    assert "queued" in kinds(call)
    # The language was set for the flow (Mandarin), on the channel itself.
    lang = await ami.action("Getvar", Channel=caller.channel, Variable="CHANNEL(language)")
    assert lang.get("Value") == "zh"
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    assert call["end_reason"] in ("abandoned", "caller_hangup")


async def test_caller_on_file_is_verified_by_the_calling_number_and_orders_go_to_orders(
        flow_servers, ami):
    flow_servers.copy_examples()
    srv = await flow_servers.start()
    m = mark(ami)
    known = await Caller(ami, "7301", "13911112222").dial()           # Li Lei's phone
    await nth_command(ami, m, known.channel, "STREAM FILE", 2, "the menu prompt")
    await known.send_dtmf("2")
    await in_queue(ami, m, known.channel)
    call = await stored(srv, known.uniqueid)
    assert trail(call) == [("main_menu", "2")]               # nothing keyed to verify
    assert (call["verification"], call["verification_method"]) == ("verified", "caller_number")
    assert call["skill_group"] == "payments"
    verification = [e["detail"] for e in call["events"] if e["kind"] == "verification"]
    assert verification == [{"result": "verified", "method": "caller_number", "node": "verify",
                             "customer_number": "12345"}]

    m = mark(ami)
    orders = await Caller(ami, "7301", "13800000002").dial()
    await nth_command(ami, m, orders.channel, "STREAM FILE", 2, "the menu prompt")
    await orders.send_dtmf("1")
    await in_queue(ami, m, orders.channel)
    call = await stored(srv, orders.uniqueid)
    assert trail(call) == [("main_menu", "1")]
    assert call["verification"] is None and call["skill_group"] == "orders"
    for c in (known, orders):
        await c.hangup()


async def test_the_example_survey_stores_the_rating_and_the_key(flow_servers, ami):
    flow_servers.copy_examples()
    srv = await flow_servers.start()
    m = mark(ami)
    caller = await Caller(ami, "7308", "13800000008").dial()
    await agi_command(ami, m, caller.channel, "STREAM FILE", "the survey prompt")
    await caller.send_dtmf("4")
    await caller.gone(m)
    call = await stored(srv, caller.uniqueid)
    assert trail(call) == [("rate", "4")]
    assert call["rating"] == 4
    assert call["end_reason"] == "ivr_hangup"
    assert [e["detail"] for e in call["events"] if e["kind"] == "rated"] == [{"rating": 4}]
