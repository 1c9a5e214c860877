"""The HTTP JSON API (aiohttp). Errors are JSON with a stable id: {"error": id, "message": ...}.

Only this layer maps error ids to HTTP statuses.
"""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import exc as sa_exc

from acd.errors import UserError
from acd.store.writer import is_transient
from acd.web.request import json_object

STATUS = {"http.bad_request": 400, "http.too_large": 413, "http.not_found": 404,
          "call.not_found": 404,
          "agent.unknown": 404, "group.unknown": 404, "call.unknown": 404,
          "acd.unavailable": 503, "acd.starting": 503, "store.unavailable": 503}
WS_MAX_MESSAGE = 4096
MAX_BODY = 64 * 1024         # a request body; larger ones are refused (413 http.too_large)
#: Routes that read their body as a stream, with their own limit (the customer CSV import).
STREAMED = frozenset({"/api/admin/customers/import"})
#: POST /api/agents/{id}/call/<path> -> the runtime's method (call control).
CALL_ACTIONS = {
    "hold": "hold", "resume": "resume", "transfer": "transfer",
    "transfer/cancel": "cancel_transfer", "consult": "consult",
    "consult/complete": "complete_consult", "consult/return": "return_from_consult",
    "survey": "to_survey", "rating-invite": "invite_rating", "hangup": "hangup",
    "dial": "dial",
}


def status_for(error_id: str) -> int:
    """Our ids to HTTP: a bad request is 400, a missing thing 404, and an action the current
    state does not allow (agent.*, call.*: illegal transition, not logged in, ...) 409."""
    if error_id in STATUS:
        return STATUS[error_id]
    if error_id.startswith(("agent.", "call.")):
        return 409
    return 400


def error(error_id: str, message: str) -> web.Response:
    return web.json_response({"error": error_id, "message": message},
                             status=status_for(error_id))


def _too_large() -> web.Response:
    return error("http.too_large", f"the body is larger than {MAX_BODY // 1024} KiB")


