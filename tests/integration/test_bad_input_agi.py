"""Bad FastAGI input through the whole Server (runtime, flows, hotline, store; a fake AMI
plays Asterisk, see test_bad_input_ami): a connect from outside the allow-list, a script name
that does not exist, and malformed or endless reply lines in the middle of a session. The
session ends, the caller's record is whole with one end reason, and the next caller is
served. (Header-level junk, slow senders and session limits: test_agi_server.py; junk on
the port during a real call: tests/asterisk/test_faults.py.)"""
from __future__ import annotations

import asyncio
import contextlib

from structlog.testing import capture_logs

from tests.integration.fake_ami import wait_until
from tests.integration.test_agi_server import FakeAsterisk, headers
from tests.integration.test_bad_input_ami import WAIT, running


def hotline_call(uid: str, script: str = "ivr") -> bytes:
    """A caller dialling the hotline (7000: no YAML flow here, so the built-in IVR)."""
    return headers(script, uniqueid=uid).replace(b"agi_extension: 3000", b"agi_extension: 7000")


async def closed_without_a_word(ast: FakeAsterisk) -> bytes:
    """What the server sent before closing (a reset, as our headers went unread: nothing)."""
    try:
        data = await asyncio.wait_for(ast.reader.read(), WAIT)  # until EOF
    except ConnectionResetError:
        data = b""
    ast.close()
    return data


async def test_a_connect_from_outside_the_allow_list_is_refused(tmp_path):
    async with running(tmp_path, agi={"allow": ("10.0.0.0/8",)}) as (srv, _ami):
        with capture_logs() as logs:
            ast = await FakeAsterisk.connect(srv.agi.port, hotline_call("out.1"))
            assert await closed_without_a_word(ast) == b""
        assert [e for e in logs if e["event"] == "agi.peer_refused"]
        assert await srv.store.get_call("out.1") is None


async def test_a_script_that_does_not_exist_is_refused(tmp_path):
    async with running(tmp_path) as (srv, _ami):
        with capture_logs() as logs:
            ast = await FakeAsterisk.connect(srv.agi.port, hotline_call("nos.1", "no_such_script"))
            assert await closed_without_a_word(ast) == b""
        assert [e for e in logs if e["event"] == "agi.unknown_script"]
        assert await srv.store.get_call("nos.1") is None


#: name -> (what Asterisk "says" in reply to ANSWER, what the IVR's warning says)
JUNK = {
    "not-a-reply": (b"this is not an AGI reply\n", "not an AGI reply"),
    "binary": (b"\x00\xff\xfe\x01\x02garbage\n", "not an AGI reply"),
    "endless-line": (b"200 result=" + b"9" * (70 * 1024), "reply line too long"),  # > the limit
    "endless-usage": (b"520-Invalid command syntax.\n" + b"usage line\n" * 300,
                      "usage block too long"),
    "no-result": (b"200\n" + b"result\n", "without result="),
}


async def until_answer(ast: FakeAsterisk) -> None:
    """Answer the IVR's first commands ("not set", "ok") until it answers the call."""
    for _ in range(10):
        line = await asyncio.wait_for(ast.reader.readline(), WAIT)
        assert line.endswith(b"\n") and line.strip(), line
        if line == b"ANSWER\n":
            return
        await ast.reply(b"200 result=0\n")
    raise AssertionError("the IVR never answered")


async def test_malformed_lines_mid_session_end_it_and_the_record_is_whole(tmp_path):
    async with running(tmp_path) as (srv, _ami):
        for i, (name, (junk, says)) in enumerate(JUNK.items()):
            uid = f"mid.{i}"
            with capture_logs() as logs:
                ast = await FakeAsterisk.connect(srv.agi.port, hotline_call(uid))
                await until_answer(ast)
                ast.writer.write(junk)                          # the reply to ANSWER
                await ast.writer.drain()
                with contextlib.suppress(ConnectionError):
                    await asyncio.wait_for(ast.reader.read(), WAIT)   # the server ends it
                ast.close()
                await wait_until(lambda: any(e["event"] in ("agi.session_end", "agi.handler_error")
                                             for e in logs), WAIT)
            call = await srv.store.get_call(uid)
            assert call is not None and call["ended_at"], (name, call)
            assert call["end_reason"] == "ivr_error", (name, call)
            warned = [e for e in logs if e.get("log_level") == "warning"]
            assert [e for e in warned if says in str(e.get("error", ""))], (name, warned)
            assert not [e for e in logs if e.get("log_level") in ("error", "critical")], name
        # the next caller is served
        nxt = await FakeAsterisk.connect(srv.agi.port, hotline_call("mid.next"))
        await until_answer(nxt)
        nxt.close()
