"""The flow runner on a scripted FastAGI session (no socket) and the real store on SQLite:
menus, collect, identity verification (directory found, not found, failing, slow), branches
on variables, caller, verification and time of day, hours, queue hand-off, http without a
client, the step limit, hot reload of the registry (a broken file keeps the old version), the
customer directory and the verification report."""
from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
import structlog

from acd.config import GroupConfig
from acd.directory import (DatabaseDirectory, DirectoryError, CustomerRecord, import_rows,
                           normalize, parse_csv)
from acd.errors import UserError
from agi.flows.registry import FlowRegistry
from agi.flows.runner import FlowRunner
from agi.protocol import AgiHangup, AgiRequest
from tests.conftest import BOTH_DATABASES

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)     # Monday 10:00 in Shanghai


class FakeSession:
    """What the caller does, as a script: keys (one character each) and None for a silence.
    A prompt with escape keys is cut by the next scripted key if it is one of them; a wait
    takes the next key or silence; commands are kept in order."""

    def __init__(self, script: list[str | None], caller: str = "13800000001", did: str = "7000",
                 hang_up_after_script: bool = False) -> None:
        self.script = [c for item in script for c in ([None] if item is None else list(item))]
        self.commands: list[tuple] = []
        self.vars: dict[str, str] = {}
        self.hang_up_after_script = hang_up_after_script
        self.request = AgiRequest("ivr", {}, {"agi_uniqueid": "u1", "agi_channel": "PJSIP/x-1",
                                              "agi_callerid": caller, "agi_calleridname": "T",
                                              "agi_extension": did})
        self.log = structlog.get_logger()
        self.hung_up = False

    def _take(self, allowed: str | None) -> str | None:
        if not self.script:
            if self.hang_up_after_script:
                raise AgiHangup("511")
            return None
        head = self.script[0]
        if head is None:
            if allowed is None:
                self.script.pop(0)
            return None
        if allowed is None or head in allowed:
            return self.script.pop(0)
        return None

    async def answer(self):
        self.commands.append(("ANSWER",))

    async def hangup(self):
        self.commands.append(("HANGUP",))

    async def stream_file(self, name, escape=""):
        self.commands.append(("STREAM FILE", name))
        return self._take(escape) if escape else None

    async def wait_for_digit(self, ms):
        self.commands.append(("WAIT FOR DIGIT", ms))
        return self._take(None)

    async def say_digits(self, digits, escape=""):
        self.commands.append(("SAY DIGITS", digits))

    async def say_number(self, n, escape=""):
        self.commands.append(("SAY NUMBER", n))

    async def set_variable(self, name, value):
        self.commands.append(("SET VARIABLE", name, value))
        self.vars[name] = value

    async def get_variable(self, name):
        return self.vars.get(name)

    async def exec_app(self, app, *args):
        self.commands.append(("EXEC", app, *args))

    async def channel_gone(self):
        return self.hung_up


class Registry:
    """The runner's view of a registry, over flows loaded from text."""

    def __init__(self, tmp_path, **files: str) -> None:
        d = tmp_path / "flows"
        d.mkdir(exist_ok=True)
        for name, text in files.items():
            (d / f"{name}.yaml").write_text(textwrap.dedent(text))
        self.reg = FlowRegistry(d, numbers={"7000": next(iter(files))}, groups=["general", "vip"])
        result = self.reg.load()
        assert result["errors"] == [], [str(e) for e in result["errors"]]

    def __getattr__(self, name):
        return getattr(self.reg, name)


class FakeDirectory:
    def __init__(self, known: dict[tuple[str, str], str] | None = None, fail: bool = False,
                 slow: bool = False) -> None:
        self.known = known or {}
        self.fail = fail
        self.slow = slow
        self.asked: list[tuple[str, str]] = []

    async def lookup(self, kind, value):
        self.asked.append((kind, value))
        if self.slow:
            await asyncio.Event().wait()
        if self.fail:
            raise DirectoryError("directory.unreachable", "down")
        number = self.known.get((kind, normalize(kind, value)))
        return CustomerRecord(number, "X") if number else None


