"""A small FastAGI server: one asyncio task per Asterisk connection, routed by script name.

Safe on an open network: peers outside ``allow`` are dropped at once; the header block is
bounded in time, line length and count; connections past ``max_sessions`` are refused. A
connection that has not yet sent a valid header is a stranger: at most
``max_pending_per_address`` of them per address, and strangers (oldest first) are closed to
make room for a new connection, never an established session. Every error a remote party can
cause has a stable event name; a stray connection's is logged through :mod:`agi.strays`, so a
scan writes a bounded number of lines.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import structlog

from acd.netaddr import address_in, canonical, networks
from agi.pending import Pending
from agi.protocol import (
    MAX_HEADER_LINE,
    AgiArgumentError,
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    AgiTimeout,
    HeaderParser,
    ReplyParser,
    format_command,
    is_hangup_line,
)
from agi.strays import StrayLog

__all__ = [
    "AgiArgumentError", "AgiCommandError", "AgiError", "AgiHangup", "AgiProtocolError",
    "AgiReply", "AgiRequest", "AgiSession", "AgiTimeout", "FastAgiServer", "Handler",
]

# A reply line may be long (GET VARIABLE of a long value); header lines are held to
# MAX_HEADER_LINE by the header parser.
STREAM_LIMIT = 64 * 1024
CLOSE_TIMEOUT = 1.0
_DIGITS = set("0123456789*#ABCDabcd")

Handler = Callable[["AgiSession"], Awaitable[None]]


def _logger():
    return structlog.get_logger(component="agi")


def _iso(t: float) -> str:
    """Seconds since the epoch as the log's own timestamps are written (ISO 8601, UTC)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class _Connection:
    """One accepted connection, as the admission rules see it."""

    task: asyncio.Task
    address: str                        # canonical, for counting by address
    peer: str                           # address:port, as logged
    closed_for: str | None = None       # the setting it was closed to make room for, if it was


def _digit(result: str | None) -> str | None:
    """An ASCII code in result= (0 = no digit) -> the digit, or None."""
    try:
        code = int(result or "0")
    except ValueError:
        return None
    return chr(code) if 0 < code < 0x110000 else None


def _escape(digits: str) -> str:
    if not isinstance(digits, str) or not set(digits) <= _DIGITS:
        raise AgiArgumentError(f"bad escape digits {digits!r}")
    return digits


