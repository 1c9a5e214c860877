"""The agent page across a takeover, in a real Chromium (issue 16): a leader and a standby
(real processes, PostgreSQL) behind a reverse proxy that sends each request to the one that
answers /api/health; the leader is SIGKILLed; the page's live link drops, reconnects by
itself through the proxy to the new leader, shows the agent's state as it was, and the
agent's next action is carried out there."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from acd.asterisk.runner import Asterisk
from tests.asterisk.acd_fixtures import WAIT
from tests.asterisk.test_standby import _pair
from tests.browser.conftest import open_as, web_password
from tests.browser.leader_proxy import LeaderProxy

MS = int(WAIT * 1000)


@pytest.fixture
async def restore_browser_dialplan(asterisk, browser_config):
    yield
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=browser_config).up()


@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
async def test_the_agent_page_keeps_working_across_a_takeover(
        browser_config, asterisk, browser, tmp_path, db_url, restore_browser_dialplan):
    cfg = browser_config
    first, second = _pair(cfg, asterisk, tmp_path, db_url)
    proxy = LeaderProxy([f"http://127.0.0.1:{cfg.http.port}",
                         f"http://127.0.0.1:{cfg.http.port + 1}"])
    try:
        await first.start()
        await first.wait_log("runtime.rebuilt")
        await second.start()
        await second.wait_log("ha.standby")
        base = await proxy.start()
        agent = await open_as(browser, base, "1001", web_password(cfg, "1001"), "/agent")
        page = agent.page
        await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
        await page.click("#state-buttons button[data-state=idle]")
        await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)

        await first.kill()
        await second.wait_log("runtime.rebuilt")
        # the page reconnects by itself, to the new leader, and shows the state as it was
        await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
        await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)
        await page.click("#state-buttons button[data-state=break]")
        await expect(page.locator("#agent-state")).to_have_text("break", timeout=MS)
        await agent.shot("agent-page-after-takeover")
        assert agent.errors == []
        await second.stop()
    finally:
        await proxy.close()
        await first.stop()
        await second.stop()