def runner(reg, store, **kw) -> FlowRunner:
    queued, trails = kw.pop("queued", []), kw.pop("trails", [])

    def on_queue(uid, keys):
        queued.append(uid)
        trails.append(keys)
    return FlowRunner(reg, store, clock=kw.pop("clock", lambda: T0), on_queue=on_queue,
                      groups={"general": GroupConfig(name="general"),
                              "vip": GroupConfig(name="vip", holidays=(str(T0.date()),))}, **kw)


async def trail(store) -> list[tuple[str, str]]:
    return [(k["node"], k["keys"]) for k in (await store.get_call("u1"))["key_trail"]]


MENU = """
    nodes:
      main:
        kind: menu
        prompt: dir-welcome
        keys: {"1": one, "2": two}
        retries: 2
        no_input_prompt: hello
        invalid_prompt: pm-invalid-option
        fallback: fb
      one: {kind: hangup, prompt: digits/1}
      two: {kind: hangup, prompt: digits/2}
      fb: {kind: hangup, prompt: vm-goodbye}
"""


async def test_menu_retries_on_no_input_and_invalid_keys_then_takes_the_key(tmp_path, store):
    reg = Registry(tmp_path, menu=MENU)
    s = FakeSession([None, "7", "2"])
    await runner(reg, store)(s)
    # Silence; the caller presses 7 during the no-input prompt (keys cut any menu prompt),
    # then 2 during the invalid-key prompt.
    plays = [c[1] for c in s.commands if c[0] == "STREAM FILE"]
    assert plays == ["dir-welcome", "hello", "pm-invalid-option", "digits/2"]
    assert await trail(store) == [("main", "7"), ("main", "2")]
    call = await store.get_call("u1")
    assert call["end_reason"] == "ivr_hangup" and call["did"] == "7000"


async def test_menu_falls_back_after_the_retries(tmp_path, store):
    reg = Registry(tmp_path, menu=MENU)
    s = FakeSession([None, "9", None])
    await runner(reg, store)(s)
    assert [c[1] for c in s.commands if c[0] == "STREAM FILE"][-1] == "vm-goodbye"
    assert await trail(store) == [("main", "9")]


COLLECT = """
    nodes:
      order:
        kind: collect
        prompt: vm-enter-num-to-call
        var: order
        min_digits: 3
        max_digits: 5
        terminator: "*"
        pattern: "9[0-9]*"
        retries: 2
        next: say
        fallback: bye
      say: {kind: say, digits: "${order}", next: bye}
      bye: {kind: hangup}
"""


async def test_collect_checks_length_pattern_and_terminator(tmp_path, store):
    reg = Registry(tmp_path, collect=COLLECT)
    # 12* too short; 123456 stops at max+1 and is too long; 987* passes.
    s = FakeSession(["12*", "123456", "987*"])
    await runner(reg, store)(s)
    assert await trail(store) == [("order", "12*"), ("order", "123456"), ("order", "987*")]
    assert ("SAY DIGITS", "987") in s.commands


async def test_a_caller_hanging_up_mid_flow_is_recorded(tmp_path, store):
    reg = Registry(tmp_path, collect=COLLECT)
    s = FakeSession(["98"], hang_up_after_script=True)
    await runner(reg, store)(s)
    call = await store.get_call("u1")
    assert call["end_reason"] == "caller_hangup"
    assert call["key_trail"] == []          # nothing finished: no entry


VERIFY = """
    nodes:
      v:
        kind: verify_identity
        prompt: vm-enter-num-to-call
        ask: customer_number
        tries: 2
        skip_key: "*"
        verified: good
        failed: bad
        skipped: skip
      good: {kind: hangup, prompt: digits/1}
      bad: {kind: hangup, prompt: digits/2}
      skip: {kind: hangup, prompt: digits/3}
"""