class AgiSession:
    """One call's AGI conversation.  Commands are sent one at a time and each reply is matched
    to its command; an unsolicited ``HANGUP`` line sets :attr:`hung_up` and is skipped."""

    def __init__(self, request: AgiRequest, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, log, command_timeout: float):
        self.request = request
        self.log = log
        self.hung_up = False
        self._reader = reader
        self._writer = writer
        self._timeout = command_timeout
        self._lock = asyncio.Lock()
        self._broken: AgiError | None = None     # after a timeout or a bad reply, stop talking

    async def command(self, name: str, *args: str | int) -> AgiReply:
        """Send ``name`` (e.g. ``"STREAM FILE"``) with quoted ``args``; return the 200 reply.

        Raises AgiArgumentError (nothing written), AgiHangup (511 or connection closed),
        AgiTimeout, AgiCommandError (510, 520, any other non-200 code), AgiProtocolError."""
        line = format_command(name, *args)
        async with self._lock:
            if self._broken is not None:
                raise type(self._broken)(f"session unusable after {self._broken.id}")
            try:
                async with asyncio.timeout(self._timeout):
                    self._writer.write(line)
                    await self._writer.drain()
                    reply = await self._read_reply()
            except TimeoutError:
                self._broken = AgiTimeout(f"no reply to {name} in {self._timeout}s")
                raise self._broken from None
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.hung_up = True
                self._broken = AgiHangup("connection closed by Asterisk")
                raise self._broken from exc
            except AgiProtocolError as exc:
                self._broken = exc
                raise
        if reply.code == 511:
            self.hung_up = True
            raise AgiHangup(reply.data or "511")
        if reply.code != 200:
            raise AgiCommandError(reply)
        return reply

    async def _read_reply(self) -> AgiReply:
        parser = ReplyParser()
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                raise AgiProtocolError("reply line too long", id="agi.reply_too_long") from exc
            if is_hangup_line(line):
                if not self.hung_up:
                    self.log.info("agi.sighup")
                self.hung_up = True
                continue
            reply = parser.feed(line)
            if reply is not None:
                return reply

    async def _ok(self, name: str, *args: str | int) -> AgiReply:
        """command(), and result=-1 (failure, often a hangup) raised as AgiCommandError."""
        reply = await self.command(name, *args)
        if reply.result == "-1":
            raise AgiCommandError(reply)
        return reply

    async def channel_gone(self) -> bool:
        """Whether the caller has hung up. A result of -1 means a failure (a missing prompt)
        or a hangup, and the HANGUP line may come after it: this asks Asterisk, which answers
        511 for a dead channel."""
        if self.hung_up:
            return True
        try:
            await self.command("CHANNEL STATUS")
        except AgiHangup:
            return True
        except AgiError:
            return self.hung_up
        return self.hung_up

    # ---- convenience

    async def answer(self) -> None:
        await self._ok("ANSWER")

    async def hangup(self) -> None:
        await self.command("HANGUP")

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play ``name``; the escape digit pressed, or None."""
        return _digit((await self._ok("STREAM FILE", name, _escape(escape_digits))).result)

    async def get_data(self, prompt: str, timeout_ms: int = 5000,
                       max_digits: int | None = None) -> tuple[str, bool]:
        """Play ``prompt`` and collect digits: (digits, timed_out)."""
        args: list[str | int] = [prompt, int(timeout_ms)]
        if max_digits is not None:
            args.append(int(max_digits))
        reply = await self._ok("GET DATA", *args)
        return reply.result or "", reply.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        return _digit((await self._ok("WAIT FOR DIGIT", int(timeout_ms))).result)

    async def say_digits(self, digits: str, escape: str = "") -> str | None:
        return _digit((await self._ok("SAY DIGITS", digits, _escape(escape))).result)

    async def say_number(self, n: int, escape: str = "") -> str | None:
        return _digit((await self._ok("SAY NUMBER", int(n), _escape(escape))).result)

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == "1" else None

    async def set_music(self, on: bool, moh_class: str = "default") -> None:
        await self.command("SET MUSIC", "on" if on else "off", moh_class)

    async def exec_app(self, app: str, *args: str) -> AgiReply:
        """``EXEC app arg1,arg2``: res_agi passes one option string, so ``args`` are joined
        with ','.  A ',' inside a caller-controlled value still splits application arguments."""
        if args:
            return await self.command("EXEC", app, ",".join(args))
        return await self.command("EXEC", app)

    async def verbose(self, msg: str, level: int = 1) -> None:
        await self.command("VERBOSE", msg, int(level))


class FastAgiServer:
    def __init__(self, host: str, port: int, routes: Mapping[str, Handler], *,
                 allow: Sequence[str] = ("127.0.0.1", "::1"), max_sessions: int = 200,
                 max_pending_per_address: int = 16, header_timeout: float = 2.0,
                 command_timeout: float = 30.0, stray_log_interval: float = 10.0):
        self.host = host
        self._port = port
        self.routes = dict(routes)
        #: called as each connection comes (acd.leader: a leader past its lease ends here)
        self.guard: Callable[[], None] | None = None
        self.allow = networks(allow)
        if max_sessions < 1 or max_pending_per_address < 1:
            raise ValueError("max_sessions and max_pending_per_address must be at least 1")
        self.max_sessions = max_sessions
        self.max_pending_per_address = max_pending_per_address
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()          # every admitted connection, for stop()
        self._admitted: set[_Connection] = set()        # ... less those closed to make room
        self._pending: Pending[_Connection] = Pending()  # ... of which still without a header
        self._strays = StrayLog(stray_log_interval)
        self._summary_timer: asyncio.TimerHandle | None = None
        self._log = _logger()

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._port,
                                                  limit=STREAM_LIMIT)
        self._log.info("agi.listening", host=self.host, port=self.port)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, give running sessions ``grace`` seconds, then cancel them."""
        if self._server is None:
            return
        self._server.close()
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._log_summaries(final=True)
        self._log.info("agi.stopped")

    def _allowed(self, host: str) -> bool:
        return address_in(host, self.allow)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.guard is not None:
            self.guard()
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        conn = _Connection(asyncio.current_task(), canonical(peername[0]) if peername else "?",
                           peer)
        log = self._log.bind(peer=peer)
        try:
            if not peername or not self._allowed(peername[0]):
                self._stray(log, conn, "agi.peer_refused")
                return
            if not self._admit(conn):
                self._stray(log, conn, "agi.too_many_sessions", max_sessions=self.max_sessions)
                return
            await self._session(reader, writer, log, conn)
        except asyncio.CancelledError:
            # Not re-raised: this is the connection's top-level task, and Python 3.11's
            # start_server callback logs a spurious error for a task that ends cancelled.
            if conn.closed_for is not None:
                self._stray(log, conn, "agi.pending_evicted", limit=conn.closed_for)
            else:
                log.info("agi.session_cancelled")
        except Exception:                       # never let one connection disturb the server
            log.exception("agi.internal_error")
        finally:
            self._pending.discard(conn)
            self._admitted.discard(conn)
            self._tasks.discard(conn.task)
            await self._close(writer)

    # ---- admission: strangers make room, established sessions never do

    def _admit(self, conn: _Connection) -> bool:
        """Room for ``conn``, made by closing strangers (connections without a valid header
        yet), oldest first: its address's oldest past ``max_pending_per_address``, anyone's
        oldest past ``max_sessions``. False: every slot is an established session."""
        if self._pending.count(conn.address) >= self.max_pending_per_address:
            self._close_to_make_room(self._pending.oldest(conn.address),
                                     "agi.max_pending_per_address")
        if len(self._admitted) >= self.max_sessions:
            stranger = self._pending.oldest()
            if stranger is None:
                return False
            self._close_to_make_room(stranger, "agi.max_sessions")
        self._admitted.add(conn)
        self._pending.add(conn.address, conn)
        self._tasks.add(conn.task)
        return True

    def _close_to_make_room(self, conn: _Connection, limit: str) -> None:
        """Counted no more, and cancelled (its own task logs it and closes the socket)."""
        conn.closed_for = limit
        self._pending.discard(conn)
        self._admitted.discard(conn)
        conn.task.cancel()

    # ---- stray connections: one line at once, then a summary per interval

    def _stray(self, log, conn: _Connection, error: str, **fields) -> None:
        if self._strays.note(conn.address, error, time.time(), {"peer": conn.peer, **fields}):
            log.warning(error, **fields)
        if self._summary_timer is None:
            self._schedule_summaries()

    def _schedule_summaries(self) -> None:
        due = self._strays.next_due()
        if due is not None:
            self._summary_timer = asyncio.get_running_loop().call_later(
                max(0.0, due - time.time()), self._log_summaries)

    def _log_summaries(self, final: bool = False) -> None:
        """The summary lines of the intervals that are over (all of them if ``final``)."""
        if self._summary_timer is not None:
            self._summary_timer.cancel()
            self._summary_timer = None
        for s in self._strays.flush(time.time(), final):
            self._log.warning("agi.stray_summary", peer=s.address, error=s.error, count=s.count,
                              first=_iso(s.first), example=s.example)
        if not final:
            self._schedule_summaries()

    # ---- one session

    async def _session(self, reader, writer, log, conn: _Connection) -> None:
        try:
            async with asyncio.timeout(self.header_timeout):
                request = await self._read_headers(reader)
        except TimeoutError:
            self._stray(log, conn, "agi.header_timeout", timeout=self.header_timeout)
            return
        except AgiProtocolError as exc:
            self._stray(log, conn, exc.id, detail=str(exc))
            return
        except ConnectionError as exc:
            self._stray(log, conn, "agi.connection_error", detail=repr(exc))
            return
        self._pending.discard(conn)             # an AGI session now: never closed to make room
        log = log.bind(script=request.script, channel=request.channel, uniqueid=request.uniqueid)
        handler = self.routes.get(request.script)
        if handler is None:
            log.warning("agi.unknown_script")
            return
        session = AgiSession(request, reader, writer, log, self.command_timeout)
        log.info("agi.session_start")
        try:
            await handler(session)
        except AgiHangup as exc:
            log.info("agi.hangup", detail=str(exc))
        except (AgiTimeout, AgiProtocolError) as exc:
            log.warning(exc.id, detail=str(exc))
        except Exception:
            log.exception("agi.handler_error")
        else:
            log.info("agi.session_end")

    async def _read_headers(self, reader: asyncio.StreamReader) -> AgiRequest:
        parser = HeaderParser(max_line=MAX_HEADER_LINE)
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                raise AgiProtocolError(f"connection closed after {len(parser.headers)} headers",
                                       id="agi.header_eof") from exc
            except asyncio.LimitOverrunError as exc:
                raise AgiProtocolError("header line too long", id="agi.header_too_long") from exc
            request = parser.feed(line)
            if request is not None:
                return request

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (TimeoutError, OSError, asyncio.CancelledError):
            writer.transport.abort()
