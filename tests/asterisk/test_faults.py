"""The foundation's fault checks, end to end: the real Asterisk and the whole server.

* Junk on the FastAGI port (connect-and-close, a garbage line, oversize headers, a sender that
  never finishes its headers) is one clear log line each (the same error again from the same
  address: counted in a summary line), and a real call right after is served.
* The AMI link cut while an action is pending: the caller fails at once, the client reconnects
  by itself, and the action is never sent again (seen at a proxy, and counted in Asterisk).
* A half-open AMI link (nothing comes back, nothing is closed): the Ping watchdog replaces it.
* Our server stopped while a caller is in the IVR: the caller hears music instead of being
  dropped, and reaches the IVR again once a new server is up.

Waits have generous upper bounds (they end a stuck test, they never measure speed).
"""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from acd.ami.client import AmiClient, AmiDisconnected, AmiError
from acd.app import Server
from tests.asterisk.calls import WAIT, EventLog, TestCaller, field as evfield, until
from tests.asterisk.proxies import AmiProxy, proxied_client

_numbers = itertools.count(1)


# --- helpers ------------------------------------------------------------------------------------

def since(log: EventLog) -> Callable[[object], bool]:
    """A predicate true for events that arrive after this call."""
    old = {id(e) for e in log.events}
    return lambda e: id(e) not in old


def since_event(log: EventLog, ev) -> Callable[[object], bool]:
    """A predicate true for events that arrived after ``ev``."""
    i = next(i for i, e in enumerate(log.events) if e is ev)
    old = {id(e) for e in log.events[: i + 1]}
    return lambda e: id(e) not in old


async def stored(srv: Server, uniqueid: str) -> dict:
    """The call record, once it has its end reason (written when the AGI session ends)."""
    async def finished():
        call = await srv.store.get_call(uniqueid)
        return call if call and call["end_reason"] else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while (call := await finished()) is None:
        if loop.time() > deadline:
            raise AssertionError(f"no finished record for {uniqueid}")
        await asyncio.sleep(0.05)
    return call


def log_entry(logs: list[dict], event: str, peer: str | None = None) -> dict | None:
    for entry in logs:
        if entry["event"] == event and (peer is None or entry.get("peer") == peer):
            return entry
    return None


async def wait_log(logs: list[dict], event: str, peer: str | None = None) -> dict:
    return await until(lambda: log_entry(logs, event, peer), f"log line {event} (peer {peer})")


