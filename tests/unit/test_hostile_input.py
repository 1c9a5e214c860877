"""Hostile callers, the fast tier (the real calls are in tests/asterisk/test_bad_callers.py and
tests/browser/test_hostile_caller.py): a DTMF flood in a menu that loops back to itself keeps
the key trail bounded (64 entries per node, then one "truncated" mark); a digit string
longer than the identity check's max_digits is a wrong entry, never looked up; the caller ID
that goes into an AMI Originate towards an agent keeps no control character, quote, angle
bracket or backslash; only a calling number written like a phone number gets a region."""
from __future__ import annotations

from acd.runtime.telephony import cid_text as _cid_text
from acd.web.pages import caller_region
from agi.flows.runner import MAX_TRAIL_PER_NODE, TRUNCATED
from tests.conftest import BOTH_DATABASES
from tests.unit.test_flows_runner import (FakeDirectory, FakeSession, Registry,  # noqa: F401
                                          runner, trail)

LOOP = """
    nodes:
      main:
        kind: menu
        prompt: dir-welcome
        keys: {"1": bye}
        retries: 10
        fallback: main
      bye: {kind: hangup}
"""

CHECK = """
    nodes:
      check:
        kind: verify_identity
        prompt: vm-enter-num-to-call
        ask: phone
        match_caller: false
        tries: 2
        max_digits: 11
        verified: thanks
        failed: bye
      thanks: {kind: hangup, prompt: auth-thankyou}
      bye: {kind: hangup, prompt: vm-goodbye}
"""


@BOTH_DATABASES
async def test_a_key_flood_in_a_looping_menu_keeps_a_bounded_key_trail(tmp_path, store):
    reg = Registry(tmp_path, loop=LOOP)
    s = FakeSession(["9" * 200, "1"])
    await runner(reg, store)(s)
    got = await trail(store)
    assert got == [("main", "9")] * MAX_TRAIL_PER_NODE + [("main", TRUNCATED)]
    assert MAX_TRAIL_PER_NODE == 64
    # Every key was still taken: the 1 at the end left the menu, and the call ended as planned.
    assert s.commands[-1] == ("HANGUP",)
    assert (await store.get_call("u1"))["end_reason"] == "ivr_hangup"


async def test_a_300_digit_number_in_the_identity_check_is_a_wrong_entry_never_looked_up(
        tmp_path, store):
    reg = Registry(tmp_path, check=CHECK)
    d = FakeDirectory({("phone", "13912345678"): "C-1"})
    s = FakeSession(["1" * 300])
    await runner(reg, store, directory=d)(s)
    assert d.asked == []                  # never looked up: the value is longer than 11 keys
    assert await trail(store) == [("check", "1" * 12), ("check", "1" * 12)]
    call = await store.get_call("u1")
    assert (call["verification"], call["verification_method"]) == ("failed", "keyed_phone")
    assert [c[1] for c in s.commands if c[0] == "STREAM FILE"][-1] == "vm-goodbye"


@BOTH_DATABASES
async def test_a_number_of_the_right_length_is_still_looked_up(tmp_path, store):
    reg = Registry(tmp_path, check=CHECK)
    d = FakeDirectory({("phone", "13912345678"): "C-1"})
    await runner(reg, store, directory=d)(FakeSession(["13912345678#"]))
    assert d.asked == [("phone", "13912345678")]
    assert (await store.get_call("u1"))["verification"] == "verified"


def test_the_caller_id_towards_an_agent_cannot_break_an_ami_header_or_its_quoting():
    assert _cid_text('a\r\nAction: Hangup\x00\x01\x1f\x7f"<b>\\z') == "aAction: Hangupbz"
    assert _cid_text("张三 😀") == "张三 😀"
    assert _cid_text("x" * 1000) == "x" * 80
    assert _cid_text("") == "" and _cid_text(None) == ""  # type: ignore[arg-type]


def test_only_a_number_written_like_a_phone_number_gets_a_region():
    assert caller_region("+86 139-1234-5678")["province"] == "江苏省"
    assert caller_region("<b>13912345678</b>") is None
    assert caller_region("13912345678' OR '1'='1") is None
    assert caller_region("1agi_request: 13912345678") is None
