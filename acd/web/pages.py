"""The web pages and the routes behind them: the login, the agent page, the supervisor wall
board, the admin page; recent calls and notes, the screen pop, statistics, /metrics.

Served by aiohttp from ``static/`` with no build step (plain HTML, CSS and ES modules).
Everything a caller controls (number, display name, keyed digits) is data in JSON here and
set with ``textContent`` on the pages, never parsed as HTML.

:func:`add_web` adds it all to an app that has :class:`acd.web.auth.Auth`'s middleware.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from acd.directory import PHONE_LIKE
from acd.errors import UserError
from acd.web import stats as statsmod
from acd.web.auth import Auth
from acd.web.request import json_object
from acd.web.webdb import NOTE_LIMIT, WebDb

STATIC = Path(__file__).resolve().parent / "static"
HOMES = {"agent": "/agent", "supervisor": "/supervisor", "admin": "/admin"}
PAGES = {"/login": "login.html", "/agent": "agent.html", "/supervisor": "supervisor.html",
         "/wallboard": "supervisor.html",          # the same board; ?tv=1 for a big screen
         "/admin": "admin.html", "/reports": "reports.html"}
_UNIQUEID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# --- the caller's region, offline ------------------------------------------------------------

def caller_region(number: str, default_region: str = "CN", lang: str = "zh") -> dict[str, Any] | None:
    """Country, province and city of a phone number from phonenumbers' offline geocoder
    (e.g. 13912345678 -> 江苏省, 常州市; 02161234567 -> 上海市), and the mobile carrier.
    None for what is not a valid number."""
    import phonenumbers
    from phonenumbers import carrier, geocoder
    if not PHONE_LIKE.fullmatch(number or ""):
        return None                           # HTML, SQL, names: no digits picked out of it
    digits = re.sub(r"[^0-9+]", "", number)
    if not digits or len(digits) > 20:
        return None
    try:
        p = phonenumbers.parse(digits, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(p):
        return None
    desc = geocoder.description_for_number(p, lang) or ""
    country = phonenumbers.region_code_for_number(p) or ""
    province, city = "", desc
    m = re.match(r"^(.+?(?:省|自治区|特别行政区))(.*)$", desc)
    if m:
        province, city = m.group(1), m.group(2)
    elif desc.endswith("市"):                 # a municipality: Beijing, Shanghai, ...
        province = city = desc
    elif ", " in desc:                        # English: "Changzhou, Jiangsu"
        city, province = desc.split(", ", 1)
    return {"country": country, "province": province, "city": city, "description": desc,
            "carrier": carrier.name_for_number(p, lang) or "",
            "international": phonenumbers.format_number(p, phonenumbers.PhoneNumberFormat.E164)}


def fill_panel(url: str, values: dict[str, str]) -> str:
    """A side panel's URL with the values URL-encoded (a value can never add a path, a
    query key or another host)."""
    return re.sub(r"\{(customer_id|caller_number|call_id|agent_id)\}",
                  lambda m: quote(values.get(m.group(1), "") or "", safe=""), url)


def _mask_id(id_number: str) -> str:
    return ("*" * max(0, len(id_number) - 4) + id_number[-4:]) if id_number else ""


# --- the context the routes share --------------------------------------------------------------

@dataclass
class WebContext:
    cfg: Any
    store: Any
    auth: Auth
    runtime: Any = None
    clock: Callable[[], float] = time.time
    webdb: WebDb = field(init=False)
    #: told when the configuration in force changes while running (memberships)
    on_cfg: Callable[[Any], None] | None = None
    #: Asterisk's rendered configuration, kept in step (acd.asterisk.live.LiveConf; None:
    #: no Asterisk managed here)
    asterisk_conf: Any = None
    browser_phones: Any = None      # acd.web.browser_phone.BrowserPhones (set with the routes)

    def __post_init__(self) -> None:
        self.webdb = WebDb(self.store)

    def need_runtime(self) -> Any:
        if self.runtime is None:
            raise UserError("acd.unavailable", "the ACD is not running")
        return self.runtime

    def sl_seconds(self) -> dict[str, float]:
        return {g.name: g.service_level_seconds for g in self.cfg.groups}

    async def board(self) -> dict[str, Any]:
        rt = self.need_runtime()
        now = self.clock()
        start = statsmod.day_start(now, self.cfg.web.timezone)
        calls = await self.webdb.calls_active_since(start)
        rows = await self.webdb.state_rows_since(start)
        out = statsmod.wallboard(queues=rt.queues(), agents=rt.agents(), calls=calls,
                                 state_rows=rows, now=now, tz=self.cfg.web.timezone,
                                 sl_seconds=self.sl_seconds(),
                                 names={a.id: a.name or a.id for a in self.cfg.agents})
        writer = getattr(rt, "writer", None)
        out["store_writes"] = writer.status() if writer is not None else None
        w = self.cfg.web        # the wall board's colours and the waiting callers' numbers
        out["thresholds"] = {"service_level_target": w.wallboard_service_level_target,
                             "longest_wait_alert": w.wallboard_longest_wait_alert,
                             "caller_digits": w.wallboard_caller_digits
                             if w.wallboard_mask_callers else None}
        return out

    async def customer(self, number: str = "", customer_number: str = "") -> dict[str, Any] | None:
        """The directory's entry: by customer number if known (the IVR verified it), else by
        the calling number. None if not there (or no directory)."""
        try:
            from sqlalchemy import select

            from acd.directory import DatabaseDirectory
            from acd.store.models import Customer
        except ImportError:                   # no directory in this build
            return None
        rec = None
        d = DatabaseDirectory(self.store)
        if customer_number:
            rec = await d.lookup("customer_number", customer_number)
        if rec is None and number:
            rec = await d.lookup("phone", number)
        if rec is None:
            return None
        async with self.store.session() as s:
            row = await s.scalar(select(Customer).where(Customer.customer_number == rec.customer_number))
        return {"customer_id": rec.customer_number, "name": rec.name,
                "phone": row.phone if row else "", "id_number": _mask_id(row.id_number if row else "")}


# --- routes ----------------------------------------------------------------------------------

def _security_headers(response: web.StreamResponse, frame_src: str = "'none'",
                      connect_src: str = "") -> None:
    """``connect_src``: another origin the page may connect to (the agent page: Asterisk's
    WebSocket for the browser phone). Media may be a blob (the ring the page makes)."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob:; connect-src 'self'{' ' + connect_src if connect_src else ''}; "
        f"frame-src {frame_src}; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'; object-src 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"


