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
