"""The runtime's recordings against a fake AMI client, a real store and a spool folder that
stands in for Asterisk's: what is asked of Asterisk when a recorded group's call is bridged,
paused and resumed, and how the file is finished or the failure recorded. (The audio itself
is proved on real calls: tests/asterisk/test_recording.py.)"""
from __future__ import annotations

import asyncio
import wave

import pytest

from acd import config as configmod
from acd.ami.client import AmiActionError, AmiResponse
from acd.core import Acd
from acd.errors import UserError
from acd.runtime import AcdRuntime
from acd.runtime import recorder as recmod
from acd.store.db import Store
from acd.web import stats as statsmod
from acd.web.hub import Hub
from tests.unit.test_runtime import AGENTS, Clock, Env, FakeAmi, start
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

GROUPS = (
    configmod.GroupConfig(name="sales", number="7101", members={"1001": 1, "1002": 1},
                          record="all"),
    configmod.GroupConfig(name="quiet", number="7102", members={"1001": 1}),
)


@pytest.fixture
async def renv(tmp_path, db_url):
    store = Store(db_url)
    ami = FakeAmi()
    clock = Clock()
    (tmp_path / "spool").mkdir()
    rt = AcdRuntime(Acd(configmod.core_groups(configmod.Config(agents=AGENTS, groups=GROUPS))),
                    ami, store, Hub(), endpoints={a.id: a.id for a in AGENTS}, groups=GROUPS,
                    clock=clock, recordings_spool=("/srv/spool/rec", tmp_path / "spool"),
                    recordings_folder=tmp_path / "recordings",
                    max_lag=30.0)       # a busy machine must not turn callers away here
    rt.attach()
    await rt.start()
    e = Env(rt, ami, store, rt.hub, clock)
    e.tmp = tmp_path
    yield e
    await rt.stop()
    await store.close()


async def _until(pred, what: str) -> None:
    for _ in range(400):                 # bounded: the recorder looks every 0.25 s
        if await pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {what}")


async def test_a_recorded_call_asks_asterisk_to_record_pause_and_finishes_the_file(renv):
    await start(renv, "1001")
    renv.rt.login("1001")
    leg = await renv.connected("c1", "1001")
    channel = f"PJSIP/x-{leg['ChannelId']}"
    [mm] = renv.ami.sent("MixMonitor")
    name = f"c1-{leg['ChannelId']}"
    assert mm == {"Channel": channel, "File": f"/srv/spool/rec/{name}.rec.raw", "Options": "D",
                  "Command": f"/bin/mv /srv/spool/rec/{name}.rec.raw /srv/spool/rec/{name}.raw"}
    renv.clock.now += 3
    assert renv.rt.pause_recording("1001") == {"recording": name, "paused": True,
                                               "failed": None}
    # the agent's snapshot (their page, after a reload too) says so
    assert renv.rt.agent("1001")["recording"] == {"recording": name, "paused": True,
                                                  "failed": None}
    renv.clock.now += 2
    renv.rt.resume_recording("1001")
    await renv.settle()
    assert [m["State"] for m in renv.ami.sent("MixMonitorMute")] == [1, 0]
    assert all(m["Channel"] == channel and m["Direction"] == "both"
               for m in renv.ami.sent("MixMonitorMute"))
    # Asterisk wrote 6 s of interleaved audio and, once closed, renamed it (its Command).
    (renv.tmp / "spool" / f"{name}.raw").write_bytes(b"\x01\x00" * 2 * 8000 * 6)
    renv.clock.now += 1
    renv.hangup(leg["ChannelId"], channel)
    await renv.settle()

    async def done() -> bool:
        await renv.settle()
        return [r["status"] for r in await renv.store.recordings("c1")] == ["done"]
    await _until(done, "finished recording")
    [rec] = await renv.store.recordings("c1")
    assert rec["agent_id"] == "1001" and rec["seconds"] == 6.0 and rec["paused"] == [[3.0, 5.0]]
    path = renv.tmp / "recordings" / rec["path"]
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 48000)
    assert not (renv.tmp / "spool" / f"{name}.raw").exists()
    kinds = [e["kind"] for e in (await renv.store.get_call("c1"))["events"]]
    for k in ("recording_started", "recording_paused", "recording_resumed", "recording_ended"):
        assert k in kinds


async def test_health_and_metrics_report_free_space_before_the_first_recording(renv):
    """/api/health and /metrics read the free space where recordings will go from the start,
    not only once the first recording made the folder."""
    assert not (renv.tmp / "recordings").exists()
    health = renv.rt.recorder.health()
    assert isinstance(health["free_bytes"], int) and health["free_bytes"] > 0
    board = {"groups": {}, "agents": {}, "totals": {}}
    text = statsmod.metrics_text(board, {}, None, health)
    [line] = [x for x in text.splitlines() if x.startswith("acd_recordings_free_bytes ")]
    assert float(line.split()[1]) > 0


async def test_a_group_that_does_not_record_asks_nothing_and_pausing_is_refused(renv):
    await start(renv, "1001")
    renv.rt.login("1001")
    await renv.arrive("c2", group="quiet")
    leg = renv.leg("1001")
    renv.ringing(leg)
    renv.answered(leg)
    await renv.settle()
    assert renv.ami.sent("Bridge") and not renv.ami.sent("MixMonitor")
    with pytest.raises(UserError) as e:
        renv.rt.pause_recording("1001")
    assert e.value.id == "recording.none"
    assert await renv.store.recordings("c2") == []


async def test_a_refused_mixmonitor_is_a_failed_recording_and_the_call_goes_on(renv):
    await start(renv, "1001")
    renv.rt.login("1001")
    renv.ami.fail["MixMonitor"] = AmiActionError(
        "MixMonitor", "Could not start monitoring channel",
        AmiResponse("MixMonitor", "1", "Error", "Could not start monitoring channel", {}))
    await renv.connected("c3", "1001")

    async def failed() -> bool:
        await renv.settle()
        return [r["status"] for r in await renv.store.recordings("c3")] == ["failed"]
    await _until(failed, "failed recording")
    [rec] = await renv.store.recordings("c3")
    assert "MixMonitor refused" in rec["error"]
    assert renv.state("1001") == "talking"
    assert not renv.ami.sent("Hangup")
    assert renv.rt.recorder.health()["failed"] == 1


async def test_no_file_from_asterisk_after_the_leg_ended_is_a_failure(renv, monkeypatch):
    monkeypatch.setattr(recmod, "NO_FILE_GRACE", 0.0)
    await start(renv, "1001")
    renv.rt.login("1001")
    leg = await renv.connected("c4", "1001")
    renv.hangup(leg["ChannelId"], f"PJSIP/x-{leg['ChannelId']}")

    async def failed() -> bool:
        await renv.settle()
        return [r["status"] for r in await renv.store.recordings("c4")] == ["failed"]
    await _until(failed, "failed recording")
    [rec] = await renv.store.recordings("c4")
    assert "wrote no file" in rec["error"]
