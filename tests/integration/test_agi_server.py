"""agi.server against real TCP clients on 127.0.0.1 that play Asterisk's side."""
from __future__ import annotations

import asyncio
import threading

import pytest
from structlog.testing import capture_logs

from agi.protocol import AgiArgumentError, AgiCommandError, AgiHangup, AgiTimeout
from agi.server import AgiSession, FastAgiServer

WAIT = 5.0      # generous bound so a broken server fails the test instead of hanging it


def headers(script: str = "ivr", query: str = "", channel: str = "PJSIP/alice-00000001",
            uniqueid: str = "1700000000.1") -> bytes:
    return (
        "agi_network: yes\n"
        f"agi_network_script: {script}{query}\n"
        f"agi_request: agi://127.0.0.1/{script}{query}\n"
        f"agi_channel: {channel}\n"
        "agi_language: en\n"
        f"agi_uniqueid: {uniqueid}\n"
        "agi_callerid: 0612345678\n"
        "agi_calleridname: Alice\n"
        "agi_context: from-trunk\n"
        "agi_extension: 3000\n"
        "agi_arg_1: hello world\n"
        "\n"
    ).encode()


class FakeAsterisk:
    """The Asterisk end of one FastAGI connection."""

    opened: list["FakeAsterisk"] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        FakeAsterisk.opened.append(self)

    @classmethod
    async def connect(cls, port: int, first: bytes | None = None) -> "FakeAsterisk":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if first:
            writer.write(first)
            await writer.drain()
        return cls(reader, writer)

    async def expect(self, line: bytes) -> None:
        got = await asyncio.wait_for(self.reader.readline(), WAIT)
        assert got == line

    async def reply(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def expect_closed(self) -> None:
        """The server closed the connection without writing anything more.  A reset is fine
        too: closing a socket with unread input (what we sent) makes the kernel send RST."""
        try:
            assert await asyncio.wait_for(self.reader.read(), WAIT) == b""
        except ConnectionResetError:
            pass

    def close(self) -> None:
        self.writer.close()


async def wait_log(logs: list[dict], event: str) -> dict:
    async def poll():
        while True:
            for entry in logs:
                if entry["event"] == event:
                    return entry
            await asyncio.sleep(0.01)
    return await asyncio.wait_for(poll(), WAIT)


def events(logs: list[dict]) -> list[str]:
    return [e["event"] for e in logs]


@pytest.fixture(autouse=True)
async def close_clients():
    yield
    while FakeAsterisk.opened:
        ast = FakeAsterisk.opened.pop()
        ast.writer.close()
        try:
            await ast.writer.wait_closed()
        except OSError:
            pass


@pytest.fixture
def logs():
    with capture_logs() as entries:
        yield entries


@pytest.fixture
async def make_server():
    servers: list[FastAgiServer] = []

    async def make(routes, **kw) -> FastAgiServer:
        server = FastAgiServer("127.0.0.1", 0, routes, **kw)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace=0.5)


@pytest.fixture
async def make_isolated_server():
    """A server running its own event loop in a thread: if a hostile peer froze the server's
    loop, the test (on its own loop) would time out and fail instead of hanging forever."""
    started: list[tuple[FastAgiServer, asyncio.AbstractEventLoop, threading.Thread]] = []

    async def make(routes, **kw) -> FastAgiServer:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = FastAgiServer("127.0.0.1", 0, routes, **kw)
        started.append((server, loop, thread))
        await _on(loop, server.start())
        return server

    yield make
    for server, loop, thread in started:
        await _on(loop, server.stop(grace=0.5))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


async def _on(loop: asyncio.AbstractEventLoop, coro):
    return await asyncio.wait_for(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop)), WAIT)


def recorder():
    """A handler that records what it saw, and a queue (on the test's loop) to await it.
    Thread-safe, so it also works with make_isolated_server."""
    seen: asyncio.Queue = asyncio.Queue()
    test_loop = asyncio.get_running_loop()

    async def handler(session: AgiSession) -> None:
        test_loop.call_soon_threadsafe(seen.put_nowait, (session.request.script, session.request.args))
        await session.verbose("ok")

    return handler, seen


async def served_normally(port: int, seen: asyncio.Queue, script: str = "ivr") -> None:
    """A complete, ordinary session on the server: proves it is still serving."""
    ast = await FakeAsterisk.connect(port, headers(script))
    await ast.expect(b"VERBOSE ok 1\n")
    await ast.reply(b"200 result=1\n")
    assert (await asyncio.wait_for(seen.get(), WAIT))[0] == script
    await ast.expect_closed()
    ast.close()