@pytest.mark.parametrize("caller, script, directory, outcome, method, last", [
    ("13911112222", [], FakeDirectory({("phone", "13911112222"): "c1"}), "verified", "caller_number", "digits/1"),
    ("13800000001", ["555#", "12345#"], FakeDirectory({("customer_number", "12345"): "c1"}),
     "verified", "keyed_customer_number", "digits/1"),
    ("13800000001", ["555#", None], FakeDirectory(), "failed", "keyed_customer_number", "digits/2"),
    ("13800000001", ["*#"], FakeDirectory(), "skipped", None, "digits/3"),
    ("13800000001", [], FakeDirectory(fail=True), "failed", "lookup_error", "digits/2"),
    ("13800000001", ["1#"], FakeDirectory(slow=True), "failed", "lookup_error", "digits/2"),
])
async def test_verify_identity_outcomes(tmp_path, store, caller, script, directory, outcome,
                                        method, last):
    reg = Registry(tmp_path, verify=VERIFY)
    if directory.slow:      # the caller number lookup answers; the keyed one hangs
        slow = directory

        class FirstFast(FakeDirectory):
            async def lookup(self, kind, value):
                if kind == "phone":
                    return None
                return await slow.lookup(kind, value)
        directory = FirstFast()
    s = FakeSession(script, caller=caller)
    await runner(reg, store, directory=directory, lookup_timeout=0.05)(s)
    call = await store.get_call("u1")
    assert (call["verification"], call["verification_method"]) == (outcome, method)
    assert [c[1] for c in s.commands if c[0] == "STREAM FILE"][-1] == last
    assert [e["detail"]["result"] for e in call["events"] if e["kind"] == "verification"] == [outcome]
    assert call["end_reason"] == "ivr_hangup"


BRANCH = """
    nodes:
      tag: {kind: set, vars: {tier: gold, group: vip}, next: b}
      b:
        kind: branch
        cases:
          - {var: tier, equals: silver, next: one}
          - {caller: "^139", next: two}
          - {time: "mon-fri 09:00-12:00", timezone: Asia/Shanghai, var: tier, in: "gold, platinum", next: three}
        else: four
      one: {kind: hangup, prompt: digits/1}
      two: {kind: hangup, prompt: digits/2}
      three: {kind: hours, group: vip, open: four, closed: five}
      four: {kind: hangup, prompt: digits/4}
      five: {kind: queue}
"""


async def test_branch_on_variables_caller_and_time_then_hours_and_queue(tmp_path, store):
    reg = Registry(tmp_path, branch=BRANCH)
    queued = []
    s = FakeSession([])
    await runner(reg, store, queued=queued)(s)
    # Monday 10:00 in Shanghai, tier gold: case 3; the group vip is on holiday: closed; queue
    # with the group set before.
    assert ("SET VARIABLE", "ACD_GROUP", "vip") in s.commands
    assert ("SET VARIABLE", "ACD_PRIORITY", "0") in s.commands
    assert s.commands[-1] == ("EXEC", "Goto", "acd-queue,s,1")
    assert queued == ["u1"]
    call = await store.get_call("u1")
    assert call["end_reason"] is None                  # the ACD ends the record
    # In the afternoon the time condition fails: else.
    s2 = FakeSession([])
    s2.request.headers["agi_uniqueid"] = "u2"
    await runner(reg, store, clock=lambda: T0 + timedelta(hours=5))(s2)
    assert [c[1] for c in s2.commands if c[0] == "STREAM FILE"] == ["digits/4"]


