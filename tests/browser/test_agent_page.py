"""The agent page and the wall board in a real Chromium, on real calls through Asterisk.

The agent logs in on the login page, goes idle, and their SIP phone (baresip) rings: the
screen pop is on the page while the phone rings (not yet answered), with the caller's number,
region, group, customer and the business system's page beside it. The agent answers on the
phone; a supervisor's wall board shows the agent talking; the page survives a reload and a cut
connection; hold, resume, a refused transfer, a transfer cancelled while ringing, a transfer
answered by another agent, and a hang-up are done from the page's call bar; the calls are in
the agent's recent calls. A caller whose display name and number are HTML and script appear
as text.
"""
from __future__ import annotations

from playwright.async_api import expect

from tests.asterisk.acd_fixtures import WAIT, Caller, after, mark, stored
from tests.asterisk.calls import field
from tests.asterisk.control_fixtures import joined, leg_hangup, moh_started, moh_stopped
from tests.browser.conftest import SUPERVISOR, open_as, web_password

MS = int(WAIT * 1000)
XSS_NAME = "<img src=x onerror='window.__xss=1;alert(1)'><script>window.__xss=2</script>"
XSS_NUMBER = "<b>1390</b>"


async def _idle_agent(browser, base, cfg, agents, agent_id="1001", **phone):
    user = await open_as(browser, base, agent_id, web_password(cfg, agent_id), "/agent")
    page = user.page
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await page.click("#state-buttons button[data-state=idle]")
    await expect(page.locator("#agent-state")).to_have_text("idle", timeout=MS)
    # Idle with no phone yet: the page says plainly that no call will come, and why.
    await expect(page.locator("#no-calls")).to_be_visible(timeout=MS)
    await expect(page.locator("#no-calls")).to_contain_text("your phone is not registered")
    handset = await agents.phone(agent_id, **phone)
    await expect(page.locator("#reachable")).to_have_text("registered", timeout=MS)
    await expect(page.locator("#no-calls")).to_be_hidden(timeout=MS)
    return user, handset


