"""A supervisor listens, whispers and barges on a real call, proved in the audio.

Each party sends its own tone: the caller 440 Hz, the agent's phone 1,000 Hz, the
supervisor's phone 2,000 Hz. What each one receives is recorded (the phones with baresip's
file player, the caller with MixMonitor on its own channel) and measured by frequency:

=========  =====================  ========================  =====================
mode       supervisor hears       agent hears 2,000 Hz      caller hears 2,000 Hz
=========  =====================  ========================  =====================
listen     440 and 1,000 Hz       no                        no
whisper    440 and 1,000 Hz       yes                       no
barge      440 and 1,000 Hz       yes                       yes
=========  =====================  ========================  =====================

One monitoring session switches from listen to whisper to barge while connected, then stops;
the call goes on and its record has no trace of the supervisor's leg.
"""
from __future__ import annotations

import asyncio
import shutil
import wave
from array import array
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from acd import config as configmod
from acd.asterisk.runner import Asterisk
from acd.errors import UserError
from tests.asterisk.acd_fixtures import (Agents, Caller, acd_config, after, field,  # noqa: F401
                                         mark, serving, stored)
from tests.asterisk.audio import goertzel, span
from tests.asterisk.calls import until
from tests.asterisk.phones import SoftPhone
from tests.web_login import login

CALLER_HZ, AGENT_HZ, SUP_HZ = 440, 1000, 2000
SUP, SUP_PASSWORD, SUP_PHONE = "sup1", "sup1-password-for-tests", "9001"
PHONE_PASSWORD = "sup1-phone-password"
PHASE = 4.0          # seconds in each mode


@pytest.fixture(scope="module")
def mon_config(asterisk, acd_config):
    """The test config plus a supervisor with a phone, rendered into the running Asterisk
    (its endpoint); the config before is rendered again after."""
    cfg = replace(acd_config, web=replace(acd_config.web, users=(
        *acd_config.web.users,
        configmod.WebUserConfig(username=SUP, role="supervisor", password=SUP_PASSWORD,
                                phone=SUP_PHONE, phone_password=PHONE_PASSWORD),
        configmod.WebUserConfig(username="sup2", role="supervisor",
                                password="sup2-password-for-tests"))))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    yield cfg
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=acd_config).up()


@pytest.fixture
async def mon_server(mon_config, tmp_path):
    async with serving(mon_config, tmp_path) as srv:
        yield srv


def _mono(path: Path) -> tuple[int, "array[int]"]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2), path
        return w.getframerate(), array("h", w.readframes(w.getnframes()))


def _tones(samples, rate: int, start: float, end: float) -> dict[int, float]:
    part = span(samples, rate, start, end)
    assert len(part) > rate, (start, end, len(part))       # at least a second to measure
    return {hz: goertzel(part, rate, hz) for hz in (CALLER_HZ, AGENT_HZ, SUP_HZ)}


async def _closed(path: Path) -> bytes:
    """The file once Asterisk has closed it (its size stays put), bounded."""
    last = -1
    for _ in range(100):
        size = path.stat().st_size if path.exists() else -1
        if size > 0 and size == last:
            return path.read_bytes()
        last = size
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} not written and closed")


async def _ts(ami, since: int, pred, what: str) -> tuple[float, str]:
    """The Asterisk time (epoch seconds) of the first matching event, and its channel."""
    e = await after(ami, since, pred, what)
    return float(field(e, "Timestamp")), field(e, "Channel")


