"""The end of a bench run and of a soak: Asterisk's channel list must be empty once the calls
are over; what is left over (a leaked ``Surrogate/...`` channel, say) is in the results and
printed, never silent. Asterisk is a fake here; tests/asterisk/test_load_generator.py reads
a real one.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from acd.ami.client import AmiDisconnected
from acd.tools import load
from bench import instance as inst
from bench.measures import AQ, Bench
from bench.soak import Actions, Soak, SoakPlan, summary_lines, write_doc

# What AMI's CoreShowChannels gives for a channel (it leaves out internal ones: see below).
WAITING = {"Event": "CoreShowChannel", "Channel": "PJSIP/2006-0000052a",
           "ChannelState": "6", "ChannelStateDesc": "Up", "Application": "Wait",
           "ApplicationData": "120", "Duration": "00:03:12", "Context": "acd-agent", "Exten": "s",
           "Uniqueid": "1761000000.4242", "Linkedid": "1761000000.4100", "BridgeId": "",
           "CallerIDNum": "55001000123"}
HANGING_UP = {**WAITING, "Channel": "PJSIP/acd-caller-00000001", "Application": "Hangup",
              "Uniqueid": "1761000000.5000"}
# The CLI's `core show channels concise` lists every channel, the Surrogate/... channel a
# masquerade left behind too (an internal technology: AMI's list leaves it out).
CLI_WAITING = ("PJSIP/2006-0000052a!acd-agent!s!2!Up!Wait!120!55001000123!!!3!192!!"
               "1761000000.4242")
CLI_SURROGATE = ("Surrogate/PJSIP/2006-0000052b!acd-agent!s!1!Down!(None)!!55001000124!!!3!"
                 "3725!!1761000000.4300")


class FakeAmi:
    """The channel list, one (CoreShowChannels, CLI lines) per read; the last one repeats."""

    def __init__(self, *reads: tuple[list[dict[str, Any]], list[str]]) -> None:
        self.reads = list(reads)
        self.count = 0
        self.cli: list[str] = []
        self.commands: list[str] = []

    async def action_list(self, name: str, **_kw: Any) -> list[dict[str, Any]]:
        assert name == "CoreShowChannels"
        self.count += 1
        ami, self.cli = self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]
        return ami

    async def action(self, name: str, **kw: Any) -> Any:
        assert name == "Command"
        self.commands.append(kw["Command"])
        if kw["Command"] != "core show channels concise":
            return {"Response": "Success", "Output": []}
        if len(self.cli) == 1:                     # one line: a header, not a list
            return {"Response": "Success", "Output": self.cli[0]}
        return {"Response": "Success", "Output": list(self.cli)}


async def test_an_empty_channel_list_ends_the_check_at_once():
    check = await inst.left_over(FakeAmi(([], [])), settle=30)
    assert check["left"] == [] and check["waited"] < 30
    assert inst.left_over_lines(check) == ["channels left in Asterisk: none"]


async def test_calls_still_hanging_up_are_waited_for():
    ami = FakeAmi(([HANGING_UP, WAITING], [CLI_WAITING]), ([WAITING], [CLI_WAITING]), ([], []))
    check = await inst.left_over(ami, settle=30, poll=0.01)
    assert check["left"] == [] and ami.count == 3


async def test_what_is_still_there_after_the_settle_wait_is_listed_with_what_tells_it_apart():
    ami = FakeAmi(([HANGING_UP, WAITING], [CLI_WAITING]), ([WAITING], [CLI_WAITING]))
    check = await inst.left_over(ami, settle=0.3, poll=0.01)
    assert [c["channel"] for c in check["left"]] == ["PJSIP/2006-0000052a"]   # listed once
    c = check["left"][0]
    assert (c["state"], c["application"], c["duration"], c["uniqueid"], c["linkedid"]) == (
        "Up", "Wait", "00:03:12", "1761000000.4242", "1761000000.4100")
    lines = inst.left_over_lines(check)
    assert lines[0].startswith("channels left in Asterisk: 1 still there")
    assert "PJSIP/2006-0000052a state Up application Wait(120) up 00:03:12" in lines[1]


async def test_a_surrogate_channel_that_ami_does_not_list_is_found_in_the_clis_list():
    check = await inst.left_over(FakeAmi(([], [CLI_SURROGATE])), settle=0.0)
    assert [c["channel"] for c in check["left"]] == ["Surrogate/PJSIP/2006-0000052b"]
    c = check["left"][0]
    assert (c["state"], c["application"], c["duration"], c["uniqueid"], c["hidden_from_ami"]) \
        == ("Down", "", "01:02:05", "1761000000.4300", True)
    assert c["context"] == "acd-agent" and c["caller"] == "55001000124"
    line = inst.left_over_lines(check)[1]
    assert "Surrogate/PJSIP/2006-0000052b state Down application - up 01:02:05" in line
    assert "not in AMI CoreShowChannels" in line


def test_cli_lines_with_a_bang_in_the_data_and_other_lines():
    c = inst.concise_info("Local/x@ctx-0001;2!ctx!x!1!Ring!Wait!a!b!42!!!3!7!!u.1")
    assert c is not None and (c["data"], c["caller"], c["duration"], c["uniqueid"]) == (
        "a!b", "42", "00:00:07", "u.1")
    assert inst.concise_info("2 active channels") is None


async def test_channels_there_before_the_run_are_not_the_runs():
    check = await inst.left_over(FakeAmi(([WAITING], [CLI_WAITING, CLI_SURROGATE])),
                                 settle=0.0, ignore=frozenset({"1761000000.4242",
                                                               "1761000000.4300"}))
    assert check["left"] == []


async def test_an_unreadable_channel_list_is_reported_not_raised():
    class Gone:
        async def action_list(self, name: str, **_kw: Any) -> list[dict[str, Any]]:
            raise AmiDisconnected("not connected to AMI")
    check = await inst.left_over(Gone(), settle=1.0)
    assert check["left"] is None and "not connected" in check["error"]
    assert "not known" in inst.left_over_lines(check)[0]


# ============================================================================ the bench

async def test_each_bench_run_ends_with_the_channel_check_in_its_result_and_printed(tmp_path):
    said: list[str] = []
    bench = Bench(inst.BenchSetup(agents=2, phones=2, run_dir=tmp_path), say=said.append)
    bench.ami = FakeAmi(([], [CLI_SURROGATE]))
    bench.follower = SimpleNamespace(tracker=None, disconnects=0)
    bench.phones = SimpleNamespace(talk=None, calls=[], pids=lambda: [])
    bench.settle = 0.05

    async def quiet() -> dict[str, Any]:
        return {"waited": 0.0, "hung_up": 0}
    bench.quiet = quiet                                    # type: ignore[method-assign]
    bench._cpu = lambda: {"asterisk": 0.0, "server": None}  # type: ignore[method-assign]
    profile = load.LoadProfile(number=inst.AQ_DIRECT, rate=1.0, arrivals="fixed",
                               duration=None, count=0)
    res = await bench.run(AQ, "no calls", profile, load.TalkTimes("fixed", 1.0, 0))
    assert res.channels_left == 1
    assert res.left_over["left"][0]["channel"] == "Surrogate/PJSIP/2006-0000052b"
    assert "channels left 1" in said[0]
    assert any("Surrogate/PJSIP/2006-0000052b state Down" in line for line in said[1:]), said


async def test_a_channel_a_hangup_does_not_remove_is_not_waited_for_before_each_run(tmp_path):
    # A leaked Surrogate/... channel has nothing to hang it up: "channel request hangup all"
    # leaves it. The wait for a quiet Asterisk before a run gives up on it once, not again
    # before every later run.
    said: list[str] = []
    bench = Bench(inst.BenchSetup(agents=2, phones=2, run_dir=tmp_path), say=said.append)
    bench.ami = ami = FakeAmi(([], [CLI_SURROGATE]))
    bench.asterisk = SimpleNamespace(pid=lambda: None)     # type: ignore[assignment]
    first = await bench.quiet(timeout=0.0)
    assert ami.commands.count("channel request hangup all") == 1
    assert first["not_quiet"] and first["stuck"] == ["Surrogate/PJSIP/2006-0000052b"]
    assert "not waited for again" in said[-1]
    second = await bench.quiet(timeout=0.0)
    assert "not_quiet" not in second and second["hung_up"] == 0, second
    assert ami.commands.count("channel request hangup all") == 1


# ============================================================================ the soak

def _soak(tmp_path: Path, channels: dict[str, Any]) -> Soak:
    cfg = SimpleNamespace(http=SimpleNamespace(host="127.0.0.1", port=1))
    soak = Soak(cfg, ["3001"], SoakPlan(minutes=1.0), tmp_path)  # type: ignore[arg-type]
    soak.seconds, soak.actions, soak.channels = 60.0, Actions(), channels
    return soak


def _verdict(soak: Soak) -> dict[str, Any]:
    calls = {"outcomes": {"completed": 3}, "lost": [], "wrong": [], "unknown_records": [],
             "open_records": [], "records": 3}
    agents = {"agents": {"3001": {"state": "idle"}}, "wrong": {}, "channels_left": 0}
    return soak._result([], calls, agents)                  # noqa: SLF001


def test_a_soak_that_left_a_channel_in_asterisk_is_wrong_and_says_which(tmp_path):
    res = _verdict(_soak(tmp_path, {"left": [inst.concise_info(CLI_SURROGATE)], "waited": 15.0}))
    assert res["channels_left"]["left"][0]["channel"] == "Surrogate/PJSIP/2006-0000052b"
    assert res["targets"]["no_channels_left"] is False and res["targets"]["zero_wrong"] is False
    assert res["targets"]["zero_lost"] is True
    lines = summary_lines(res)
    assert any(line.startswith("channels left in Asterisk: 1") for line in lines), lines
    assert any("Surrogate/PJSIP/2006-0000052b state Down" in line for line in lines)
    res["plan"]["agents"], res["machine"] = 1, {}
    doc = write_doc(res, tmp_path / "soak.md").read_text()
    assert "## Channels left in Asterisk" in doc and "Surrogate/PJSIP/2006-0000052b" in doc


def test_a_soak_that_left_asterisk_empty_says_so(tmp_path):
    res = _verdict(_soak(tmp_path, {"left": [], "waited": 0.0}))
    assert res["targets"]["no_channels_left"] is True and res["targets"]["zero_wrong"] is True
    assert "channels left in Asterisk: none" in summary_lines(res)
