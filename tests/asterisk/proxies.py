"""An AMI proxy for fault tests: it sits between an AMI client (ours, or the whole server's)
and the real Asterisk on 127.0.0.1, and can cut a link (both sockets reset), freeze it (a
half-open link: no traffic, no close) or hold new links (the client's connect succeeds but
nothing reaches Asterisk until the proxy lets it through: the AMI link stays down as long as
a test needs)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from acd.ami.client import AmiClient


@dataclass
class Link:
    number: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    frozen: bool = False
    actions: list[str] = field(default_factory=list)     # forwarded to Asterisk, in order
    swallowed: list[str] = field(default_factory=list)   # held back while frozen
    ended_by: str | None = None                          # "client", "asterisk" or "proxy"

    @property
    def open(self) -> bool:
        return self.ended_by is None


class AmiProxy:
    """A TCP proxy between an AmiClient and Asterisk's AMI on 127.0.0.1 (ephemeral port).

    Every client connection gets its own upstream connection (a ``Link``). The proxy records
    the name of every action it forwards to Asterisk. ``cut`` resets both sockets of a link at
    once; ``freeze`` stops forwarding in both directions and leaves both sockets open (a
    half-open link as the client sees it: its writes succeed, nothing ever comes back)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.upstream_port = host, port
        self.links: list[Link] = []
        self._tasks: set[asyncio.Task] = set()
        self._open = asyncio.Event()
        self._open.set()

    async def start(self) -> "AmiProxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        for link in self.links:
            self.cut(link, by=link.ended_by or "proxy")
        self._open.set()                     # held links see they were cut, and end
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def forwarded(self, action: str) -> list[int]:
        """The links on which ``action`` was forwarded, once per time."""
        return [ln.number for ln in self.links for a in ln.actions if a == action]

    def cut(self, link: Link, by: str = "proxy") -> None:
        if link.ended_by is None:
            link.ended_by = by
        for w in (link.client, link.upstream):
            if w is not None:
                w.transport.abort()

    def freeze(self, link: Link) -> None:
        link.frozen = True

    def hold(self) -> None:
        """From now on new links wait (their client connected, nothing sent on) until
        :meth:`release`: the client's Login stays unanswered meanwhile."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def current(self) -> Link:
        """The newest link."""
        return self.links[-1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        link = Link(len(self.links) + 1, writer)
        self.links.append(link)
        await self._open.wait()
        if link.ended_by is not None:        # stopped while held
            self._tasks.discard(task)
            return
        try:
            up_reader, link.upstream = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            self.cut(link, by="asterisk")
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(self._pump(link, reader, link.upstream, "client"),
                                 self._pump(link, up_reader, writer, "asterisk"))
        finally:
            self._tasks.discard(task)

    async def _pump(self, link: Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    side: str) -> None:
        pending = b""
        try:
            while data := await src.read(65536):
                if side == "client":         # note each action as its message completes
                    pending += data
                    *messages, pending = pending.split(b"\r\n\r\n")
                    for m in messages:
                        name = next((line.split(b":", 1)[1].strip().decode()
                                     for line in m.split(b"\r\n")
                                     if line.lower().startswith(b"action:")), "?")
                        (link.swallowed if link.frozen else link.actions).append(name)
                if not link.frozen:
                    dst.write(data)
        except (ConnectionError, OSError):
            pass
        self.cut(link, by=side)              # one side ended: end the other one too


def proxied_client(proxy: AmiProxy, test_config, **kw) -> AmiClient:
    c = test_config.ami
    opts = dict(action_timeout=10, ping_interval=60, ping_timeout=10,
                reconnect_min=0.05, reconnect_max=0.2)
    opts.update(kw)
    client = AmiClient("127.0.0.1", proxy.port, c.username, c.secret, **opts)
    client.states = []
    client.on_connection(client.states.append)
    return client
