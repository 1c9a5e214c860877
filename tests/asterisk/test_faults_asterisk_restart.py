"""Asterisk restarted under our server (stopped and started for real) while callers wait in a
queue, one agent's phone rings and one call is connected.

Calls in Asterisk are lost by nature: each such call is recorded with the one end reason
``lost`` (a ``lost`` timeline event says why: ``asterisk_shutdown`` when Asterisk said it was
stopping, ``asterisk_restart`` when only the reconnect found it restarted). The agents return
to their true states (the ringing one to idle, the talking one through the group's wrap-up to
idle), their phones are reachable again without a manual step (Asterisk keeps registrations
in its astdb), and service resumes by itself: a new call after the restart reaches an agent
and completes."""
from __future__ import annotations

import asyncio
import os
import signal
import time

from acd.asterisk.runner import Asterisk
from acd.errors import UserError
from tests.asterisk.acd_fixtures import (WAIT, Caller, acd_config,  # noqa: F401
                                         after, agents, kinds, mark, stored)
from tests.asterisk.calls import field, talk_entered
# The server on the same short phone timings as the pjsip.conf this module loads (a server
# on other timings would render its own at start).
from tests.asterisk.test_faults_phones import acd_server, short_phone_timers  # noqa: F401, F811


def _restartable(asterisk: Asterisk, cfg) -> Asterisk:
    """The session's Asterisk, started again on the configuration rendered so far (other
    fixtures of the session may have rendered more than ``cfg`` holds: keep their files)."""
    ast = Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg)
    ast.render = lambda: []          # type: ignore[method-assign]
    return ast


async def _start(ast: Asterisk) -> None:
    # The old process's last threads may hold its ports a moment after it is gone.
    for _ in range(100):
        try:
            ast._check_ports_free()
            break
        except UserError:
            await asyncio.sleep(0.1)        # polling for the ports, bounded
    await asyncio.to_thread(ast.up)


async def _stopped(ast: Asterisk, mode: str) -> None:
    if mode == "crash":
        pid = ast.pid()
        assert pid
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not ast.pid():
                break
            await asyncio.sleep(0.05)       # polling for the process to go, bounded
    await asyncio.to_thread(ast.down)       # a clean stop (or, after a crash, the cleanup)


async def _scenario(srv, agents, ami, ast: Asterisk, mode: str) -> None:
    m = mark(ami)
    agents.login("1001")
    await agents.phone("1001", answer="auto")
    connected = await Caller(ami, "7101").dial()
    assert await connected.bridged(m) == "1001"
    agents.login("1002")
    phone2 = await agents.phone("1002", answer="manual")
    ringing = await Caller(ami, "7101").dial()
    await phone2.wait_event("CALL_INCOMING")
    await agents.wait_state("1002", "ringing")
    waiting = [await Caller(ami, "7101").dial() for _ in range(2)]
    for c in waiting:
        await c.queued(m)
    lost = [connected, ringing, *waiting]
    marks = {a: agents.mark(a) for a in ("1001", "1002")}

    try:
        await _stopped(ast, mode)
        await _start(ast)
        booted = time.monotonic()
    finally:
        if not ast.pid():                    # later tests of the session need it running
            await _start(ast)

    # Every call in Asterisk is recorded lost, once, with the cause.
    cause = "asterisk_shutdown" if mode == "stop" else "asterisk_restart"
    for c in lost:
        call = await stored(srv, c.uniqueid, ended=True)
        k = kinds(call)
        assert call["end_reason"] == "lost", (c.caller_num, k)
        assert k.count("ended") == 1 and k.count("lost") == 1, k
        assert next(e for e in call["events"] if e["kind"] == "lost")["detail"]["detail"] == cause
        assert "abandoned" not in str(call["events"])
    assert (await stored(srv, connected.uniqueid))["answered_at"] is not None
    # The agents: 1002 was ringing -> idle (no break); 1001 talked -> wrap-up (none) -> idle.
    # Their phones are reachable again by themselves.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:         # polling the agents until both phones qualify again, bounded
        snap = srv.runtime.agents()
        now = {a: (snap[a]["state"], snap[a]["reachable"], snap[a]["call_id"])
               for a in ("1001", "1002")}
        if now == {"1001": ("idle", True, None), "1002": ("idle", True, None)}:
            print(f"Asterisk {mode}: both phones reachable {time.monotonic() - booted:.1f} s "
                  f"after it booted")
            break
        assert loop.time() < deadline, f"agents not idle and reachable again: {now}"
        await asyncio.sleep(0.2)
    states_1002 = [s["state"] for s in agents.watch["1002"].messages[marks["1002"]:]
                   if s["type"] == "state"]
    assert "break" not in states_1002, states_1002
    assert srv.runtime.queues()["sales"]["waiting"] == 0

    # Service resumes by itself: a new call reaches an agent and completes. (The test's own
    # AMI link, which places the call, reconnects on its own schedule.)
    deadline = loop.time() + WAIT
    while not ami.connected:
        assert loop.time() < deadline, "the test's AMI link did not come back"
        await asyncio.sleep(0.1)            # polling the link, bounded
    srv.runtime.logout("1002")              # its phone answers by hand: 1001 takes the call
    m2 = mark(ami)
    fresh = await Caller(ami, "7101").dial()
    assert await fresh.bridged(m2) == "1001"
    await fresh.hangup()
    call = await stored(srv, fresh.uniqueid, ended=True)
    assert call["end_reason"] == "caller_hangup" and kinds(call).count("ended") == 1
    assert not fresh.hung_up_before(next(i for i, e in enumerate(ami.events.events)
                                         if talk_entered(e)
                                         and field(e, "Channel") == fresh.channel))


async def test_asterisk_stopped_and_started_loses_its_calls_and_service_resumes(
        short_phone_timers, acd_server, agents, ami, asterisk, acd_config):
    """A clean stop (``core stop now``): Asterisk says so before it hangs up."""
    await _scenario(acd_server, agents, ami, _restartable(asterisk, acd_config), "stop")


async def test_asterisk_crashed_and_started_loses_its_calls_and_service_resumes(
        short_phone_timers, acd_server, agents, ami, asterisk, acd_config):
    """A crash (SIGKILL): no event at all; the reconnect finds Asterisk started anew. The
    phones' registrations are seconds old, younger than astdb's next commit, so Asterisk
    comes back without them: the phones register again within the granted expiry
    (``asterisk.registration_seconds``, 10 s here)."""
    await _scenario(acd_server, agents, ami, _restartable(asterisk, acd_config), "crash")
