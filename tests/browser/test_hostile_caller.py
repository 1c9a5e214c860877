"""Hostile caller IDs on the pages, in a real Chromium, on real calls: each caller of
tests/asterisk/hostile.py (HTML and script, quotes, SQL, control characters with CR/LF, non-ASCII
with a right-to-left mark, 1,000 characters) calls over a hand-made SIP INVITE. The agent's
screen pop (while the phone rings), the call tab and the recent calls show the name and
number as text, exactly as stored; no element of a payload exists in the page, no script of
one ran (``window.__pwned`` stays unset, no dialog opened, no page error); a number that wraps
a customer's number in HTML neither finds that customer nor gets a region. The supervisor's
wall board (groups and agents: it shows no caller IDs) counts the calls and stays clean too.
"""
from __future__ import annotations

from playwright.async_api import expect

from tests.asterisk.acd_fixtures import WAIT, stored
from tests.asterisk.hostile import CASES, HostileCaller
from tests.browser.conftest import SUPERVISOR, open_as, web_password

MS = int(WAIT * 1000)
SALES = "7101"
#: Elements and attributes the payloads carry; none may exist in a page.
PAYLOAD = "script:not([src]), img, svg[onload], b:not([id]), [onerror], [onload]"


async def _text(page, selector: str) -> str:
    return await page.locator(selector).evaluate("el => el.textContent")


async def _clean(user) -> None:
    page = user.page
    assert await page.locator(PAYLOAD).count() == 0, await page.locator(PAYLOAD).evaluate_all(
        "els => els.map(e => e.outerHTML)")
    assert await page.evaluate("window.__pwned") is None
    assert user.dialogs == [] and user.errors == []


async def test_hostile_caller_ids_show_as_text_on_the_agent_page_and_the_wall_board(
        web_server, agents, browser):
    srv, base, cfg = web_server
    agent = await open_as(browser, base, "1001", web_password(cfg, "1001"), "/agent")
    page = agent.page
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)
    phone = await agents.phone("1001", answer="manual")
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]), "/supervisor")
    sales = sup.page.locator("#groups tr[data-group='sales']")
    await expect(sales.locator("td[data-f=offered]")).to_have_text("0", timeout=MS)
    a = cfg.asterisk
    w = agents.watch["1001"]
    for n, (what, display, user, name, number) in enumerate(CASES, 1):
        since = len(w.messages)
        caller = HostileCaller(a.sip_host, a.sip_port, SALES, user=user, display=display)
        try:
            assert await caller.call() == "SIP/2.0 200 OK", what
            ring = await w.wait(lambda m: m["type"] == "ring", since, what=f"{what}: ring")
            call_id = ring["call_id"]
            await phone.wait_event("CALL_INCOMING")
            # The pop, while the phone rings: the name and number as text, exactly.
            await expect(page.locator(f"#call-tabs button[data-call='{call_id}']")).to_have_attribute(
                "aria-selected", "true", timeout=MS)
            await expect(page.locator("#pop-number")).not_to_have_text("unknown", timeout=MS)
            await expect(page.locator("#pop-region")).not_to_have_text("…", timeout=MS)
            assert await _text(page, "#pop-name") == name, what
            assert await _text(page, "#pop-number") == number, what
            assert await _text(page, f"#call-tabs button[data-call='{call_id}'] bdi") == number, what
            # A right-to-left override in a caller ID cannot turn the page's text around it.
            for sel in ("#pop-name", "#pop-number", f"#call-tabs button[data-call='{call_id}'] bdi"):
                assert await page.locator(sel).evaluate(
                    "el => getComputedStyle(el).unicodeBidi") == "isolate", sel
            # Not a phone number: no region, no customer found by digits picked out of it.
            assert await _text(page, "#pop-region") == "unknown", what
            assert await _text(page, "#pop-customer") == "not in the directory", what
            await _clean(agent)
            if n == 1:
                await agent.shot("agent-hostile-caller-pop")
            await phone.answer()
            await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
            assert await caller.bye() in ("SIP/2.0 200 OK", "ended by Asterisk")
            await w.wait(lambda m: m["type"] == "ended" and m["call_id"] == call_id, since,
                         what=f"{what}: ended")
            await agents.wait_state("1001", "idle", since)
        finally:
            caller.close()
        # The recent calls: the same text, in its row.
        row = page.locator(f"#recent tbody tr[data-call='{call_id}']")
        await expect(row).to_have_count(1, timeout=MS)
        assert await _text(page, f"#recent tbody tr[data-call='{call_id}'] td.name") == name, what
        assert await _text(page, f"#recent tbody tr[data-call='{call_id}'] td.number") == number, what
        assert await row.locator("td.name").evaluate("el => getComputedStyle(el).unicodeBidi") == "isolate"
        await _clean(agent)
        rec = await stored(srv, call_id, ended=True)
        assert (rec["caller_name"], rec["caller_number"]) == (name, number), what
        # The wall board counts the call and stays clean.
        await expect(sales.locator("td[data-f=offered]")).to_have_text(str(n), timeout=MS)
        await expect(sales.locator("td[data-f=answered]")).to_have_text(str(n), timeout=MS)
        await _clean(sup)
    await agent.shot("agent-hostile-callers-recent")
    await sup.shot("wallboard-after-hostile-callers")
    assert srv.runtime.agent("1001")["state"] == "idle"
