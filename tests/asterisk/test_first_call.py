"""The first real call: a SIP caller dials the hotline, the FastAGI IVR answers and plays a
prompt, the caller keys in digits as RFC 4733 events, and the call with its key trail is stored."""
from tests.asterisk.calls import TestCaller, field
from tests.conftest import BOTH_DATABASES


@BOTH_DATABASES
async def test_call_reaches_ivr_and_key_trail_is_stored(server, ami):
    caller = TestCaller(ami, "7000", "13800138000", "Test Caller")
    await caller.dial()
    # The IVR played its prompt and waits for digits: that is what the caller answers.
    await caller.wait_ivr_command("GET DATA")
    await caller.send_dtmf("13800138000#")
    await caller.wait_hangup()

    call = await _stored(server, caller.hotline_uniqueid)
    assert call["did"] == "7000"
    assert call["caller_number"] == "13800138000"
    assert call["caller_name"] == "Test Caller"
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("collect_number", "13800138000")]
    assert call["end_reason"] == "ivr_hangup"
    # The IVR read the digits back before hanging up.
    said = [e for e in ami.events.events if e.name == "AGIExecStart"
            and field(e, "Channel") == caller.hotline_channel]
    assert any(field(e, "Command").upper().startswith("SAY DIGITS 13800138000") for e in said)


async def test_caller_hanging_up_in_ivr_is_recorded(server, ami):
    caller = TestCaller(ami, "7000", "13900139000")
    await caller.dial()
    await caller.wait_ivr_command("GET DATA")
    await caller.send_dtmf("42")
    await ami.action("Hangup", Channel=caller.trunk_channel)
    await caller.wait_hangup()
    call = await _stored(server, caller.hotline_uniqueid)
    assert call["end_reason"] == "caller_hangup"
    assert call["key_trail"] == []  # no terminator, no timeout: nothing was entered


async def _stored(server, uniqueid, tries=100):
    """The record is written when the AGI session ends, right after the hangup event."""
    import asyncio
    for _ in range(tries):
        call = await server.store.get_call(uniqueid)
        if call and call["end_reason"]:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished record for {uniqueid}: {call}")