async def test_screen_pop_while_ringing_answer_on_the_phone_board_follows_recent_calls(
        web_server, agents, ami, browser, erp):
    srv, base, cfg = web_server
    agent, phone = await _idle_agent(browser, base, cfg, agents, answer="manual")
    assert srv.runtime.agent("1001")["state"] == "idle"
    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]), "/supervisor")
    board = sup.page
    agent_row = board.locator("#agents tr[data-agent='1001']")
    sales = board.locator("#groups tr[data-group='sales']")
    await expect(agent_row.locator("td[data-f=state]")).to_contain_text("idle", timeout=MS)
    await expect(sales.locator("td[data-f=offered]")).to_have_text("0", timeout=MS)

    page = agent.page
    m = mark(ami)
    caller = await Caller(ami, "7101", caller_num="13912345678", name="Zhang San").dial()
    await phone.wait_event("CALL_INCOMING")
    # The pop is on the page while the phone rings: number, region, group, customer.
    await expect(page.locator("#pop-number")).to_have_text("13912345678", timeout=MS)
    assert not [e for e in phone.events if e.get("type") == "CALL_ESTABLISHED"]
    assert srv.runtime.agent("1001")["state"] == "ringing"
    await expect(page.locator("#pop-region")).to_contain_text("江苏省 常州市", timeout=MS)
    await expect(page.locator("#pop-group")).to_have_text("sales")
    await expect(page.locator("#pop-name")).to_have_text("Zhang San")
    await expect(page.locator("#pop-customer")).to_contain_text("C-77", timeout=MS)
    await expect(page.locator("#pop-customer")).to_contain_text("Zhang San")
    await expect(page.locator("#pop-verification")).to_have_text("not checked")
    # Ringing is unmistakable with a SIP phone too: the banner (no Answer: it is the phone's),
    # the ring sound, the tab's title
    await expect(page.locator("#ring-banner")).to_be_visible()
    await expect(page.locator("#ring-caller")).to_have_text("13912345678")
    await expect(page.locator("#ring-hint")).to_have_text("Answer on your phone.")
    await expect(page.locator("#answer")).to_be_hidden()
    assert await page.evaluate("() => !document.getElementById('ring-sound').paused")
    await page.wait_for_function("() => document.title.startsWith('☎ Ringing: 13912345678')",
                                 timeout=MS)                  # (it blinks)
    await expect(page.locator("#call-tabs button")).to_have_count(1)
    # the business system's page for this customer, beside the pop
    frame = page.frame_locator("#side-panel-list iframe")
    await expect(frame.locator("#orders")).to_have_text("Orders of C-77", timeout=MS)
    assert erp["asked"] == ["C-77"]
    await expect(agent_row.locator("td[data-f=state]")).to_contain_text("ringing", timeout=MS)
    await agent.shot("agent-screen-pop-while-ringing")

    # Answered on the phone: the page and the wall board follow.
    await phone.answer()
    assert await caller.bridged(m) == "1001"
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
    await expect(page.locator("#ring-banner")).to_be_hidden()
    await expect(page.locator("#call-status")).to_contain_text("talking")
    status = await page.locator("#call-status").text_content()
    assert caller.uniqueid not in status and caller.caller_num in status   # no internal id
    await expect(page.locator("#call-actions button[data-action=hold]")).to_be_enabled()
    await expect(page.locator("#call-actions button[data-action=resume]")).to_be_disabled()
    await expect(agent_row.locator("td[data-f=state]")).to_contain_text("talking", timeout=MS)
    await expect(sales.locator("td[data-f=offered]")).to_have_text("1", timeout=MS)
    await expect(sales.locator("td[data-f=answered]")).to_have_text("1", timeout=MS)
    await expect(sales.locator("td[data-f=answer_rate]")).to_have_text("100.0 %", timeout=MS)
    await expect(board.locator("#charts figure[data-group='sales'] rect.answered")).to_have_count(1, timeout=MS)
    await sup.shot("wallboard-during-the-call")

    # A reload, and a cut WebSocket, never drop the call: the page comes back with the truth.
    await page.fill("#ws-note", "asked about order 5")
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-opened", "1", timeout=MS)
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
    await expect(page.locator("#pop-number")).to_have_text("13912345678", timeout=MS)
    mine = agents.watch["1001"].sub
    pages = [sub for sub in srv.hub._subs.get("agent:1001", ()) if sub is not mine]
    assert pages, "the page's WebSocket is subscribed"
    for sub in pages:                      # the server cuts the page off (as a slow reader)
        sub.overflowed = True
        srv.hub._remove(sub)
    await expect(page.locator("#conn")).to_have_attribute("data-opened", "2", timeout=MS)
    await expect(page.locator("#conn")).to_have_text("live", timeout=MS)
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
    assert not caller.hung_up_before(len(ami.events.events))
    assert srv.runtime.agent("1001")["state"] == "talking"

    # Hold and resume from the call bar: the caller hears music, then has the same agent back.
    await page.fill("#ws-note", "asked about order 5")
    bar = page.locator("#call-actions")
    m = mark(ami)
    await bar.locator("button[data-action=hold]").click()
    await moh_started(ami, caller, m)
    await expect(page.locator("#call-status")).to_contain_text("held", timeout=MS)
    # The state badge says so too (it said "talking" while the tab said "held").
    await expect(page.locator("#agent-state")).to_have_text("held", timeout=MS)
    await expect(bar.locator("button[data-action=resume]")).to_be_enabled()
    await expect(bar.locator("button[data-action=hold]")).to_be_disabled()
    await expect(bar.locator("button[data-action=hold]")).to_have_attribute(
        "title", "Only a call in conversation can be held.")
    assert srv.runtime.agent("1001")["control"]["state"] == "held"
    await agent.shot("agent-call-on-hold")
    m = mark(ami)
    await bar.locator("button[data-action=resume]").click()
    await moh_stopped(ami, caller, m)
    assert await joined(ami, caller, m) == "1001"
    await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)

    # A refused action shows why, and changes nothing: transfer to an agent who is offline.
    await page.fill("#target", "1003")
    await bar.locator("button[data-action=transfer]").click()
    await expect(page.locator("#call-msg")).to_contain_text("[", timeout=MS)
    assert "error" in (await page.locator("#call-msg").get_attribute("class"))
    assert srv.runtime.agent("1001")["control"]["state"] == "talking"

    # Transfer to agent 1002: cancelled while it rings, then again, and 1002 answers.
    srv.runtime.login("1002")
    bob = await agents.phone("1002", answer="manual")
    await page.fill("#target", "1002")
    m = mark(ami)
    await bar.locator("button[data-action=transfer]").click()
    await expect(page.locator("#call-status")).to_contain_text("transfer_ringing", timeout=MS)
    await bob.wait_event("CALL_INCOMING")
    await expect(bar.locator("button[data-action=transfer-cancel]")).to_be_enabled()
    await expect(bar.locator("button[data-action=hangup]")).to_be_disabled()
    await bar.locator("button[data-action=transfer-cancel]").click()
    await leg_hangup(ami, "1002", m)
    # The phone has taken the CANCEL before it is rung again (baresip 1.1.0 was seen to stop
    # answering anything, SIP and its control socket, when a new INVITE came while it was
    # still closing the cancelled call).
    await bob.wait_event("CALL_CLOSED")
    # The caller is back with 1001 (waited for in Asterisk's events, so that this bridge is
    # not taken below for the next transfer's).
    assert await joined(ami, caller, m) == "1001"
    await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)
    assert srv.runtime.agent("1002")["state"] == "idle"
    m = mark(ami)
    since = agents.mark("1001")
    await bar.locator("button[data-action=transfer]").click()
    await bob.wait_event("CALL_INCOMING")
    await bob.answer()
    assert await joined(ami, caller, m) == "1002"
    await agents.wait_state("1001", "idle", since)
    await expect(page.locator("#call-status")).to_contain_text("ended", timeout=MS)
    assert srv.runtime.agent("1002")["state"] == "talking"
    since_b = agents.mark("1002")
    await caller.hangup()
    await agents.wait_state("1002", "idle", since_b)
    row = page.locator(f"#recent tbody tr[data-call='{caller.uniqueid}']")
    await expect(row.locator("td.number")).to_have_text("13912345678", timeout=MS)
    await expect(row.locator("input[data-note]")).to_have_value("asked about order 5", timeout=MS)
    # The row's button says what it does: the call leaves this list, its record stays.
    await expect(row.locator("button.hide")).to_have_text("Hide from list")
    await expect(agent_row.locator("td[data-f=calls_handled]")).to_have_text("1", timeout=MS)
    await agent.shot("agent-recent-calls")
    call = await stored(srv, caller.uniqueid)
    assert call["end_reason"] == "caller_hangup" and call["skill_group"] == "sales"
    from acd.web.webdb import WebDb          # the transferred call is in 1002's list too
    assert caller.uniqueid in [c["uniqueid"] for c in await WebDb(srv.store).recent_calls("1002")]

    # A second call: two calls in the list, each with its own workspace.
    m = mark(ami)
    second = await Caller(ami, "7101", caller_num="02161234567", name="Li Si").dial()
    await phone.wait_event("CALL_INCOMING")
    await expect(page.locator("#pop-number")).to_have_text("02161234567", timeout=MS)
    await expect(page.locator("#pop-region")).to_contain_text("上海市", timeout=MS)
    await expect(page.locator("#call-tabs button")).to_have_count(2)
    await expect(page.locator("#ws-note")).to_have_value("")
    await page.fill("#ws-note", "second caller: address change")
    await page.fill("#ws-lookup", "C-77")
    await page.click("#ws-lookup-go")
    await expect(page.locator("#ws-lookup-result")).to_contain_text("Zhang San", timeout=MS)
    await page.click(f"#call-tabs button[data-call='{caller.uniqueid}']")
    await expect(page.locator("#ws-note")).to_have_value("asked about order 5")
    await expect(page.locator("#ws-lookup-result")).to_have_text("")
    await expect(page.locator("#pop-number")).to_have_text("13912345678")
    await page.click(f"#call-tabs button[data-call='{second.uniqueid}']")
    await expect(page.locator("#ws-note")).to_have_value("second caller: address change")
    await expect(page.locator("#ws-lookup-result")).to_contain_text("Zhang San")
    await phone.answer()
    assert await second.bridged(m) == "1001"
    # Hang up from the page: the caller's side ends; the call is in recent calls.
    await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)
    since = agents.mark("1001")
    m = mark(ami)
    await bar.locator("button[data-action=hangup]").click()
    await second.gone(m)
    await agents.wait_state("1001", "idle", since)
    await expect(page.locator(f"#recent tbody tr[data-call='{second.uniqueid}'] td.end")).to_have_text(
        "agent_hangup", timeout=MS)
    assert (await stored(srv, second.uniqueid))["end_reason"] == "agent_hangup"

    # The supervisor forces a state and logs the agent out; the agent's page follows.
    await board.select_option("#agents tr[data-agent='1001'] select", "break")
    await board.fill("#agents tr[data-agent='1001'] input.force-reason", "coaching <b>now</b>")
    await board.click("#agents tr[data-agent='1001'] button.force")
    await expect(page.locator("#agent-state")).to_have_text("break", timeout=MS)
    assert srv.runtime.agent("1001")["reason"] == "coaching <b>now</b>"   # the supervisor's
    await board.click("#agents tr[data-agent='1001'] button.logout-agent")
    await expect(page.locator("#agent-state")).to_have_text("offline", timeout=MS)
    await expect(agent_row.locator("td[data-f=state]")).to_contain_text("offline", timeout=MS)
    assert srv.runtime.agent("1001")["state"] == "offline"
    assert agent.errors == [] and sup.errors == []


