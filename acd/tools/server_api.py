"""Our server's HTTP API, WebSockets and agent pages, as a client: for load runs
(:mod:`acd.tools.load`) and the bench.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from acd.errors import UserError

# =========================================================================== our server's API

def web_login(cfg: Any) -> tuple[str, str] | None:
    """A supervisor's or admin's web login from the configuration (secrets filled), for
    servers whose HTTP API wants a session; None when the configuration has no web users."""
    users = getattr(getattr(cfg, "web", None), "users", ()) or ()
    for role in ("admin", "supervisor"):
        for u in users:
            if getattr(u, "role", "") == role and getattr(u, "password", ""):
                return u.username, u.password
    return None


class ServerApi:
    """Our server's HTTP API and WebSockets, as a client. If the server answers 401 (its web
    login is on), logs in once with ``login`` (user name, password) and sends the session's
    cookie, CSRF token and this origin from then on."""

    def __init__(self, base_url: str, login: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.login = login
        self.csrf = ""
        self.session: Any = None

    async def __aenter__(self) -> "ServerApi":
        import aiohttp
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),          # cookies for 127.0.0.1 too
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _headers(self) -> dict[str, str]:
        h = {"Origin": self.base_url}
        if self.csrf:
            h["X-CSRF-Token"] = self.csrf
        return h

    async def _sign_in(self) -> None:
        if self.login is None:
            raise UserError("load.auth", f"{self.base_url} wants a login and the configuration "
                                         "has no web user")
        async with self.session.post(f"{self.base_url}/api/auth/login", headers=self._headers(),
                                     json={"username": self.login[0],
                                           "password": self.login[1]}) as r:
            if r.status != 200:
                raise UserError("load.auth", f"web login as {self.login[0]}: {r.status} "
                                             f"{(await r.text())[:200]}")
            self.csrf = str((await r.json()).get("csrf", ""))

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request: (status, JSON body or text)."""
        import aiohttp
        for attempt in (1, 2):
            try:
                async with self.session.request(method, f"{self.base_url}{path}", json=body,
                                                headers=self._headers()) as r:
                    if r.status == 401 and attempt == 1 and self.login is not None:
                        await r.read()
                        await self._sign_in()
                        continue
                    try:
                        data = await r.json(content_type=None)
                    except ValueError:
                        data = await r.text()
                    return r.status, data
            except aiohttp.ClientError as e:
                raise UserError("load.http", f"{method} {self.base_url}{path}: {e}") from None
        raise AssertionError("unreachable")

    def ws(self, path: str) -> Any:
        """A WebSocket (``async with``): the session's cookie and this origin go with it
        (sign in first with any :meth:`call` the server wants a login for)."""
        return self.session.ws_connect(f"{self.base_url}{path}", heartbeat=30,
                                       headers={"Origin": self.base_url})


# =========================================================================== agent pages

class AgentPages:
    """Agent pages on the server's WebSocket (``/api/agents/{id}/ws``), one per agent: every
    ``ring`` event is noted with the time it arrived (our clock)."""

    def __init__(self, api: ServerApi, agents: Sequence[str]) -> None:
        self.api = api
        self.agents = list(agents)
        self.rings: dict[tuple[str, str], float] = {}     # (agent, call id) -> arrival
        self.messages = 0
        self.cut = 0                                       # closed by the server
        self.refused = ""                                  # why one was closed at once
        self._tasks: list[asyncio.Task] = []
        self._open = 0
        self._all_open = asyncio.Event()

    async def start(self, timeout: float = 60.0) -> None:
        await self.api.call("GET", "/api/queues")         # signs in if the server wants it
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._page(a)) for a in self.agents]
        try:
            await asyncio.wait_for(self._all_open.wait(), timeout)
        except asyncio.TimeoutError:
            why = f"; the server closed one: {self.refused}" if self.refused else ""
            raise UserError("load.pages", f"only {self._open} of {len(self.agents)} agent pages "
                                          f"connected within {timeout:.0f} s{why}") from None

    async def _page(self, agent: str) -> None:
        import aiohttp
        first = True
        while True:
            try:
                async with self.api.ws(f"/api/agents/{agent}/ws") as ws:
                    while True:
                        msg = await ws.receive()
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                        aiohttp.WSMsgType.CLOSED):
                            if first and msg.type is aiohttp.WSMsgType.CLOSE:
                                # e.g. 1008: over the server's cap of pages per login/address
                                self.refused = f"{msg.data} {msg.extra or ''}".strip()
                            break
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            continue
                        now = time.time()
                        data = json.loads(msg.data)
                        self.messages += 1
                        if data.get("type") == "snapshot" and first:
                            first = False
                            self._open += 1
                            if self._open == len(self.agents):
                                self._all_open.set()
                        elif data.get("type") == "ring":
                            self.rings.setdefault((agent, str(data.get("call_id", ""))), now)
                self.cut += 1
                await asyncio.sleep(0.5)     # closed (refused, or the server stopping): not at once
            except (aiohttp.ClientError, OSError):
                self.cut += 1
                await asyncio.sleep(0.5)     # the server restarting: try again shortly

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
