"""Skill-group memberships changed while running: ``PUT`` / ``DELETE
/api/admin/groups/{group}/members/{agent}`` (supervisors and admins).

The body (or, for DELETE, the query) carries the group's ``version`` as ``GET
/api/admin/groups`` gave it (``members_version``): a change made against an older version
is refused with ``admin.conflict`` (409), so two people editing one group at once never
overwrite each other silently. A change is written to the store (acd.memberships: it
survives a restart), handed to the ACD at once (an idle agent added is offered the group's
waiting callers; one removed during a call keeps it and leaves after), and audited with the
level before and after.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from acd.errors import UserError
from acd.memberships import Row, version, with_members
from acd.web.auth import AUDIT, USER
from acd.web.request import json_object

MAX_LEVEL = 1000


class MemberRoutes:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._lock = asyncio.Lock()        # one change at a time: check, write, apply

    def _group(self, name: str) -> Any:
        for g in self.ctx.cfg.groups:
            if g.name == name:
                return g
        raise UserError("group.unknown", f"There is no skill group {name[:64]!r}.")

    def _agent(self, agent_id: str) -> None:
        if not any(a.id == agent_id for a in self.ctx.cfg.agents):
            raise UserError("agent.unknown", f"There is no agent {agent_id[:40]!r}.")

    def _may_change(self, request: web.Request, group_name: str) -> None:
        """A supervisor with ``groups`` in their entry changes those groups' members only."""
        user = request.get(USER) or {}
        if user.get("role") != "supervisor":
            return
        entry = next((u for u in self.ctx.cfg.web.users
                      if u.username == user.get("username")), None)
        if entry is not None and entry.groups and group_name not in entry.groups:
            raise UserError("auth.not_your_group", f"{group_name[:64]} is not one of your "
                                                   f"skill groups ({', '.join(entry.groups)})")

    async def put(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        level = body.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_LEVEL:
            raise UserError("admin.bad_level", f"level: a whole number from 0 to {MAX_LEVEL}")
        return await self._change(request, level, body.get("version"))

    async def delete(self, request: web.Request) -> web.Response:
        return await self._change(request, None, request.query.get("version"))

    async def _change(self, request: web.Request, level: int | None,
                      seen: Any) -> web.Response:
        group_name, agent_id = request.match_info["group"], request.match_info["agent"]
        self._may_change(request, group_name)
        async with self._lock:
            group = self._group(group_name)
            self._agent(agent_id)
            members = dict(group.members or {})
            if not isinstance(seen, str) or not seen:
                raise UserError("admin.version_needed", "version: the group's members_version "
                                                        "from GET /api/admin/groups")
            if seen != version(members):
                raise UserError("admin.conflict", f"{group_name}'s members were changed "
                                                  "meanwhile: reload and try again")
            before = members.get(agent_id)
            if level is None and before is None:     # nothing to take out: nothing written
                raise UserError("admin.not_member", f"{agent_id[:40]} is not a member of "
                                                    f"{group_name}")
            rt = self.ctx.runtime
            if rt is not None and not rt.ready.is_set():
                raise UserError("acd.starting", "The ACD is still taking up its state; try "
                                                "again in a moment.")
            rows = {(r.group, r.agent): r for r in await self.ctx.store.member_rows()}
            old = rows.get((group_name, agent_id))
            user = request.get(USER) or {}
            await self.ctx.store.write_members(
                [Row(group_name, agent_id, level, old.seeded if old else None)], [],
                at=datetime.now(timezone.utc), by=str(user.get("username", "")))
            if level is None:
                members.pop(agent_id, None)
            else:
                members[agent_id] = level
            new_cfg = with_members(self.ctx.cfg, {g.name: (members if g.name == group_name
                                                           else dict(g.members or {}))
                                                  for g in self.ctx.cfg.groups})
            self.ctx.cfg = new_cfg
            if self.ctx.on_cfg is not None:
                self.ctx.on_cfg(new_cfg)
            if rt is not None:
                rt.set_member(group_name, agent_id, level)
        request[AUDIT] = {"group": group_name, "agent": agent_id, "before": before,
                          "after": level}
        return web.json_response({"group": group_name, "members": members,
                                  "members_version": version(members)})

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("put", "/api/admin/groups/{group}/members/{agent}", self.put),
                ("delete", "/api/admin/groups/{group}/members/{agent}", self.delete)]


def add_routes(app: web.Application, ctx: Any) -> None:
    for method, path, handler in MemberRoutes(ctx).routes():
        getattr(app.router, f"add_{method}")(path, handler)