@web.middleware
async def errors_middleware(request: web.Request, handler):  # noqa: ANN001
    resource = request.match_info.route.resource
    if (request.content_length or 0) > MAX_BODY and (
            resource is None or resource.canonical not in STREAMED):
        return _too_large()        # before the handler: also for routes that ignore the body
    try:
        return await handler(request)
    except UserError as e:
        return error(e.id, e.message)
    except sa_exc.SQLAlchemyError as e:
        if not is_transient(e):     # a bug stays a bug (500, logged by aiohttp)
            raise
        return error("store.unavailable", "The database is locked or full right now; "
                                          "try again in a moment.")
    except web.HTTPRequestEntityTooLarge:
        return _too_large()        # a chunked body that grew past the limit
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
             hub: Any = None, flows: Any = None, web_ctx: Any) -> web.Application:
    """The app. ``web_ctx`` (:func:`acd.web.pages.web_context`): logins, sessions, roles and
    the pages; its middleware refuses every route without the session and role it needs
    (acd/web/auth.py), so there is no app without it."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)

    async def health(_request: web.Request) -> web.Response:
        # The store writer's backlog: "degraded" while records wait (database locked or full).
        writer = getattr(runtime, "writer", None)
        writes = writer.status() if writer is not None else None
        return web.json_response({
            "status": "degraded" if writes and writes["degraded"] else "ok",
            "store_writes": writes,
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

    def need_runtime() -> Any:
        if runtime is None:
            raise UserError("acd.unavailable", "the ACD is not running")
        return runtime

    async def body(request: web.Request) -> dict[str, Any]:
        return await json_object(request) if request.can_read_body else {}

    def text_field(data: dict[str, Any], name: str, *, required: bool, limit: int = 200) -> str:
        value = data.get(name, "")
        if not isinstance(value, str):
            raise UserError("http.bad_request", f"{name} must be text")
        if required and not value:
            raise UserError("http.bad_request", f"{name} is required")
        if len(value) > limit:
            raise UserError("http.bad_request", f"{name} is longer than {limit} characters")
        return value

    async def agents(_request: web.Request) -> web.Response:
        return web.json_response({"agents": need_runtime().agents()})

    async def agent(request: web.Request) -> web.Response:
        return web.json_response(need_runtime().agent(request.match_info["agent"]))

    async def login(request: web.Request) -> web.Response:
        return web.json_response(need_runtime().login(request.match_info["agent"]))

    async def logout(request: web.Request) -> web.Response:
        return web.json_response(need_runtime().logout(request.match_info["agent"]))

    async def set_state(request: web.Request) -> web.Response:
        data = await body(request)
        state = text_field(data, "state", required=True, limit=20)
        reason = text_field(data, "reason", required=False)
        return web.json_response(need_runtime().set_state(request.match_info["agent"], state, reason))

    async def end_wrapup(request: web.Request) -> web.Response:
        return web.json_response(need_runtime().end_wrapup(request.match_info["agent"]))

    def target(data: dict[str, Any]) -> dict[str, str | None]:
        """{"to_agent": id} or {"to_group": name}: exactly one."""
        to_agent = text_field(data, "to_agent", required=False, limit=40) or None
        to_group = text_field(data, "to_group", required=False, limit=40) or None
        if bool(to_agent) == bool(to_group):
            raise UserError("http.bad_request", "give to_agent (an agent id) or to_group "
                                                "(a skill group), one of the two")
        return {"to_agent": to_agent, "to_group": to_group}

    def call_control(action: str):  # noqa: ANN202
        """Call control on the agent's call (see CALL_ACTIONS); refusals are 409 with the
        core's stable id, and change nothing."""
        async def handler(request: web.Request) -> web.Response:
            rt = need_runtime()
            agent_id = request.match_info["agent"]
            data = await body(request)
            if action in ("transfer", "consult"):
                out = getattr(rt, action)(agent_id, **target(data))
            elif action == "dial":
                out = rt.dial(agent_id, text_field(data, "number", required=True, limit=32))
            else:
                out = getattr(rt, action)(agent_id)
            if hasattr(rt, "flush"):
                await rt.flush()         # answered once the action's record is written
            return web.json_response(out)
        return handler

    async def queues(_request: web.Request) -> web.Response:
        return web.json_response({"queues": need_runtime().queues()})

    async def stream(request: web.Request, topic: str, snapshot) -> web.WebSocketResponse:  # noqa: ANN001
        """Snapshot first, then every live event of the topic, in order."""
        if hub is None:
            raise UserError("acd.unavailable", "the ACD is not running")
        first = snapshot()  # raises (agent.unknown) before the upgrade
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=WS_MAX_MESSAGE)
        await ws.prepare(request)
        sub = hub.subscribe(topic)
        try:
            await ws.send_json({"type": "snapshot", **first})

            async def forward() -> None:
                while (msg := await sub.get()) is not None:
                    await ws.send_json(msg)
                # Cut off (too slow) or shutting down: the page reconnects for a snapshot.
                await ws.close(code=4000 if sub.overflowed else 1001,
                               message=b"resync" if sub.overflowed else b"going away")

            sender = asyncio.ensure_future(forward())
            try:
                async for _msg in ws:  # the page sends nothing we act on; this sees the close
                    pass
            finally:
                sender.cancel()
        finally:
            sub.close()
        return ws

    async def agent_ws(request: web.Request) -> web.StreamResponse:
        agent_id = request.match_info["agent"]
        return await stream(request, f"agent:{agent_id}",
                            lambda: {"agent": need_runtime().agent(agent_id)})

    async def supervisor_ws(request: web.Request) -> web.StreamResponse:
        rt = need_runtime()
        return await stream(request, "supervisor",
                            lambda: {"queues": rt.queues(), "agents": rt.agents()})

    app.router.add_get("/api/health", health)
    app.router.add_get("/api/agents", agents)
    app.router.add_get("/api/agents/{agent}", agent)
    app.router.add_post("/api/agents/{agent}/login", login)
    app.router.add_post("/api/agents/{agent}/logout", logout)
    app.router.add_post("/api/agents/{agent}/state", set_state)
    app.router.add_post("/api/agents/{agent}/wrapup/end", end_wrapup)
    for path, action in CALL_ACTIONS.items():
        app.router.add_post(f"/api/agents/{{agent}}/call/{path}", call_control(action))
    app.router.add_get("/api/agents/{agent}/ws", agent_ws)
    app.router.add_get("/api/queues", queues)
    app.router.add_get("/api/supervisor/ws", supervisor_ws)
    app.router.add_get("/api/calls", recent_calls)
    app.router.add_get("/api/calls/{uniqueid}", one_call)
    from acd.web.flows_api import add_flow_routes
    add_flow_routes(app, store=store, flows=flows)
    from acd.web.pages import install
    install(app, web_ctx)
    return app