# ------------------------------------------------------------------ normal sessions

async def test_normal_session_commands_and_replies(make_server, logs):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        await s.answer()
        digits, timed_out = await s.get_data("enter-pin", 3000, 4)
        digit = await s.stream_file("custom/welcome 1", "12#")
        none_digit = await s.wait_for_digit(2000)
        value = await s.get_variable("FOO")
        unset = await s.get_variable("NOPE")
        await s.set_variable("GREETING", 'say "hi" \\ bye')
        await s.say_number(42)
        await s.set_music(True)
        reply = await s.exec_app("Dial", "PJSIP/100", "20")
        await s.hangup()
        await results.put((digits, timed_out, digit, none_digit, value, unset, reply.result,
                           s.request.caller_id_num, s.request.args, s.hung_up))

    server = await make_server({"ivr": ivr})
    assert server.port != 0
    ast = await FakeAsterisk.connect(server.port, headers("ivr"))
    await ast.expect(b"ANSWER\n")
    await ast.reply(b"200 result=0\n")
    await ast.expect(b"GET DATA enter-pin 3000 4\n")
    await ast.reply(b"200 result=12 (timeout)\n")
    await ast.expect(b'STREAM FILE "custom/welcome 1" 12#\n')
    await ast.reply(b"200 result=50 endpos=8000\n")
    await ast.expect(b"WAIT FOR DIGIT 2000\n")
    await ast.reply(b"200 result=0\n")
    await ast.expect(b"GET VARIABLE FOO\n")
    await ast.reply(b"200 result=1 (some value)\n")
    await ast.expect(b"GET VARIABLE NOPE\n")
    await ast.reply(b"200 result=0\n")
    await ast.expect(b'SET VARIABLE GREETING "say \\"hi\\" \\\\ bye"\n')
    await ast.reply(b"200 result=1\n")
    await ast.expect(b'SAY NUMBER 42 ""\n')
    await ast.reply(b"200 result=0\n")
    await ast.expect(b"SET MUSIC on default\n")
    await ast.reply(b"200 result=0\n")
    await ast.expect(b"EXEC Dial PJSIP/100,20\n")
    await ast.reply(b"200 result=0\n")
    await ast.expect(b"HANGUP\n")
    await ast.reply(b"200 result=1\n")
    got = await asyncio.wait_for(results.get(), WAIT)
    assert got == ("12", True, "2", None, "some value", None, "0", "0612345678", ["hello world"], False)
    await ast.expect_closed()
    ast.close()
    end = await wait_log(logs, "agi.session_end")
    assert end["channel"] == "PJSIP/alice-00000001"
    assert end["uniqueid"] == "1700000000.1"
    assert end["script"] == "ivr"
    assert end["component"] == "agi"
    assert end["peer"].startswith("127.0.0.1:")


async def test_routing_by_script_name(make_server, logs):
    seen: asyncio.Queue = asyncio.Queue()

    def route(name):
        async def handler(s: AgiSession) -> None:
            await seen.put((name, s.request.script, s.request.query))
        return handler

    server = await make_server({"a": route("a"), "b/sub": route("b")})
    ast = await FakeAsterisk.connect(server.port, headers("b/sub", "?lang=fr&x=1"))
    assert await asyncio.wait_for(seen.get(), WAIT) == ("b", "b/sub", {"lang": "fr", "x": "1"})
    await ast.expect_closed()
    ast = await FakeAsterisk.connect(server.port, headers("a"))
    assert await asyncio.wait_for(seen.get(), WAIT) == ("a", "a", {})
    await ast.expect_closed()

    # unknown script: nothing written, connection closed, one log line
    ast = await FakeAsterisk.connect(server.port, headers("nope"))
    await ast.expect_closed()
    entry = await wait_log(logs, "agi.unknown_script")
    assert entry["script"] == "nope"
    assert seen.empty()


async def test_520_usage_and_510_raise_command_error(make_server):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        for _ in range(2):
            try:
                await s.command("STREAM FILE")
            except AgiCommandError as exc:
                await results.put(exc.reply.code)
        await results.put((await s.command("ANSWER")).result)

    server = await make_server({"ivr": ivr})
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"STREAM FILE\n")
    await ast.reply(b"520-Invalid command syntax.  Proper usage follows:\n"
                    b"Usage: STREAM FILE <filename> <escape_digits>\n"
                    b"520 End of proper usage.\n")
    await ast.expect(b"STREAM FILE\n")
    await ast.reply(b"510 Invalid or unknown command\n")
    await ast.expect(b"ANSWER\n")
    await ast.reply(b"200 result=0\n")
    assert [await asyncio.wait_for(results.get(), WAIT) for _ in range(3)] == [520, 510, "0"]
    ast.close()


