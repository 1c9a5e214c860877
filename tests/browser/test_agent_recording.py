"""Pausing the recording for card numbers from the agent page, on a real recorded call.

A caller (sending 440 Hz) calls the recorded group through Asterisk; agent 1001's phone
(sending 1,000 Hz) answers. On the page in a real Chromium the agent presses *Pause
recording*: the page says the recording is paused (after a reload too), and the server agrees
over its API (the recording's open pause span, the call's timeline). *Resume recording*, then
*Hang up* from the page: the finished recording has the one paused span, the conversation
before and after it in the file (agent left, caller right, told by their tones), and silence
in the span.

Durations are counted in the file Asterisk is writing (its size), never by the clock.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from playwright.async_api import expect

from acd.recordings import BYTES_PER_SECOND
from tests.asterisk.acd_fixtures import WAIT, Caller, kinds, mark, stored
from tests.asterisk.audio import goertzel, rms, span, stereo
from tests.browser.conftest import SUPERVISOR, open_as, web_password
from tests.web_login import login

MS = int(WAIT * 1000)
CALLER_HZ, AGENT_HZ = 440, 1000
RECORDED_GROUP = "7114"            # the test group "rec": record all (acd_fixtures)


async def _until(what: str, probe, timeout: float = WAIT) -> Any:
    """``await probe()`` again until it gives something true; that, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await probe()
        if got:
            return got
        assert loop.time() < deadline, f"no {what} within {timeout}s"
        await asyncio.sleep(0.1)


async def _under_way(srv, agent_id: str) -> str:
    """The name of the agent's recording once the server has asked Asterisk for it."""
    async def probe() -> str | None:
        return srv.runtime.recorder.status(agent_id)["recording"]
    return await _until(f"recording of agent {agent_id}", probe)


async def _recorded(srv, name: str, seconds: float) -> None:
    """Asterisk's file of the recording ``name`` holds ``seconds`` of audio (paused or not:
    a paused recording goes on with silence)."""
    part = srv.runtime.recorder.spool[1] / f"{name}.rec.raw"

    async def probe() -> bool:
        return part.exists() and part.stat().st_size >= seconds * BYTES_PER_SECOND
    await _until(f"{seconds:.1f} s in {part}", probe, timeout=seconds + WAIT)


async def _recordings(sup, call_id: str) -> list[dict[str, Any]]:
    async with sup.get(f"/api/calls/{call_id}/recordings") as r:
        assert r.status == 200, r.status
        return (await r.json())["recordings"]


async def _timeline(sup, call_id: str) -> list[str]:
    async with sup.get(f"/api/calls/{call_id}") as r:
        assert r.status == 200, r.status
        return kinds(await r.json())


