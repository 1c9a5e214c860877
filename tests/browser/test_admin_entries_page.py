"""The admin page's agents, groups and users (entries.js) in a real Chromium, against our whole
server with a real Asterisk and a real SIP phone: an admin makes an agent (their passwords
shown once, never again, a name made of HTML shown as text) and a skill group with a number,
puts the agent in it; the agent's phone registers with the password the page showed and a
caller dialling the group's number is bridged to them, all without a restart. A group's new
wrap-up is in force from the page; refusals show the field and the id; the agent and the
group are removed from the page and Asterisk no longer knows the endpoint."""
from __future__ import annotations

import asyncio

from playwright.async_api import expect

from acd.ami.client import AmiError
from tests.asterisk.acd_fixtures import WAIT, Caller, mark
from tests.asterisk.calls import until
from tests.asterisk.phones import SoftPhone
from tests.browser.conftest import ARTIFACTS, open_as, web_password

MS = int(WAIT * 1000)
AGENT, NAME, GROUP, NUMBER = "1010", "Erin <b>bold</b>", "pagegroup2", "7152"


async def endpoint_known(ami, endpoint: str) -> bool:  # noqa: ANN001
    try:
        rows = await ami.action_list("PJSIPShowEndpoint", Endpoint=endpoint)
    except AmiError:
        return False
    return any(r.get("ObjectName") == endpoint for r in rows)


async def test_an_admin_makes_an_agent_and_a_group_on_the_page_and_they_take_a_call(
        web_server, browser, ami):
    srv, base, cfg = web_server
    admin = await open_as(browser, base, "admin", web_password(cfg, "admin"), "/admin")
    page = admin.page
    page.remove_listener("dialog", admin._dialog)          # "Remove ...?": yes
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    msg = page.locator("#entries-msg")

    # a refusal names the field and the id, and makes nothing
    await page.fill("#add-agent input[name=id]", "no spaces")
    await page.click("#add-agent button[type=submit]")
    await expect(msg).to_contain_text("id:", timeout=MS)
    await expect(msg).to_contain_text("[config.invalid]")
    assert "no spaces" not in srv.runtime.endpoints

    await page.fill("#add-agent input[name=id]", AGENT)
    await page.fill("#add-agent input[name=name]", NAME)
    await page.click("#add-agent button[type=submit]")
    await expect(msg).to_contain_text(f"Agent {AGENT} created. Asterisk has it now.", timeout=MS)
    secrets = page.locator("#entry-secrets")
    await expect(secrets).to_contain_text("shown this once")
    sip_password = await secrets.locator("code[data-secret=password]").inner_text()
    assert len(sip_password) >= 20
    row = page.locator(f"#agents tr[data-agent='{AGENT}']")
    await expect(row.locator("td").nth(2)).to_have_text("admin page")
    assert await row.locator("input").first.input_value() == NAME      # text, not markup
    assert await page.locator("#agents b").count() == 0
    assert await endpoint_known(ami, AGENT)

    await page.fill("#add-group input[name=name]", GROUP)
    await page.fill("#add-group input[name=number]", NUMBER)
    await page.click("#add-group button[type=submit]")
    group_msg = page.locator("#groups-msg")
    await expect(group_msg).to_contain_text(f"Group {GROUP} created.", timeout=MS)
    members = page.locator(f"#members .member-group[data-group='{GROUP}']")
    await members.locator("select.add-agent").select_option(AGENT)
    await members.locator(".add-row input.level").fill("1")
    await members.locator("button.add-member").click()
    await expect(page.locator("#members-msg")).to_contain_text(f"added to {GROUP} at level 1",
                                                               timeout=MS)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#entries-panel").screenshot(path=str(ARTIFACTS / "admin-agents.png"))

    # the password the page showed registers the phone; a caller of the new number rings it
    a = cfg.asterisk
    phone = SoftPhone(AGENT, sip_password, a.sip_host, a.sip_port, answer="auto")
    try:
        await phone.start()
        srv.runtime.login(AGENT)
        await until(lambda: srv.runtime.agent(AGENT)["reachable"], "the new phone registered")
        m = mark(ami)
        caller = await Caller(ami, NUMBER).dial()
        assert await caller.bridged(m) == AGENT
        await caller.hangup()
        await until(lambda: srv.runtime.agent(AGENT)["state"] == "idle", "the agent idle again")
    finally:
        await phone.stop()

    # shown once: a reload of the page shows no password
    await page.reload()
    await expect(row).to_be_visible(timeout=MS)
    assert sip_password not in await page.content()
    await expect(secrets).to_be_hidden()

    # a group's settings from the page, in force at once; a bad value is refused with its id
    group_row = page.locator(f"#groups tr[data-group='{GROUP}']")
    await expect(group_row.locator("summary")).to_contain_text(f"number {NUMBER}", timeout=MS)
    await group_row.locator("summary").click()
    await group_row.locator("input[name=wrapup_seconds]").fill("20")
    await group_row.locator("button.save").click()
    await expect(group_msg).to_contain_text(f"Group {GROUP} saved", timeout=MS)
    assert srv.runtime.acd.wrapup_seconds(GROUP) == 20.0
    await expect(group_row.locator("summary")).to_contain_text("wrap-up 20 s")
    await group_row.locator("summary").click()
    await group_row.locator("input[name=ring_timeout]").fill("soon")
    await group_row.locator("button.save").click()
    await expect(group_msg).to_contain_text("ring_timeout", timeout=MS)
    await expect(group_msg).to_contain_text("[config.invalid]")
    await page.locator("#groups-panel").screenshot(path=str(ARTIFACTS / "admin-groups.png"))

    # removed from the page: a logged-in agent is refused, then gone with their endpoint
    await row.locator("button.remove").click()
    await expect(msg).to_contain_text("[agent.logged_in]", timeout=MS)
    srv.runtime.logout(AGENT)
    await row.locator("button.remove").click()
    await expect(msg).to_contain_text(f"Agent {AGENT} removed.", timeout=MS)
    await expect(row).to_have_count(0)
    await group_row.locator("button.remove").click()
    await expect(group_msg).to_contain_text(f"Group {GROUP} removed.", timeout=MS)
    assert not await endpoint_known(ami, AGENT)
    assert AGENT not in srv.runtime.endpoints and GROUP not in srv.runtime.queues()
    await admin.shot("admin-entries")
    assert admin.errors == []
