"""The wall board's live part in a real Chromium, against our whole server (real Asterisk):
the board as the socket opens, then only the changes; a change whose number skips one (a
message missed) makes the page ask for the whole board, and it shows the truth; a cut socket
comes back with a fresh board."""
from __future__ import annotations

from playwright.async_api import expect

from tests.asterisk.acd_fixtures import WAIT, Caller, after, field, mark
from tests.asterisk.phones import SoftPhone
from tests.browser.conftest import SUPERVISOR, SUPERVISOR_PHONE, open_as, web_password

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