async def test_http_without_a_client_takes_failed_and_the_step_limit_ends_a_call(tmp_path, store):
    reg = Registry(tmp_path, h="""
        nodes:
          t: {kind: http, url: "http://127.0.0.1:9/x", ok: a, failed: b}
          a: {kind: hangup, prompt: digits/1}
          b:
            kind: menu
            prompt: hello
            keys: {"1": b}
            fallback: a
    """)
    s = FakeSession(["1"] * 30)
    await runner(reg, store, max_steps=12)(s)
    call = await store.get_call("u1")
    assert [e["detail"] for e in call["events"] if e["kind"] == "http"] == [
        {"node": "t", "status": None, "ok": False}]
    assert call["end_reason"] == "ivr_error"
    assert len(call["key_trail"]) == 11          # steps 2..12 were the menu, then the limit
    assert ("STREAM FILE", "an-error-has-occurred") in s.commands


async def test_a_number_without_a_flow_gets_the_fallback(tmp_path, store):
    reg = Registry(tmp_path, menu=MENU)
    seen = []

    async def fallback(session):
        seen.append(session.request.extension)
    s = FakeSession([], did="7999")
    await runner(reg, store, fallback=fallback)(s)
    assert seen == ["7999"] and s.commands == []


# --------------------------------------------------------------------------- the registry