async def test_listen_whisper_barge_are_heard_by_whom_they_should(mon_server, ami, asterisk,
                                                                  tmp_path):
    srv = mon_server
    agents = Agents(srv, srv.cfg)
    sup = SoftPhone(SUP_PHONE, PHONE_PASSWORD, srv.cfg.asterisk.sip_host,
                    srv.cfg.asterisk.sip_port, tone_hz=SUP_HZ, keep_heard=True)
    monitor_dir = asterisk.layout.host_dir("spool") / "monitor"
    caller_files: dict[str, Path] = {}

    async def caller_hears(mode: str) -> None:
        """What the caller's own channel receives during this mode, into a file of its own
        (MixMonitor D: the received audio left, interleaved, 8 kHz raw)."""
        name = f"heard-{tmp_path.name}-{mode}.raw"
        caller_files[mode] = monitor_dir / name
        await ami.action("MixMonitor", Channel=caller.trunk_channel, File=name, Options="D")
        await asyncio.sleep(PHASE - 1.0)
        await ami.action("StopMixMonitor", Channel=caller.trunk_channel)
    try:
        await sup.start()
        agent = await agents.phone("1001", tone_hz=AGENT_HZ, keep_heard=True)
        agents.login("1001")
        await agents.wait_free("1001")
        m = mark(ami)
        caller = await Caller(ami, "7108", tone_hz=CALLER_HZ).dial()
        assert await caller.bridged() == "1001"
        t_agent, _ = await _ts(ami, m, lambda e: e.name == "Newexten" and field(
            e, "Channel").startswith("PJSIP/1001-") and field(e, "Application") == "BridgeWait",
            "the agent's leg answered")

        # ---- listen, then whisper, then barge, on one monitoring session
        m = mark(ami)
        view = srv.runtime.monitor(SUP, "listen", agent_id="1001")
        assert (view["call_id"], view["agent_id"], view["mode"]) == (caller.uniqueid, "1001",
                                                                      "listen")

        def spying(mode: str):
            return lambda e: (e.name == "Newexten" and field(e, "Application") == "ChanSpy"
                              and field(e, "Channel").startswith(f"PJSIP/{SUP_PHONE}-")
                              and field(e, "Exten") == mode)
        t_listen, sup_channel = await _ts(ami, m, spying("listen"), "listening")
        await asyncio.sleep(0.7)
        await caller_hears("listen")
        assert srv.runtime.monitor_mode(SUP, "whisper")["mode"] == "whisper"
        t_whisper, _ = await _ts(ami, m, spying("whisper"), "whispering")
        await asyncio.sleep(0.7)
        await caller_hears("whisper")
        # the same call again from the page: a mode change, not a new session
        assert srv.runtime.monitor(SUP, "barge", call_id=caller.uniqueid)["mode"] == "barge"
        t_barge, _ = await _ts(ami, m, spying("barge"), "barging")
        await asyncio.sleep(0.7)
        await caller_hears("barge")
        srv.runtime.monitor_stop(SUP)
        t_end, _ = await _ts(ami, m, lambda e: e.name == "Hangup" and field(
            e, "Channel") == sup_channel, "the supervisor's leg gone")
        await srv.runtime.quiesce()
        assert srv.runtime.monitoring(SUP) is None
        assert srv.runtime.agent("1001")["state"] == "talking"   # the call goes on
        await asyncio.sleep(1.0)

        closing = len(agent.events)
        await caller.hangup()
        await agent.wait_event("CALL_CLOSED", since=closing)
        # copies: the phones' folders go when they stop
        agent_file = shutil.copy(agent.heard_path, tmp_path / "agent.wav")
        sup_file = shutil.copy(sup.heard_path, tmp_path / "sup.wav")
        call = await stored(srv, caller.uniqueid, ended=True)
    finally:
        await sup.stop()
        await agents.close()

    phases = {"listen": (t_listen, t_whisper), "whisper": (t_whisper, t_barge),
              "barge": (t_barge, t_end)}
    rate, sup_heard = _mono(Path(sup_file))
    arate, agent_heard = _mono(Path(agent_file))
    heard_by_caller = {}
    for mode, path in caller_files.items():
        both = array("h", await _closed(path))
        heard_by_caller[mode] = both[0::2]     # left: what the caller's channel received
    for mode, (t0, t1) in phases.items():
        lo, hi = t0 + 1.0, t1 - 0.5              # margins: a mode starts when ChanSpy does
        s = _tones(sup_heard, rate, lo - t_listen, hi - t_listen)
        a = _tones(agent_heard, arate, lo - t_agent, hi - t_agent)
        c = _tones(heard_by_caller[mode], 8000, 0.2, len(heard_by_caller[mode]) / 8000 - 0.2)
        # the supervisor hears both sides in every mode
        assert s[CALLER_HZ] > 100 and s[AGENT_HZ] > 100, (mode, s)
        # the agent hears the caller always, the supervisor when whispered to or barged on
        assert a[CALLER_HZ] > 100, (mode, a)
        if mode == "listen":
            assert a[SUP_HZ] < 0.1 * a[CALLER_HZ], (mode, a)
        else:
            assert a[SUP_HZ] > 0.3 * a[CALLER_HZ], (mode, a)
        # the caller hears the agent always, the supervisor only when barged on
        assert c[AGENT_HZ] > 100, (mode, c)
        if mode == "barge":
            assert c[SUP_HZ] > 0.3 * c[AGENT_HZ], (mode, c)
        else:
            assert c[SUP_HZ] < 0.1 * c[AGENT_HZ], (mode, c)

    # the supervisor's leg is no part of the call's record
    assert {leg["agent_id"] for leg in call["legs"]} == {"1001"}, call["legs"]


