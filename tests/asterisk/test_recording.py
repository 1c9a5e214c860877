"""Recording conversations on real calls, proved in the audio: the caller sends 440 Hz, the
agent's phone 1,000 Hz; the recording has the agent on the left and the caller on the right,
and a pause for card numbers is silence. Then the file over HTTP: range requests, the role
check, the audit log, a path that leads elsewhere, a deleted file."""
from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import update

from acd import config as configmod
from acd.store.models import Recording
from tests.asterisk.acd_fixtures import Agents, Caller, acd_config, kinds, serving, stored  # noqa: F401
from tests.asterisk.audio import goertzel, rms, span, stereo
from tests.asterisk.phones import SoftPhone
from tests.web_login import login, password_of

CALLER_HZ, AGENT_HZ, OTHER_AGENT_HZ = 440, 1000, 1500
WAIT = 30.0


def _rec_config(acd_config, tmp_path) -> configmod.Config:
    return replace(acd_config,
                   recordings=configmod.RecordingsConfig(folder=str(tmp_path / "recordings")),
                   web=replace(acd_config.web, users=(
                       *acd_config.web.users,
                       configmod.WebUserConfig(username="sup1", role="supervisor",
                                               password="sup1-password-for-tests"))))


@pytest.fixture
async def rec_server(acd_config, tmp_path):
    async with serving(_rec_config(acd_config, tmp_path), tmp_path) as srv:
        yield srv


def _http() -> aiohttp.ClientSession:
    """A client that keeps the session cookie of a server on 127.0.0.1, as a browser does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _talking(agents: Agents, ami) -> Caller:
    """Agent 1001 (its phone sends 1,000 Hz) talks with a new caller (440 Hz) of the
    recorded group."""
    await agents.phone("1001", tone_hz=AGENT_HZ)
    agents.login("1001")
    await agents.wait_free("1001")
    caller = await Caller(ami, "7114", tone_hz=CALLER_HZ).dial()
    assert await caller.bridged() == "1001"
    return caller


def _silent(left, right, rate: int, pause_from: float, pause_to: float) -> None:
    """The paused span is silent on both channels (margins for the AMI round trips)."""
    quiet_l = span(left, rate, pause_from + 0.5, pause_to - 0.5)
    quiet_r = span(right, rate, pause_from + 0.5, pause_to - 0.5)
    assert len(quiet_l) > rate // 2
    assert rms(quiet_l) < 30 and rms(quiet_r) < 30, (rms(quiet_l), rms(quiet_r))


async def _finished(srv, call_id: str) -> list[dict]:
    """The call's recordings once none is still being written (Asterisk closes the file after
    the hangup, then the server makes the WAV): polling the store, bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        await srv.runtime.quiesce()
        recs = await srv.store.recordings(call_id)
        if recs and all(r["status"] != "recording" for r in recs):
            return recs
        assert loop.time() < deadline, f"recordings of {call_id} not finished: {recs}"
        await asyncio.sleep(0.1)


