"""The wall board's live part in a real Chromium, against our whole server (real Asterisk):
the board as the socket opens, then only the changes; a change whose number skips one (a
message missed) makes the page ask for the whole board, and it shows the truth; a cut socket
comes back with a fresh board."""
from __future__ import annotations

import asyncio
import random
import re
from dataclasses import replace

import pytest
from playwright.async_api import expect

from acd.app import Server
from tests.asterisk.acd_fixtures import RANDOM_SEED, WAIT, Caller, after, field, mark
from tests.asterisk.phones import SoftPhone
from tests.browser.conftest import (ARTIFACTS, SUPERVISOR, SUPERVISOR_PHONE, open_as,
                                    web_password)

MS = int(WAIT * 1000)


async def test_the_board_follows_changes_and_asks_for_the_whole_board_after_a_gap(
        web_server, browser):
    srv, base, cfg = web_server
    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]),
                        "/supervisor")
    board = sup.page
    await expect(board.locator("#conn")).to_have_text("live", timeout=MS)
    state = board.locator("#agents tr[data-agent='1001'] td[data-f=state]")
    await expect(state).to_contain_text("offline", timeout=MS)
    srv.runtime.login("1001")
    await expect(state).to_contain_text("idle", timeout=MS)
    srv.runtime.set_state("1001", "break", "coffee")
    await expect(state).to_contain_text("break", timeout=MS)

    # Two messages lost on the way: the next change comes numbered past them.
    (sub,) = srv.hub._subs["supervisor"]
    asked = []
    want = sub.want_snapshot
    sub.want_snapshot = lambda: (asked.append(1), want())[1]     # the page's ask, noted
    srv.hub._seq["supervisor"] += 2
    srv.runtime.set_state("1001", "meeting", "weekly")
    await expect(state).to_contain_text("meeting", timeout=MS)   # from the whole board
    assert asked == [1]
    srv.runtime.set_state("1001", "busy", "")                    # numbered on from there
    await expect(state).to_contain_text("busy", timeout=MS)
    assert asked == [1]

    # Cut off (as a slow reader): the page opens again and gets the whole board.
    sub.overflowed = True
    srv.hub._remove(sub)
    await expect(board.locator("#conn")).to_have_attribute("data-opened", "2", timeout=MS)
    srv.runtime.set_state("1001", "idle", "")
    await expect(state).to_contain_text("idle", timeout=MS)
    await expect(board.locator("#groups tr[data-group='sales'] td[data-f=waiting]")).to_have_text(
        "0", timeout=MS)
    assert sup.errors == []


async def test_a_supervisor_listens_then_whispers_then_stops_from_the_board(
        web_server, browser, agents, ami):
    """The board's Listen button on the agent's row rings the supervisor's phone (ChanSpy on
    the agent's leg); the bar switches to whisper and stops. (What is heard, by frequency:
    tests/asterisk/test_monitor.py.)"""
    srv, base, cfg = web_server
    phone = SoftPhone(*SUPERVISOR_PHONE, cfg.asterisk.sip_host, cfg.asterisk.sip_port)
    try:
        await phone.start()
        await agents.phone("1001")
        agents.login("1001")
        await agents.wait_free("1001")
        sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]),
                            "/supervisor")
        board = sup.page
        await expect(board.locator("#conn")).to_have_text("live", timeout=MS)
        listen = board.locator("#agents tr[data-agent='1001'] button.monitor-listen")
        await expect(listen).to_be_disabled(timeout=MS)          # not on a call
        caller = await Caller(ami, "7108").dial()
        assert await caller.bridged() == "1001"
        await expect(listen).to_be_enabled(timeout=MS)
        m = mark(ami)
        await listen.click()
        await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Application") == "ChanSpy"
                    and field(e, "Exten") == "listen", "listening")
        bar = board.locator("#monitor-bar")
        await expect(bar).to_be_visible(timeout=MS)
        await expect(board.locator("#monitor-what")).to_contain_text("listen", timeout=MS)
        await bar.locator("button[data-mode='whisper']").click()
        await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Application") == "ChanSpy"
                    and field(e, "Exten") == "whisper", "whispering")
        await expect(board.locator("#monitor-what")).to_contain_text("whisper", timeout=MS)
        assert srv.runtime.monitoring(SUPERVISOR[0])["mode"] == "whisper"
        await board.locator("#monitor-stop").click()
        await expect(bar).to_be_hidden(timeout=MS)
        await after(ami, m, lambda e: e.name == "Hangup"
                    and field(e, "Channel").startswith(f"PJSIP/{SUPERVISOR_PHONE[0]}-"),
                    "the supervisor's leg gone")
        assert srv.runtime.monitoring(SUPERVISOR[0]) is None
        assert srv.runtime.agent("1001")["state"] == "talking"
        await caller.hangup()
        assert sup.errors == []
    finally:
        await phone.stop()


# --------------------------------------------------------------------------- issue 17: item 17