async def test_pause_and_resume_the_recording_from_the_agent_page(web_server, agents, ami,
                                                                  browser):
    srv, base, cfg = web_server
    agent = await open_as(browser, base, "1001", web_password(cfg, "1001"), "/agent")
    page = agent.page
    status = page.locator("#recording-status")
    bar = page.locator("#call-actions")
    pause = bar.locator("button[data-action=recording-pause]")
    resume = bar.locator("button[data-action=recording-resume]")
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)
    await agents.phone("1001", tone_hz=AGENT_HZ)          # answers by itself
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)

    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        sup = await login(http, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]), base)
        m = mark(ami)
        caller = await Caller(ami, RECORDED_GROUP, caller_num="13912345678", name="Zhang San",
                              tone_hz=CALLER_HZ).dial()
        assert await caller.bridged(m) == "1001"
        call_id = caller.uniqueid
        await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)
        await expect(pause).to_be_enabled(timeout=MS)
        name = await _under_way(srv, "1001")
        await _recorded(srv, name, 2.5)                    # the conversation, before the pause

        # Pause: the page says so, and only Resume is offered.
        await pause.click()
        await expect(status).to_have_text("Recording paused", timeout=MS)
        await expect(status).to_have_class("paused")
        await expect(resume).to_be_enabled()
        await expect(pause).to_be_disabled()
        await expect(pause).to_have_attribute("title", "The recording is paused already.")
        # The server agrees: an open pause span on the recording, the pause on the timeline.
        assert srv.runtime.recorder.status("1001") == {"recording": name, "paused": True,
                                                       "failed": None}
        [rec] = await _recordings(sup, call_id)
        assert rec["name"] == name and rec["status"] == "recording", rec
        [[paused_from, paused_to]] = rec["paused"]
        assert paused_to is None and paused_from >= 2.0, rec["paused"]
        assert "recording_paused" in await _timeline(sup, call_id)
        await agent.shot("agent-recording-paused")

        # A reload shows the pause still (the server's word, not the page's memory).
        await page.reload()
        await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
        await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)
        await expect(status).to_have_text("Recording paused", timeout=MS)
        await expect(resume).to_be_enabled()
        await expect(pause).to_be_disabled()
        await _recorded(srv, name, paused_from + 2.5)      # the card numbers: 2.5 s or more

        # Resume: the page says the call is recorded again; the span is closed.
        await resume.click()
        await expect(status).to_have_text("Recording", timeout=MS)
        await expect(status).not_to_have_class("paused")
        await expect(pause).to_be_enabled()
        await expect(resume).to_be_disabled()
        assert srv.runtime.recorder.status("1001")["paused"] is False
        [rec] = await _recordings(sup, call_id)
        [[from_, paused_to]] = rec["paused"]
        assert from_ == paused_from and paused_to is not None
        assert paused_to - paused_from >= 2.0, rec["paused"]
        assert "recording_resumed" in await _timeline(sup, call_id)
        await _recorded(srv, name, paused_to + 2.5)        # the conversation, after it

        # Hang up from the page: the recording is finished with its one paused span.
        m = mark(ami)
        await bar.locator("button[data-action=hangup]").click()
        await caller.gone(m)
        await expect(status).to_have_text("", timeout=MS)

        async def finished() -> list[dict[str, Any]] | None:
            await srv.runtime.quiesce()
            recs = await _recordings(sup, call_id)
            return recs if recs and all(r["status"] != "recording" for r in recs) else None
        [rec] = await _until(f"the recording of {call_id} finished", finished)
        assert rec["status"] == "done", rec
        assert rec["agent_id"] == "1001"
        assert rec["paused"] == [[paused_from, paused_to]], rec["paused"]
        assert paused_to < rec["seconds"]
    finally:
        await http.close()

    call = await stored(srv, call_id, ended=True)
    assert call["end_reason"] == "agent_hangup", call["end_reason"]
    k = kinds(call)
    assert (k.index("recording_started") < k.index("recording_paused")
            < k.index("recording_resumed") < k.index("recording_ended")), k

    # In the file: both parties before and after the span, silence in it.
    rate, left, right = stereo(srv.cfg.recordings_folder / rec["path"])
    assert rate == 8000
    for start, end in ((0.3, paused_from - 0.5), (paused_to + 0.5, rec["seconds"] - 0.3)):
        assert end - start > 1.0, (start, end)
        lft, rgt = span(left, rate, start, end), span(right, rate, start, end)
        assert goertzel(lft, rate, AGENT_HZ) > 10 * goertzel(lft, rate, CALLER_HZ), (start, end)
        assert goertzel(rgt, rate, CALLER_HZ) > 10 * goertzel(rgt, rate, AGENT_HZ), (start, end)
        assert rms(lft) > 300 and rms(rgt) > 300, (start, end)
    quiet_l = span(left, rate, paused_from + 0.5, paused_to - 0.5)
    quiet_r = span(right, rate, paused_from + 0.5, paused_to - 0.5)
    assert len(quiet_l) >= rate, len(quiet_l)                  # a second or more of it
    assert rms(quiet_l) < 30 and rms(quiet_r) < 30, (rms(quiet_l), rms(quiet_r))
    assert agent.errors == [] and agent.dialogs == []