async def test_a_conversation_is_recorded_in_stereo_and_a_pause_is_silent(rec_server, ami,
                                                                          acd_config):
    srv = rec_server
    agents = Agents(srv, srv.cfg)
    try:
        caller = await _talking(agents, ami)
        await asyncio.sleep(2.5)                     # talking: both tones recorded
        assert srv.runtime.pause_recording("1001")["paused"] is True
        await asyncio.sleep(2.5)                     # card numbers: nothing recorded
        assert srv.runtime.resume_recording("1001")["paused"] is False
        await asyncio.sleep(2.0)
        await caller.hangup()
        [rec] = await _finished(srv, caller.uniqueid)
    finally:
        await agents.close()

    assert rec["status"] == "done", rec
    assert rec["agent_id"] == "1001"
    path = srv.cfg.recordings_folder / rec["path"]
    assert rec["path"].startswith(rec["started_at"][:10] + "/")
    assert path.stat().st_size == rec["bytes"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
    [[pause_from, pause_to]] = rec["paused"]
    assert 0 < pause_from < pause_to < rec["seconds"]

    rate, left, right = stereo(path)
    assert rate == 8000
    assert abs(len(left) / rate - rec["seconds"]) < 0.01
    # Before the pause and after it: the agent (1,000 Hz) on the left, the caller (440 Hz)
    # on the right, each far stronger than the other party's tone on that channel.
    for start, end in ((0.3, pause_from - 0.5), (pause_to + 0.5, rec["seconds"] - 0.3)):
        assert end - start > 0.5, (start, end)
        lft, rgt = span(left, rate, start, end), span(right, rate, start, end)
        assert goertzel(lft, rate, AGENT_HZ) > 10 * goertzel(lft, rate, CALLER_HZ), (start, end)
        assert goertzel(rgt, rate, CALLER_HZ) > 10 * goertzel(rgt, rate, AGENT_HZ), (start, end)
        assert rms(lft) > 300 and rms(rgt) > 300
    _silent(left, right, rate, pause_from, pause_to)

    call = await stored(srv, caller.uniqueid, ended=True)
    k = kinds(call)
    for kind in ("recording_started", "recording_paused", "recording_resumed",
                 "recording_ended"):
        assert kind in k, k
    assert k.index("answered") < k.index("recording_started")

    # ---- over HTTP: who may hear it, and how
    base = f"http://127.0.0.1:{srv.http_port}"
    url = f"/api/recordings/{rec['id']}/audio"
    async with _http() as http:
        sup = await login(http, "sup1", "sup1-password-for-tests", base)
        async with sup.get(f"/api/calls/{caller.uniqueid}/recordings") as r:
            assert r.status == 200
            assert [x["id"] for x in (await r.json())["recordings"]] == [rec["id"]]
        async with sup.get(url) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
            assert await r.read() == path.read_bytes()
        async with sup.get(url, headers={"Range": "bytes=44-143"}) as r:
            assert r.status == 206
            assert await r.read() == path.read_bytes()[44:144]
        async with sup.get(url + "?download=1") as r:
            assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        for bad in ("999999", "%C2%B2", "-1", "1" * 13):    # unknown, "²", negative, huge
            async with sup.get(f"/api/recordings/{bad}/audio") as r:
                assert r.status == 404 and (await r.json())["error"] == "recording.not_found"
    async with _http() as http:
        other = await login(http, "1002", password_of(srv.cfg, "1002"), base)
        async with other.get(url) as r:
            assert r.status == 403 and (await r.json())["error"] == "recording.forbidden"
        async with other.get(f"/api/calls/{caller.uniqueid}/recordings") as r:
            assert (await r.json())["recordings"] == []
        async with other.delete(f"/api/recordings/{rec['id']}") as r:
            assert r.status == 403
    actions = [(a["username"], a["action"], a["status"])
               for a in await srv.web_ctx.auth.db.audit_entries()]
    assert ("sup1", "recording.play", 200) in actions
    assert ("sup1", "recording.download", 200) in actions
    assert ("1002", "recording.play", 403) in actions
    # a player's further ranges are the same play, not new entries
    assert actions.count(("sup1", "recording.play", 200)) == 1

    # A row whose path leads out of the folder is refused, whatever the database says.
    async with srv.store.session() as s, s.begin():
        await s.execute(update(Recording).where(Recording.id == rec["id"])
                        .values(path="../../../etc/passwd"))
    async with _http() as http:
        sup = await login(http, "sup1", "sup1-password-for-tests", base)
        async with sup.get(url) as r:
            assert r.status == 400 and (await r.json())["error"] == "recording.bad_path"
    async with srv.store.session() as s, s.begin():
        await s.execute(update(Recording).where(Recording.id == rec["id"])
                        .values(path=rec["path"]))
    # An admin deletes it: the file goes, the row stays (deleted), playing it says so.
    async with _http() as http:
        admin = await login(http, "admin", password_of(srv.cfg, "admin"), base)
        async with admin.delete(f"/api/recordings/{rec['id']}") as r:
            assert r.status == 200
        async with admin.get(url) as r:
            assert r.status == 410 and (await r.json())["error"] == "recording.file_missing"
    assert not path.exists()
    assert (await srv.store.recording(rec["id"]))["status"] == "deleted"
    call = await stored(srv, caller.uniqueid, ended=True)
    assert "recording_deleted" in kinds(call)


async def test_a_transferred_call_has_one_recording_per_agent(rec_server, ami):
    """1001 (1,000 Hz) transfers the caller (440 Hz) to 1002 (1,500 Hz): two recordings, one
    per agent's leg, each with its own agent on the left and the caller on the right."""
    srv = rec_server
    agents = Agents(srv, srv.cfg)
    try:
        caller = await _talking(agents, ami)
        await agents.phone("1002", tone_hz=OTHER_AGENT_HZ)
        since = agents.mark("1002")
        agents.login("1002")                  # after the call: it cannot take it first
        await agents.wait_free("1002", since)
        await asyncio.sleep(2.0)
        since = agents.mark("1002")
        srv.runtime.transfer("1001", to_agent="1002")
        await agents.wait_state("1002", "talking", since)
        await asyncio.sleep(2.5)
        await caller.hangup()
        recs = await _finished(srv, caller.uniqueid)
    finally:
        await agents.close()
    assert sorted(r["agent_id"] for r in recs) == ["1001", "1002"], recs
    for rec in recs:
        assert rec["status"] == "done", rec
        rate, left, right = stereo(srv.cfg.recordings_folder / rec["path"])
        mine, other = ((AGENT_HZ, OTHER_AGENT_HZ) if rec["agent_id"] == "1001"
                       else (OTHER_AGENT_HZ, AGENT_HZ))
        lft, rgt = span(left, rate, 0.3, 1.8), span(right, rate, 0.3, 1.8)
        assert goertzel(lft, rate, mine) > 10 * goertzel(lft, rate, other), rec
        assert goertzel(rgt, rate, CALLER_HZ) > 10 * goertzel(rgt, rate, mine), rec
    call = await stored(srv, caller.uniqueid, ended=True)
    assert [x["agent_id"] for x in call["legs"]] == ["1001", "1002"]


async def test_a_group_that_does_not_record_leaves_no_file(rec_server, ami):
    srv = rec_server
    agents = Agents(srv, srv.cfg)
    try:
        await agents.phone("1001")
        agents.login("1001")
        await agents.wait_free("1001")
        caller = await Caller(ami, "7101").dial()          # sales: record none (default)
        assert await caller.bridged() == "1001"
        await caller.hangup()
        await stored(srv, caller.uniqueid, ended=True)
    finally:
        await agents.close()
    assert await srv.store.recordings(caller.uniqueid) == []
    assert not any(Path(srv.cfg.recordings_folder).rglob("*.wav"))


@pytest.fixture
def full_spool(asterisk):
    """Asterisk's recordings spool on a tiny file system that is full: MixMonitor can open
    its file but not write a byte into it."""
    import subprocess
    folder = asterisk.layout.host_dir("spool") / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "acd-test-full", str(folder)],
                   check=True)
    try:
        with open(folder / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass                        # full
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_a_recording_that_cannot_be_written_leaves_the_call_going(rec_server, ami,
                                                                        full_spool):
    srv = rec_server
    agents = Agents(srv, srv.cfg)
    try:
        caller = await _talking(agents, ami)
        await asyncio.sleep(2.0)
        # still talking: a recording that fails is no reason to touch the call
        assert srv.runtime.agent("1001")["state"] == "talking"
        assert not caller.hung_up_before(len(ami.events.events))
        await caller.hangup()
        [rec] = await _finished(srv, caller.uniqueid)
    finally:
        await agents.close()
    assert rec["status"] == "failed", rec
    assert "disk full" in rec["error"]
    call = await stored(srv, caller.uniqueid, ended=True)
    assert "recording_failed" in kinds(call)
    assert call["end_reason"] == "caller_hangup"
    async with _http() as http:
        async with http.get(f"http://127.0.0.1:{srv.http_port}/api/health") as r:
            health = await r.json()
    assert health["recordings"]["failed"] >= 1
    assert "disk full" in health["recordings"]["last_error"]


async def test_a_restart_of_our_server_while_paused_keeps_the_recording_paused(
        acd_config, ami, tmp_path):
    """The mute is Asterisk's and the pause span is in the store: our server stopped and
    started again knows the recording is paused, resumes it, and the file is silent over
    the whole span, the restart included."""
    cfg = _rec_config(acd_config, tmp_path)
    phone = SoftPhone("1001", next(a.password for a in cfg.agents if a.id == "1001"),
                      cfg.asterisk.sip_host, cfg.asterisk.sip_port, tone_hz=AGENT_HZ)
    await phone.start()
    try:
        async with serving(cfg, tmp_path) as srv:
            await _until_reachable(srv, "1001")
            srv.runtime.login("1001")
            caller = await Caller(ami, "7114", tone_hz=CALLER_HZ).dial()
            assert await caller.bridged() == "1001"
            await asyncio.sleep(2.0)
            assert srv.runtime.pause_recording("1001")["paused"] is True
            await srv.runtime.quiesce()
        # (no server for a moment: the call goes on in Asterisk, still muted)
        await asyncio.sleep(1.0)
        async with serving(cfg, tmp_path) as srv:
            assert srv.runtime.agent("1001")["state"] == "talking"
            assert srv.runtime.recorder.status("1001")["paused"] is True
            await asyncio.sleep(1.0)
            assert srv.runtime.resume_recording("1001")["paused"] is False
            await asyncio.sleep(2.0)
            await caller.hangup()
            [rec] = await _finished(srv, caller.uniqueid)
    finally:
        await phone.stop()
    assert rec["status"] == "done", rec
    [[pause_from, pause_to]] = rec["paused"]
    assert pause_to - pause_from > 1.5
    rate, left, right = stereo(srv.cfg.recordings_folder / rec["path"])
    _silent(left, right, rate, pause_from, pause_to)
    after_l = span(left, rate, pause_to + 0.5, rec["seconds"] - 0.3)
    assert goertzel(after_l, rate, AGENT_HZ) > 10 * goertzel(after_l, rate, CALLER_HZ)


async def _until_reachable(srv, agent_id: str) -> None:
    for _ in range(400):                 # bounded: the phone's registration reaches the ACD
        if srv.runtime.agent(agent_id)["reachable"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"agent {agent_id} never reachable")