def test_a_broken_edit_keeps_the_working_version(tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    (d / "a.yaml").write_text("nodes:\n  x: {kind: hangup, prompt: digits/1}\n")
    (d / "b.yaml").write_text("nodes:\n  go: {kind: goto, flow: a}\n")
    reg = FlowRegistry(d, numbers={"7000": "a", "7001": "nothere"})
    first = reg.load()
    assert sorted(reg.snapshot()) == ["a", "b"]
    assert [(e.id, e.message) for e in first["errors"]] == [
        ("flow.unknown_flow", "flows.numbers: 7001 maps to flow 'nothere', which is not loaded "
                              "(calls to it get the built-in hotline)")]
    old = reg.snapshot()["a"]
    (d / "a.yaml").write_text("nodes:\n  x: {kind: hangup, prompt: digits/1}\n  y: {kind: bogus}\n")
    result = reg.load()
    assert reg.snapshot()["a"] is old
    assert [(e.id, e.line) for e in result["errors"] if e.file.endswith("a.yaml")] == [("flow.unknown_kind", 3)]
    assert reg.status()["status"] == "errors"
    # b's new version goes to a flow that does not exist: refused, the old b stays.
    old_b = reg.snapshot()["b"]
    (d / "b.yaml").write_text("nodes:\n  go: {kind: goto, flow: zzz}\n")
    result = reg.load()
    assert reg.snapshot()["b"] is old_b
    assert "goto flow 'zzz': no such flow" in " ".join(e.message for e in result["errors"])
    # a is deleted while b (the working version) still goes to it: a stays loaded.
    (d / "a.yaml").unlink()
    result = reg.load()
    assert reg.snapshot()["a"] is old
    assert any(e.id == "flow.still_used" for e in result["errors"])
    # Fixed: taken.
    (d / "a.yaml").write_text("nodes:\n  x: {kind: hangup, prompt: digits/2}\n")
    (d / "b.yaml").write_text("nodes:\n  go: {kind: goto, flow: a}\n")
    reg.numbers = {"7000": "a"}
    result = reg.load()
    assert result["errors"] == [] and reg.snapshot()["a"] is not old
    assert reg.snapshot()["a"].nodes["x"].params["prompt"][0].value == "digits/2"


async def test_reload_and_watch_take_a_change(tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    (d / "a.yaml").write_text("nodes:\n  x: {kind: hangup}\n")
    reg = FlowRegistry(d)
    await reg.reload()
    task = asyncio.ensure_future(reg.watch(0.01))
    try:
        gen = reg.generation
        (d / "c.yaml").write_text("nodes:\n  y: {kind: hangup}\n")
        await reg.wait_reload(gen, timeout=10)
        assert sorted(reg.snapshot()) == ["a", "c"]
    finally:
        task.cancel()


# --------------------------------------------------------------------------- the directory

@BOTH_DATABASES
async def test_directory_import_and_lookups(store):
    rows = parse_csv("customer_number,name,phone,id_number\n"
                     "C1,Li Lei,+86 139-1111-2222,11010519491231002x\n"
                     "C2,Han Meimei,13933334444,\n", "c.csv")
    assert await import_rows(store, rows) == {"added": 2, "updated": 0}
    assert await import_rows(store, rows[:1]) == {"added": 0, "updated": 1}
    d = DatabaseDirectory(store)
    assert (await d.lookup("phone", "13911112222")).customer_number == "C1"     # without +86
    assert (await d.lookup("phone", "+8613933334444")).customer_number == "C2"  # stored shorter
    assert await d.lookup("phone", "3933334444") is not None                   # 10 digits: a suffix
    assert await d.lookup("phone", "34444") is None                            # too short to match
    assert (await d.lookup("id_number", "11010519491231002*")).customer_number == "C1"
    assert (await d.lookup("customer_number", "C2")).name == "Han Meimei"
    assert await d.lookup("customer_number", "C3") is None
    assert await d.lookup("phone", "") is None


@pytest.mark.parametrize("text, message", [
    ("name,phone\nx,1\n", "c.csv, line 1: the header needs customer_number"),
    ("customer_number,email\nC1,x\n", "c.csv, line 1: unknown column 'email'"),
    ("customer_number,phone\nC1,123\nC1,456\n,1\nC2,abc\n",
     "c.csv, line 3: customer_number 'C1' is also on line 2; c.csv, line 4: customer_number is "
     "empty or too long; c.csv, line 5: phone 'abc' is not a phone number"),
])
def test_csv_problems_name_the_line_and_nothing_is_imported(text, message):
    with pytest.raises(UserError) as e:
        parse_csv(text, "c.csv")
    assert e.value.id == "directory.bad_csv"
    assert e.value.message.startswith(message)


@BOTH_DATABASES
async def test_verification_report_share_and_handle_time(store):
    async def call(uid, verification, talk):
        await store.call_arrived(uniqueid=uid, channel="c", caller_number="1", caller_name="",
                                 did="7000", at=T0)
        if verification:
            await store.set_verification(uid, result=verification, method="caller_number", at=T0)
        if talk is not None:
            await store.call_update(uid, answered_at=T0 + timedelta(seconds=30))
            await store.call_ended(uid, reason="caller_hangup", at=T0 + timedelta(seconds=30 + talk))
    await call("a", "verified", 100)
    await call("b", "failed", 130)
    await call("c", None, 115)
    await call("d", None, None)
    r = await store.verification_report()
    assert (r["calls"], r["checked"], r["verified"], r["failed"], r["verified_share"]) == (4, 2, 1, 1, 0.25)
    assert r["handle_time"]["verified"] == {"answered": 1, "average_handle_seconds": 100.0}
    assert r["handle_time"]["not_verified"] == {"answered": 2, "average_handle_seconds": 122.5}
    assert r["handle_time"]["verified_shorter_by_seconds"] == 22.5
    assert (await store.verification_report(since=T0 + timedelta(seconds=1)))["calls"] == 0


QUEUE_MENU = """
    nodes:
      main:
        kind: menu
        prompt: dir-welcome
        keys: {"1": q}
        retries: 2
        no_input_prompt: hello
        invalid_prompt: pm-invalid-option
        fallback: q
      q: {kind: queue, group: general}
"""


async def test_the_key_trail_goes_to_the_queue_with_the_caller(tmp_path, store):
    """The runtime takes the caller's keys from the hand-over, not from the store: the keys
    handed over are the trail as stored."""
    reg = Registry(tmp_path, menu=QUEUE_MENU)
    queued, trails = [], []
    s = FakeSession(["7", "1"])
    await runner(reg, store, queued=queued, trails=trails)(s)
    assert queued == ["u1"] and trails == [("7", "1")]
    assert [keys for _, keys in await trail(store)] == list(trails[0])
