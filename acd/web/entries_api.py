"""Agents, skill groups and web users created, changed and removed while running (admins):
``POST /api/admin/{agents|groups|users}``, ``PUT`` and ``DELETE .../{key}``.

Each change is checked by the rules of config.yaml (acd.config_checks, the same messages,
naming the field), refused against an older ``version`` (``admin.conflict``: two admins
never overwrite each other), written to the store (acd.admin_config: it survives a restart),
and in force at once: the ACD takes the new agent or group (a group's new settings apply
from its next call on), web logins follow, and Asterisk gets the new endpoint (its
configuration re-rendered and pjsip reloaded, acd.asterisk.live). SIP and web passwords are
made by the server and shown once, in the answer that made them; never again.
The audit log has who, when, and the entry before and after (without secrets).
"""
from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from acd import admin_config as ac
from acd.config import ConfigError
from acd.errors import UserError
from acd.web.auth import AUDIT, USER, users_from_config
from acd.web.request import json_object

PLURAL = {ac.AGENT: "agents", ac.GROUP: "groups", ac.USER: "users"}
#: Secrets made for a new entry (a user's phone password only when it has a phone).
MADE = {ac.AGENT: ("password", "web_password"), ac.GROUP: (), ac.USER: ("password",)}
NOT_FIELDS = {"version", "new_secrets"}
#: What of an entry Asterisk's rendered configuration shows (a change there: re-rendered).
ASTERISK_SEES = {ac.AGENT: ("id", "name", "password"), ac.USER: ("phone", "phone_password"),
                 ac.GROUP: ("name", "number")}


def new_secret() -> str:
    return secrets.token_urlsafe(18)


