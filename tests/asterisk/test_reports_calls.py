"""History reports from real calls through the real Asterisk: a known day (answered and
rated, transferred, abandoned) gives exactly the expected figures per group and per agent,
through the same code the report API runs (the indexer, then the query)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from acd.reports import history
from acd.web.reports_api import _settings, sl_seconds
from tests.asterisk.acd_fixtures import Caller, acd_config, after, mark, stored  # noqa: F401
from tests.asterisk.calls import field
from tests.asterisk.control_fixtures import (caller_hangs_up, connected_call,  # noqa: F401
                                             control_config, control_server, ctl_agents,
                                             joined, leg_hangup, transfer_event)


async def _rate(ami, caller, since: int, key: str) -> None:
    await after(ami, since, lambda e: e.name == "AGIExecStart"
                and field(e, "Channel") == caller.channel
                and field(e, "Command").startswith("STREAM FILE"), "the survey's question")
    await caller.send_dtmf(key)


async def _report(srv, dimension: str) -> dict:
    cfg = srv.cfg
    today = datetime.now(timezone.utc).date()
    req = history.request(
        {"since": (today - timedelta(days=1)).isoformat(),
         "until": (today + timedelta(days=2)).isoformat(), "by": "day",
         "dimension": dimension, "tz": "UTC"},
        default_tz="UTC", known={"group": [g.name for g in cfg.groups],
                                 "agent": [a.id for a in cfg.agents]}, group_tz={})
    await srv.runtime.quiesce()
    await srv.store.index_reports(sl_seconds(cfg))
    async with srv.store.session() as s:
        rep = await history.report(s, req, groups=_settings(cfg), now=time.time())
    return {t["key"]: t for t in rep["totals"]}


async def test_a_known_day_of_real_calls_gives_the_expected_report(control_server, ctl_agents,
                                                                   ami):
    srv, agents = control_server, ctl_agents
    agents.login("1002")
    await agents.phone("1002", answer="auto", answer_delay=1)

    # 1. answered by 1001, invited to rate, rated 5 after 1001 hangs up
    first = await connected_call(srv, agents, ami)
    since = agents.mark("1001")
    srv.runtime.invite_rating("1001")
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "rating_invited", since)
    m = mark(ami)
    await agents.phones["1001"].hangup()
    await _rate(ami, first, m, "5")
    await first.gone(m)
    assert (await stored(srv, first.uniqueid, ended=True))["rating"] == 5

    # 2. answered by 1001, transferred to 1002, the caller hangs up there
    since = agents.mark("1001")
    m = mark(ami)
    second = await Caller(ami, "7120").dial()
    assert await second.bridged(m) == "1001"
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "answered", since)
    m = mark(ami)
    srv.runtime.transfer("1001", to_agent="1002")
    await transfer_event(agents, "1001", "completed", since)
    assert await joined(ami, second, m) == "1002"
    await caller_hangs_up(agents, second, "1002")
    await stored(srv, second.uniqueid, ended=True)

    # 3. nobody free in ctl (1001 on break): the caller waits and hangs up
    srv.runtime.set_state("1001", "break", "lunch")
    m = mark(ami)
    third = await Caller(ami, "7120").dial()
    await third.queued(m)
    await third.hangup()
    call = await stored(srv, third.uniqueid, ended=True)
    assert call["end_reason"] == "abandoned"

    groups = await _report(srv, "group")
    ctl = groups["ctl"]
    assert (ctl["offered"], ctl["answered"], ctl["abandoned"]) == (3, 2, 1)
    assert ctl["answered_within_sl"] == 2 and ctl["ratings"] == 1 and ctl["satisfaction"] == 1.0
    # the second caller held while 1002's phone rang (it answers after 1 s): 1001's part
    assert ctl["hold"] >= 1.0 and ctl["longest_wait"] >= ctl["asa"]
    assert "ctlxfer" not in groups or groups["ctlxfer"]["offered"] == 0   # an agent transfer

    per_agent = await _report(srv, "agent")
    alice, bob = per_agent["1001"], per_agent["1002"]
    assert (alice["calls_handled"], alice["transfers_given"], alice["transfers_taken"]) == (2, 1, 0)
    assert (bob["calls_handled"], bob["transfers_taken"], bob["transfers_given"]) == (0, 1, 0)
    assert alice["ratings"] == 1 and alice["satisfaction"] == 1.0
    assert alice["break_reasons"].get("lunch", 0) > 0
    assert alice["logged_in"] > 0 and alice["hold"] >= 1.0 and bob["hold"] == 0.0


async def test_an_agent_added_to_a_group_takes_its_waiting_caller(control_server, ctl_agents,
                                                                   ami):
    """Memberships while running (the admin page's change, as the runtime gets it): 1002,
    idle but not in ctl, is added while a caller waits there and is rung at once; taken out
    during the call, they keep it."""
    srv, agents = control_server, ctl_agents
    agents.login("1001", "1002")
    await agents.phone("1001", answer="auto")
    await agents.phone("1002", answer="auto", answer_delay=1)
    srv.runtime.set_state("1001", "break", "training")
    m = mark(ami)
    caller = await Caller(ami, "7120").dial()
    await caller.queued(m)
    assert srv.runtime.queues()["ctl"]["waiting"] == 1
    since = agents.mark("1002")
    srv.runtime.set_member("ctl", "1002", 1)
    assert await caller.bridged(m) == "1002"
    await agents.watch["1002"].wait(lambda msg: msg["type"] == "answered", since)
    srv.runtime.set_member("ctl", "1002", None)
    assert srv.runtime.agent("1002")["state"] == "talking"
    await caller_hangs_up(agents, caller, "1002")
    call = await stored(srv, caller.uniqueid, ended=True)
    assert [x["agent_id"] for x in call["legs"]] == ["1002"]
