"""The agent page as the agent's phone, in a real Chromium with fake media, on real calls through
Asterisk (JsSIP over Asterisk's WebSocket transport, WebRTC audio).

The agent chooses "this browser" on the page; it registers with a password the server issued
to that web session. A real caller on the loopback trunk rings the page: banner, sound, title,
Answer. The agent answers on the page; audio flows both ways, told by frequency (the page's
analyser hears the caller's tone; the caller's channel in Asterisk receives the page's fake
microphone tone). Every ICE candidate and SDP address is loopback. The call is hung up from
the call bar. After the logout, Asterisk refuses the issued password.
"""
from __future__ import annotations

import asyncio
import re
from array import array
from typing import Any

import pytest
from playwright.async_api import expect

from acd.asterisk import ice as ice_addresses

from acd.config import phone_grace
from tests.asterisk.acd_fixtures import WAIT, Caller, after, mark, waiting_in_queue
from tests.asterisk.calls import field
from tests.asterisk.control_fixtures import moh_started, moh_stopped
from tests.asterisk.audio import goertzel
from tests.asterisk.phones import PhoneError, SoftPhone, write_tone
from tests.browser.conftest import (CHROMIUM, CHROMIUM_FLAGS, open_as, server_with_asterisk,
                                    web_password)

MS = int(WAIT * 1000)
CALLER_HZ, PAGE_HZ = 440, 1000       # the caller's tone; the page's fake microphone's
ONLY_1001 = "7108"                   # the test group "ovtarget": agent 1001 alone


@pytest.fixture
async def media_browser(tmp_path):
    """Chromium with fake media: the microphone is a WAV of PAGE_HZ, permission granted
    without a prompt; loopback addresses allowed in WebRTC (Asterisk is on 127.0.0.1); the
    lab's self-signed certificate accepted (wss)."""
    from playwright.async_api import async_playwright
    tone = tmp_path / "page-tone.wav"
    write_tone(tone, 30, hz=PAGE_HZ, rate=48000)
    pw = await async_playwright().start()
    b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={tone}", "--allow-loopback-in-peer-connection",
        "--autoplay-policy=user-gesture-required",
        "--ignore-certificate-errors"])            # the wss test's self-signed certificate
    yield b
    await b.close()
    await pw.stop()


async def _page_hears(page: Any) -> tuple[float, float]:
    """(strength of CALLER_HZ, of PAGE_HZ) in what the page's analyser has of the caller."""
    got = await page.evaluate("""() => {
        const m = window.acdPhone.meter;
        if (!m) return null;
        const d = new Float32Array(m.analyser.fftSize);
        m.analyser.getFloatTimeDomainData(d);
        return { rate: m.ctx.sampleRate, samples: Array.from(d, (x) => Math.round(x * 32767)) };
    }""")
    if not got:
        return 0.0, 0.0
    return (goertzel(got["samples"], got["rate"], CALLER_HZ),
            goertzel(got["samples"], got["rate"], PAGE_HZ))


async def _caller_hears(ami, asterisk, caller: Caller, name: str, seconds: float) -> array:
    """What the caller's channel receives for a while (MixMonitor D: received audio left)."""
    path = asterisk.layout.host_dir("spool") / "monitor" / name
    await ami.action("MixMonitor", Channel=caller.trunk_channel, File=name, Options="D")
    await asyncio.sleep(seconds)
    await ami.action("StopMixMonitor", Channel=caller.trunk_channel)
    last = -1
    for _ in range(100):             # until Asterisk has closed it (its size stays put)
        size = path.stat().st_size if path.exists() else -1
        if size > 0 and size == last:
            break
        last = size
        await asyncio.sleep(0.2)
    both = array("h", path.read_bytes())
    return both[0::2]


async def _agent_leg(ami) -> str:
    """The agent's leg (PJSIP/1001-...) of the call up now."""
    got = await ami.action("Command", Command="core show channels concise")
    text = str(got.get("Output") or "")
    found = re.findall(r"(PJSIP/1001-[0-9a-f]+)!", text)
    assert found, text
    return found[0]


def _addresses(sdp: str) -> list[str]:
    """Every address an SDP gives for media: c= lines and ICE candidates."""
    found = re.findall(r"^c=IN IP[46] (\S+)", sdp, re.M)
    found += [line.split()[4] for line in re.findall(r"^a=candidate:.*$", sdp, re.M)]
    return found


