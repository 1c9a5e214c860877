"""The queue script registers a caller before its first AGI command and sends them to the
dialplan's wait: no session is kept while they wait. Here on a scripted AGI session and a
real runtime (fake AMI, real store)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from acd import config as configmod
from agi.protocol import AgiError
from agi.queue import QueueScript
from tests.unit.test_runtime import runtime_env, start

T0 = 1_800_000_000.0


class Cut(AgiError):
    pass


class FakeAgi:
    """An AGI session whose caller presses nothing; Asterisk cuts it after ``waits`` waits."""

    def __init__(self, waits: int, on_wait=None) -> None:
        self.commands: list[tuple[str, Any]] = []
        self.waits = waits
        self.on_wait = on_wait
        self.log = __import__("structlog").get_logger()

    async def wait_for_digit(self, ms: int) -> str | None:
        self.commands.append(("WAIT FOR DIGIT", ms))
        if self.on_wait is not None:
            self.on_wait(len([c for c in self.commands if c[0] == "WAIT FOR DIGIT"]))
        await asyncio.sleep(0)
        if sum(1 for c in self.commands if c[0] == "WAIT FOR DIGIT") >= self.waits:
            raise Cut("hung up")
        return None

    async def set_music(self, on: bool) -> None:
        self.commands.append(("SET MUSIC", on))

    async def stream_file(self, name: str, escape: str = "") -> None:
        self.commands.append(("STREAM FILE", name))

    async def say_number(self, n: int, escape: str = "") -> None:
        self.commands.append(("SAY NUMBER", n))


GROUPS = (configmod.GroupConfig(name="sales", members={"1001": 1}, announce_every=30,
                                callback=configmod.CallbackConfig(key="*")),
          configmod.GroupConfig(name="quiet", members={"1001": 1}))


@pytest.fixture
async def env(tmp_path):
    async with runtime_env(tmp_path, GROUPS) as e:
        await start(e)
        yield e


async def test_a_registered_caller_waits_in_asterisk_with_no_session(env):
    """The script registers the caller and sends them to the dialplan's wait: no WAIT FOR
    DIGIT, no session kept; the announcement timer runs in the core all the same."""
    from acd.asterisk import dialplan as dp
    agi = FakeAgi(waits=1)
    agi.request = Request([{dp.GROUP: "sales"}.get(v, "") for v in dp.QUEUE_ARGS])
    agi.set_variable = lambda name, value: _record(agi, ("SET VARIABLE", name, value))
    await QueueScript(env.rt)(agi)
    assert [c for c in agi.commands if c[0] == "WAIT FOR DIGIT"] == []
    assert agi.commands[-1] == ("SET VARIABLE", dp.NEXT, dp.WAIT_TARGET)
    assert env.rt.call_info("c9")["state"] == "waiting"
    assert env.rt.timers()["announce:c9"] == pytest.approx(T0 + 30)


async def test_the_callback_key_comes_from_the_calls_group_without_its_whole_view(env):
    await env.arrive("c1", group="sales")
    await env.arrive("c2", group="quiet")
    assert env.rt.callback_key("c1") == "*"
    assert env.rt.callback_key("c2") is None


class Request:
    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.uniqueid, self.channel = "c9", "PJSIP/acd-caller-c9"
        self.caller_id_num, self.caller_id_name, self.extension = "5551234", "", "s"


async def test_the_caller_is_offered_before_the_first_agi_command(env):
    """Everything the dialplan set comes as the script's arguments: the core has decided (an
    idle agent is rung) before the script sends Asterisk anything; then music, the entry
    time kept on the channel, and the wait."""
    from acd.asterisk import dialplan as dp
    args = {dp.GROUP: "sales", dp.PRIORITY: "0", dp.ENTERED: "", dp.BRIDGED: "",
            dp.IVR: "", dp.DID: "7,8"}
    env.reachable("1001")
    env.rt.login("1001")
    await env.settle()
    agi = FakeAgi(waits=1)
    state_at_first_command: list[str | None] = []
    agi.request = Request([args[v] for v in dp.QUEUE_ARGS])

    async def set_variable(name: str, value: str) -> None:
        if not agi.commands:
            state_at_first_command.append(env.rt.call_info("c9")["state"])
        agi.commands.append(("SET VARIABLE", name, value))
    agi.set_variable = set_variable
    await QueueScript(env.rt)(agi)
    assert state_at_first_command == ["ringing"]
    # (music meanwhile, should the caller's record take a moment to be written)
    assert [c[1] for c in agi.commands if c[0] == "SET VARIABLE"] == [
        dp.ENTERED, dp.NEXT]
    assert env.rt.call_info("c9")["group"] == "sales"


async def _record(agi, command) -> None:
    agi.commands.append(command)


def test_queue_args_keep_a_comma_in_the_did():
    from agi.queue import _queue_args
    assert _queue_args(["sales", "2", "", "", "1", "70", "01"]) == ("sales", "2", "", "", "1",
                                                                    "70,01")
    assert _queue_args(["sales"]) == ("sales", "", "", "", "", "")


async def test_a_caller_turned_away_on_arrival_is_sent_on_by_the_script(env):
    """Overloaded (or closed, unstaffed, full): the script itself sets the destination and
    ACD_NEXT; not one AMI action for a caller turned away."""
    from acd.asterisk import dialplan as dp
    env.rt.lag.max_lag = 0.5                    # the default (the test env raises it)
    for _ in range(10):
        env.rt.lag.sample(2.0)                  # the loop runs two seconds late, on and on
    env.ami.clear()
    agi = FakeAgi(waits=1)
    agi.request = Request([{dp.GROUP: "sales"}.get(v, "") for v in dp.QUEUE_ARGS])
    agi.set_variable = lambda name, value: _record(agi, ("SET VARIABLE", name, value))
    await QueueScript(env.rt)(agi)
    await env.settle()
    assert agi.commands == [("SET VARIABLE", dp.SOUND, "all-circuits-busy-now"),
                            ("SET VARIABLE", dp.NEXT, dp.HANGUP_TARGET)]
    assert env.ami.sent("Setvar") == [] and env.ami.sent("Redirect") == []
    assert env.rt.call_info("c9")["end_reason"] == "overflow"
