"""The skill groups' members panel (members.js) in a real Chromium, against our whole server
with a real Asterisk and real SIP phones: a supervisor moves an agent who is talking from one
group to another; the call goes on, and the next caller of the new group rings that agent while
a caller of the old one is left waiting. Two pages editing one group: the second is told the
group changed meanwhile and overwrites nothing (nor does a direct request with the old
version); a level the server refuses is shown with its id and changes nothing."""
from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.asterisk.acd_fixtures import WAIT, Caller, mark, stored
from tests.asterisk.calls import field, talk_entered
from tests.browser.conftest import ARTIFACTS, SUPERVISOR, open_as, web_password

MS = int(WAIT * 1000)
OLD, OLD_NUMBER = "ovtarget", "7108"      # 1001 its only member
NEW, NEW_NUMBER = "ovlen", "7109"         # 1002 its only member (logged out here)


def group(page: Any, name: str) -> Any:
    return page.locator(f"#members .member-group[data-group='{name}']")


def members(srv: Any, name: str) -> dict[str, int]:
    return next(dict(g.members or {}) for g in srv.cfg.groups if g.name == name)


async def test_an_agent_moved_during_a_call_keeps_it_and_the_new_group_rings_them_next(
        web_server, browser, agents, ami):
    srv, base, cfg = web_server
    await agents.phone("1001")
    agents.login("1001")
    await agents.wait_free("1001")
    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]),
                        "/supervisor")
    page = sup.page
    row = group(page, OLD).locator("tr[data-agent='1001']")
    await expect(row).to_be_visible(timeout=MS)
    await expect(group(page, NEW).locator("tr[data-agent='1001']")).to_have_count(0)

    m = mark(ami)
    caller = await Caller(ami, OLD_NUMBER).dial()
    assert await caller.bridged(m) == "1001"
    await expect(row.locator("td[data-f=state]")).to_have_text("talking", timeout=MS)

    moved_at = mark(ami)
    await row.locator("button.remove-member").click()
    await expect(page.locator("#members-msg")).to_contain_text(f"(1001) taken out of {OLD}.",
                                                               timeout=MS)
    await expect(group(page, OLD).locator("tr[data-agent]")).to_have_count(0)
    await expect(group(page, OLD).locator("p.none")).to_have_text("No members.")
    new = group(page, NEW)
    await new.locator("select.add-agent").select_option("1001")
    await new.locator(".add-row input.level").fill("1")
    await new.locator("button.add-member").click()
    await expect(page.locator("#members-msg")).to_contain_text(
        f"(1001) added to {NEW} at level 1.", timeout=MS)
    moved = new.locator("tr[data-agent='1001']")
    await expect(moved.locator("input.level")).to_have_value("1")
    await expect(moved.locator("td[data-f=state]")).to_have_text("talking")
    await expect(new.locator("select.add-agent option[value='1001']")).to_have_count(0)
    assert members(srv, OLD) == {} and members(srv, NEW) == {"1002": 1, "1001": 1}
    in_acd = srv.runtime.agent("1001")["groups"]
    assert OLD not in in_acd and in_acd[NEW] == 1

    # The call goes on: the agent is still talking, the caller still in the bridge.
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#members-panel").screenshot(path=str(ARTIFACTS / "members-panel.png"))
    await expect(moved.locator("td[data-f=state]")).to_have_text("talking")  # read again since
    assert srv.runtime.agent("1001")["state"] == "talking"
    left = [e for e in ami.events.events[moved_at:]
            if e.name in ("BridgeLeave", "Hangup") and field(e, "Channel") == caller.channel]
    assert left == []

    since = agents.mark("1001")
    await caller.hangup()
    await agents.wait_free("1001", since)
    assert (await stored(srv, caller.uniqueid, ended=True))["end_reason"] == "caller_hangup"

    # 1001 is idle: a caller of the old group waits (nobody is in it), the new group's caller
    # that comes after rings 1001.
    m = mark(ami)
    stranded = await Caller(ami, OLD_NUMBER).dial()
    await stranded.queued(m)
    second = await Caller(ami, NEW_NUMBER).dial()
    assert await second.bridged(m) == "1001"
    assert srv.runtime.queues()[OLD]["waiting"] == 1
    assert not any(talk_entered(e) and field(e, "Channel") == stranded.channel
                   for e in ami.events.events[m:])
    await second.hangup()
    await stranded.hangup()
    assert sup.errors == []


async def test_two_pages_editing_one_group_the_second_is_told_and_nothing_is_overwritten(
        web_server, browser):
    srv, base, cfg = web_server
    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]),
                        "/supervisor")
    admin = await open_as(browser, base, "admin", web_password(cfg, "admin"), "/admin")
    first, second = group(sup.page, "skill"), group(admin.page, "skill")
    for box in (first, second):
        await expect(box.locator("tr[data-agent]")).to_have_count(3, timeout=MS)
    old_version = await second.get_attribute("data-version")
    assert members(srv, "skill") == {"1001": 1, "1002": 5, "1003": 3}

    level = first.locator("tr[data-agent='1002'] input.level")
    await level.fill("7")
    await level.press("Tab")                      # the change is sent as the field is left
    await expect(sup.page.locator("#members-msg")).to_contain_text("level 5 → 7", timeout=MS)
    assert members(srv, "skill") == {"1001": 1, "1002": 7, "1003": 3}

    # The admin page still shows level 5: its removal is refused and the group reloaded.
    await expect(second.locator("tr[data-agent='1002'] input.level")).to_have_value("5")
    await second.locator("tr[data-agent='1003'] button.remove-member").click()
    await expect(admin.page.locator("#members-msg")).to_contain_text(
        "skill changed meanwhile: reloaded", timeout=MS)
    await expect(admin.page.locator("#members-msg")).to_contain_text("[admin.conflict]")
    await expect(second.locator("tr[data-agent='1002'] input.level")).to_have_value("7")
    await expect(second.locator("tr[data-agent='1003']")).to_have_count(1)
    assert members(srv, "skill") == {"1001": 1, "1002": 7, "1003": 3}

    # A request straight to the API with the old version: refused the same way.
    answer = await sup.page.evaluate("""async ([version]) => {
        const me = await (await fetch("/api/auth/me")).json();
        const r = await fetch("/api/admin/groups/skill/members/1001", { method: "PUT",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf },
          body: JSON.stringify({ level: 9, version }) });
        return { status: r.status, body: await r.json() };
    }""", [old_version])
    assert answer["status"] == 409 and answer["body"]["error"] == "admin.conflict"
    assert members(srv, "skill") == {"1001": 1, "1002": 7, "1003": 3}

    # Reloaded, the admin page's removal goes through.
    await second.locator("tr[data-agent='1003'] button.remove-member").click()
    await expect(admin.page.locator("#members-msg")).to_contain_text("(1003) taken out of skill.",
                                                                     timeout=MS)
    assert members(srv, "skill") == {"1001": 1, "1002": 7}

    # A level the server refuses: its message and id, the level shown as it was, nothing changed
    # (the supervisor's page reloads first: the group changed on the admin page meanwhile).
    await sup.page.locator("#members-reload").click()
    await expect(first.locator("tr[data-agent]")).to_have_count(2, timeout=MS)
    level = first.locator("tr[data-agent='1001'] input.level")
    await level.fill("5000")
    await level.press("Tab")
    await expect(sup.page.locator("#members-msg")).to_contain_text("[admin.bad_level]",
                                                                   timeout=MS)
    await expect(level).to_have_value("1")
    assert members(srv, "skill") == {"1001": 1, "1002": 7}
    assert sup.errors == [] and admin.errors == []