async def test_the_page_is_the_phone_ring_answer_audio_both_ways_loopback_only_refused_after_logout(
        web_server, ami, asterisk, media_browser):
    srv, base, cfg = web_server
    agent = await open_as(media_browser, base, "1001", web_password(cfg, "1001"), "/agent")
    page = agent.page
    issued: list[dict[str, Any]] = []

    async def on_response(resp: Any) -> None:
        if resp.url.endswith("/api/agents/1001/phone") and resp.request.method == "POST":
            issued.append(await resp.json())
    page.on("response", on_response)

    # the agent allowed the microphone and desktop notifications; the test keeps what the page shows in them
    await agent.context.grant_permissions(["notifications", "microphone"], origin=base)
    await agent.context.add_init_script("""(() => {
        const Real = window.Notification; window.__notices = [];
        window.Notification = class extends Real {
            constructor(title, opts) { super(title, opts); window.__notices.push([title, opts.body]); } };
        window.Notification.requestPermission = Real.requestPermission.bind(Real);
        Object.defineProperty(window.Notification, "permission", { get: () => Real.permission });
    })()""")
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    # the agent's configured phone is offered first (agents[].phone: sip); they choose the page
    await expect(page.locator("#phone-kind")).to_have_value("sip", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)
    await expect(page.locator("#no-calls")).to_contain_text("your phone is not registered", timeout=MS)
    await page.select_option("#phone-kind", "browser")
    await expect(page.locator("#phone-status")).to_have_text("this browser is your phone", timeout=MS)
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    assert len(issued) == 1 and issued[0]["phone"] == "browser", issued
    password = issued[0]["password"]
    assert len(password) >= 24
    assert password not in (await page.content())            # the agent never sees it
    assert next(a for a in cfg.agents if a.id == "1001").password != password
    await expect(page.locator("#browser-controls")).to_be_visible()

    await expect(page.locator("#no-calls")).to_be_hidden(timeout=MS)

    # ---- a real caller rings the page: banner, sound, title, Answer
    m = mark(ami)
    caller = await Caller(ami, ONLY_1001, caller_num="13912345678", tone_hz=CALLER_HZ).dial()
    banner = page.locator("#ring-banner")
    await expect(banner).to_be_visible(timeout=MS)
    await expect(page.locator("#ring-caller")).to_have_text("13912345678", timeout=MS)
    await expect(page.locator("#answer")).to_be_enabled(timeout=MS)
    await expect(page.locator("#decline")).to_be_enabled()
    await until_true(page, "() => { const a = document.getElementById('ring-sound');"
                           " return !a.paused && a.currentTime > 0; }", "the ring sound playing")
    await until_true(page, "() => document.title.startsWith('☎ Ringing: 13912345678')",
                     "the tab's title says who rings")       # (it blinks)
    notices = await page.evaluate("() => window.__notices")
    assert notices[-1] == ["Incoming call", "13912345678 · ovtarget"], notices
    assert srv.runtime.agent("1001")["state"] == "ringing"
    await page.set_viewport_size({"width": 1366, "height": 900})    # docs/screenshots/agent-ringing.png
    await agent.shot("browser-phone-ringing")

    await page.click("#answer")
    assert await caller.bridged(m) == "1001"
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
    await expect(banner).to_be_hidden(timeout=MS)
    assert not await page.evaluate("() => { const a = document.getElementById('ring-sound'); return !a.paused; }")
    assert not (await page.title()).startswith("☎")
    await expect(page.locator("#mute")).to_be_enabled(timeout=MS)
    # the microphone and the speaker to choose from (the browser's devices, named now that
    # the microphone is allowed), and the agent's own level moving with the page's tone
    await until_true(page, "() => [...document.querySelectorAll('#mic option')]"
                           ".some((o) => o.value && o.textContent.length > 1)", "a microphone listed")
    await expect(page.locator("#speaker")).to_be_attached()
    await until_true(page, "() => document.getElementById('mic-level').value > 0.01",
                     "the agent's own level")
    # closing the tab now would drop the call: the browser asks first (the test says stay)
    asked: list[str] = []
    page.on("dialog", lambda d: asked.append(d.type))
    await page.close(run_before_unload=True)
    await until_true(page, "() => true", "the page still there")
    assert asked == ["beforeunload"] and not page.is_closed(), asked

    # ---- loopback only: Asterisk's offer and the page's answer (every address and candidate),
    # then the pair ICE chose and where Asterisk sends the page's RTP
    sdp = await page.evaluate("""() => ({ offer: window.acdPhone.session.connection.remoteDescription.sdp,
                                          answer: window.acdPhone.sentSdp })""")
    for side in ("offer", "answer"):
        addrs = _addresses(sdp[side])
        assert addrs and all(a.startswith("127.") for a in addrs), (side, addrs, sdp[side])
        assert ".local" not in sdp[side], sdp[side]
    assert "a=candidate:" in sdp["answer"]
    assert "a=fingerprint:" in sdp["offer"] and "a=ice-ufrag:" in sdp["offer"]   # DTLS, ICE
    ice_pair = """async () => {
        const pc = window.acdPhone.session.connection;
        const stats = await pc.getStats();
        let pair = null; const by = {}; const pairs = [];
        stats.forEach((s) => { by[s.id] = s; });
        stats.forEach((s) => { if (s.type === "candidate-pair") {
            const p = { local: by[s.localCandidateId].address, remote: by[s.remoteCandidateId].address,
                        state: s.state, nominated: s.nominated };
            pairs.push(p); if (s.nominated && s.state === "succeeded") pair = p; } });
        return { pair, pairs, ice: pc.iceConnectionState };
    }"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not (ice := await page.evaluate(ice_pair))["pair"]:
        assert loop.time() < deadline, ice
        await asyncio.sleep(0.2)
    # The pair's far end is Asterisk's loopback socket. Its near end is Chromium's: Chromium
    # gathers on every interface whatever the page signals, and may pair the card's address
    # with 127.0.0.1 (the kernel carries that over the loopback interface: it never leaves
    # the machine). Asterisk sends its RTP to the page's loopback candidate.
    mine = ice_addresses.local_ipv4()
    assert ice["pair"]["remote"] == "127.0.0.1" and ice["pair"]["local"] in mine, (ice, mine)
    got = await ami.action("Getvar", Channel=await _agent_leg(ami), Variable="CHANNEL(rtp,dest)")
    assert (got.get("Value") or "").startswith("127.0.0.1:"), (got, ice)

    # ---- audio both ways, by frequency
    async def page_hears_caller() -> bool:
        caller_hz, page_hz = await _page_hears(page)
        return caller_hz > 100 and caller_hz > 10 * page_hz
    await until_async(page_hears_caller, "the page's analyser hears the caller's tone")
    heard = await _caller_hears(ami, asterisk, caller, f"browser-phone-{caller.uniqueid}.raw", 2.0)
    part = heard[1600:]                                    # past the first 0.2 s
    assert len(part) > 8000, len(part)
    assert goertzel(part, 8000, PAGE_HZ) > 100, goertzel(part, 8000, PAGE_HZ)
    assert goertzel(part, 8000, PAGE_HZ) > 10 * goertzel(part, 8000, CALLER_HZ)

    # ---- a key on the page's keypad reaches Asterisk as RFC 4733 DTMF from the agent's leg
    m = mark(ami)
    await page.click("#keypad button[data-key='5']")
    await after(ami, m, lambda e: e.name == "DTMFEnd" and field(e, "Digit") == "5"
                and field(e, "Channel").startswith("PJSIP/1001-")
                and field(e, "Direction") == "Received", "DTMF 5 from the page")

    # ---- hold and resume from the call bar: music for the caller, then the page hears them
    bar = page.locator("#call-actions")
    m = mark(ami)
    await bar.locator("button[data-action=hold]").click()
    await moh_started(ami, caller, m)
    await expect(page.locator("#agent-state")).to_have_text("held", timeout=MS)
    m = mark(ami)
    await bar.locator("button[data-action=resume]").click()
    await moh_stopped(ami, caller, m)
    assert await caller.bridged(m) == "1001"
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
    await until_async(page_hears_caller, "the page hears the caller after the hold")

    # ---- hung up from the call bar
    await page.click("#call-actions button[data-action=hangup]")
    await caller.gone()
    await expect(page.locator("#mute")).to_be_disabled(timeout=MS)
    await expect(page.locator("#agent-state")).not_to_have_text("talking", timeout=MS)

    # ---- the issued password works (any SIP client) while the session lives...
    a = cfg.asterisk
    phone = SoftPhone("1001", password, a.sip_host, a.sip_port, name="issued-before-logout")
    await phone.start()
    await phone.stop()
    # ... and Asterisk refuses it once the agent has logged out
    await page.click("#logout")
    # (a second navigation to the login, from a request the logout refused, may abort the
    # first: the URL is what counts)
    await expect(page).to_have_url(re.compile(r".*/login.*"), timeout=MS)
    late = SoftPhone("1001", password, a.sip_host, a.sip_port, name="issued-after-logout")
    with pytest.raises(PhoneError, match="not registered"):
        await late.start()
    await late.stop()
    assert "1001" not in srv.web_ctx.browser_phones.issued
    assert not agent.errors, agent.errors


async def until_true(page: Any, js: str, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await page.evaluate(js):
        assert loop.time() < deadline, f"not within {WAIT}s: {what}"
        await asyncio.sleep(0.1)


async def until_async(probe: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await probe():
        assert loop.time() < deadline, f"not within {WAIT}s: {what}"
        await asyncio.sleep(0.2)



async def test_the_tab_closed_mid_call_puts_the_caller_back_at_the_front_and_the_agent_on_break(
        web_server, ami, agents, media_browser):
    """The browser phone dies with its tab: Asterisk drops its WebSocket contact, the ACD finds
    the phone lost, the caller goes back to the queue ahead of the one already waiting and is
    served by another agent; the first agent is on break, "phone lost"."""
    srv, base, cfg = web_server
    agent = await open_as(media_browser, base, "1001", web_password(cfg, "1001"), "/agent")
    page = agent.page
    # the microphone allowed (Chromium offers mDNS names, not addresses, to a page without it)
    await agent.context.grant_permissions(["microphone"], origin=base)
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)
    await page.select_option("#phone-kind", "browser")
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    m = mark(ami)
    first = await Caller(ami, "7101", tone_hz=CALLER_HZ).dial()
    await expect(page.locator("#answer")).to_be_enabled(timeout=MS)
    await page.click("#answer")
    assert await first.bridged(m) == "1001"

    agents.login("1002")                               # another agent, busy for now
    srv.runtime.set_state("1002", "busy")
    await agents.phone("1002", answer="auto")
    m = mark(ami)
    later = await Caller(ami, "7101").dial()           # waits: nobody is free
    await later.queued(m)

    m1 = agents.mark("1001")
    back = mark(ami)
    await page.close()                                 # the tab dies: no BYE from the page
    removed = await after(ami, back, lambda e: e.name == "ContactStatus" and field(
        e, "EndpointName") == "1001", "1001's contact gone with its WebSocket")
    assert field(removed, "ContactStatus") == "Removed", removed
    # lost once the grace for a phone that may answer again is over (asterisk.qualify_*)
    grace = phone_grace(cfg.asterisk)
    await after(ami, back, lambda e: waiting_in_queue(e, first.channel),
                "the caller back in the queue, music on", timeout=grace + WAIT)
    assert [c["call_id"] for c in srv.runtime.queues()["sales"]["calls"]] == [
        first.uniqueid, later.uniqueid]                # at the front
    state = await agents.wait_state("1001", "break", m1)
    assert state["reason"] == "phone lost" and state["reachable"] is False, state
    m = mark(ami)
    srv.runtime.set_state("1002", "idle")
    assert await first.bridged(m) == "1002"
    await first.hangup()
    await later.hangup()


@pytest.fixture
async def wss_server(asterisk, browser_config, tmp_path):
    """Asterisk with wss on (a self-signed certificate from `acd asterisk tls-selfsigned`'s
    code), and our server with that configuration; the session's Asterisk is put back after."""
    from acd.asterisk import tls
    crt, key = tls.selfsigned("127.0.0.1", tmp_path / "tls")
    async for got in server_with_asterisk(asterisk, browser_config, tmp_path,
                                          wss_port=browser_config.asterisk.http_port + 1,
                                          tls_cert=str(crt), tls_key=str(key)):
        yield got


