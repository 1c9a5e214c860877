"""Strangers on the FastAGI port (connections that are not Asterisk, or not yet): a scan writes
a bounded number of log lines that still count every connection; connections that send
nothing are cut to ``max_pending_per_address``, oldest first; a real AGI session opened in
the middle is served, and established sessions are never closed to make room.

Real sockets on 127.0.0.x and a real FastAgiServer, no Asterisk. Header timeouts and log
intervals are set far above the waits, so nothing here depends on speed.
"""
from __future__ import annotations

import asyncio

from tests.integration.test_agi_server import (  # noqa: F401  (close_clients, logs: fixtures)
    WAIT,
    FakeAsterisk,
    close_clients,
    events,
    headers,
    logs,
    make_server,
    recorder,
    served_normally,
)

LONG = 3600.0           # a header timeout or log interval no test ever reaches


async def connect_from(address: str, port: int, first: bytes | None = None) -> FakeAsterisk:
    """A client whose source address is ``address`` (any 127.0.0.x reaches 127.0.0.1)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    if first:
        writer.write(first)
        await writer.drain()
    return FakeAsterisk(reader, writer)


async def closed(ast: FakeAsterisk) -> None:
    """Returns once the server has closed the connection (a reset counts)."""
    try:
        await ast.reader.read()
    except ConnectionResetError:
        pass


def watch(clients: list[FakeAsterisk]) -> list[asyncio.Task]:
    return [asyncio.ensure_future(closed(c)) for c in clients]


async def until(pred, what: str) -> None:
    async def poll():
        while not pred():
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT}s: {what}") from None


def lines_about(logs: list[dict], error: str) -> list[dict]:
    """The lines a kind of stray connection wrote: its own lines and its summaries."""
    return [e for e in logs if e["event"] == error
            or (e["event"] == "agi.stray_summary" and e["error"] == error)]


def connections_in(lines: list[dict]) -> int:
    """How many connections these lines stand for."""
    return sum(e.get("count", 1) for e in lines)


async def cancel(tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------ a scan: bounded log lines

async def test_200_stray_connections_are_a_few_lines_that_count_them_all(make_server, logs):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, stray_log_interval=LONG)
    for i in range(100):
        bare = await FakeAsterisk.connect(server.port)                  # connect and close
        bare.close()
        junk = await FakeAsterisk.connect(server.port, b"GET / HTTP/1.1\r\n\r\n")
        await closed(junk)
        junk.close()
        if i == 50:
            await served_normally(server.port, seen)                    # a caller in between
    await until(lambda: connections_in(lines_about(logs, "agi.header_eof")) == 1
                and connections_in(lines_about(logs, "agi.bad_header")) == 1,
                "the first of each logged at once")
    await served_normally(server.port, seen)
    await server.stop(grace=0.5)            # the summaries of the interval still running

    for error in ("agi.header_eof", "agi.bad_header"):
        lines = lines_about(logs, error)
        own, summary = lines
        assert own["event"] == error and own["log_level"] == "warning"
        assert own["peer"].startswith("127.0.0.1:")
        assert summary["event"] == "agi.stray_summary" and summary["log_level"] == "warning"
        assert summary["peer"] == "127.0.0.1" and summary["count"] == 99
        assert summary["example"]["peer"].startswith("127.0.0.1:")
        assert summary["first"].endswith("Z")
        assert connections_in(lines) == 100
    assert "GET / HTTP/1.1" in lines_about(logs, "agi.bad_header")[1]["example"]["detail"]
    # the callers kept their own lines
    assert events(logs).count("agi.session_start") == events(logs).count("agi.session_end") == 2
    assert len(logs) < 20


async def test_a_steady_scan_is_summarised_each_interval(make_server, logs):
    """A short interval, so its summaries come while the scan goes on (no timing asserted:
    only that they come, and that every connection is counted once)."""
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, stray_log_interval=0.2)
    sent = 0

    async def scan():
        nonlocal sent
        while events(logs).count("agi.stray_summary") < 2:
            bare = await FakeAsterisk.connect(server.port)
            bare.close()
            sent += 1
            await asyncio.sleep(0.005)

    await asyncio.wait_for(scan(), WAIT)
    await served_normally(server.port, seen)
    await server.stop(grace=0.5)
    lines = lines_about(logs, "agi.header_eof")
    assert connections_in(lines) == sent                 # each counted once, none lost
    assert len(lines) < sent


async def test_refused_addresses_are_summarised_too(make_server, logs):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, allow=("10.9.9.9/32",), stray_log_interval=LONG)
    for _ in range(200):
        ast = await FakeAsterisk.connect(server.port)
        await closed(ast)
        ast.close()
    await server.stop(grace=0.5)
    lines = lines_about(logs, "agi.peer_refused")
    assert len(lines) == 2 and connections_in(lines) == 200
    assert seen.empty()


# ------------------------------------------------------------------ silent connections

async def test_silent_connections_are_cut_to_the_cap_and_a_caller_is_served_meanwhile(
        make_server, logs):
    handler, seen = recorder()
    cap = 8
    server = await make_server({"ivr": handler}, max_pending_per_address=cap, max_sessions=50,
                               header_timeout=LONG, stray_log_interval=LONG)
    first = [await FakeAsterisk.connect(server.port) for _ in range(50)]
    watched = watch(first)
    await until(lambda: sum(t.done() for t in watched) == 50 - cap, "cut to the cap")

    # A caller meanwhile: its header is read at once, it is a session from then on.
    caller = await FakeAsterisk.connect(server.port, headers(uniqueid="real.1"))
    await caller.expect(b"VERBOSE ok 1\n")
    assert "agi.header_timeout" not in events(logs)      # nobody had to time out first

    second = [await FakeAsterisk.connect(server.port) for _ in range(50)]
    watched += watch(second)
    # 100 silent and the caller's connection: 100 - cap strangers closed, the caller's not
    await until(lambda: sum(t.done() for t in watched) == 100 - cap, "cut to the cap again")
    assert not [t for t in watched[-cap:] if t.done()]    # the newest stayed
    await caller.reply(b"200 result=1\n")
    assert await asyncio.wait_for(seen.get(), WAIT) == ("ivr", ["hello world"])
    await caller.expect_closed()                          # ended by its handler, not by the cap

    await cancel(watched)
    await server.stop(grace=0.5)
    lines = lines_about(logs, "agi.pending_evicted")
    assert len(lines) == 2 and connections_in(lines) == 100 - cap
    assert lines[0]["limit"] == lines[1]["example"]["limit"] == "agi.max_pending_per_address"


# ------------------------------------------------------------------ established sessions

async def established(port: int, n: int) -> list[FakeAsterisk]:
    """``n`` callers in a session, each waiting for Asterisk's reply to its first command."""
    callers = []
    for i in range(n):
        caller = await FakeAsterisk.connect(port, headers(uniqueid=f"held.{i}"))
        await caller.expect(b"VERBOSE ok 1\n")
        callers.append(caller)
    return callers


