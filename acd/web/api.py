"""The HTTP JSON API (aiohttp). Errors are JSON with a stable id: {"error": id, "message": ...}.

Only this layer maps error ids to HTTP statuses.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import exc as sa_exc

from acd.asterisk.dialplan import MONITOR_MODES
from acd.config import WebConfig
from acd.errors import UserError
from acd.store.writer import is_transient
from acd.web.auth import USER
from acd.web.hub import SNAPSHOT
from acd.web.request import json_object
from acd.web.stats import mask_board

STATUS = {"http.bad_request": 400, "http.too_large": 413, "http.not_found": 404,
          "call.not_found": 404,
          "agent.unknown": 404, "group.unknown": 404, "call.unknown": 404,
          "acd.unavailable": 503, "acd.starting": 503, "store.unavailable": 503,
          "recording.not_found": 404, "recording.file_missing": 410,
          "recording.bad_path": 400, "recording.forbidden": 403, "recording.none": 409,
          "monitor.no_phone": 409, "monitor.no_call": 409, "monitor.none": 409,
          "monitor.bad_mode": 400, "admin.conflict": 409, "admin.not_member": 404, "report.too_large": 413,
          "admin.exists": 409, "user.unknown": 404, "group.has_calls": 409,
          "agent.logged_in": 409, "config.invalid": 400, "auth.not_your_group": 403}
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
    "dial": "dial", "recording/pause": "pause_recording",
    "recording/resume": "resume_recording",
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
    except (sa_exc.SQLAlchemyError, ConnectionError) as e:
        # ConnectionError: a database server that refuses connections (asyncpg raises it
        # unwrapped while PostgreSQL is down); the AMI client's errors are its own.
        if not is_transient(e):     # a bug stays a bug (500, logged by aiohttp)
            raise
        return error("store.unavailable", "The database is locked, full or away right now; "
                                          "try again in a moment.")
    except web.HTTPRequestEntityTooLarge:
        return _too_large()        # a chunked body that grew past the limit
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            return web.json_response({"error": f"http.{e.status}", "message": e.reason},
                                     status=e.status)
        raise


async def _no_sniffing(_request: web.Request, response: web.StreamResponse) -> None:
    """Every response is taken for the type it says (JSON is never sniffed into HTML)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


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