# ------------------------------------------------------------------ hostile or broken peers

async def test_bare_connect_and_close_does_not_freeze_the_server(make_isolated_server, logs):
    handler, seen = recorder()
    server = await make_isolated_server({"ivr": handler})
    bare = await FakeAsterisk.connect(server.port)
    bare.close()
    await wait_log(logs, "agi.header_eof")
    await served_normally(server.port, seen)
    assert events(logs).count("agi.header_eof") == 1


async def test_eof_in_the_middle_of_the_headers(make_isolated_server, logs):
    handler, seen = recorder()
    server = await make_isolated_server({"ivr": handler})
    half = await FakeAsterisk.connect(server.port, b"agi_network: yes\nagi_requ")
    half.writer.write_eof()
    await half.expect_closed()
    await wait_log(logs, "agi.header_eof")
    await served_normally(server.port, seen)


@pytest.mark.parametrize("junk, event", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "agi.bad_header"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", "agi.bad_header"),
    (b"agi_network: yes\nagi_request: " + b"x" * 5000 + b"\n\n", "agi.header_too_long"),
    (b"agi_request: " + b"x" * 100_000, "agi.header_too_long"),       # no newline at all
    (b"".join(b"agi_h%d: v\n" % i for i in range(100)) + b"\n", "agi.too_many_headers"),
    (b"agi_channel: x\n\n", "agi.no_request"),
])
async def test_garbage_and_oversize_headers_are_refused(make_isolated_server, logs, junk, event):
    handler, seen = recorder()
    server = await make_isolated_server({"ivr": handler})
    bad = await FakeAsterisk.connect(server.port, junk)
    await bad.expect_closed()
    entry = await wait_log(logs, event)
    assert entry["log_level"] == "warning"
    assert entry["peer"].startswith("127.0.0.1:")
    bad.close()
    await served_normally(server.port, seen)
    assert events(logs).count(event) == 1


async def test_slow_sender_hits_header_timeout(make_isolated_server, logs):
    handler, seen = recorder()
    server = await make_isolated_server({"ivr": handler}, header_timeout=0.3)
    slow = await FakeAsterisk.connect(server.port, b"agi_network: yes\n")
    await slow.expect_closed()        # the server gave up on it, nothing else written
    await wait_log(logs, "agi.header_timeout")
    slow.close()
    await served_normally(server.port, seen)
    assert seen.empty()


# ------------------------------------------------------------------ hangup handling

async def test_unsolicited_hangup_line_does_not_shift_replies(make_server):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        before = s.hung_up
        digit = await s.stream_file("hello", "12")
        after_first = s.hung_up
        value = await s.get_variable("X")
        await results.put((before, digit, after_first, value, s.hung_up))

    server = await make_server({"ivr": ivr})
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"STREAM FILE hello 12\n")
    await ast.reply(b"HANGUP\n200 result=49 endpos=100\n")
    await ast.expect(b"GET VARIABLE X\n")
    await ast.reply(b"200 result=1 (second)\n")
    assert await asyncio.wait_for(results.get(), WAIT) == (False, "1", True, "second", True)
    ast.close()


async def test_hangup_line_between_commands(make_server):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        first = await s.get_variable("A")
        second = await s.get_variable("B")
        await results.put((first, second, s.hung_up))

    server = await make_server({"ivr": ivr})
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"GET VARIABLE A\n")
    await ast.reply(b"200 result=1 (a)\nHANGUP\n")
    await ast.expect(b"GET VARIABLE B\n")
    await ast.reply(b"200 result=1 (b)\n")
    assert await asyncio.wait_for(results.get(), WAIT) == ("a", "b", True)
    ast.close()