async def finish(callers: list[FakeAsterisk], seen: asyncio.Queue) -> None:
    """Each caller's session goes on to its normal end: none was closed meanwhile."""
    for caller in callers:
        await caller.reply(b"200 result=1\n")
        await caller.expect_closed()
    assert [await asyncio.wait_for(seen.get(), WAIT) for _ in callers] == \
        [("ivr", ["hello world"])] * len(callers)


async def test_strangers_from_many_addresses_never_close_an_established_session(
        make_server, logs):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, allow=("127.0.0.0/8",),
                               max_pending_per_address=2, max_sessions=6,
                               header_timeout=LONG, stray_log_interval=LONG)
    callers = await established(server.port, 4)
    silent = [await connect_from(f"127.0.0.{1 + i % 4}", server.port) for i in range(40)]
    watched = watch(silent)
    # 4 sessions leave 2 places under max_sessions: every stranger but the 2 newest is closed
    await until(lambda: sum(t.done() for t in watched) == 40 - 2, "strangers closed")
    assert not [t for t in watched[-2:] if t.done()]
    await finish(callers, seen)
    await served_normally(server.port, seen)
    await cancel(watched)
    await server.stop(grace=0.5)
    lines = lines_about(logs, "agi.pending_evicted")
    assert connections_in(lines) == 40 - 2
    assert "agi.max_sessions" in {e.get("limit") or e["example"]["limit"] for e in lines}
    assert {e["peer"].split(":")[0] for e in lines if e["event"] == "agi.stray_summary"} <= {
        f"127.0.0.{i}" for i in range(1, 5)}
    assert "agi.session_cancelled" not in [e["event"] for e in logs
                                           if str(e.get("uniqueid", "")).startswith("held.")]


async def test_when_every_place_is_a_session_a_newcomer_is_refused(make_server, logs):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, max_pending_per_address=2, max_sessions=3,
                               header_timeout=LONG, stray_log_interval=LONG)
    callers = await established(server.port, 3)
    late = [await FakeAsterisk.connect(server.port, headers(uniqueid=f"late.{i}"))
            for i in range(5)]
    await asyncio.wait_for(asyncio.gather(*(closed(c) for c in late)), WAIT)
    await finish(callers, seen)
    await served_normally(server.port, seen)              # the places are free again
    await server.stop(grace=0.5)
    assert connections_in(lines_about(logs, "agi.too_many_sessions")) == 5
    assert "agi.pending_evicted" not in events(logs)
