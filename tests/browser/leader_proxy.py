"""A reverse proxy in front of a leader and its standbys, as a deployment puts HAProxy or nginx
there (README: A standby server): each request and WebSocket goes to the first backend whose
``/api/health`` answers (only the leader listens), with the Host header kept, so the pages'
same-origin checks see the proxy's address. Real HTTP and WebSocket forwarding on loopback,
for the browser tier's takeover test."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

HOP = {"host", "connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
       "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}


class LeaderProxy:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.http: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> str:
        self.http = aiohttp.ClientSession(auto_decompress=False,
                                          cookie_jar=aiohttp.DummyCookieJar())
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def leader(self) -> str:
        assert self.http is not None
        for b in self.backends:
            try:
                async with self.http.get(b + "/api/health",
                                         timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status == 200:
                        return b
            except (aiohttp.ClientError, asyncio.TimeoutError):
                continue
        raise web.HTTPBadGateway(text="no leader")

    def _headers(self, request: web.Request) -> dict[str, str]:
        out = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        out["Host"] = request.host
        return out

    async def handle(self, request: web.Request) -> Any:
        backend = await self.leader()
        url = backend + request.rel_url.raw_path_qs
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws(request, url)
        assert self.http is not None
        body = await request.read()
        async with self.http.request(request.method, url, headers=self._headers(request),
                                     data=body or None, allow_redirects=False) as r:
            data = await r.read()
            headers = [(k, v) for k, v in r.headers.items() if k.lower() not in HOP]
            resp = web.Response(status=r.status, body=data)
            for k, v in headers:
                resp.headers.add(k, v)
            return resp

    async def _ws(self, request: web.Request, url: str) -> web.WebSocketResponse:
        assert self.http is not None
        try:
            upstream = await self.http.ws_connect(url.replace("http://", "ws://", 1),
                                                  headers=self._headers(request))
        except aiohttp.WSServerHandshakeError as e:
            raise web.HTTPBadGateway(text=str(e)) from None
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def pump(src: Any, dst: Any) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                else:
                    break
        tasks = [asyncio.ensure_future(pump(upstream, ws)), asyncio.ensure_future(pump(ws, upstream))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await upstream.close()
        await ws.close()
        return ws

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.http is not None:
            await self.http.close()
