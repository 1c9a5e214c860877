"""The HTTP JSON API (aiohttp). Errors are JSON with a stable id: {"error": id, "message": ...}.

Only this layer maps error ids to HTTP statuses.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from acd.errors import UserError

STATUS = {"http.bad_request": 400, "http.not_found": 404, "call.not_found": 404}


def error(error_id: str, message: str) -> web.Response:
    return web.json_response({"error": error_id, "message": message},
                             status=STATUS.get(error_id, 400))


@web.middleware
async def errors_middleware(request: web.Request, handler):  # noqa: ANN001
    try:
        return await handler(request)
    except UserError as e:
        return error(e.id, e.message)
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            return web.json_response({"error": f"http.{e.status}", "message": e.reason},
                                     status=e.status)
        raise


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError("http.bad_request", f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise UserError("http.bad_request", f"{name} must be between {lo} and {hi}")
    return value


def make_app(*, store: Any, ami: Any, agi: Any, cfg: Any, runtime: Any = None,
             hub: Any = None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 1024)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok",
            "ami_connected": bool(ami and ami.connected),
            "agi": f"{cfg.agi.host}:{agi.port}" if agi else None,
            "hotline": cfg.hotline.number,
        })

    async def recent_calls(request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 20, 1, 500)
        return web.json_response({"calls": await store.recent_calls(limit)})

    async def one_call(request: web.Request) -> web.Response:
        call = await store.get_call(request.match_info["uniqueid"])
        if call is None:
            raise UserError("call.not_found", "no call with that uniqueid")
        return web.json_response(call)

    app.router.add_get("/api/health", health)
    app.router.add_get("/api/calls", recent_calls)
    app.router.add_get("/api/calls/{uniqueid}", one_call)
    return app
