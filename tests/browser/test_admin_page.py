"""The login page, the admin page and the role checks, in a real Chromium."""
from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import SUPERVISOR, open_as, web_password

MS = 20000


async def test_wrong_password_is_refused_on_the_login_page_and_roles_keep_pages_apart(web_server, browser):
    srv, base, cfg = web_server
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(base + "/supervisor")
    await page.fill("#username", SUPERVISOR[0])
    await page.fill("#password", "not-the-password")
    await page.click("#login-button")
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.", timeout=MS)
    assert "/login" in page.url
    agent = await open_as(browser, base, "1001", web_password(cfg, "1001"), "/agent")
    r = await agent.page.goto(base + "/supervisor")
    assert r.status == 403
    r = await agent.page.goto(base + "/api/agents")
    assert r.status == 403


async def test_admin_page_shows_calls_flows_users_and_the_audit_log(web_server, browser):
    srv, base, cfg = web_server
    admin = await open_as(browser, base, "admin", web_password(cfg, "admin"), "/admin")
    page = admin.page
    await expect(page.locator("#flows-status")).to_contain_text("Status:", timeout=MS)
    await expect(page.locator("#users tbody tr")).to_have_count(len(cfg.web.users), timeout=MS)
    await expect(page.locator("#audit tbody tr").first).to_contain_text("login", timeout=MS)
    await page.click("#flows-reload")
    await expect(page.locator("#flows-msg")).to_have_text("Flows reloaded.", timeout=MS)
    await expect(page.locator("#audit tbody tr").first).to_contain_text("POST /api/flows/reload", timeout=MS)
    await page.fill("#call-filter input[name=since]", "not a date")
    await page.click("#call-filter button[type=submit]")
    await expect(page.locator("#calls-msg")).to_contain_text("http.bad_request", timeout=MS)
    await admin.shot("admin-page")
    assert admin.errors == []


async def test_the_audit_log_comes_in_pages_and_a_calls_record_opens_on_the_page(
        web_server, browser, agents, ami):
    """Issue 17 item 19: the admin page stays one screen long (lists in pages of 25, with
    Newer and Older) and shows a call's timeline, legs and key trail."""
    import aiohttp

    from tests.asterisk.acd_fixtures import Caller, mark
    from tests.web_login import login
    srv, base, cfg = web_server
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        s = await login(http, "admin", web_password(cfg, "admin"), base)
        for _ in range(30):                                 # 30 audited actions
            assert (await s.post("/api/flows/reload")).status == 200
    await agents.phone("1001", answer="auto")
    agents.login("1001")
    await agents.wait_free("1001")
    m = mark(ami)
    caller = await Caller(ami, "7101", name="Zhao <i>Li</i>").dial()
    assert await caller.bridged(m) == "1001"
    since = agents.mark("1001")
    await caller.hangup()
    await agents.wait_free("1001", since)
    await srv.runtime.quiesce()

    admin = await open_as(browser, base, "admin", web_password(cfg, "admin"), "/admin")
    page = admin.page
    audit = page.locator("#audit tbody tr")
    await expect(audit).to_have_count(25, timeout=MS)
    bar = page.locator("#audit-pager")
    await expect(bar.locator(".page-rows")).to_have_text("1–25")
    await expect(bar.locator("button.page-back")).to_be_disabled()
    await bar.locator("button.page-forward").click()
    await expect(bar.locator(".page-rows")).to_contain_text("26–", timeout=MS)
    assert 1 <= await audit.count() <= 25
    await bar.locator("button.page-back").click()
    await expect(bar.locator(".page-rows")).to_have_text("1–25", timeout=MS)

    row = page.locator(f"#calls tr[data-call='{caller.uniqueid}']")
    await expect(row).to_be_visible(timeout=MS)
    await row.locator("button.call-details").click()
    detail = row.locator("xpath=following-sibling::tr[1]")
    await expect(detail.locator("table.call-legs tbody tr")).to_have_count(1, timeout=MS)
    await expect(detail.locator("table.call-legs")).to_contain_text("1001")
    assert await detail.locator("table.call-timeline tbody tr").count() >= 2
    await expect(detail).to_contain_text("Zhao <i>Li</i>")        # the name as text
    assert await detail.locator("i").count() == 0
    await expect(detail).to_contain_text("caller_hangup")
    await admin.shot("admin-call-detail")
    assert admin.errors == []
