"""A small fake Asterisk Manager Interface server for tests (asyncio, 127.0.0.1, ephemeral port).

It speaks the AMI wire format: banner, ``Key: value`` lines, a blank line ends a message.
Login (checks ``secret``), Ping and Logoff are built in; any other action answers
``Response: Success`` unless a handler is installed with ``on(action, handler)``.
Every message received is recorded in ``received`` with the number of its connection.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


def encode(fields: dict[str, str] | list[tuple[str, str]]) -> bytes:
    items = fields.items() if isinstance(fields, dict) else fields
    return "".join(f"{k}: {v}\r\n" for k, v in items).encode() + b"\r\n"


@dataclass
class Conn:
    number: int
    writer: asyncio.StreamWriter
    logged_in: bool = False
    muted: bool = False        # reads but never answers (a half-open link, seen from the client)
    closed: bool = False
    unanswered: set[str] = field(default_factory=set)   # actions (lower case) left unanswered

    def send(self, fields) -> None:
        if not self.muted and not self.closed:
            self.writer.write(encode(fields) if not isinstance(fields, bytes) else fields)

    def drop(self) -> None:
        self.closed = True
        self.writer.transport.abort()


Handler = Callable[[Conn, dict[str, str]], None]


@dataclass
class FakeAmi:
    username: str = "acd"
    secret: str = "s3cret"
    port: int = 0
    connections: list[Conn] = field(default_factory=list)
    received: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    logins: list[tuple[int, bool]] = field(default_factory=list)   # (connection, accepted)
    handlers: dict[str, Handler] = field(default_factory=dict)

    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for conn in self.connections:
            if not conn.closed:
                conn.drop()
        self._server.close()
        await self._server.wait_closed()

    def on(self, action: str, handler: Handler) -> None:
        self.handlers[action.lower()] = handler

    def actions(self, name: str) -> list[tuple[int, dict[str, str]]]:
        return [(n, m) for n, m in self.received if m.get("Action", "").lower() == name.lower()]

    @property
    def live(self) -> list[Conn]:
        return [c for c in self.connections if c.logged_in and not c.closed]

    def event(self, **fields: str) -> None:
        """Send an event (keyword Event=..., other headers) to every logged-in connection."""
        for conn in self.live:
            conn.send(fields)

    def raw(self, data: bytes) -> None:
        for conn in self.live:
            conn.send(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(len(self.connections) + 1, writer)
        self.connections.append(conn)
        writer.write(BANNER)
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                msg = {}
                for line in block.decode().split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        msg[key] = value
                self.received.append((conn.number, msg))
                self._answer(conn, msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            conn.closed = True
            writer.close()

    def _answer(self, conn: Conn, msg: dict[str, str]) -> None:
        action = msg.get("Action", "").lower()
        aid = msg.get("ActionID", "")
        if action in conn.unanswered:
            return
        if action == "login":
            ok = msg.get("Username") == self.username and msg.get("Secret") == self.secret
            self.logins.append((conn.number, ok))
            if ok:
                conn.logged_in = True
                conn.send({"Response": "Success", "ActionID": aid, "Message": "Authentication accepted"})
                conn.send({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"})
            else:   # like Asterisk: answer the error, then hang up
                conn.send({"Response": "Error", "ActionID": aid, "Message": "Authentication failed"})
                conn.closed = True
                conn.writer.close()
        elif action in self.handlers:
            self.handlers[action](conn, msg)
        elif action == "ping":
            conn.send({"Response": "Success", "ActionID": aid, "Ping": "Pong", "Timestamp": "1.0"})
        elif action == "logoff":
            conn.send({"Response": "Goodbye", "ActionID": aid, "Message": "Thanks for all the fish."})
            conn.closed = True
            conn.writer.close()
        else:
            conn.send({"Response": "Success", "ActionID": aid, "Message": "OK"})


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll until predicate() is true; fail the test after ``timeout`` (an upper bound only)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)
