"""asterisk.browser_codecs on a real call: the browser phone's call carries the codec the admin
chose (the agent's leg in Asterisk and the page's negotiated SDP), and the caller hears the
page's microphone through it (told by frequency)."""
from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from bench.webrtc import native_formats
from tests.asterisk.acd_fixtures import Caller, mark
from tests.asterisk.audio import goertzel
from tests.browser.conftest import server_with_asterisk
from tests.browser.test_browser_phone import (CALLER_HZ, MS, ONLY_1001, PAGE_HZ,  # noqa: F401
                                              _agent_leg, _browser_agent, _caller_hears,
                                              media_browser)

#: Asterisk's codec name -> the rtpmap name the page's SDP carries
RTPMAP = {"ulaw": "PCMU/8000", "alaw": "PCMA/8000", "opus": "opus/48000"}


@pytest.fixture(params=[("ulaw",), ("opus", "ulaw")], ids=["g711-only", "opus-first"])
async def codec_server(request, browser_config, asterisk, tmp_path):
    """Our server with asterisk.browser_codecs set; the session's Asterisk put back after."""
    async for got in server_with_asterisk(asterisk, browser_config, tmp_path,
                                          browser_codecs=request.param):
        yield got


async def test_the_call_carries_the_codec_the_admin_chose(codec_server, ami, asterisk,
                                                          media_browser):
    srv, base, cfg = codec_server
    want = cfg.asterisk.browser_codecs[0]
    agent = await _browser_agent(media_browser, base, cfg, "1001")
    page = agent.page
    m = mark(ami)
    caller = await Caller(ami, ONLY_1001, tone_hz=CALLER_HZ).dial()
    await expect(page.locator("#answer")).to_be_enabled(timeout=MS)
    await page.click("#answer")
    assert await caller.bridged(m) == "1001"
    leg = await _agent_leg(ami)
    out = (await ami.action("Command", Command=f"core show channel {leg}")).get("Output") or ""
    text = out if isinstance(out, str) else "\n".join(map(str, out))
    assert native_formats(text) == [want], text
    # the page's answer to Asterisk's offer: the first audio payload is that codec
    sdp = await page.evaluate("() => window.acdPhone.sentSdp")
    first_pt = re.search(r"^m=audio \d+ \S+ (\d+)", sdp, re.M).group(1)
    assert re.search(rf"^a=rtpmap:{first_pt} {re.escape(RTPMAP[want])}", sdp, re.M), sdp
    if want != "opus":
        assert "opus/48000" not in sdp, sdp           # Asterisk offered G.711 alone
    # the caller hears the page's microphone through it
    heard = await _caller_hears(ami, asterisk, caller, f"codec-{want}-{caller.uniqueid}.raw", 2.0)
    part = heard[1600:]                                    # past the first 0.2 s
    assert len(part) > 8000, len(part)
    assert goertzel(part, 8000, PAGE_HZ) > 100, goertzel(part, 8000, PAGE_HZ)
    assert goertzel(part, 8000, PAGE_HZ) > 10 * goertzel(part, 8000, CALLER_HZ)
    await caller.hangup()