async def test_over_wss_with_the_admins_certificate(wss_server, ami, media_browser):
    """asterisk.wss_port: the page registers over wss (TLS, the certificate given) and takes
    a call as over ws."""
    srv, base, cfg = wss_server
    agent = await open_as(media_browser, base, "1001", web_password(cfg, "1001"), "/agent")
    page = agent.page
    await agent.context.grant_permissions(["microphone"], origin=base)
    issued: list[dict[str, Any]] = []

    async def on_response(resp: Any) -> None:
        if resp.url.endswith("/api/agents/1001/phone") and resp.request.method == "POST":
            issued.append(await resp.json())
    page.on("response", on_response)
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await page.select_option("#phone-kind", "browser")
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    assert issued[0]["ws_url"] == f"wss://127.0.0.1:{cfg.asterisk.wss_port}/ws", issued
    await _a_call_answered_on_the_page(page, ami, tone_hz=CALLER_HZ)


async def test_a_second_tab_that_takes_the_phone_is_said_on_the_first(web_server, ami,
                                                                      media_browser):
    """One page is the agent's phone at a time: a second tab that takes it replaces the
    first's registration, and the first stops its phone and says so (not silently)."""
    srv, base, cfg = web_server
    agent = await open_as(media_browser, base, "1001", web_password(cfg, "1001"), "/agent")
    first = agent.page
    await agent.context.grant_permissions(["microphone"], origin=base)
    await expect(first.locator("#conn")).to_have_text("live", timeout=MS)
    await first.click("#state-buttons button[data-state=idle]")
    await first.select_option("#phone-kind", "browser")
    await expect(first.locator("#phone-status")).to_have_text("this browser is your phone", timeout=MS)
    second = await agent.context.new_page()               # the same login, another tab
    await second.goto(base + "/agent")
    await expect(second.locator("#conn")).to_have_text("live", timeout=MS)
    await expect(second.locator("#phone-kind")).to_have_value("browser", timeout=MS)   # it asks too
    await expect(second.locator("#phone-status")).to_have_text("this browser is your phone", timeout=MS)
    await expect(first.locator("#phone-status")).to_have_text("another tab or window is your phone now",
                                                              timeout=MS)
    await expect(first.locator("#phone-kind")).to_have_value("sip")
    assert await first.evaluate("() => window.acdPhone.ua === null")
    # the phone is the second tab's: a call rings there, not on the first
    m = mark(ami)
    caller = await Caller(ami, ONLY_1001).dial()
    await expect(second.locator("#answer")).to_be_enabled(timeout=MS)
    await expect(first.locator("#answer")).to_be_hidden()
    await second.click("#answer")
    assert await caller.bridged(m) == "1001"
    await caller.hangup()


