"""The admin REST API (``/api/admin/*``) and its OpenAPI description (``/api/openapi.json``).

Agents and skill groups (as configured, with the live state), call records with filters and
CSV export, the customer directory import, web users and their sessions, the audit log. The
IVR flows' routes (``/api/flows``) are served by the flows module; they are described here too.
Every change is written to the audit log by the auth middleware (who, what, when).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, time as dtime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import delete, func, select

from acd import admin_config as ac
from acd.errors import UserError
from acd.memberships import version
from acd.store.models import WebSession, WebUser
from acd.web.auth import AUDIT
from acd.web.webdb import calls_csv

MAX_IMPORT = 5 * 1024 * 1024
END_REASONS = ("caller_hangup", "agent_hangup", "abandoned", "overflow", "closed", "no_agents",
               "callback_expired", "callback_failed", "ivr_hangup", "ivr_error", "refused",
               "ended_while_server_down")


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise UserError("http.bad_request", f"{name} must be a whole number") from None
    if not lo <= v <= hi:
        raise UserError("http.bad_request", f"{name} must be between {lo} and {hi}")
    return v


def _when(request: web.Request, name: str, tz: str) -> datetime | None:
    """A date (midnight in ``web.timezone``) or an ISO 8601 time (UTC unless it says)."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            d = datetime.fromisoformat(raw).date()
            return datetime.combine(d, dtime(0), ZoneInfo(tz))
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise UserError("http.bad_request", f"{name}: a date (2026-11-22) or a time "
                                            "(2026-11-22T09:30:00+08:00)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _text(request: web.Request, name: str, limit: int = 64) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > limit:
        raise UserError("http.bad_request", f"{name} is longer than {limit} characters")
    return raw


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


class AdminRoutes:
    """The handlers of ``/api/admin/*`` and ``/api/openapi.json``, over the pages' context
    (:class:`acd.web.pages.WebContext`: config, store, runtime, auth, web database)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    @property
    def cfg(self) -> Any:
        """The configuration in force (memberships change while running)."""
        return self.ctx.cfg

    async def _origins(self, kind: str) -> dict[str, str]:
        """Each entry's origin: "config.yaml" (seeded from the file) or "admin page"."""
        rows = await self.ctx.store.entry_rows()
        return {r.key: "config.yaml" if r.seeded is not None else "admin page"
                for r in rows if r.kind == kind}

    async def agents(self, _request: web.Request) -> web.Response:
        live = self.ctx.runtime.agents() if self.ctx.runtime is not None else {}
        origins = await self._origins(ac.AGENT)
        out = []
        for a in self.cfg.agents:
            groups = {g.name: (g.members or {})[a.id] for g in self.cfg.groups
                      if a.id in (g.members or {})}
            snap = live.get(a.id) or {}
            out.append({"agent_id": a.id, "name": a.name, "groups": groups,
                        "web_user": a.id, "state": snap.get("state", "offline"),
                        "reachable": snap.get("reachable", False),
                        "phone_in_use": snap.get("phone_in_use", False),
                        "pending": snap.get("pending"),
                        "version": ac.version(ac.doc_of(ac.AGENT, a)),
                        "origin": origins.get(a.id, "config.yaml")})
        return web.json_response({"agents": out})

    async def groups(self, _request: web.Request) -> web.Response:
        live = self.ctx.runtime.queues() if self.ctx.runtime is not None else {}
        origins = await self._origins(ac.GROUP)
        return web.json_response({"groups": [
            {**_plain(g), "members": dict(g.members or {}),
             "members_version": version(dict(g.members or {})), "live": live.get(g.name),
             "version": ac.version(ac.doc_of(ac.GROUP, g)),
             "origin": origins.get(g.name, "config.yaml")}
            for g in self.cfg.groups]})

    def _filters(self, request: web.Request) -> dict[str, Any]:
        reason = _text(request, "end_reason", 32)
        if reason is not None and reason not in END_REASONS:
            raise UserError("http.bad_request", f"end_reason: one of {', '.join(END_REASONS)}")
        verification = _text(request, "verification", 16)
        if verification is not None and verification not in ("verified", "failed", "skipped"):
            raise UserError("http.bad_request", "verification: verified, failed or skipped")
        tz = self.cfg.web.timezone
        return {"since": _when(request, "since", tz), "until": _when(request, "until", tz),
                "group": _text(request, "group"), "agent": _text(request, "agent", 40),
                "end_reason": reason, "number": _text(request, "number", 40),
                "verification": verification,
                "limit": _int(request, "limit", 100, 1, 10000),
                "offset": _int(request, "offset", 0, 0, 10_000_000)}

    async def calls(self, request: web.Request) -> web.Response:
        rows = await self.ctx.webdb.find_calls(**self._filters(request))
        return web.json_response({"calls": rows})

    async def calls_export(self, request: web.Request) -> web.Response:
        rows = await self.ctx.webdb.find_calls(**self._filters(request), with_legs=True)
        return web.Response(text=calls_csv(rows), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="calls.csv"'})

    async def import_customers(self, request: web.Request) -> web.Response:
        from acd.directory import import_rows, parse_csv
        if request.content_type not in ("text/csv", "text/plain"):
            raise UserError("http.bad_request", "send the CSV as text/csv")
        if (request.content_length or 0) > MAX_IMPORT:
            raise UserError("http.bad_request", f"at most {MAX_IMPORT // 1024 // 1024} MB")
        data = bytearray()
        while chunk := await request.content.read(64 * 1024):
            data += chunk
            if len(data) > MAX_IMPORT:
                raise UserError("http.bad_request", f"at most {MAX_IMPORT // 1024 // 1024} MB")
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError("directory.bad_csv", "the CSV is not UTF-8 text") from None
        rows = parse_csv(text, "the upload")          # every bad row reported, nothing imported
        result = await import_rows(self.ctx.store, rows)
        request[AUDIT] = {"imported": result}
        return web.json_response({"ok": True, **result})

    async def customer(self, request: web.Request) -> web.Response:
        q = _text(request, "q")
        if not q:
            raise UserError("http.bad_request", "q: a phone or customer number")
        return web.json_response({"customer": await self.ctx.customer(q, q)})

    async def audit(self, request: web.Request) -> web.Response:
        return web.json_response({"entries": await self.ctx.webdb.audit_entries(
            limit=_int(request, "limit", 100, 1, 1000), offset=_int(request, "offset", 0, 0, 10**9),
            username=_text(request, "username", 40))})

    async def users(self, _request: web.Request) -> web.Response:
        now = datetime.now(timezone.utc)
        async with self.ctx.store.session() as s:
            rows = list(await s.scalars(select(WebUser).order_by(WebUser.username)))
            counts = dict((await s.execute(
                select(WebSession.username, func.count(WebSession.id))
                .where(WebSession.expires_at > now).group_by(WebSession.username))).all())
        configured = {u.username: u for u in self.cfg.web.users}
        origins = await self._origins(ac.USER)
        out = []
        for u in rows:
            item = {"username": u.username, "role": u.role, "agent_id": u.agent_id,
                    "sessions": counts.get(u.username, 0)}
            c = configured.get(u.username)
            if c is not None:        # supervisors and admins (agents: /api/admin/agents)
                item.update(phone=c.phone, groups=list(c.groups),
                            version=ac.version(ac.doc_of(ac.USER, c)),
                            origin=origins.get(u.username, "config.yaml"))
            out.append(item)
        return web.json_response({"users": out})

    async def end_sessions(self, request: web.Request) -> web.Response:
        name = request.match_info["username"]
        async with self.ctx.store.session() as s, s.begin():
            if await s.scalar(select(WebUser).where(WebUser.username == name)) is None:
                raise UserError("user.unknown", f"There is no web user {name!r}.")
            r = await s.execute(delete(WebSession).where(WebSession.username == name))
        self.ctx.auth.forget_user(name)
        return web.json_response({"ok": True, "ended": r.rowcount or 0})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_doc(request.app))

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """(method, path, handler), in the order they are added."""
        return [
            ("get", "/api/admin/agents", self.agents),
            ("get", "/api/admin/groups", self.groups),
            ("get", "/api/admin/calls", self.calls),
            ("get", "/api/admin/calls.csv", self.calls_export),
            ("post", "/api/admin/customers/import", self.import_customers),
            ("get", "/api/admin/customers", self.customer),
            ("get", "/api/admin/audit", self.audit),
            ("get", "/api/admin/users", self.users),
            ("post", "/api/admin/users/{username}/logout", self.end_sessions),
            ("get", "/api/openapi.json", self.openapi),
        ]


def add_routes(app: web.Application, ctx: Any) -> None:
    for method, path, handler in AdminRoutes(ctx).routes():
        getattr(app.router, f"add_{method}")(path, handler)


# --- OpenAPI ------------------------------------------------------------------------------------

_ERR = {"description": "an error with a stable id",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_CALL_FILTERS = [
    {"name": "since", "in": "query", "schema": {"type": "string"},
     "description": "a date (midnight in web.timezone) or an ISO 8601 time"},
    {"name": "until", "in": "query", "schema": {"type": "string"}},
    {"name": "group", "in": "query", "schema": {"type": "string"}},
    {"name": "agent", "in": "query", "schema": {"type": "string"},
     "description": "calls this agent answered"},
    {"name": "end_reason", "in": "query", "schema": {"type": "string", "enum": list(END_REASONS)}},
    {"name": "number", "in": "query", "schema": {"type": "string"},
     "description": "the caller's number or the number dialled"},
    {"name": "verification", "in": "query",
     "schema": {"type": "string", "enum": ["verified", "failed", "skipped"]}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]

#: (method, path) -> (summary, who may use it, extra operation fields)
OPERATIONS: dict[tuple[str, str], tuple[str, str, dict[str, Any]]] = {
    ("get", "/api/health"): ("Server status, AMI link up or down", "anyone", {}),
    ("post", "/api/auth/login"): ("Log in: {username, password}; sets the session cookie and "
                                  "returns the CSRF token", "anyone", {}),
    ("post", "/api/auth/logout"): ("End this session", "logged in", {}),
    ("get", "/api/auth/me"): ("This session: user, role, agent id, CSRF token, expiry",
                              "logged in", {}),
    ("get", "/api/agents"): ("Every agent's snapshot", "supervisor", {}),
    ("get", "/api/agents/{agent}"): ("One agent's snapshot", "the agent, supervisor", {}),
    ("post", "/api/agents/{agent}/login"): ("Log the agent in (ACD)", "the agent, supervisor", {}),
    ("post", "/api/agents/{agent}/logout"): ("Log the agent out (ACD)", "the agent, supervisor", {}),
    ("post", "/api/agents/{agent}/state"): ("Set a state {state, reason}; pending during a call",
                                            "the agent, supervisor", {}),
    ("post", "/api/agents/{agent}/wrapup/end"): ("End wrap-up early", "the agent, supervisor", {}),
    ("get", "/api/agents/{agent}/ws"): ("WebSocket: snapshot, then ring, answered, ended, "
                                        "state, call-control events", "the agent, supervisor", {}),
    ("post", "/api/agents/{agent}/call/hold"): ("Hold the caller (music on hold)", "the agent", {}),
    ("post", "/api/agents/{agent}/call/resume"): ("Resume the held caller", "the agent", {}),
    ("post", "/api/agents/{agent}/call/transfer"): ("Transfer {to_agent} or {to_group}", "the agent", {}),
    ("post", "/api/agents/{agent}/call/transfer/cancel"): ("Cancel a transfer or consult while it "
                                                           "rings", "the agent", {}),
    ("post", "/api/agents/{agent}/call/consult"): ("Consult {to_agent} or {to_group}; the caller "
                                                   "holds", "the agent", {}),
    ("post", "/api/agents/{agent}/call/consult/complete"): ("Hand the caller to the consulted "
                                                            "agent", "the agent", {}),
    ("post", "/api/agents/{agent}/call/consult/return"): ("Back to the caller", "the agent", {}),
    ("post", "/api/agents/{agent}/call/survey"): ("Send the caller to the satisfaction survey",
                                                  "the agent", {}),
    ("post", "/api/agents/{agent}/call/rating-invite"): ("Invite the caller to rate the call "
                                                         "when it ends", "the agent", {}),
    ("post", "/api/agents/{agent}/call/hangup"): ("Hang up the call", "the agent", {}),
    ("post", "/api/agents/{agent}/call/dial"): ("Dial out {number}: the agent's phone rings first",
                                                "the agent", {}),
    ("get", "/api/agents/{agent}/recent"): ("The agent's last 10 calls with notes", "the agent", {}),
    ("delete", "/api/agents/{agent}/recent/{uniqueid}"): ("Take a call off the list (the record "
                                                          "stays); returns the new list",
                                                          "the agent", {}),
    ("put", "/api/agents/{agent}/recent/{uniqueid}/note"): ("The agent's note on a call {text}",
                                                            "the agent", {}),
    ("get", "/api/agents/{agent}/pop/{uniqueid}"): ("The screen pop of a call at this agent",
                                                    "the agent", {}),
    ("get", "/api/agents/{agent}/directory"): ("Look a customer up (?q=)", "the agent", {}),
    ("get", "/api/agents/{agent}/targets"): ("Transfer and consult targets: the other agents "
                                             "with their state, the groups with callers "
                                             "waiting and agents free", "the agent", {}),
    ("get", "/api/queues"): ("Per skill group: live queue and counters since start", "supervisor", {}),
    ("get", "/api/supervisor/ws"): ("WebSocket: the board of queues and agents, then its "
                                    "changes (delta); {\"type\": \"resync\"} asks for the "
                                    "board again", "supervisor", {}),
    ("get", "/api/stats/wallboard"): ("The wall board: live and today's figures, intervals",
                                      "supervisor", {}),
    ("get", "/api/stats/definitions"): ("The definition of every figure", "supervisor", {}),
    ("get", "/metrics"): ("Prometheus text format", "supervisor, or the metrics bearer token", {}),
    ("get", "/api/calls"): ("Recent calls with key trail and timeline", "supervisor", {}),
    ("get", "/api/calls/{uniqueid}"): ("One call", "supervisor", {}),
    ("get", "/api/admin/agents"): ("Configured agents: groups, skill levels, live state",
                                   "supervisor", {}),
    ("get", "/api/admin/groups"): ("Skill groups with their members in force, members_version "
                                   "and live queue", "supervisor", {}),
    ("put", "/api/admin/groups/{group}/members/{agent}"): (
        "Add an agent to a group or change their level {level, version}; refused with "
        "admin.conflict if the group changed since members_version", "supervisor", {}),
    ("delete", "/api/admin/groups/{group}/members/{agent}"): (
        "Take an agent out of a group (?version=); after their current call", "supervisor", {}),
    ("post", "/api/admin/agents"): (
        "Create an agent {id, name}: their SIP and web passwords are made and shown once "
        "(secrets); their phone can register at once", "admin", {}),
    ("put", "/api/admin/agents/{key}"): (
        "Change an agent {version, name, new_secrets: [password, web_password]}", "admin", {}),
    ("delete", "/api/admin/agents/{key}"): (
        "Remove a logged-out agent (?version=) and their memberships", "admin", {}),
    ("post", "/api/admin/groups"): (
        "Create a skill group {name, and any setting of groups[] in config.yaml}", "admin", {}),
    ("put", "/api/admin/groups/{key}"): (
        "Change a group's settings {version, ...}: from its next call on", "admin", {}),
    ("delete", "/api/admin/groups/{key}"): (
        "Remove a group with no calls (?version=)", "admin", {}),
    ("post", "/api/admin/users"): (
        "Create a supervisor or admin {username, role, phone}; password shown once", "admin", {}),
    ("put", "/api/admin/users/{key}"): (
        "Change a web user {version, role, phone, new_secrets: [password, phone_password]}",
        "admin", {}),
    ("delete", "/api/admin/users/{key}"): ("Remove a web user (?version=); their sessions end",
                                           "admin", {}),
    ("get", "/api/admin/calls"): ("Call records with filters", "admin", {"parameters": _CALL_FILTERS}),
    ("get", "/api/admin/calls.csv"): ("Call records with filters, as CSV", "admin",
                                      {"parameters": _CALL_FILTERS}),
    ("post", "/api/admin/customers/import"): (
        "Import the customer directory: text/csv with a header of customer_number, name, phone, "
        "id_number; every bad row is reported and then nothing is imported", "admin",
        {"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}}),
    ("get", "/api/admin/customers"): ("Look a customer up (?q=)", "admin", {}),
    ("get", "/api/admin/audit"): ("The audit log, newest first (?limit, offset, username)",
                                  "admin", {}),
    ("get", "/api/admin/users"): ("Web users and their open sessions", "admin", {}),
    ("post", "/api/admin/users/{username}/logout"): ("End every session of a web user", "admin", {}),
    ("get", "/api/openapi.json"): ("This description", "admin", {}),
    ("get", "/api/flows"): ("IVR flows: serving flows (name, file, version, numbers), status "
                            "ok or errors, every error with file, line and message", "admin", {}),
    ("post", "/api/flows/reload"): ("Load and check the flow files now; a broken file's working "
                                    "version keeps serving", "admin", {}),
    ("get", "/api/flows/{name}/graph"): ("The picture of a serving flow (SVG)", "admin", {}),
    ("get", "/api/reports/history"): (
        "History report by interval: ?since=&until= (dates), by (15m, 30m, 60m, day, week, "
        "month), dimension (group, agent, number), key, tz, short_abandon", "supervisor", {}),
    ("get", "/api/reports/history.csv"): ("The history report as CSV (same query)",
                                          "supervisor", {}),
    ("get", "/api/reports/history.xlsx"): ("The history report as XLSX (same query)",
                                           "supervisor", {}),
    ("get", "/api/reports/queue_log"): (
        "The calls and agent states of ?since=&until= (at most 31 days) as Asterisk's "
        "queue_log lines", "supervisor", {}),
    ("get", "/api/reports/verification"): ("?since=&until=: share of calls verified in the IVR, "
                                           "handle time verified against not verified",
                                           "supervisor", {}),
}


def openapi_doc(app: web.Application) -> dict[str, Any]:
    """OpenAPI 3.1 from the app's own router: every route is listed (one without a written
    summary says so), so the description cannot miss a route."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = resource.canonical
        if not (path.startswith("/api/") or path == "/metrics"):
            continue
        method = route.method.lower()
        summary, who, extra = OPERATIONS.get((method, path), (route.handler.__doc__ or path, "see RULES", {}))
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in _path_params(path)]
        op: dict[str, Any] = {"summary": summary.strip().splitlines()[0],
                              "description": f"Who: {who}.",
                              "responses": {"200": {"description": "OK"}, "400": _ERR,
                                            "401": _ERR, "403": _ERR, "404": _ERR, "409": _ERR}}
        op.update(extra)
        if params:
            op["parameters"] = params + list(op.get("parameters", []))
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "acd: IVR and ACD server", "version": "1",
                 "description": "Session cookie from POST /api/auth/login; every state-changing "
                                "request carries the session's X-CSRF-Token header."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error", "message"],
                                  "properties": {"error": {"type": "string"},
                                                 "message": {"type": "string"}}}},
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "acd_session"},
                                "metrics": {"type": "http", "scheme": "bearer"}}},
        "security": [{"session": []}],
    }


def _path_params(path: str) -> list[str]:
    import re
    return re.findall(r"\{([^}:]+)", path)
