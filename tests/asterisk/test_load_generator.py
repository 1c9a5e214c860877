"""`acd load` (acd/tools/load.py) and the end-of-run channel check of the bench and the soak
(bench/instance.py ``left_over``) on the session's real Asterisk: callers over the loopback
trunk into the ACD's skill group "sales" (tests/asterisk/acd_fixtures.py), our server in this
process, agents on real phones (baresip).

Nothing here is timed: orders of events and outcomes only.
"""
from __future__ import annotations

from types import SimpleNamespace

from acd.ami.client import AmiClient
from acd.tools import load, load_calls
from bench import instance as inst
from tests.asterisk.acd_fixtures import acd_config, acd_server, after, mark  # noqa: F401
from tests.asterisk.calls import field

SALES = "7101"           # members 1001-1003


async def test_each_caller_is_cut_at_their_own_max_wait_while_later_calls_are_placed(
        acd_server, acd_config):   # noqa: F811
    # Nobody is logged in: callers wait in the queue. Two callers 4 s apart, each waits 1 s at
    # most: the first must be gone before the second dials (the old `acd load` cut callers
    # only after the last call was placed).
    c = acd_config.ami
    ami = AmiClient(c.host, c.port, c.username, c.secret, action_timeout=15)
    follower = load_calls.Follower(ami)
    await ami.start(connect_timeout=15)
    try:
        await follower.start()
        tracker = load_calls.CallTracker([])
        follower.tracker = tracker
        profile = load.LoadProfile(number=SALES, rate=0.25, arrivals="fixed", duration=None,
                                   count=2, max_wait=1.0, settle=20.0, run_id=901)
        lr = load.LoadRun(ami, tracker, profile, talk_max=1.0)
        first, second = await lr.run()
    finally:
        await ami.close()
    assert first.queued_at is not None and second.queued_at is not None, (first, second)
    assert lr._cut == {0, 1}                                # noqa: SLF001
    # Asterisk's time of the first caller's hangup, before our time of the second's dial.
    assert first.ended_at is not None and second.sent_at is not None
    assert first.ended_at < second.sent_at, (first, second)
    assert [r.outcome for r in (first, second)] == ["not_connected", "not_connected"]


async def test_login_leaves_agents_who_are_logged_in_and_logs_in_the_others(
        acd_server, acd_config):   # noqa: F811
    # A center that is up: agent 1001 is logged in (on a break) already. `acd load --login`
    # logs in 1002 and 1003, says once that 1001 was left as is, and the calls go through
    # (the old code stopped at 1001's "already logged in").
    srv = acd_server
    srv.runtime.login("1001")
    srv.runtime.set_state("1001", "break", "coffee")
    args = SimpleNamespace(number=SALES, rate=1.0, arrivals="fixed", duration=None, count=2,
                           seed=1, agents="1001-1003", answer_delay=0.2, talk=1.0,
                           talk_dist="fixed", talk_min=0.0, dtmf="", max_wait=30.0, login=True,
                           take_over=True, pages=False, out=None, quiet=True)
    agents = load._check_args(acd_config, args)              # noqa: SLF001
    said: list[str] = []
    records = await load.run_load(acd_config, args, agents, say=said.append)
    left_as_is = [line for line in said if "logged in already" in line]
    assert len(left_as_is) == 1 and "1001" in left_as_is[0], said
    assert "1002" not in left_as_is[0] and "1003" not in left_as_is[0]
    assert srv.runtime.agent("1001")["state"] == "break"      # left as it was
    for a in ("1002", "1003"):
        assert srv.runtime.agent(a)["state"] != "offline", srv.runtime.agent(a)
    assert [r.outcome for r in records] == [load_calls.COMPLETED] * 2, records
    assert {r.agent for r in records} <= {"1002", "1003"}


async def test_the_end_check_lists_a_channel_left_in_asterisk_until_it_is_gone(ami):
    before = await inst.left_over(ami, settle=0)
    ignore = frozenset(c["uniqueid"] for c in before["left"])
    m = mark(ami)
    await ami.action("Originate", Channel="Local/wait@acd-testcaller", Application="Wait",
                     Data="60", Variable=["HOLD_FOR=60"], Async="true",
                     ChannelId="leftover-test-1", OtherChannelId="leftover-test-2")
    await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Application") == "Wait"
                and field(e, "Uniqueid") == "leftover-test-2", "the far half waiting")
    check = await inst.left_over(ami, settle=0.5, poll=0.1, ignore=ignore)
    left = {c["uniqueid"]: c for c in check["left"]}
    assert set(left) == {"leftover-test-1", "leftover-test-2"}, check
    far = left["leftover-test-2"]
    assert far["channel"].startswith("Local/wait@acd-testcaller-") and far["channel"].endswith(";2")
    assert far["application"] == "Wait" and far["state"] == "Ring"    # never answered
    assert far["duration"].count(":") == 2                   # HH:MM:SS
    # The CLI's list (where a Surrogate/... channel shows, AMI's list leaves it out) reads the
    # same channels, field for field.
    r = await ami.action("Command", Command="core show channels concise")
    out = r.get("Output")
    cli = {c["uniqueid"]: c for c in map(inst.concise_info, [out] if isinstance(out, str) else out)
           if c is not None}

    def fields(c: dict) -> dict:     # the duration may have ticked between the two reads
        return {k: v for k, v in c.items()
                if k not in ("linkedid", "caller", "duration", "hidden_from_ami")}
    for uid in ("leftover-test-1", "leftover-test-2"):
        assert fields(cli[uid]) == fields(left[uid]), (cli[uid], left[uid])
    lines = inst.left_over_lines(check)
    assert lines[0].startswith("channels left in Asterisk: 2")
    assert far["channel"] in "\n".join(lines)

    await ami.action("Hangup", Channel="leftover-test-1")
    check = await inst.left_over(ami, settle=30, poll=0.1, ignore=ignore)
    assert check["left"] == [], check                         # gone once it hung up