async def test_caller_name_and_number_made_of_html_and_script_appear_as_text(
        web_server, agents, ami, browser):
    srv, base, cfg = web_server
    agent, phone = await _idle_agent(browser, base, cfg, agents, answer="manual")
    page = agent.page
    m = mark(ami)
    # PJSIP builds the outgoing From from the channel's connected line (seen here: CALLERID()
    # variables arrived as "Anonymous"), and Originate's CallerID cannot carry a '<' in the
    # number; so name and number are the calling channel's connected line.
    await ami.action("Originate", Channel="PJSIP/7101@acd-trunk", Context="acd-testcaller",
                     Exten="wait", Priority=1, Async="true",
                     Variable=["HOLD_FOR=120", f"CONNECTEDLINE(name)={XSS_NAME}",
                               f"CONNECTEDLINE(num)={XSS_NUMBER}"],
                     ChannelId="xsscall-caller")
    incoming = await after(ami, m, lambda e: e.name == "Newchannel"
                           and field(e, "Channel").startswith("PJSIP/acd-caller-"), "the incoming leg")
    await phone.wait_event("CALL_INCOMING")
    rec = await stored(srv, field(incoming, "Uniqueid"))
    assert rec["caller_name"] == XSS_NAME, rec["caller_name"]       # what Asterisk passed on
    assert rec["caller_number"] == XSS_NUMBER, rec["caller_number"]
    await expect(page.locator("#pop-name")).to_have_text(XSS_NAME, timeout=MS)
    await expect(page.locator("#pop-number")).to_have_text(XSS_NUMBER, timeout=MS)
    await expect(page.locator("#call-tabs button")).to_contain_text(XSS_NUMBER)
    assert await page.locator("#pop img, #pop script, #pop b, #call-tabs b").count() == 0
    assert await page.evaluate("window.__xss") is None
    assert agent.dialogs == [] and agent.errors == []
    await agent.shot("agent-html-caller-as-text")
    await phone.answer()
    await expect(page.locator("#agent-state")).to_have_text("talking", timeout=MS)
    since = agents.mark("1001")
    await ami.action("Hangup", Channel=field(incoming, "Channel"))
    await agents.wait_state("1001", "wrapup", since)
    row = page.locator(f"#recent tbody tr[data-call='{field(incoming, 'Uniqueid')}']")
    await expect(row.locator("td.name")).to_have_text(XSS_NAME, timeout=MS)
    await expect(row.locator("td.number")).to_have_text(XSS_NUMBER)
    assert await page.locator("#recent img, #recent script, #recent b").count() == 0
    assert await page.evaluate("window.__xss") is None and agent.dialogs == []