async def _browser_agent(browser: Any, base: str, cfg: Any, agent_id: str) -> Any:
    """Agent ``agent_id`` logged in on a page of their own that is their phone, idle."""
    user = await open_as(browser, base, agent_id, web_password(cfg, agent_id), "/agent")
    await user.context.grant_permissions(["microphone"], origin=base)
    page = user.page
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await page.select_option("#phone-kind", "browser")
    await expect(page.locator("#phone-status")).to_have_text("this browser is your phone",
                                                             timeout=MS)
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    return user


async def test_a_transfer_from_one_browser_agent_to_another_all_from_the_pages(
        web_server, ami, media_browser):
    """Two agents whose pages are their phones: the first answers on the page and transfers
    the caller to the second from the call bar; the second's page rings and answers; the
    caller talks with the second, who hangs up from the call bar."""
    srv, base, cfg = web_server
    alice = await _browser_agent(media_browser, base, cfg, "1001")
    bob = await _browser_agent(media_browser, base, cfg, "1002")
    a, b = alice.page, bob.page
    m = mark(ami)
    caller = await Caller(ami, ONLY_1001, tone_hz=CALLER_HZ).dial()
    await expect(a.locator("#answer")).to_be_enabled(timeout=MS)
    await a.click("#answer")
    assert await caller.bridged(m) == "1001"
    await expect(a.locator("#agent-state")).to_have_text("talking", timeout=MS)

    m = mark(ami)
    await a.select_option("#target-kind", "agent")
    await a.fill("#target", "1002")
    await a.click("#call-actions button[data-action=transfer]")
    await expect(b.locator("#ring-banner")).to_be_visible(timeout=MS)
    await expect(b.locator("#answer")).to_be_enabled(timeout=MS)
    await b.click("#answer")
    assert await caller.bridged(m) == "1002"
    await expect(b.locator("#agent-state")).to_have_text("talking", timeout=MS)
    await expect(a.locator("#agent-state")).not_to_have_text("talking", timeout=MS)
    assert srv.runtime.agent("1002")["call_id"] == caller.uniqueid

    await b.click("#call-actions button[data-action=hangup]")
    await caller.gone(m)
    await expect(b.locator("#agent-state")).not_to_have_text("talking", timeout=MS)
    assert alice.errors == [] and bob.errors == []