class Peer:
    """A raw TCP client of our FastAGI port, playing a broken or hostile Asterisk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        host, port = writer.get_extra_info("sockname")[:2]
        self.name = f"{host}:{port}"         # what the server logs as ``peer``

    @classmethod
    async def connect(cls, port: int, data: bytes = b"") -> "Peer":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = cls(reader, writer)
        if data:
            try:
                writer.write(data)
                await writer.drain()
            except ConnectionError:          # the server may refuse before it has read it all
                pass
        return peer

    async def closed_by_server(self) -> None:
        """The server closed the connection without sending anything (a reset is fine too:
        closing a socket with unread input makes the kernel send RST)."""
        try:
            assert await asyncio.wait_for(self.reader.read(), WAIT) == b""
        except ConnectionResetError:
            pass

    def close(self) -> None:
        self.writer.transport.abort()


async def real_call(server: Server, ami: AmiClient, number: str, keys: str) -> dict:
    """A real caller on the hotline: IVR prompt, ``keys`` as RFC 4733 events, the IVR reads
    them back and hangs up; returns the stored record."""
    caller = TestCaller(ami, server.cfg.hotline.number, number, "Fault Test")
    await caller.dial()
    await caller.wait_ivr_command("GET DATA")
    await caller.send_dtmf(keys + "#")
    await caller.wait_hangup()
    return await stored(server, caller.hotline_uniqueid)


# --- a. junk on the FastAGI port ----------------------------------------------------------------

async def test_junk_on_the_agi_port_is_logged_and_a_real_call_is_still_served(server, ami):
    port = server.agi.port
    # capture_logs() swaps the processors inside the configured (shared) list, so loggers bound
    # before it, like the AGI server's, are captured too; log_level is added by the capture.
    with capture_logs() as logs:
        # A bare connect-and-close (a port scanner, a health check).
        bare = await Peer.connect(port)
        bare.writer.close()
        entry = await wait_log(logs, "agi.header_eof", bare.name)
        assert entry["log_level"] == "warning"
        assert entry["detail"] == "connection closed after 0 headers"

        # A garbage line (another protocol).
        junk = await Peer.connect(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await junk.closed_by_server()
        entry = await wait_log(logs, "agi.bad_header", junk.name)
        assert entry["log_level"] == "warning"
        assert "GET / HTTP/1.1" in entry["detail"]

        # Oversize header blocks: one long line; too many lines; a line past the read buffer.
        good = b"agi_network: yes\nagi_request: agi://127.0.0.1/ivr\n"
        long_line = await Peer.connect(port, good + b"agi_callerid: " + b"9" * 3000 + b"\n\n")
        await long_line.closed_by_server()
        entry = await wait_log(logs, "agi.header_too_long", long_line.name)
        assert entry["log_level"] == "warning" and "bytes" in entry["detail"]

        many = await Peer.connect(port, good + b"".join(b"agi_arg_%d: x\n" % i
                                                        for i in range(1, 100)) + b"\n")
        await many.closed_by_server()
        entry = await wait_log(logs, "agi.too_many_headers", many.name)
        assert entry["log_level"] == "warning" and "more than" in entry["detail"]

        # The same error from the same address again: no line of its own, a summary later.
        endless = await Peer.connect(port, good + b"agi_callerid: " + b"9" * 200_000)
        await endless.closed_by_server()

        # A slow sender: half a header block, then nothing. It is open while a real call
        # is placed.
        slow = await Peer.connect(port, b"agi_network: yes\nagi_request: agi://127.0.0.1/ivr\n")

        number = f"1390000{next(_numbers):04d}"
        call = await real_call(server, ami, number, "42")
        assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("collect_number", "42")]
        assert call["end_reason"] == "ivr_hangup"
        assert call["caller_number"] == number

        entry = await wait_log(logs, "agi.header_timeout", slow.name)
        assert entry["log_level"] == "warning"
        assert entry["timeout"] == server.cfg.agi.header_timeout
        await slow.closed_by_server()

        # The summary of the interval (10 s after the first oversize line) counts the second.
        entry = await wait_log(logs, "agi.stray_summary", "127.0.0.1")
        assert entry["log_level"] == "warning"
        assert (entry["error"], entry["count"]) == ("agi.header_too_long", 1)
        assert entry["example"]["peer"] == endless.name

        # One line each, nothing else about these connections.
        peers = {p.name for p in (bare, junk, long_line, many, endless, slow)}
        about = [e["event"] for e in logs if e.get("peer") in peers]
        assert sorted(about) == sorted(["agi.header_eof", "agi.bad_header", "agi.header_too_long",
                                        "agi.too_many_headers", "agi.header_timeout"]), about
        assert [e for e in logs if e["event"] == "agi.stray_summary"] == [entry]
        assert not [e for e in logs if e["event"] in ("agi.internal_error", "agi.handler_error")]
    for p in (bare, junk, long_line, many, endless, slow):
        p.close()


# --- b. the AMI link cut while an action is pending ---------------------------------------------

LOCAL_WAIT = "Local/wait@acd-testcaller"


async def test_ami_cut_mid_action_fails_at_once_reconnects_and_never_resends(test_config, ami):
    """A synchronous Originate towards a channel that never answers (the Local channel's far
    side runs Wait(), which does not answer) gets its Response only when the Originate timeout
    runs out: here 60 s. The link is cut while it is pending."""
    proxy = await AmiProxy(test_config.ami.host, test_config.ami.port).start()
    client = proxied_client(proxy, test_config)
    mine = since(ami.events)
    originate = None
    try:
        await client.start(connect_timeout=WAIT)
        first = proxy.links[0]
        originate = asyncio.ensure_future(client.action(
            "Originate", timeout=120, Channel=LOCAL_WAIT, Context="acd-testcaller", Exten="wait",
            Priority=1, Async="false", Timeout=60000, Variable="HOLD_FOR=60"))
        # Asterisk is running it: the Local channel's far side is in Wait() (seen on the
        # test's own AMI connection, which is not behind the proxy).
        far = await ami.events.wait_for(
            lambda e: mine(e) and e.name == "Newexten" and evfield(e, "Application") == "Wait"
            and evfield(e, "Channel").startswith(LOCAL_WAIT + "-"), what="the Originate running")
        assert not originate.done()
        assert first.actions == ["Login", "Originate"]

        proxy.cut(first)
        with pytest.raises(AmiDisconnected, match="dropped"):
            await asyncio.wait_for(originate, WAIT)   # the action timeout (120 s) is not it

        await until(lambda: client.states == [True, False, True] and client.connected,
                    "connected False, then True again, through the proxy")
        second = proxy.links[1]
        assert second.open and second.actions[0] == "Login"
        pong = await client.action("Ping")
        assert pong.get("Ping") == "Pong"
        channels = await client.action_list("CoreShowChannels")

        # Not sent again: the proxy forwarded one Originate, on the first link; and Asterisk has
        # exactly one Local channel pair from it (;1 and ;2).
        assert proxy.forwarded("Originate") == [1]
        assert "Originate" not in second.actions
        assert second.actions[-2:] == ["Ping", "CoreShowChannels"]
        ours = sorted(ch["Channel"] for ch in channels if ch["Channel"].startswith(LOCAL_WAIT + "-"))
        assert len(ours) == 2 and evfield(far, "Channel") in ours, ours
    finally:
        # Hang up what the Originate made (the sync Originate in Asterisk then ends too).
        made = {evfield(e, "Channel") for e in list(ami.events.events)
                if mine(e) and e.name == "Newchannel" and evfield(e, "Channel").startswith(LOCAL_WAIT)}
        for name in sorted(made):
            try:
                await ami.action("Hangup", Channel=name)
            except AmiError:
                pass                          # already gone with its partner
        if made:
            await ami.events.wait_for(
                lambda e: mine(e) and e.name == "Hangup" and evfield(e, "Channel") in made
                and evfield(e, "Channel").endswith(";1"), what="the Local channel hung up")
        await client.close()
        await proxy.stop()
        if originate is not None and not originate.done():
            originate.cancel()


# --- c. a half-open AMI link ------------------------------------------------------------------

async def test_ami_half_open_link_is_replaced_by_the_ping_watchdog(test_config, asterisk):
    proxy = await AmiProxy(test_config.ami.host, test_config.ami.port).start()
    client = proxied_client(proxy, test_config, ping_interval=0.3, ping_timeout=0.5)
    try:
        with capture_logs() as logs:
            await client.start(connect_timeout=WAIT)
            first = proxy.links[0]
            # The watchdog pings the real Asterisk and is answered while the link is healthy.
            await until(lambda: first.actions.count("Ping") >= 2, "watchdog Pings answered")
            assert client.states == [True]

            proxy.freeze(first)
            await until(lambda: client.states == [True, False, True] and client.connected,
                        "connected False, then True again, on a new link")

            # The client noticed by itself: its Ping went unanswered (held at the proxy), it
            # logged the half-open link and dropped it; the proxy never closed anything.
            assert "Ping" in first.swallowed
            assert first.ended_by == "client"
            entry = log_entry(logs, "ami.half_open")
            assert entry is not None and entry["log_level"] == "error"
            assert log_entry(logs, "ami.disconnected")["reason"].startswith("half-open")

            second = proxy.links[1]
            assert second.actions[0] == "Login"
            assert (await client.action("Ping")).get("Ping") == "Pong"
            assert len(proxy.links) == 2
    finally:
        await client.close()
        await proxy.stop()


# --- d. our server stopped while a caller is in the IVR -------------------------------------------

def agistatus(caller: TestCaller, after) -> Callable[[object], bool]:
    return lambda e: (after(e) and e.name == "VarSet" and evfield(e, "Variable") == "AGISTATUS"
                      and evfield(e, "Channel") == caller.hotline_channel)


def moh_start(caller: TestCaller, after) -> Callable[[object], bool]:
    return lambda e: (after(e) and e.name == "MusicOnHoldStart"
                      and evfield(e, "Channel") == caller.hotline_channel)


async def test_caller_in_the_ivr_survives_a_server_restart(server, ami):
    events = ami.events
    caller = TestCaller(ami, server.cfg.hotline.number, "13700137000", "Restart Test")
    await caller.dial()
    await caller.wait_ivr_command("GET DATA")

    # Stop the server in the middle of the IVR, while Asterisk runs GET DATA for it. res_agi
    # watches the AGI socket during GET DATA: when we close it, the command ends at once and
    # AGI() returns SUCCESS (end of file between commands) with the caller still on the line:
    # the case the dialplan must not hang up. It plays music and tries the IVR again instead.
    cut = since(events)
    await server.stop()
    first = await events.wait_for(agistatus(caller, cut), what="AGISTATUS of the cut session")
    assert evfield(first, "Value") == "SUCCESS"
    after_first = since_event(events, first)
    await events.wait_for(moh_start(caller, cut), what="music after the cut")

    # The server is away: the next IVR attempt cannot connect (FAILURE) and the caller is back
    # on music.
    failed = await events.wait_for(
        lambda e: agistatus(caller, after_first)(e) and evfield(e, "Value") == "FAILURE",
        what="an IVR attempt failing while the server is down")
    await events.wait_for(moh_start(caller, since_event(events, failed)),
                          what="music after the failed attempt")

    # A new server on the same config: the same caller reaches the IVR again.
    restarted = since(events)
    srv2 = Server(server.cfg)
    await srv2.start()
    try:
        await events.wait_for(
            lambda e: restarted(e) and e.name == "AGIExecStart"
            and evfield(e, "Channel") == caller.hotline_channel
            and evfield(e, "Command").upper().startswith("GET DATA"),
            what="the IVR again on the same channel")
        assert not [e for e in events.events if e.name == "Hangup"
                    and evfield(e, "Channel") in (caller.hotline_channel, caller.trunk_channel)]
        await caller.send_dtmf("4711#")
        await caller.wait_hangup()
        call = await stored(srv2, caller.hotline_uniqueid)
        assert call["caller_number"] == "13700137000"
        assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("collect_number", "4711")]
    finally:
        # Stop it only once its AMI login is through: AmiClient.close() racing the Login answer
        # can hang on Python 3.11 (asyncio.wait_for swallows the cancellation).
        try:
            await until(lambda: srv2.ami is not None and srv2.ami.connected, "srv2 AMI login")
        finally:
            await srv2.stop()

