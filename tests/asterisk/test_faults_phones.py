"""Agents' phones that unregister or die, on real calls with real baresip phones.

Idle: a phone that unregisters (REGISTER with Expires: 0) or stops answering (SIGSTOP: its
qualify fails) makes the agent unreachable; calls go to the others only; once the phone is
back the agent is offered calls again. During a conversation: a dead phone is found by its
qualify and is lost once it missed ``asterisk.phone_lost_qualifies`` in a row (a phone that
answers the next one keeps its conversation); the caller is not dropped but goes back into the queue at the front and is served
by another agent (``requeued`` in the call record); the agent goes to break, "phone lost".
While ringing: the no-answer path sends the caller to the next agent.

The session's Asterisk checks phones every 15 s by default (``asterisk.qualify_seconds``);
these tests render its pjsip.conf with short timings (2 s, 1 s timeout, registrations of at
most 10 s; our server: lost after 3 failed) for this module and put the original back afterwards.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace

import pytest
import structlog

from acd.asterisk.render import Layout, render
from acd.asterisk.runner import Asterisk
from tests.asterisk.acd_fixtures import (WAIT, Caller, acd_config, after,  # noqa: F401
                                         agents, kinds, mark, serving, stored)
from tests.asterisk.calls import field, talk_entered

QUALIFY = {"qualify_seconds": 2, "qualify_timeout": 1.0, "registration_seconds": 10,
           "phone_lost_qualifies": 3}


@pytest.fixture(scope="module")
def short_phone_timers(asterisk: Asterisk, acd_config, tmp_path_factory):
    """pjsip.conf with short qualify and registration timings, loaded into the running
    Asterisk (only pjsip.conf: the other files stay as the session's fixtures rendered
    them); the original comes back at the end of the module."""
    cfg = replace(acd_config, asterisk=replace(acd_config.asterisk, **QUALIFY))
    scratch = Layout(inside=asterisk.layout.inside, host=tmp_path_factory.mktemp("pjsip"))
    render(cfg, scratch)
    live = asterisk.layout.host_dir("etc") / "pjsip.conf"
    original = live.read_text()
    short = (scratch.host_dir("etc") / "pjsip.conf").read_text()
    assert "qualify_frequency = 2\n" in short and "maximum_expiration = 10\n" in short
    live.write_text(short)
    asterisk.rx("module reload res_pjsip.so")
    yield cfg
    live.write_text(original)
    if asterisk.pid():
        asterisk.rx("module reload res_pjsip.so")


@pytest.fixture
async def acd_server(short_phone_timers, tmp_path):
    """Our server on the same phone timings as Asterisk's pjsip.conf here: a phone that
    stays unreachable mid-call for 3 qualifies (2 x 2 s + 1 s after its first failure) is
    lost."""
    async with serving(short_phone_timers, tmp_path) as srv:
        yield srv


async def _reachable(agents, agent_id: str, reachable: bool, since: int,
                     timeout: float = WAIT) -> dict:
    return await agents._watch(agent_id).wait(
        lambda s: s["type"] == "state" and s["reachable"] is reachable, since,
        what=f"agent {agent_id} reachable={reachable}", timeout=timeout)


async def _talking(agents, ami, agent_id: str) -> tuple:
    """The agent logged in with an auto-answering phone, talking with a new caller of the
    sales group: (phone, caller)."""
    agents.login(agent_id)
    phone = await agents.phone(agent_id, answer="auto")
    m = mark(ami)
    caller = await Caller(ami, "7101").dial()
    assert await caller.bridged(m) == agent_id
    return phone, caller


def _pid(phone) -> int:
    assert phone._proc is not None and phone._proc.poll() is None
    return phone._proc.pid


def _bridge_index(ami, caller: Caller, since: int = 0) -> int:
    return next(i for i, e in enumerate(ami.events.events) if i >= since
                and talk_entered(e) and field(e, "Channel") == caller.channel)


async def test_idle_phone_unregistered_or_unreachable_gets_no_calls_until_back(
        short_phone_timers, acd_server, agents, ami):
    srv = acd_server
    agents.login("1001", "1002")
    p1 = await agents.phone("1001", answer="auto")
    await agents.phone("1002", answer="auto")

    # 1001 unregisters (REGISTER, Expires: 0): unreachable; the call goes to 1002.
    m1 = agents.mark("1001")
    await p1.unregister()
    await _reachable(agents, "1001", False, m1)
    assert srv.runtime.agent("1001")["state"] == "idle"      # still idle, not offered
    m = mark(ami)
    c1 = await Caller(ami, "7101").dial()
    assert await c1.bridged(m) == "1002"
    await c1.hangup()

    # Registered again: offered again (1002 is busy now, so the call can only go to 1001).
    m1 = agents.mark("1001")
    await p1.register()
    await _reachable(agents, "1001", True, m1)
    srv.runtime.set_state("1002", "busy")
    m = mark(ami)
    c2 = await Caller(ami, "7101").dial()
    assert await c2.bridged(m) == "1001"
    await c2.hangup()
    srv.runtime.set_state("1002", "idle")

    # 1001's phone stops answering (SIGSTOP: its qualify fails): unreachable; 1002 serves.
    m1 = agents.mark("1001")
    stopped_at = time.monotonic()
    os.kill(_pid(p1), signal.SIGSTOP)
    try:
        await _reachable(agents, "1001", False, m1)
        print(f"idle phone stopped: unreachable after {time.monotonic() - stopped_at:.1f} s")
        m = mark(ami)
        c3 = await Caller(ami, "7101").dial()
        assert await c3.bridged(m) == "1002"
        await c3.hangup()
    finally:
        os.kill(_pid(p1), signal.SIGCONT)
    m1 = agents.mark("1001")
    await _reachable(agents, "1001", True, m1)
    srv.runtime.set_state("1002", "busy")
    m = mark(ami)
    c4 = await Caller(ami, "7101").dial()
    assert await c4.bridged(m) == "1001"
    await c4.hangup()

    for c, agent in ((c1, "1002"), (c2, "1001"), (c3, "1002"), (c4, "1001")):
        call = await stored(srv, c.uniqueid, ended=True)
        k = kinds(call)
        assert call["end_reason"] == "caller_hangup" and k.count("ended") == 1, k
        assert [e["detail"]["agent"] for e in call["events"] if e["kind"] == "offered"] == [agent]
        assert not c.hung_up_before(_bridge_index(ami, c))
    snap = srv.runtime.agents()
    assert (snap["1001"]["state"], snap["1001"]["reachable"]) == ("idle", True)


async def test_phone_dead_during_a_call_puts_the_caller_back_at_the_front(
        short_phone_timers, acd_server, agents, ami):
    srv = acd_server
    p1, first = await _talking(agents, ami, "1001")
    m = mark(ami)
    agents.login("1002")
    srv.runtime.set_state("1002", "busy")
    await agents.phone("1002", answer="auto")
    later = await Caller(ami, "7101").dial()        # waits: nobody is free
    await later.queued(m)

    # 1001's phone dies mid-call (SIGSTOP: no BYE, no answer to anything).
    m1 = agents.mark("1001")
    back = mark(ami)
    stopped_at = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        os.kill(_pid(p1), signal.SIGSTOP)
        try:
            await first.queued(back)                # back in the queue, music on
            found = time.monotonic() - stopped_at
            # At the front: ahead of the caller who was waiting already.
            assert [c["call_id"] for c in srv.runtime.queues()["sales"]["calls"]] == [
                first.uniqueid, later.uniqueid]
            state = await agents.wait_state("1001", "break", m1)
            assert state["reason"] == "phone lost" and state["reachable"] is False
            m = mark(ami)
            srv.runtime.set_state("1002", "idle")
            assert await first.bridged(m) == "1002"
        finally:
            resumed = agents.mark("1001")
            os.kill(_pid(p1), signal.SIGCONT)
    print(f"phone stopped mid-call: caller back in the queue after {found:.1f} s "
          f"(qualify {QUALIFY['qualify_seconds']} s + {QUALIFY['qualify_timeout']} s, lost after "
          f"{QUALIFY['phone_lost_qualifies']} failed; "
          f"rtp_timeout 60 s)")
    assert [e["agent"] for e in logs if e["event"] == "runtime.phone_lost"] == ["1001"]
    m = mark(ami)
    await first.hangup()
    assert await later.bridged(m) == "1002"
    await later.hangup()

    call = await stored(srv, first.uniqueid, ended=True)
    k = kinds(call)
    assert call["end_reason"] == "caller_hangup" and k.count("ended") == 1, k
    requeued = next(e for e in call["events"] if e["kind"] == "requeued")
    assert (requeued["detail"]["agent"], requeued["detail"]["detail"]) == ("1001", "unreachable")
    assert [e["detail"]["agent"] for e in call["events"] if e["kind"] == "answered"] == [
        "1001", "1002"]
    assert "queued" in k[k.index("requeued"):]                 # in the queue again
    assert not first.hung_up_before(_bridge_index(ami, first, back))
    call = await stored(srv, later.uniqueid, ended=True)
    assert call["end_reason"] == "caller_hangup" and kinds(call).count("ended") == 1
    # 1001 stays on break (the phone may be back; the agent says when they are ready).
    await _reachable(agents, "1001", True, resumed)
    assert srv.runtime.agent("1001")["state"] == "break"


async def test_phone_that_misses_a_qualify_mid_call_keeps_its_conversation(
        short_phone_timers, acd_server, agents, ami):
    """A phone that answers one qualify too late (a busy machine: here SIGSTOP until Asterisk
    calls it unreachable, then SIGCONT) is back before its grace is over: the conversation
    goes on, nobody is requeued, the agent is reachable and still talking."""
    srv = acd_server
    p1, caller = await _talking(agents, ami, "1001")
    m1 = agents.mark("1001")
    os.kill(_pid(p1), signal.SIGSTOP)
    try:
        await _reachable(agents, "1001", False, m1)
        assert "phone:1001" in srv.runtime.timers()       # the grace runs
    finally:
        os.kill(_pid(p1), signal.SIGCONT)
    m1 = agents.mark("1001")
    await _reachable(agents, "1001", True, m1)
    assert "phone:1001" not in srv.runtime.timers()       # cancelled: nothing can follow
    agent = srv.runtime.agent("1001")
    assert agent["state"] == "talking" and agent["call"]["call_id"] == caller.uniqueid, agent
    assert srv.runtime.call_info(caller.uniqueid)["state"] == "connected"
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    k = kinds(call)
    assert call["end_reason"] == "caller_hangup" and "requeued" not in k, k
    assert [e["detail"]["agent"] for e in call["events"] if e["kind"] == "answered"] == ["1001"]


async def test_phone_dead_while_ringing_sends_the_caller_to_the_next_agent(
        short_phone_timers, acd_server, agents, ami):
    srv = acd_server
    agents.login("1001")
    p1 = await agents.phone("1001", answer="manual")
    m = mark(ami)
    caller = await Caller(ami, "7106").dial()       # noans: ring timeout 3 s
    await p1.wait_event("CALL_INCOMING")
    await agents.wait_state("1001", "ringing")
    agents.login("1002")
    await agents.phone("1002", answer="auto")
    m1 = agents.mark("1001")
    p1._proc.kill()                                 # SIGKILL while it rings
    assert await caller.bridged(m) == "1002"
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    k = kinds(call)
    assert call["end_reason"] == "caller_hangup" and k.count("ended") == 1, k
    assert [e["detail"]["agent"] for e in call["events"] if e["kind"] == "offered"] == [
        "1001", "1002"]
    assert "no_answer" in k and k.index("no_answer") < k.index("answered")
    assert not caller.hung_up_before(_bridge_index(ami, caller))
    # 1001: not idle with a dead phone (the group's no-answer break), and unreachable.
    await _reachable(agents, "1001", False, m1)
    assert srv.runtime.agent("1001")["state"] == "break"