async def test_monitoring_refusals_and_the_api(mon_server, ami):
    """Refusals have stable ids and change nothing; an agent may not monitor; every start
    and change is in the audit log."""
    srv = mon_server
    agents = Agents(srv, srv.cfg)
    sup = SoftPhone(SUP_PHONE, PHONE_PASSWORD, srv.cfg.asterisk.sip_host,
                    srv.cfg.asterisk.sip_port, tone_hz=SUP_HZ)
    base = f"http://127.0.0.1:{srv.http_port}"
    try:
        await sup.start()
        await agents.phone("1001", tone_hz=AGENT_HZ)
        agents.login("1001")
        await agents.wait_free("1001")
        for kw, err in (({"agent_id": "1001"}, "monitor.no_call"),        # on no call
                        ({"call_id": "nosuchcall"}, "monitor.no_call"),
                        ({}, "monitor.no_call")):
            with pytest.raises(UserError) as e:
                srv.runtime.monitor(SUP, "listen", **kw)
            assert e.value.id == err
        caller = await Caller(ami, "7108", tone_hz=CALLER_HZ).dial()
        assert await caller.bridged() == "1001"
        with pytest.raises(UserError) as e:
            srv.runtime.monitor(SUP, "shout", agent_id="1001")
        assert e.value.id == "monitor.bad_mode"
        with pytest.raises(UserError) as e:
            srv.runtime.monitor_stop(SUP)
        assert e.value.id == "monitor.none"
        assert srv.runtime.monitoring(SUP) is None

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as h1, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as h2, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as h3:
            ag = await login(h1, "1001", srv.cfg.agents[0].web_password, base)
            async with ag.post("/api/monitor", json={"agent": "1001", "mode": "listen"}) as r:
                assert r.status == 403 and (await r.json())["error"] == "auth.forbidden"
            nophone = await login(h2, "sup2", "sup2-password-for-tests", base)
            async with nophone.post("/api/monitor", json={"agent": "1001", "mode": "listen"}) as r:
                assert r.status == 409 and (await r.json())["error"] == "monitor.no_phone"
            s = await login(h3, SUP, SUP_PASSWORD, base)
            m = mark(ami)
            async with s.post("/api/monitor", json={"agent": "1001", "mode": "listen"}) as r:
                assert r.status == 200, await r.text()
            await after(ami, m, lambda e: e.name == "Newexten" and field(
                e, "Application") == "ChanSpy", "listening")
            async with s.post("/api/monitor/mode", json={"mode": "whisper"}) as r:
                assert r.status == 200 and (await r.json())["mode"] == "whisper"
            async with s.get("/api/monitor") as r:
                mon = (await r.json())["monitoring"]
                assert (mon["mode"], mon["call_id"], mon["answered"]) == (
                    "whisper", caller.uniqueid, True)
            # the call ends: so does the monitoring, by itself
            m = mark(ami)
            await caller.hangup()
            await after(ami, m, lambda e: e.name == "Hangup" and field(
                e, "Channel").startswith(f"PJSIP/{SUP_PHONE}-"), "the supervisor's leg gone")
            # the runtime reads the same Hangup on its own AMI link: wait for it there
            await until(lambda: srv.runtime.monitoring(SUP) is None, "the monitoring ended")
            async with s.get("/api/monitor") as r:
                assert (await r.json())["monitoring"] is None
            async with s.delete("/api/monitor") as r:
                assert r.status == 409 and (await r.json())["error"] == "monitor.none"
        actions = [(a["username"], a["action"], a["status"])
                   for a in await srv.web_ctx.auth.db.audit_entries()]
        assert ("1001", "POST /api/monitor", 403) in actions
        assert ("sup2", "POST /api/monitor", 409) in actions
        assert (SUP, "POST /api/monitor", 200) in actions
        assert (SUP, "POST /api/monitor/mode", 200) in actions
    finally:
        await sup.stop()
        await agents.close()
