"""The store adapter: call records, key trails and timelines in SQL (SQLite by default).

One URL picks the database (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``); the code
is the same for both. The schema is Alembic's: ``migrate()`` brings a database to the newest
revision and is run at start-up.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import selectinload

from acd.store.models import AgentPending, AgentStateChange, Call, CallEvent, KeyPress

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Caller-controlled text is kept, but only this much of it.
MAX_TEXT = 256


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the database to the newest schema. Blocking: call it outside the event loop."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "heads")


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


def _clip(text: str | None, limit: int = MAX_TEXT) -> str:
    return (text or "")[:limit]


def _utc(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine.sync_engine, "connect")
            def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=5000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()

    # --- writes ----------------------------------------------------------------------------

    async def call_arrived(self, *, uniqueid: str, channel: str, caller_number: str,
                           caller_name: str, did: str, at: datetime,
                           linkedid: str | None = None) -> int:
        """Record a new call; a second arrival of the same uniqueid (an IVR retry) keeps the first."""
        async with self.session() as s, s.begin():
            found = await s.scalar(select(Call).where(Call.uniqueid == uniqueid))
            if found:
                return found.id
            call = Call(uniqueid=uniqueid, linkedid=linkedid, channel=_clip(channel, 255),
                        caller_number=_clip(caller_number), caller_name=_clip(caller_name),
                        did=_clip(did, 64), arrived_at=at)
            s.add(call)
            s.add(CallEvent(call=call, at=at, kind="arrived", detail={"did": _clip(did, 64)}))
            await s.flush()
            return call.id

    async def key_pressed(self, uniqueid: str, *, node: str, keys: str, at: datetime) -> None:
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            seq = len(call.key_trail)
            s.add(KeyPress(call=call, seq=seq, node=_clip(node, 64), keys=_clip(keys), at=at))

    async def call_event(self, uniqueid: str, kind: str, *, at: datetime,
                         detail: dict[str, Any] | None = None) -> None:
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            s.add(CallEvent(call=call, at=at, kind=kind, detail=detail or {}))

    async def call_ended(self, uniqueid: str, *, reason: str, at: datetime) -> bool:
        """Set the call's one end reason. False (and nothing changed) if it had one already."""
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            if call.end_reason is not None:
                return False
            call.end_reason = reason
            call.ended_at = at
            s.add(CallEvent(call=call, at=at, kind="ended", detail={"reason": reason}))
            return True

    async def call_update(self, uniqueid: str, *, skill_group: str | None = None,
                          answered_at: datetime | None = None) -> None:
        """Set the call's skill group (its latest queue) and its first answer time."""
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            if skill_group is not None:
                call.skill_group = _clip(skill_group, 64)
            if answered_at is not None and call.answered_at is None:
                call.answered_at = answered_at

    async def agent_state(self, agent_id: str, state: str, *, reason: str, at: datetime,
                          previous: str | None = None, call_uniqueid: str | None = None) -> None:
        async with self.session() as s, s.begin():
            s.add(AgentStateChange(agent_id=agent_id, state=state, reason=_clip(reason), at=at,
                                   previous=previous, call_uniqueid=call_uniqueid))

    async def agent_pending(self, agent_id: str, state: str | None, *, reason: str,
                            at: datetime) -> None:
        """The state the agent asked for during a call (None: no pending state any more)."""
        async with self.session() as s, s.begin():
            s.add(AgentPending(agent_id=agent_id, state=state, reason=_clip(reason), at=at))

    # --- reads -----------------------------------------------------------------------------

    async def get_call(self, uniqueid: str) -> dict[str, Any] | None:
        async with self.session() as s:
            call = await s.scalar(select(Call).where(Call.uniqueid == uniqueid)
                                  .options(selectinload(Call.key_trail), selectinload(Call.events)))
            return _call_dict(call) if call else None

    async def recent_calls(self, limit: int = 20) -> list[dict[str, Any]]:
        async with self.session() as s:
            rows = await s.scalars(select(Call).order_by(Call.id.desc()).limit(limit)
                                   .options(selectinload(Call.key_trail), selectinload(Call.events)))
            return [_call_dict(c) for c in rows]

    async def latest_agent_states(self) -> dict[str, dict[str, Any]]:
        """Each agent's newest state row: where a restarted server takes them up again."""
        async with self.session() as s:
            newest = (select(AgentStateChange.agent_id, func.max(AgentStateChange.id).label("id"))
                      .group_by(AgentStateChange.agent_id).subquery())
            rows = await s.scalars(select(AgentStateChange)
                                   .join(newest, AgentStateChange.id == newest.c.id))
            return {r.agent_id: {"state": r.state, "reason": r.reason, "at": _aware(r.at),
                                 "previous": r.previous, "call_uniqueid": r.call_uniqueid}
                    for r in rows}

    async def latest_agent_pending(self) -> dict[str, dict[str, Any]]:
        """Each agent's newest pending-state row (``state`` None: nothing pending)."""
        async with self.session() as s:
            newest = (select(AgentPending.agent_id, func.max(AgentPending.id).label("id"))
                      .group_by(AgentPending.agent_id).subquery())
            rows = await s.scalars(select(AgentPending).join(newest, AgentPending.id == newest.c.id))
            return {r.agent_id: {"state": r.state, "reason": r.reason, "at": _aware(r.at)}
                    for r in rows}

    async def agent_states(self, agent_id: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """An agent's state rows, oldest first."""
        async with self.session() as s:
            q = select(AgentStateChange).where(AgentStateChange.agent_id == agent_id)
            if since is not None:
                q = q.where(AgentStateChange.at >= since)
            rows = await s.scalars(q.order_by(AgentStateChange.id))
            return [{"state": r.state, "reason": r.reason, "at": _aware(r.at),
                     "previous": r.previous, "call_uniqueid": r.call_uniqueid} for r in rows]

    async def open_calls(self) -> list[dict[str, Any]]:
        """Calls without an end reason, with their key trail and timeline, oldest first."""
        async with self.session() as s:
            rows = await s.scalars(select(Call).where(Call.end_reason.is_(None)).order_by(Call.id)
                                   .options(selectinload(Call.key_trail), selectinload(Call.events)))
            return [_call_dict(c) for c in rows]

    @staticmethod
    async def _call(s, uniqueid: str) -> Call:  # noqa: ANN001
        call = await s.scalar(select(Call).where(Call.uniqueid == uniqueid)
                              .options(selectinload(Call.key_trail)))
        if call is None:
            raise LookupError(f"no call record for uniqueid {uniqueid!r}")
        return call


def _aware(dt: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _call_dict(c: Call) -> dict[str, Any]:
    return {
        "uniqueid": c.uniqueid, "linkedid": c.linkedid, "channel": c.channel,
        "caller_number": c.caller_number, "caller_name": c.caller_name, "did": c.did,
        "skill_group": c.skill_group, "verification": c.verification,
        "verification_method": c.verification_method,
        "arrived_at": _utc(c.arrived_at), "answered_at": _utc(c.answered_at),
        "ended_at": _utc(c.ended_at), "end_reason": c.end_reason,
        "key_trail": [{"node": k.node, "keys": k.keys, "at": _utc(k.at)} for k in c.key_trail],
        "events": [{"kind": e.kind, "at": _utc(e.at), "detail": e.detail} for e in c.events],
    }
