"""HTTP routes for IVR flows and the verification report.

=================================  ======================================================
``GET /api/flows``                 the serving flows (name, file, version, numbers), the
                                   status (``ok`` or ``errors``) and every error with its
                                   file, line and message; a broken file's working version
                                   keeps serving and is listed here
``POST /api/flows/reload``         load and check the files now; the same answer
``GET /api/flows/{name}/graph``    the picture of a serving flow (SVG)
``GET /api/reports/verification``  ``?since=&until=`` (ISO 8601): share of calls verified
                                   in the IVR, handle time verified against not verified
=================================  ======================================================
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from acd.errors import UserError


def _when(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise UserError("http.bad_request", f"{name} must be a date or time in ISO 8601, "
                        "e.g. 2026-11-01 or 2026-11-01T08:00:00+08:00") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def add_flow_routes(app: web.Application, *, store: Any, flows: Any) -> None:
    def registry() -> Any:
        if flows is None:
            raise UserError("acd.unavailable", "IVR flows are not running")
        return flows.registry

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(registry().status())

    async def reload(_request: web.Request) -> web.Response:
        reg = registry()
        result = await reg.reload("api")
        return web.json_response({**reg.status(), "taken": result["taken"],
                                  "dropped": result["dropped"]})

    async def picture(request: web.Request) -> web.Response:
        from agi.flows import graph
        flow = registry().snapshot().get(request.match_info["name"])
        if flow is None:
            raise UserError("http.not_found", "no serving flow of that name")
        svg = await asyncio.to_thread(graph.render, flow, "svg")
        return web.Response(body=svg, content_type="image/svg+xml",
                            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                                     "X-Content-Type-Options": "nosniff"})

    async def verification(request: web.Request) -> web.Response:
        since, until = _when(request, "since"), _when(request, "until")
        if since and until and until <= since:
            raise UserError("http.bad_request", "until must be after since")
        return web.json_response(await store.verification_report(since, until))

    app.router.add_get("/api/flows", status)
    app.router.add_post("/api/flows/reload", reload)
    app.router.add_get("/api/flows/{name}/graph", picture)
    app.router.add_get("/api/reports/verification", verification)