async def test_a_network_drop_re_registers_by_itself(web_server, ami, media_browser):
    """The page's WebSocket to Asterisk cut (as a network drop does): the page says the link
    is lost, JsSIP connects and registers again by itself, and the next call rings the page."""
    srv, base, cfg = web_server
    alice = await _browser_agent(media_browser, base, cfg, "1001")
    page = alice.page
    await page.evaluate("() => window.acdPhone.ua._transport.socket._ws.close()")
    await expect(page.locator("#phone-status")).to_have_text(
        re.compile("not registered|connection to the server lost"), timeout=MS)
    await expect(page.locator("#phone-status")).to_have_text("this browser is your phone",
                                                             timeout=MS)
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    await _a_call_answered_on_the_page(page, ami)
    assert alice.errors == []

async def _a_call_answered_on_the_page(page, ami, **caller) -> None:
    """A real caller for agent 1001 alone rings the page; Answer there bridges them; hung up."""
    m = mark(ami)
    call = await Caller(ami, ONLY_1001, **caller).dial()
    await expect(page.locator("#answer")).to_be_enabled(timeout=MS)
    await page.click("#answer")
    assert await call.bridged(m) == "1001"
    await call.hangup()


async def _a_new_phone_rings(page, srv, ami, what: str) -> None:
    """The page has a new JsSIP user agent (not the one marked ``window.__before``),
    registered; the ACD sees the phone reachable; a real call rings the page, which answers."""
    await until_true(page, "() => { const ua = window.acdPhone.ua;"
                           " return Boolean(ua) && ua !== window.__before && ua.isRegistered(); }",
                     what)
    await expect(page.locator("#phone-status")).to_have_text("this browser is your phone",
                                                             timeout=MS)
    for _ in range(int(WAIT * 10)):                      # the ACD sees the phone reachable
        if srv.runtime.agent("1001").get("reachable"):
            break
        await asyncio.sleep(0.1)
    got = srv.runtime.agent("1001")
    assert got["state"] == "idle" and got["reachable"], got
    await _a_call_answered_on_the_page(page, ami)