class ApiRoutes:
    """The handlers of the API's routes, over what they read: the store, the AMI client, the
    FastAGI server, the config, the runtime and the hub (None: not running)."""

    def __init__(self, *, store: Any, ami: Any, agi: Any, cfg: Any, runtime: Any = None,
                 hub: Any = None) -> None:
        self.store, self.ami, self.agi, self.cfg = store, ami, agi, cfg
        self.runtime, self.hub = runtime, hub

    def need_runtime(self) -> Any:
        if self.runtime is None:
            raise UserError("acd.unavailable", "the ACD is not running")
        return self.runtime

    async def health(self, _request: web.Request) -> web.Response:
        # The store writer's backlog: "degraded" while records wait (database locked or full).
        # Overloaded: new callers are turned away (their group's overload destination).
        writer = getattr(self.runtime, "writer", None)
        writes = writer.status() if writer is not None else None
        lag = getattr(self.runtime, "lag", None)
        overloaded = bool(lag is not None and lag.overloaded)
        ready = getattr(self.runtime, "ready", None)
        return web.json_response({
            "status": "degraded" if overloaded or (writes and writes["degraded"]) else "ok",
            "overloaded": overloaded,
            # The ACD took up its state (Asterisk and the store): agents' requests are served.
            "ready": bool(ready is not None and ready.is_set()),
            "store_writes": writes,
            "ami_connected": bool(self.ami and self.ami.connected),
            "agi": f"{self.cfg.agi.host}:{self.agi.port}" if self.agi else None,
            "hotline": self.cfg.hotline.number,
            "recordings": (self.runtime.recorder.health()
                           if getattr(self.runtime, "recorder", None) is not None else None),
        })

    async def recent_calls(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 20, 1, 500)
        return web.json_response({"calls": await self.store.recent_calls(limit)})

    async def one_call(self, request: web.Request) -> web.Response:
        call = await self.store.get_call(request.match_info["uniqueid"])
        if call is None:
            raise UserError("call.not_found", "no call with that uniqueid")
        return web.json_response(call)

    async def agents(self, _request: web.Request) -> web.Response:
        return web.json_response({"agents": self.need_runtime().agents()})

    async def agent(self, request: web.Request) -> web.Response:
        return web.json_response(self.need_runtime().agent(request.match_info["agent"]))

    async def _written(self, out: Any) -> web.Response:
        """Answered once the change's record is written: a server that dies (or a standby
        that takes over) right after the answer has it too."""
        rt = self.need_runtime()
        if hasattr(rt, "flush"):
            await rt.flush()
        return web.json_response(out)

    async def login(self, request: web.Request) -> web.Response:
        return await self._written(self.need_runtime().login(request.match_info["agent"]))

    async def logout(self, request: web.Request) -> web.Response:
        return await self._written(self.need_runtime().logout(request.match_info["agent"]))

    async def set_state(self, request: web.Request) -> web.Response:
        data = await _body(request)
        state = _text_field(data, "state", required=True, limit=20)
        reason = _text_field(data, "reason", required=False)
        return await self._written(self.need_runtime().set_state(request.match_info["agent"],
                                                                 state, reason))

    async def end_wrapup(self, request: web.Request) -> web.Response:
        return await self._written(self.need_runtime().end_wrapup(request.match_info["agent"]))

    def call_control(self, action: str):  # noqa: ANN201
        """Call control on the agent's call (see CALL_ACTIONS); refusals are 409 with the
        core's stable id, and change nothing."""
        async def handler(request: web.Request) -> web.Response:
            rt = self.need_runtime()
            agent_id = request.match_info["agent"]
            data = await _body(request)
            if action in ("transfer", "consult"):
                out = getattr(rt, action)(agent_id, **_target(data))
            elif action == "dial":
                out = rt.dial(agent_id, _text_field(data, "number", required=True, limit=32))
            else:
                out = getattr(rt, action)(agent_id)
            if hasattr(rt, "flush"):
                await rt.flush()         # answered once the action's record is written
            return web.json_response(out)
        return handler

    # ---- supervisors on live calls: listen, whisper, barge (acd.runtime.monitor)

    async def monitoring(self, request: web.Request) -> web.Response:
        user = request[USER]["username"]
        return web.json_response({"monitoring": self.need_runtime().monitoring(user),
                                  "modes": list(MONITOR_MODES)})

    async def monitor(self, request: web.Request) -> web.Response:
        """``{"mode": ..., "call_id": ...}`` or ``{"mode": ..., "agent": ...}``: start (or
        move, or change mode on the same call)."""
        data = await _body(request)
        mode = _text_field(data, "mode", required=True, limit=20)
        call_id = _text_field(data, "call_id", required=False, limit=64) or None
        agent_id = _text_field(data, "agent", required=False, limit=40) or None
        return web.json_response(self.need_runtime().monitor(
            request[USER]["username"], mode, call_id=call_id, agent_id=agent_id))

    async def monitor_mode(self, request: web.Request) -> web.Response:
        data = await _body(request)
        mode = _text_field(data, "mode", required=True, limit=20)
        return web.json_response(self.need_runtime().monitor_mode(request[USER]["username"],
                                                                  mode))

    async def monitor_stop(self, request: web.Request) -> web.Response:
        return web.json_response(self.need_runtime().monitor_stop(request[USER]["username"]))

    async def queues(self, _request: web.Request) -> web.Response:
        return web.json_response({"queues": self.need_runtime().queues()})

    async def agent_ws(self, request: web.Request) -> web.StreamResponse:
        agent_id = request.match_info["agent"]
        return await self._stream(request, f"agent:{agent_id}",
                                  lambda: {"agent": self.need_runtime().agent(agent_id)})

    async def supervisor_ws(self, request: web.Request) -> web.StreamResponse:
        """The whole board first, then its changes (``delta``, at most a few a second); the
        page sends ``{"type": "resync"}`` for the whole board again (a gap in ``seq``)."""
        rt = self.need_runtime()
        pages = getattr(rt, "pages", None)
        web_cfg = getattr(self.cfg, "web", None) or WebConfig()
        # waiting callers' numbers, masked (-1: shown whole)
        digits = web_cfg.wallboard_caller_digits if web_cfg.wallboard_mask_callers else -1

        def shape(msg: dict[str, Any]) -> dict[str, Any]:
            return mask_board(msg, digits)
        if pages is not None and hasattr(pages, "board_snapshot"):
            return await self._stream(request, "supervisor", pages.board_snapshot, shape)
        return await self._stream(request, "supervisor",
                                  lambda: {"queues": rt.queues(), "agents": rt.agents()}, shape)

    async def _stream(self, request: web.Request, topic: str,
                      snapshot: Callable[[], dict[str, Any]],
                      shape: Callable[[dict[str, Any]], dict[str, Any]] = dict
                      ) -> web.WebSocketResponse:
        """Snapshot first, then every live event of the topic, in order. The snapshot is
        built after subscribing (nothing published in between is lost) and carries the
        topic's last ``seq``; the page may ask for another one (``{"type": "resync"}``).
        ``shape``: each message as this page may see it (a copy: the hub's is shared)."""
        if self.hub is None:
            raise UserError("acd.unavailable", "the ACD is not running")
        sub = self.hub.subscribe(topic)
        try:
            first = shape(self._snapshot(topic, snapshot))  # raises (agent.unknown) before the upgrade
            ws = web.WebSocketResponse(heartbeat=20, max_msg_size=WS_MAX_MESSAGE)
            await ws.prepare(request)
            await ws.send_json(first)

            async def forward() -> None:
                while (msg := await sub.get()) is not None:
                    await ws.send_json(shape(self._snapshot(topic, snapshot) if msg is SNAPSHOT
                                             else msg))
                # Cut off (too slow) or shutting down: the page reconnects for a snapshot.
                await ws.close(code=4000 if sub.overflowed else 1001,
                               message=b"resync" if sub.overflowed else b"going away")

            sender = asyncio.ensure_future(forward())
            try:
                async for msg in ws:     # the page may ask for a snapshot; nothing else counts
                    if msg.type == WSMsgType.TEXT and _asks_resync(msg.data):
                        sub.want_snapshot()
            finally:
                sender.cancel()
        finally:
            sub.close()
        return ws

    def _snapshot(self, topic: str, snapshot: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        assert self.hub is not None
        return {"type": "snapshot", "seq": self.hub.last_seq(topic), **snapshot()}

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """(method, path, handler), in the order they are added."""
        return [
            ("get", "/api/health", self.health),
            ("get", "/api/agents", self.agents),
            ("get", "/api/agents/{agent}", self.agent),
            ("post", "/api/agents/{agent}/login", self.login),
            ("post", "/api/agents/{agent}/logout", self.logout),
            ("post", "/api/agents/{agent}/state", self.set_state),
            ("post", "/api/agents/{agent}/wrapup/end", self.end_wrapup),
            *(("post", f"/api/agents/{{agent}}/call/{path}", self.call_control(action))
              for path, action in CALL_ACTIONS.items()),
            ("get", "/api/agents/{agent}/ws", self.agent_ws),
            ("get", "/api/queues", self.queues),
            ("get", "/api/supervisor/ws", self.supervisor_ws),
            ("get", "/api/calls", self.recent_calls),
            ("get", "/api/calls/{uniqueid}", self.one_call),
            ("get", "/api/monitor", self.monitoring),
            ("post", "/api/monitor", self.monitor),
            ("post", "/api/monitor/mode", self.monitor_mode),
            ("delete", "/api/monitor", self.monitor_stop),
        ]


def _asks_resync(text: str) -> bool:
    """A page's message asks for a full snapshot (anything else is ignored)."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "resync"


async def _body(request: web.Request) -> dict[str, Any]:
    return await json_object(request) if request.can_read_body else {}


def _text_field(data: dict[str, Any], name: str, *, required: bool, limit: int = 200) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise UserError("http.bad_request", f"{name} must be text")
    if required and not value:
        raise UserError("http.bad_request", f"{name} is required")
    if len(value) > limit:
        raise UserError("http.bad_request", f"{name} is longer than {limit} characters")
    return value


def _target(data: dict[str, Any]) -> dict[str, str | None]:
    """{"to_agent": id} or {"to_group": name}: exactly one."""
    to_agent = _text_field(data, "to_agent", required=False, limit=40) or None
    to_group = _text_field(data, "to_group", required=False, limit=40) or None
    if bool(to_agent) == bool(to_group):
        raise UserError("http.bad_request", "give to_agent (an agent id) or to_group "
                                            "(a skill group), one of the two")
    return {"to_agent": to_agent, "to_group": to_group}


def _add_routes(app: web.Application, routes: list[tuple[str, str, Callable[..., Any]]]) -> None:
    """``(method, path, handler)`` onto the app's router (``add_get`` also answers HEAD)."""
    for method, path, handler in routes:
        getattr(app.router, f"add_{method}")(path, handler)


def make_app(*, store: Any, ami: Any, agi: Any, cfg: Any, runtime: Any = None,
             hub: Any = None, flows: Any = None, web_ctx: Any) -> web.Application:
    """The app. ``web_ctx`` (:func:`acd.web.pages.web_context`): logins, sessions, roles and
    the pages; its middleware refuses every route without the session and role it needs
    (acd/web/auth.py), so there is no app without it."""
    from acd.web.flows_api import add_flow_routes
    from acd.web.recordings_api import add_recording_routes
    from acd.web.pages import install
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)
    app.on_response_prepare.append(_no_sniffing)
    _add_routes(app, ApiRoutes(store=store, ami=ami, agi=agi, cfg=cfg, runtime=runtime,
                               hub=hub).routes())
    add_flow_routes(app, store=store, flows=flows)
    add_recording_routes(app, store=store, cfg=cfg, auth=web_ctx.auth)
    install(app, web_ctx)
    return app
