"""The browser tier: the pages in a real headless Chromium (Debian's ``chromium`` package,
driven by Playwright), against our whole server with a real Asterisk and real SIP phones.

Chromium is Debian's (``make test`` installs it with apt-get); Playwright's own browser
download is never used. Everything stays on 127.0.0.1: the side panels point at a small
"business system" served here. Screenshots go to ``test-artifacts/``.

The real-Asterisk fixtures are those of tests/asterisk (imported: this tier takes its own
slot, so its Asterisk is its own).
"""
from __future__ import annotations

import asyncio
import html
import random
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from acd import config as configmod
from acd.app import Server
from acd.directory import import_rows
from tests.asterisk.acd_fixtures import RANDOM_SEED, WAIT, Agents, acd_test_config
from tests.asterisk.conftest import ami, asterisk, test_config, test_slot  # noqa: F401
from tests.conftest import PROJECT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"]
ARTIFACTS = PROJECT / "test-artifacts"
SUPERVISOR = ("sup", "supervisor")
SUPERVISOR_PHONE = ("9002", "sup-phone-password-9002")   # listen, whisper, barge
CUSTOMERS = [{"customer_number": "C-77", "name": "Zhang San", "phone": "13912345678",
              "id_number": "11010119900307123X"}]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.asterisk)


# --------------------------------------------------------------------------- a business system

@pytest.fixture
async def erp():
    """A stand-in business system on 127.0.0.1: /orders?customer=ID answers a page naming the
    customer (HTML-escaped), and remembers what was asked."""
    asked: list[str] = []

    async def orders(request: web.Request) -> web.Response:
        cid = request.query.get("customer", "")
        asked.append(cid)
        return web.Response(text=f"<!doctype html><title>Orders</title><h1 id='orders'>Orders of "
                                 f"{html.escape(cid)}</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/orders", orders)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield {"url": f"http://127.0.0.1:{port}", "asked": asked}
    await runner.cleanup()


# --------------------------------------------------------------------------- the server

@pytest.fixture(scope="session")
def browser_config(asterisk, test_config) -> configmod.Config:  # noqa: F811
    """The ACD test config (groups, a third agent) plus a supervisor login; rendered into the
    tier's Asterisk."""
    from acd.asterisk.runner import Asterisk
    cfg = acd_test_config(test_config, secrets.token_urlsafe(18))
    users = tuple(cfg.web.users) + (configmod.WebUserConfig(
        username=SUPERVISOR[0], role=SUPERVISOR[1], password=secrets.token_urlsafe(12),
        phone=SUPERVISOR_PHONE[0], phone_password=SUPERVISOR_PHONE[1]),)
    cfg = replace(cfg, web=replace(cfg.web, users=users))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    return cfg


@pytest.fixture
async def web_server(browser_config, erp, tmp_path):
    """Our whole server (fresh database) with the web pages; the side panel shows the ERP
    stand-in's orders of the verified customer. Yields (server, base URL, config)."""
    panel = configmod.SidePanelConfig(title="Orders", url=erp["url"] + "/orders?customer={customer_id}")
    cfg = replace(browser_config,
                  database=replace(browser_config.database,
                                   url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"),
                  web=replace(browser_config.web, side_panels=(panel,)))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    await srv.start()
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        await import_rows(srv.store, [dict(c) for c in CUSTOMERS])
        yield srv, f"http://127.0.0.1:{srv.http_port}", cfg
    finally:
        await srv.stop()


async def server_with_asterisk(asterisk, browser_config, tmp_path, **asterisk_keys):  # noqa: F811
    """Our server with these ``asterisk`` keys, the session's Asterisk rendered for them
    first (a fresh database); yields (server, base URL, config); the session's Asterisk put
    back after. An async generator for fixtures: ``async for got in server_with_asterisk(
    ...): yield got``."""
    from acd.asterisk.runner import Asterisk
    cfg = replace(browser_config, asterisk=replace(browser_config.asterisk, **asterisk_keys),
                  database=replace(browser_config.database,
                                   url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    try:
        await srv.start()
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        yield srv, f"http://127.0.0.1:{srv.http_port}", cfg
    finally:
        await srv.stop()
        Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=browser_config).up()


@pytest.fixture
async def agents(web_server):
    srv, _base, cfg = web_server
    a = Agents(srv, cfg)
    yield a
    await a.close()


# --------------------------------------------------------------------------- the browser

@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: make test installs it (apt-get)"
    pw = await async_playwright().start()
    b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
    yield b
    await b.close()
    await pw.stop()


class PageUser:
    """A browser context (its own cookies) logged in through the login page."""

    def __init__(self, context: Any, page: Any, base: str) -> None:
        self.context, self.page, self.base = context, page, base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)     # an alert() would mean script ran
        await dialog.dismiss()

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


async def open_as(browser: Any, base: str, username: str, password: str, page_path: str) -> PageUser:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    user = PageUser(context, page, base)
    await page.goto(base + page_path)
    assert "/login?next=" in page.url, page.url        # not logged in: sent to the login page
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-button")
    await page.wait_for_url(base + page_path)
    return user


def web_password(cfg: configmod.Config, username: str) -> str:
    from tests.web_login import password_of
    return password_of(cfg, username)