async def test_a_password_asterisk_refuses_makes_the_page_ask_for_a_new_one(web_server, ami,
                                                                        media_browser):
    """Asterisk no longer takes the page's password (here: rendered with another one behind
    the server's back, as a lost reload would leave it): at its next REGISTER the page is
    refused, asks the server for a new password by itself, registers, and the next call rings
    it. JsSIP alone would stay refused until its WebSocket reconnected again."""
    srv, base, cfg = web_server
    alice = await _browser_agent(media_browser, base, cfg, "1001")
    page = alice.page
    await page.evaluate("() => { window.__before = window.acdPhone.ua; }")
    first = srv.web_ctx.browser_phones.issued["1001"].password
    assert await srv.asterisk_conf.set_browser(srv.cfg, "1001", "not-the-pages-password-0123") \
        == "reloaded"
    await page.evaluate("() => window.acdPhone.ua._transport.socket._ws.close()")   # REGISTER again
    await expect(page.locator("#phone-status")).to_contain_text("asking for a new password",
                                                                timeout=MS)
    await _a_new_phone_rings(page, srv, ami, "the page's registration with a new password")
    assert srv.web_ctx.browser_phones.issued["1001"].password != first
    assert alice.errors == []


async def test_a_server_restart_gives_the_page_its_phone_again(browser_config, ami, tmp_path,
                                                              media_browser):
    """The server restarted alone (Asterisk untouched) while a page is the agent's phone: the
    new server has no issued password; the page, its live link back, takes the phone again by
    itself (a new password, a new registration), and the next call rings it."""
    import random
    from dataclasses import replace

    from acd.app import Server
    from tests.asterisk.acd_fixtures import RANDOM_SEED
    cfg = replace(browser_config, database=replace(
        browser_config.database, url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    await srv.start()
    base = f"http://127.0.0.1:{cfg.http.port}"
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        alice = await _browser_agent(media_browser, base, cfg, "1001")
        page = alice.page
        await page.evaluate("() => { window.__before = window.acdPhone.ua; }")
        await srv.stop()
        srv = Server(cfg, rng=random.Random(RANDOM_SEED))          # restarted alone
        await srv.start()
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        await until_true(page, "() => document.getElementById('conn').dataset.opened === '2'",
                         "the page's live link back")
        # a new user agent (not the one from before the restart), registered with the
        # password the new server issued; the restart kept the agent idle
        await _a_new_phone_rings(page, srv, ami, "the page's new registration")
        assert "1001" in srv.web_ctx.browser_phones.issued
        assert alice.errors == []
    finally:
        await srv.stop()