class EntryRoutes:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._lock = asyncio.Lock()     # one change at a time: check, write, apply

    # ---- the three verbs

    async def create(self, request: web.Request, kind: str) -> web.Response:
        body = await json_object(request)
        key = body.get(ac.KEY[kind])
        if not isinstance(key, str) or not key:
            raise UserError("admin.key_needed", f"{ac.KEY[kind]}: the new {kind}'s "
                                                f"{ac.KEY[kind]} (text)")
        self._no_secrets(kind, body)
        async with self._lock:
            entries = ac.entries_of(self.ctx.cfg)
            if key in entries[kind]:
                raise UserError("admin.exists", f"There is already a {kind} {key[:64]!r}.")
            doc = {**ac.doc_of(kind, ac.TYPE[kind]()), **_fields(body)}
            made = {name: new_secret() for name in MADE[kind]}
            if kind == ac.USER and doc.get("phone"):
                made["phone_password"] = new_secret()
            doc.update(made)
            entries[kind][key] = doc
            result = await self._apply(request, kind, key, None, doc, entries)
        return web.json_response({**result, "secrets": made}, status=201)

    async def change(self, request: web.Request, kind: str) -> web.Response:
        key = request.match_info["key"]
        body = await json_object(request)
        self._no_secrets(kind, body)
        fields = _fields(body)
        if ac.KEY[kind] in fields and fields[ac.KEY[kind]] != key:
            raise UserError("admin.key_fixed", f"{ac.KEY[kind]} cannot be changed: make a new "
                                               f"{kind} and remove this one")
        renew = body.get("new_secrets") or []
        if not isinstance(renew, list) or any(n not in ac.SECRETS[kind] for n in renew):
            raise UserError("admin.bad_secret", "new_secrets: a list of "
                                                f"{', '.join(ac.SECRETS[kind]) or 'nothing'}")
        async with self._lock:
            entries = ac.entries_of(self.ctx.cfg)
            before = self._current(entries, kind, key, body.get("version"))
            doc = {**before, **fields}
            made = {name: new_secret() for name in renew}
            if kind == ac.USER and doc.get("phone") and not doc.get("phone_password"):
                made["phone_password"] = new_secret()
            doc.update(made)
            entries[kind][key] = doc
            result = await self._apply(request, kind, key, before, doc, entries)
        return web.json_response({**result, "secrets": made})

    async def remove(self, request: web.Request, kind: str) -> web.Response:
        key = request.match_info["key"]
        async with self._lock:
            entries = ac.entries_of(self.ctx.cfg)
            before = self._current(entries, kind, key, request.query.get("version"))
            del entries[kind][key]
            result = await self._apply(request, kind, key, before, None, entries)
        return web.json_response(result)

    # ---- the parts

    def _no_secrets(self, kind: str, body: dict[str, Any]) -> None:
        given = [n for n in ac.SECRETS[kind] if n in body]
        if given:
            raise UserError("admin.secret_given", f"{given[0]}: passwords are made by the "
                                                  "server and shown once (new_secrets makes "
                                                  "new ones)")

    def _current(self, entries: dict[str, dict[str, Any]], kind: str, key: str,
                 seen: Any) -> dict[str, Any]:
        doc = entries[kind].get(key)
        if doc is None:
            raise UserError(f"{kind}.unknown", f"There is no {kind} {key[:64]!r}.")
        if not isinstance(seen, str) or not seen:
            raise UserError("admin.version_needed", f"version: the {kind}'s version from GET "
                                                    f"/api/admin/{PLURAL[kind]}")
        if seen != ac.version(doc):
            raise UserError("admin.conflict", f"{kind} {key[:64]} was changed meanwhile: "
                                              "reload and try again")
        return doc

    def _config(self, kind: str, key: str, entries: dict[str, dict[str, Any]]) -> Any:
        try:
            return ac.config_with(self.ctx.cfg, entries)
        except ConfigError as e:
            field = ac.field_of(e.key, entries, kind, key)
            message = e.message.split(f"{e.key}: ", 1)[-1]
            raise UserError("config.invalid", f"{field}: {message}") from None

    async def _apply(self, request: web.Request, kind: str, key: str,
                     before: dict[str, Any] | None, after: dict[str, Any] | None,
                     entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        old_cfg, new_cfg = self.ctx.cfg, self._config(kind, key, entries)
        rt = self.ctx.runtime
        if rt is not None and not rt.ready.is_set():
            raise UserError("acd.starting", "The ACD is still taking up its state; try "
                                            "again in a moment.")
        if rt is not None:
            rt.reconfigure(new_cfg)       # refuses (nothing changed) an agent logged in...
        try:
            await self._store(request, kind, key, after, old_cfg)
        except Exception:
            if rt is not None:
                rt.reconfigure(old_cfg)
            raise
        self.ctx.cfg = new_cfg
        if self.ctx.on_cfg is not None:
            self.ctx.on_cfg(new_cfg)
        if kind in (ac.AGENT, ac.USER):
            await self.ctx.auth.sync_users(users_from_config(new_cfg))
        asterisk = await self._asterisk(kind, before, after, new_cfg)
        request[AUDIT] = {"kind": kind, "key": key,
                          "before": ac.public(kind, before) if before else None,
                          "after": ac.public(kind, after) if after else None}
        return {kind: ac.public(kind, after) if after else None,
                "version": ac.version(after) if after else None, "asterisk": asterisk}

    async def _store(self, request: web.Request, kind: str, key: str,
                     after: dict[str, Any] | None, old_cfg: Any) -> None:
        store = self.ctx.store
        rows = {(r.kind, r.key): r for r in await store.entry_rows()}
        old = rows.get((kind, key))
        by = str((request.get(USER) or {}).get("username", ""))
        at = datetime.now(timezone.utc)
        seeded = old.seeded if old else None
        if after is None and seeded is None:
            await store.write_entries([], [(kind, key)], at=at, by=by)   # made on the page
        else:
            await store.write_entries([ac.Row(kind, key, after, seeded)], [], at=at, by=by)
        if after is None and kind in (ac.AGENT, ac.GROUP):   # their memberships go with them
            gone = [(g.name, a) for g in old_cfg.groups for a in (g.members or {})
                    if (a if kind == ac.AGENT else g.name) == key]
            if gone:
                await store.write_members([], gone, at=at, by=by)

    async def _asterisk(self, kind: str, before: dict[str, Any] | None,
                        after: dict[str, Any] | None, cfg: Any) -> str:
        """Re-render Asterisk's configuration when the change shows there."""
        seen = ASTERISK_SEES[kind]
        if [(before or {}).get(k) for k in seen] == [(after or {}).get(k) for k in seen]:
            return "unchanged"
        live = getattr(self.ctx, "asterisk_conf", None)
        if live is None:
            return "not_managed"
        return await live.apply(cfg, pjsip=kind != ac.GROUP, dialplan=kind == ac.GROUP)

    def routes(self) -> list[tuple[str, str, Any]]:
        out = []
        for kind, plural in PLURAL.items():
            out += [("post", f"/api/admin/{plural}", _bind(self.create, kind)),
                    ("put", f"/api/admin/{plural}/{{key}}", _bind(self.change, kind)),
                    ("delete", f"/api/admin/{plural}/{{key}}", _bind(self.remove, kind))]
        return out


def _bind(handler: Any, kind: str) -> Any:
    async def h(request: web.Request) -> web.Response:
        return await handler(request, kind)
    return h


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in NOT_FIELDS}


def add_routes(app: web.Application, ctx: Any) -> None:
    for method, path, handler in EntryRoutes(ctx).routes():
        getattr(app.router, f"add_{method}")(path, handler)