@pytest.fixture
async def board_server(browser_config, tmp_path):
    """The whole server with the wall board's thresholds low enough to cross in a test: a wait
    over 2 s is red, a service level under 80 % too; numbers show their last 4 digits."""
    cfg = replace(browser_config,
                  database=replace(browser_config.database,
                                   url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"),
                  web=replace(browser_config.web, wallboard_longest_wait_alert=2.0,
                              wallboard_service_level_target=0.8, wallboard_caller_digits=4))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    await srv.start()
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        yield srv, f"http://127.0.0.1:{srv.http_port}", cfg
    finally:
        await srv.stop()


HOSTILE_REASON = '<img src=x onerror="alert(1)">lunch'


async def test_waiting_callers_pauses_thresholds_and_the_big_screen_on_real_calls(
        board_server, browser, ami):
    srv, base, cfg = board_server
    # Nobody free in sales: 1001 on a break (a reason made of HTML), 1002 in a meeting.
    for agent_id, state, reason in (("1001", "break", HOSTILE_REASON), ("1002", "meeting", "weekly")):
        srv.runtime.login(agent_id)
        srv.runtime.set_state(agent_id, state, reason)
    callers = [await Caller(ami, "7101", "13800138000").dial(),
               await Caller(ami, "7101", "13912345678").dial()]
    for c in callers:
        await c.queued()
    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]), "/supervisor")
    board = sup.page
    await expect(board.locator("#conn")).to_have_text("live", timeout=MS)

    # Who is waiting, longest first: the number masked by the server, group, place, priority.
    rows = board.locator("#waiting tbody tr")
    await expect(rows).to_have_count(2, timeout=MS)
    await expect(rows.nth(0).locator("td")).to_have_text(
        ["\u2022" * 7 + "8000", "sales", "1", "0", "waiting", re.compile(r"^\d+:\d\d$")])
    await expect(rows.nth(1).locator("td").first).to_have_text("\u2022" * 7 + "5678")
    assert "13800138000" not in await board.content()       # never sent to the page
    # Past 2 s the waits are red; the service level (none answered of 2 offered) is under 80 %.
    await expect(rows.nth(0)).to_have_class(re.compile(r"\balert\b"), timeout=MS)
    sales = board.locator("#groups tr[data-group='sales']")
    await expect(sales.locator("td[data-f=longest_wait]")).to_have_class(re.compile(r"\balert\b"), timeout=MS)
    await expect(sales.locator("td[data-f=service_level]")).to_have_class(re.compile(r"\balert\b"), timeout=MS)
    await expect(board.locator("#groups tr[data-group='rr'] td[data-f=service_level]")).not_to_have_class(
        re.compile(r"\balert\b"))                             # nothing offered: no figure, no red

    # Breaks with their reasons and time, as text.
    pause = board.locator("#pauses li[data-agent='1001']")
    await expect(pause).to_contain_text(HOSTILE_REASON, timeout=MS)
    await expect(pause.locator("[data-f=paused]")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(board.locator("#pauses li[data-agent='1002']")).to_contain_text("weekly")
    await expect(board.locator("#agents tr[data-agent='1001'] td[data-f=state]")).to_contain_text(HOSTILE_REASON)
    assert await board.locator("#pauses img, #agents img, #waiting img").count() == 0

    # The 15-minute charts: each 15 minutes at least 24 px wide, the bars of now drawn.
    chart = board.locator("#charts figure[data-group='sales'] svg")
    slots = len((await (await board.request.get(base + "/api/stats/wallboard")).json())["intervals"]["sales"])
    assert (await chart.bounding_box())["width"] >= 24 * slots
    bar = chart.locator("rect.offered").last
    await expect(bar).to_be_visible(timeout=MS)
    assert (await bar.bounding_box())["width"] >= 5
    await sup.shot("wallboard")

    # The big screen: no controls, large type, all on one 1920 x 1080 screen.
    tv = await sup.context.new_page()
    tv.on("pageerror", lambda e: sup.errors.append(str(e)))
    await tv.set_viewport_size({"width": 1920, "height": 1080})
    await tv.goto(base + "/wallboard?tv=1")
    await expect(tv.locator("body")).to_have_class(re.compile(r"\btv\b"))
    await expect(tv.locator("#conn")).to_have_text("live", timeout=MS)
    await expect(tv.locator("#waiting tbody tr")).to_have_count(2, timeout=MS)
    await expect(tv.locator("#pauses li")).to_have_count(2, timeout=MS)
    assert await tv.locator("button:visible, select:visible, input:visible, a:visible").count() == 0
    fits = await tv.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
                             " innerWidth, innerHeight]")
    assert fits[0] <= fits[2] and fits[1] <= fits[3], fits
    # ... and what it shows is in view, inside its panel (not cut off by the screen's edge)
    for panel, items in (("#waiting-panel", "#waiting tbody tr"), ("#pauses-panel", "#pauses li"),
                         ("#agents-panel", "#agents tbody tr"), ("#groups-panel", "#groups tr[data-group='sales']"),
                         ("#charts-panel", "#charts figure[data-group='sales'] svg")):
        box = await tv.locator(panel).bounding_box()
        assert box["y"] + box["height"] <= 1080 and box["x"] + box["width"] <= 1920, (panel, box)
        for i in range(min(await tv.locator(items).count(), 3)):
            item = await tv.locator(items).nth(i).bounding_box()
            assert item["height"] > 0 and item["y"] >= box["y"], (items, item, box)
            assert item["y"] + item["height"] <= box["y"] + box["height"] + 1, (items, item, box)
    size = await tv.locator("#groups tbody td").first.evaluate("td => parseFloat(getComputedStyle(td).fontSize)")
    assert size >= 24, size
    await expect(tv.locator("#charts figure[data-group='sales'] svg")).to_be_visible()
    await tv.screenshot(path=str(ARTIFACTS / "wallboard-tv.png"))
    assert sup.errors == [] and sup.dialogs == []
    for c in callers:
        await c.hangup()