class PageRoutes:
    """The handlers of the pages and of the agent page's and the wall board's routes, over
    the pages' context."""

    @property
    def cfg(self) -> Any:
        return self.ctx.cfg

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        origins = sorted({f"{urlsplit(p.url).scheme}://{urlsplit(p.url).netloc}"
                          for p in self.cfg.web.side_panels})
        self.frame_src = " ".join(origins) or "'none'"     # the side panels' sites
        from acd.web.browser_phone import sip_websocket     # the browser phone's SIP
        self.sip_ws = sip_websocket(self.cfg.asterisk).removesuffix("/ws")

    def page(self, name: str):  # noqa: ANN201
        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.FileResponse(STATIC / name)
            _security_headers(response, self.frame_src,
                              self.sip_ws if name == "agent.html" else "")
            return response
        return handler

    async def root(self, request: web.Request) -> web.StreamResponse:
        user = await self.ctx.auth.session_of(request)
        raise web.HTTPFound(HOMES.get(user["role"], "/login") if user else "/login")

    async def recent(self, request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        return web.json_response({"calls": await self.ctx.webdb.recent_calls(agent)})

    async def hide(self, request: web.Request) -> web.Response:
        agent, uid = request.match_info["agent"], _uid(request)
        if not await self.ctx.webdb.took_call(agent, uid):
            raise UserError("call.not_found", "That call is not among your calls.")
        await self.ctx.webdb.hide_call(agent, uid, datetime.now(timezone.utc))
        return web.json_response({"calls": await self.ctx.webdb.recent_calls(agent)})

    async def note(self, request: web.Request) -> web.Response:
        agent, uid = request.match_info["agent"], _uid(request)
        text = (await json_object(request)).get("text")
        if not isinstance(text, str):
            raise UserError("http.bad_request", "text must be text")
        if len(text) > NOTE_LIMIT:
            raise UserError("http.bad_request", f"a note has at most {NOTE_LIMIT} characters")
        if not await self.ctx.webdb.took_call(agent, uid):
            raise UserError("call.not_found", "That call is not among your calls.")
        await self.ctx.webdb.set_note(agent, uid, text, datetime.now(timezone.utc))
        return web.json_response({"ok": True, "uniqueid": uid, "note": text})

    async def pop(self, request: web.Request) -> web.Response:
        """The screen pop of a call ringing (or taken) at this agent's phone."""
        agent, uid = request.match_info["agent"], _uid(request)
        live = await self._live_call(agent, uid)
        writer = getattr(self.ctx.runtime, "writer", None)
        if writer is not None:
            # The record is written by the store writer's queue: let what is queued land
            # (bounded; at once while the database is failing, then the live call is shown).
            await writer.flush(2.0)
        rec = await self.ctx.webdb.call(uid)
        number = rec.caller_number if rec else (live or {}).get("caller_number", "")
        verified_customer = ""
        if rec:
            for e in rec.events:
                if e.kind == "verification" and isinstance(e.detail, dict):
                    verified_customer = str(e.detail.get("customer_number") or "")
        customer = await self.ctx.customer(number if PHONE_LIKE.fullmatch(number or "") else "",
                                           verified_customer)
        values = {"customer_id": customer["customer_id"] if customer else "",
                  "caller_number": number or "", "call_id": uid, "agent_id": agent}
        panels = [{"title": p.title, "url": fill_panel(p.url, values)}
                  for p in self.cfg.web.side_panels if not p.needs or values.get(p.needs)]
        return web.json_response({
            **_pop_call(uid, number or "", rec, live, self.cfg.web),
            "customer": customer,
            "earlier_calls": await self.ctx.webdb.earlier_calls(number or "", uid),
            "side_panels": panels,
        })

    async def _live_call(self, agent: str, uid: str) -> dict[str, Any] | None:
        """The call as the runtime knows it (None: not live); refused when the call is
        neither ringing nor up at this agent, nor one the agent took."""
        live = None
        rt = self.ctx.runtime
        if rt is not None:
            snap = rt.agent(agent)
            current = snap.get("call_id")
            try:
                live = rt.call_info(uid)
            except Exception:          # not live any more (or never)
                live = None
            if current != uid and not (live and live.get("agent_id") == agent) \
                    and not await self.ctx.webdb.took_call(agent, uid):
                raise UserError("call.not_found", "That call is not yours.")
        elif not await self.ctx.webdb.took_call(agent, uid):
            raise UserError("call.not_found", "That call is not yours.")
        return live

    async def directory(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").strip()
        if not q or len(q) > 64:
            raise UserError("http.bad_request", "q: a phone or customer number (1-64 characters)")
        found = await self.ctx.customer(q if re.fullmatch(r"\+?[0-9 ()-]{3,40}", q) else "", q)
        return web.json_response({"customer": found})

    async def targets(self, request: web.Request) -> web.Response:
        """Where the agent may transfer or consult: the other agents with their state (and
        whether their phone can ring now), the skill groups with callers waiting and agents
        free. No callers' numbers: an agent sees the floor, not others' callers."""
        rt = self.ctx.need_runtime()
        me = request.match_info["agent"]
        names = {a.id: a.name or a.id for a in self.cfg.agents}
        agents = [{"agent_id": a, "name": names.get(a, a), "state": v.get("state", "offline"),
                   "can_ring": v.get("state") == "idle" and bool(v.get("reachable"))
                   and not v.get("phone_in_use")}
                  for a, v in sorted(rt.agents().items()) if a != me]
        groups = [{"name": g, "waiting": q.get("waiting", 0), "free": q.get("available", 0)}
                  for g, q in sorted(rt.queues().items())]
        return web.json_response({"agents": agents, "groups": groups})

    async def wallboard(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.ctx.board())

    async def definitions(self, _request: web.Request) -> web.Response:
        return web.json_response({"definitions": statsmod.DEFINITIONS})

    async def metrics(self, _request: web.Request) -> web.Response:
        board = await self.ctx.board()
        rt = self.ctx.need_runtime()
        recorder = getattr(rt, "recorder", None)
        text = statsmod.metrics_text(board, rt.queues(), board["store_writes"],
                                     recorder.health() if recorder is not None else None)
        return web.Response(text=text, content_type="text/plain",
                            headers={"Cache-Control": "no-store"}, charset="utf-8")

    def page_routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """(method, path, handler) of the pages."""
        return [("get", "/", self.root),
                *(("get", path, self.page(name)) for path, name in PAGES.items())]

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """(method, path, handler) of the agent page's and the wall board's routes."""
        return [
            ("get", "/api/agents/{agent}/recent", self.recent),
            ("delete", "/api/agents/{agent}/recent/{uniqueid}", self.hide),
            ("put", "/api/agents/{agent}/recent/{uniqueid}/note", self.note),
            ("get", "/api/agents/{agent}/pop/{uniqueid}", self.pop),
            ("get", "/api/agents/{agent}/directory", self.directory),
            ("get", "/api/agents/{agent}/targets", self.targets),
            ("get", "/api/stats/wallboard", self.wallboard),
            ("get", "/api/stats/definitions", self.definitions),
            ("get", "/metrics", self.metrics),
        ]


def _uid(request: web.Request) -> str:
    uid = request.match_info["uniqueid"]
    if not _UNIQUEID.match(uid):
        raise UserError("http.bad_request", "not a call id")
    return uid


def _pop_call(uid: str, number: str, rec: Any, live: dict[str, Any] | None,
              web_cfg: Any) -> dict[str, Any]:
    """The call's part of a screen pop: from its record, else from the live call."""
    arrived = rec.arrived_at if rec else None
    return {
        "call_id": uid,
        "caller_number": number,
        "caller_name": rec.caller_name if rec else "",
        "region": caller_region(number, web_cfg.default_region, web_cfg.region_language),
        "arrived_at": (arrived if arrived.tzinfo else arrived.replace(tzinfo=timezone.utc)).isoformat()
        if arrived else None,
        "did": rec.did if rec else "",
        "group": (live or {}).get("group") or (rec.skill_group if rec else None),
        "key_trail": [{"node": k.node, "keys": k.keys} for k in rec.key_trail] if rec
        else [{"node": "", "keys": k} for k in (live or {}).get("key_trail", [])],
        "verification": rec.verification if rec else (live or {}).get("verification"),
        "verification_method": rec.verification_method if rec else None,
    }


def _add(app: web.Application, routes: list[tuple[str, str, Callable[..., Any]]]) -> None:
    for method, path, handler in routes:
        getattr(app.router, f"add_{method}")(path, handler)


@web.middleware
async def _static_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith("/static/"):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
    return response


def add_web(app: web.Application, ctx: WebContext) -> None:
    """The pages, the static files, /api/auth/*, the agent's recent calls, notes and screen
    pop, the statistics and /metrics, and the admin API (:mod:`acd.web.admin`)."""
    from acd.web import admin, browser_phone, entries_api, members_api, reports_api
    routes = PageRoutes(ctx)
    _add(app, routes.page_routes())
    app.router.add_static("/static", STATIC, append_version=False)
    ctx.auth.add_routes(app, HOMES)
    _add(app, routes.routes())
    admin.add_routes(app, ctx)
    reports_api.add_routes(app, ctx)
    members_api.add_routes(app, ctx)
    entries_api.add_routes(app, ctx)
    ctx.browser_phones = browser_phone.add_routes(app, ctx)
    app.middlewares.append(_static_headers)


def install(app: web.Application, ctx: WebContext) -> None:
    """Put the web pages and the login in front of an app made by ``make_app``: the auth
    middleware first (before every other), then the routes."""
    app.middlewares.insert(0, ctx.auth.middleware)
    add_web(app, ctx)

    async def close_live(_app: web.Application) -> None:
        # At a stop the pages' live sockets are closed at once (they reconnect, to this
        # server started again or to the new leader), rather than held open until aiohttp's
        # shutdown timeout (a stop then took half a minute with a page open).
        ctx.auth.end_all_live()
    app.on_shutdown.append(close_live)


async def web_context(cfg: Any, store: Any, runtime: Any = None, *, defer: bool = False,
                      **auth_kw: Any) -> WebContext:
    """The web layer of a running server: logins from the configuration (hashed into the
    store), sessions, the pages' context. ``auth_kw`` go to :class:`Auth` (tests: a quick
    hasher, a clock). ``defer``: the passwords argon2 has to hash are left pending (the
    caller runs ``auth.hash_pending()``; see :meth:`Auth.sync_users`)."""
    from acd.web.auth import users_from_config
    auth = Auth.from_config(WebDb(store), cfg, **auth_kw)
    await auth.sync_users(users_from_config(cfg), defer=defer)
    clock = auth_kw.get("clock", time.time)
    return WebContext(cfg, store, auth, runtime, clock=clock)