async def test_511_raises_agi_hangup(make_server, logs):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        try:
            await s.answer()
        except AgiHangup:
            await results.put(("hangup", s.hung_up))
        await s.stream_file("bye")          # uncaught AgiHangup: the server logs it, no traceback

    server = await make_server({"ivr": ivr})
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"ANSWER\n")
    await ast.reply(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    assert await asyncio.wait_for(results.get(), WAIT) == ("hangup", True)
    await ast.expect(b'STREAM FILE bye ""\n')
    await ast.reply(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    await ast.expect_closed()
    await wait_log(logs, "agi.hangup")
    assert "agi.handler_error" not in events(logs)


async def test_connection_closed_by_asterisk_raises_agi_hangup(make_server):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        try:
            await s.answer()
        except AgiHangup:
            await results.put(("hangup", s.hung_up))

    server = await make_server({"ivr": ivr})
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"ANSWER\n")
    ast.close()
    assert await asyncio.wait_for(results.get(), WAIT) == ("hangup", True)


async def test_command_timeout_raises_agi_timeout(make_server):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        try:
            await s.answer()
        except AgiTimeout:
            await results.put("timeout")
        # the late reply must not be taken for the next command's: the session refuses
        try:
            await s.answer()
        except AgiTimeout:
            await results.put("still refused")

    server = await make_server({"ivr": ivr}, command_timeout=0.3)
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"ANSWER\n")
    assert await asyncio.wait_for(results.get(), WAIT) == "timeout"
    assert await asyncio.wait_for(results.get(), WAIT) == "still refused"
    await ast.expect_closed()


# ------------------------------------------------------------------ admission

async def test_allow_list_refuses_other_peers(make_server, logs):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, allow=("10.9.9.9/32",))
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect_closed()
    entry = await wait_log(logs, "agi.peer_refused")
    assert entry["peer"].startswith("127.0.0.1:")
    assert seen.empty()
    ast.close()


async def test_allow_list_accepts_a_network(make_server):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, allow=("10.0.0.0/8", "127.0.0.0/8"))
    await served_normally(server.port, seen)


async def test_max_sessions_refusal(make_server, logs):
    handler, seen = recorder()
    server = await make_server({"ivr": handler}, max_sessions=1)
    first = await FakeAsterisk.connect(server.port, headers(uniqueid="1.1"))
    await first.expect(b"VERBOSE ok 1\n")          # the first session is running, holding the slot
    second = await FakeAsterisk.connect(server.port, headers(uniqueid="1.2"))
    await second.expect_closed()
    await wait_log(logs, "agi.too_many_sessions")
    await first.reply(b"200 result=1\n")
    await first.expect_closed()
    assert await asyncio.wait_for(seen.get(), WAIT) == ("ivr", ["hello world"])
    assert seen.empty()                             # the second never reached the handler
    await served_normally(server.port, seen)        # the slot is free again


async def test_handler_exception_is_logged_and_server_goes_on(make_server, logs):
    handler, seen = recorder()

    async def boom(s: AgiSession) -> None:
        raise RuntimeError("kaboom")

    server = await make_server({"boom": boom, "ivr": handler})
    ast = await FakeAsterisk.connect(server.port, headers("boom"))
    await ast.expect_closed()
    entry = await wait_log(logs, "agi.handler_error")
    assert entry["log_level"] == "error"
    assert entry["exc_info"] is True
    assert entry["script"] == "boom"
    await served_normally(server.port, seen)


async def test_argument_with_newline_is_refused_and_nothing_written(make_server):
    results: asyncio.Queue = asyncio.Queue()

    async def ivr(s: AgiSession) -> None:
        try:
            await s.set_variable("X", "a\nEXEC System rm")
        except AgiArgumentError:
            await results.put("refused")
        try:
            await s.stream_file("hello\r\nHANGUP")
        except AgiArgumentError:
            await results.put("refused")
        await s.verbose("after")

    server = await make_server({"ivr": ivr})
    ast = await FakeAsterisk.connect(server.port, headers())
    # the very first line on the socket is the command after the refused ones
    await ast.expect(b"VERBOSE after 1\n")
    await ast.reply(b"200 result=1\n")
    assert [await asyncio.wait_for(results.get(), WAIT) for _ in range(2)] == ["refused", "refused"]
    await ast.expect_closed()


async def test_stop_cancels_sessions_after_grace(make_server, logs):
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def ivr(s: AgiSession) -> None:
        started.set()
        try:
            await s.answer()            # never answered
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = FastAgiServer("127.0.0.1", 0, {"ivr": ivr})
    await server.start()
    ast = await FakeAsterisk.connect(server.port, headers())
    await ast.expect(b"ANSWER\n")
    port = server.port
    await asyncio.wait_for(server.stop(grace=0.1), WAIT)
    assert cancelled.is_set()
    await ast.expect_closed()
    with pytest.raises(OSError):                    # no longer listening
        await FakeAsterisk.connect(port, headers())