async def test_consult_from_the_page_return_then_complete(web_server, agents, ami, browser):
    srv, base, cfg = web_server
    agent, phone = await _idle_agent(browser, base, cfg, agents, answer="auto")
    page = agent.page
    bar = page.locator("#call-actions")
    srv.runtime.login("1002")
    bob = await agents.phone("1002", answer="auto", answer_delay=1)
    m = mark(ami)
    caller = await Caller(ami, "7101", caller_num="13800138000", name="Wang").dial()
    assert await caller.bridged(m) == "1001"
    await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)
    await expect(bar.locator("button[data-action=consult-complete]")).to_be_disabled()

    # the picker lists the others with their state, and the groups with their queues
    await page.focus("#target")
    bob_option = page.locator("#target-list option[value='1002']")
    await expect(bob_option).to_have_count(1, timeout=MS)
    assert "idle" in await bob_option.get_attribute("label")
    await expect(page.locator("#target-list option[value='1001']")).to_have_count(0)
    await page.select_option("#target-kind", "group")
    await expect(page.locator("#target-list option[value='sales']")).to_have_count(1, timeout=MS)
    assert "waiting" in await page.locator("#target-list option[value='sales']").get_attribute("label")
    await page.select_option("#target-kind", "agent")
    await page.fill("#target", "1002")
    m = mark(ami)
    await bar.locator("button[data-action=consult]").click()
    await moh_started(ami, caller, m)                        # the caller holds meanwhile
    await expect(page.locator("#call-status")).to_contain_text("consulting", timeout=MS)
    await expect(bar.locator("button[data-action=consult-complete]")).to_be_enabled()
    await expect(bar.locator("button[data-action=consult-return]")).to_be_enabled()
    await expect(bar.locator("button[data-action=hold]")).to_be_disabled()
    await agent.shot("agent-consulting")
    m = mark(ami)
    await bar.locator("button[data-action=consult-return]").click()
    await moh_stopped(ami, caller, m)
    assert await joined(ami, caller, m) == "1001"
    await expect(page.locator("#call-status")).to_contain_text("talking", timeout=MS)

    m = mark(ami)
    await bar.locator("button[data-action=consult]").click()
    await expect(page.locator("#call-status")).to_contain_text("consulting", timeout=MS)
    since = agents.mark("1001")
    await bar.locator("button[data-action=consult-complete]").click()
    assert await joined(ami, caller, m) == "1002"
    await agents.wait_state("1001", "idle", since)
    await expect(page.locator("#call-status")).to_contain_text("ended", timeout=MS)
    assert srv.runtime.agent("1002")["state"] == "talking"
    since_b = agents.mark("1002")
    await caller.hangup()
    await agents.wait_state("1002", "idle", since_b)
    assert agent.errors == []
