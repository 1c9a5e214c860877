"""The agent page at a laptop's width (1366 px) and at half a screen (700 px), in a real
Chromium with a real call ringing (issue 17 items 13 and 15): nothing wider than the window
or than its panel, the ringing banner in view; only the actions the call's state allows are
shown (none before a call, hold and the like once answered, resume only while held); and
with no outbound route the page says why it offers no Dial."""
from __future__ import annotations

from playwright.async_api import expect

from tests.asterisk.acd_fixtures import WAIT, Caller, mark
from tests.browser.conftest import ARTIFACTS, open_as, web_password

MS = int(WAIT * 1000)

OVERFLOW = """() => {
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    out.push("page " + document.documentElement.scrollWidth + " > " + window.innerWidth);
  for (const el of document.querySelectorAll("section.panel")) {
    if (el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
      out.push(el.id + " " + el.scrollWidth + " > " + el.clientWidth);
  }
  return out;
}"""


def shown(page, action: str):  # noqa: ANN001, ANN201
    return page.locator(f"#call-actions button[data-action='{action}']")


async def test_the_agent_page_fits_1366_and_700_px_and_shows_only_allowed_actions(
        web_server, agents, ami, browser):
    srv, base, cfg = web_server
    user = await open_as(browser, base, "1001", web_password(cfg, "1001"), "/agent")
    page = user.page
    await page.set_viewport_size({"width": 1366, "height": 800})
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    phone = await agents.phone("1001", answer="manual")
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)

    # no call: no call actions, a line that says where they will be; Dial is offered
    await expect(page.locator("#no-actions")).to_be_visible()
    for action in ("hold", "resume", "transfer", "hangup", "consult-complete"):
        await expect(shown(page, action)).to_be_hidden()
    await expect(page.locator("#transfer-target")).to_be_hidden()
    await expect(page.locator("#dial-row button[data-action=dial]")).to_be_visible()

    m = mark(ami)
    caller = await Caller(ami, "7101", caller_num="13912345678",
                          name="Li Wei with a long name for the earlier calls").dial()
    await phone.wait_event("CALL_INCOMING")
    await expect(page.locator("#ring-banner")).to_be_visible(timeout=MS)
    await expect(page.locator("#pop-number")).to_have_text("13912345678", timeout=MS)
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in ((1366, 800), (700, 1000)):
        await page.set_viewport_size({"width": width, "height": height})
        assert await page.evaluate(OVERFLOW) == [], width
        await expect(page.locator("#ring-banner")).to_be_in_viewport()
        await user.shot(f"agent-ringing-{width}")

    await phone.answer()
    assert await caller.bridged(m) == "1001"
    await expect(shown(page, "hold")).to_be_visible(timeout=MS)
    for action in ("transfer", "consult", "hangup"):
        await expect(shown(page, action)).to_be_visible()
    for action in ("resume", "consult-complete", "consult-return", "transfer-cancel",
                   "wrapup-end"):
        await expect(shown(page, action)).to_be_hidden()
    await expect(page.locator("#no-actions")).to_be_hidden()
    await expect(page.locator("#transfer-target")).to_be_visible()
    # shown but not yet possible: says why
    await expect(shown(page, "transfer")).to_be_disabled()
    await expect(shown(page, "transfer")).to_have_attribute(
        "title", "Type the agent id or group first.")
    await shown(page, "hold").click()
    await expect(shown(page, "resume")).to_be_visible(timeout=MS)
    await expect(shown(page, "hold")).to_be_hidden()
    assert await page.evaluate(OVERFLOW) == []
    await user.shot("agent-held-700")

    # no outbound route on this server: no Dial, and the page says why
    srv.runtime.outbound_enabled = False
    await page.reload()
    await expect(page.locator("#dial-why")).to_be_visible(timeout=MS)
    await expect(page.locator("#dial-why")).to_contain_text("outbound.dial")
    await expect(page.locator("#dial-row")).to_be_hidden()
    since = agents.mark("1001")
    await caller.hangup()
    await agents.wait_state("1001", "idle", since)
    assert user.errors == []
