"""The web pages' side of the store: users, sessions, the audit log, notes, recent calls, and
the rows the statistics are computed from. Same database and engine as :class:`acd.store.db.Store`
(``store.session``); tables from migration 0005.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import selectinload

from acd.reports.export import csv_cell as _csv_cell
from acd.store.models import (AgentHiddenCall, AgentStateChange, AuditEntry, Call, CallEvent,
                              CallNote, WebSession, WebUser)

NOTE_LIMIT = 2000
_USER_COLUMNS = (WebUser.username, WebUser.role, WebUser.agent_id, WebUser.password_hash,
                 WebUser.password_check)
RECENT = 10


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _iso(dt: datetime | None) -> str | None:
    dt = _aware(dt)
    return dt.isoformat() if dt else None


def _wait(c: Call) -> float | None:
    """Seconds from the first entry into a queue to the first answer (or to the end)."""
    queued = next((e.at for e in c.events if e.kind == "queued"), None)
    if queued is None:
        return None
    until = next((e.at for e in c.events if e.kind == "answered"), None) or c.ended_at
    if until is None:
        return None
    return round(max(0.0, (_aware(until) - _aware(queued)).total_seconds()), 1)


def call_summary(c: Call) -> dict[str, Any]:
    """A call as lists show it (no timeline)."""
    agent = None
    for e in c.events:
        if e.kind == "answered" and isinstance(e.detail, dict) and e.detail.get("agent"):
            agent = e.detail["agent"]
    return {"wait_seconds": _wait(c), "rating": c.rating, "uniqueid": c.uniqueid, "caller_number": c.caller_number,
            "caller_name": c.caller_name, "did": c.did, "skill_group": c.skill_group,
            "verification": c.verification, "verification_method": c.verification_method,
            "arrived_at": _iso(c.arrived_at), "answered_at": _iso(c.answered_at),
            "ended_at": _iso(c.ended_at), "end_reason": c.end_reason, "agent_id": agent,
            "key_trail": [{"node": k.node, "keys": k.keys} for k in c.key_trail]}


try:                                     # call control's legs (migration 0003)
    from acd.store.models import CallLeg
except ImportError:                      # pragma: no cover - a build without call control
    CallLeg = None


def _answered_by(agent_id: str):
    """The agent answered the call, or had a part in it (a transfer or consult target, an
    outbound call: call control's legs)."""
    answered = exists().where(and_(CallEvent.call_id == Call.id, CallEvent.kind == "answered",
                                   CallEvent.detail["agent"].as_string() == agent_id))
    if CallLeg is None:
        return answered
    return or_(answered, exists().where(and_(CallLeg.call_id == Call.id,
                                             CallLeg.agent_id == agent_id)))


class WebDb:
    def __init__(self, store: Any) -> None:
        self.store = store

    def _s(self):
        return self.store.session()

    # --- users ------------------------------------------------------------------------------

    async def users(self) -> dict[str, dict[str, Any]]:
        async with self._s() as s:
            rows = (await s.execute(select(*_USER_COLUMNS))).all()
        return {r.username: dict(r._mapping) for r in rows}

    async def user(self, username: str) -> dict[str, Any] | None:
        async with self._s() as s:
            u = await s.scalar(select(WebUser).where(WebUser.username == username))
            if u is None:
                return None
            return {"username": u.username, "role": u.role, "agent_id": u.agent_id,
                    "password_hash": u.password_hash}

    async def put_users(self, users: Iterable[dict[str, Any]], *, now: datetime) -> None:
        """Make the table exactly these users (insert, update, remove); a removed user's
        sessions go too, and so do those of a user whose role, agent or hash changed. A
        handful of statements, whatever the number of users."""
        users = list(users)
        names = {u["username"] for u in users}
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        t = WebUser.__table__
        async with self._s() as s, s.begin():
            have = {r.username: r for r in (await s.execute(select(*_USER_COLUMNS))).all()}
            for u in users:
                row = have.get(u["username"])
                values = {"role": u["role"], "agent_id": u["agent_id"],
                          "password_hash": u["password_hash"],
                          "password_check": u.get("password_check")}
                if row is None:
                    new.append({"username": u["username"], **values, "updated_at": now})
                elif (row.role, row.agent_id, row.password_hash) != (
                        u["role"], u["agent_id"], u["password_hash"]):
                    changed.append({"name": u["username"], **values, "updated_at": now})
                elif row.password_check != values["password_check"]:
                    # no change of password: sessions stay
                    checks.append({"name": u["username"],
                                   "password_check": values["password_check"]})
            gone = [n for n in have if n not in names]
            ended = gone + [c["name"] for c in changed]
            if gone:
                await s.execute(delete(WebUser).where(WebUser.username.in_(gone)))
            if ended:
                await s.execute(delete(WebSession).where(WebSession.username.in_(ended)))
            for rows in (changed, checks):      # one executemany each
                if rows:
                    await s.execute(update(t).where(t.c.username == bindparam("name")), rows)
            if new:
                await s.execute(insert(t), new)

    async def set_passwords(self, users: Iterable[dict[str, Any]], *, now: datetime,
                            sessions_before: datetime | None = None) -> None:
        """Each user's ``password_hash`` and ``password_check``, in one transaction; the
        sessions of those whose password ``changed`` end (those made before
        ``sessions_before``, if given)."""
        users = list(users)
        if not users:
            return
        t = WebUser.__table__
        rows = [{"name": u["username"], "password_hash": u["password_hash"],
                 "password_check": u["password_check"],
                 **({"updated_at": now} if u["changed"] else {})} for u in users]
        ended = [u["username"] for u in users if u["changed"]]
        async with self._s() as s, s.begin():
            for same in ([r for r in rows if "updated_at" in r],
                         [r for r in rows if "updated_at" not in r]):
                if same:                        # one executemany each
                    await s.execute(update(t).where(t.c.username == bindparam("name")), same)
            if ended:
                q = delete(WebSession).where(WebSession.username.in_(ended))
                if sessions_before is not None:
                    q = q.where(WebSession.created_at < sessions_before)
                await s.execute(q)

    # --- sessions ---------------------------------------------------------------------------

    async def add_session(self, *, token_hash: str, user: dict[str, Any], csrf: str,
                          now: datetime, expires: datetime, address: str) -> None:
        async with self._s() as s, s.begin():
            s.add(WebSession(token_hash=token_hash, username=user["username"], role=user["role"],
                             agent_id=user["agent_id"], csrf_token=csrf, created_at=now,
                             expires_at=expires, address=address[:64]))

    async def session(self, token_hash: str) -> dict[str, Any] | None:
        async with self._s() as s:
            r = await s.scalar(select(WebSession).where(WebSession.token_hash == token_hash))
            if r is None:
                return None
            return {"id": r.id, "username": r.username, "role": r.role, "agent_id": r.agent_id,
                    "csrf": r.csrf_token, "created_at": _aware(r.created_at),
                    "expires_at": _aware(r.expires_at)}

    async def drop_session(self, token_hash: str) -> None:
        async with self._s() as s, s.begin():
            await s.execute(delete(WebSession).where(WebSession.token_hash == token_hash))

    async def drop_expired(self, now: datetime) -> int:
        async with self._s() as s, s.begin():
            r = await s.execute(delete(WebSession).where(WebSession.expires_at <= now))
            return r.rowcount or 0

    # --- audit ------------------------------------------------------------------------------

    async def audit(self, *, at: datetime, username: str, role: str, action: str, target: str,
                    status: int, detail: dict[str, Any], address: str) -> None:
        async with self._s() as s, s.begin():
            s.add(AuditEntry(at=at, username=username[:40], role=role[:16], action=action[:128],
                             target=target[:255], status=status, detail=detail,
                             address=address[:64]))

    async def audit_entries(self, *, limit: int = 100, offset: int = 0,
                            username: str | None = None) -> list[dict[str, Any]]:
        async with self._s() as s:
            q = select(AuditEntry)
            if username:
                q = q.where(AuditEntry.username == username)
            rows = await s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
            return [{"id": r.id, "at": _iso(r.at), "username": r.username, "role": r.role,
                     "action": r.action, "target": r.target, "status": r.status,
                     "detail": r.detail, "address": r.address} for r in rows]

    # --- an agent's recent calls and notes ---------------------------------------------------

    async def recent_calls(self, agent_id: str, limit: int = RECENT) -> list[dict[str, Any]]:
        """The agent's newest answered calls, those they took off the list left out, each
        with the agent's note."""
        async with self._s() as s:
            hidden = exists().where(and_(AgentHiddenCall.agent_id == agent_id,
                                         AgentHiddenCall.call_uniqueid == Call.uniqueid))
            rows = list(await s.scalars(
                select(Call).where(_answered_by(agent_id), ~hidden).order_by(Call.id.desc())
                .limit(limit).options(selectinload(Call.key_trail), selectinload(Call.events))))
            notes = {n.call_uniqueid: n.text for n in await s.scalars(
                select(CallNote).where(CallNote.agent_id == agent_id,
                                       CallNote.call_uniqueid.in_([c.uniqueid for c in rows])))}
        return [{**call_summary(c), "note": notes.get(c.uniqueid, "")} for c in rows]

    async def took_call(self, agent_id: str, uniqueid: str) -> bool:
        async with self._s() as s:
            return bool(await s.scalar(select(func.count(Call.id)).where(
                Call.uniqueid == uniqueid, _answered_by(agent_id))))

    async def hide_call(self, agent_id: str, uniqueid: str, now: datetime) -> None:
        async with self._s() as s, s.begin():
            found = await s.scalar(select(AgentHiddenCall).where(
                AgentHiddenCall.agent_id == agent_id, AgentHiddenCall.call_uniqueid == uniqueid))
            if found is None:
                s.add(AgentHiddenCall(agent_id=agent_id, call_uniqueid=uniqueid, at=now))

    async def set_note(self, agent_id: str, uniqueid: str, text: str, now: datetime) -> None:
        async with self._s() as s, s.begin():
            note = await s.scalar(select(CallNote).where(CallNote.agent_id == agent_id,
                                                         CallNote.call_uniqueid == uniqueid))
            if note is None:
                s.add(CallNote(agent_id=agent_id, call_uniqueid=uniqueid, text=text, updated_at=now))
            else:
                note.text, note.updated_at = text, now

    async def notes_of_call(self, uniqueid: str) -> list[dict[str, Any]]:
        async with self._s() as s:
            rows = await s.scalars(select(CallNote).where(CallNote.call_uniqueid == uniqueid)
                                   .order_by(CallNote.id))
            return [{"agent_id": n.agent_id, "text": n.text, "updated_at": _iso(n.updated_at)}
                    for n in rows]

    # --- screen pop ---------------------------------------------------------------------------

    async def call(self, uniqueid: str) -> Call | None:
        async with self._s() as s:
            return await s.scalar(select(Call).where(Call.uniqueid == uniqueid)
                                  .options(selectinload(Call.key_trail), selectinload(Call.events)))

    async def earlier_calls(self, caller_number: str, before_uniqueid: str,
                            limit: int = 5) -> list[dict[str, Any]]:
        """The caller's earlier calls (same number), newest first, with the notes on them."""
        if not caller_number:
            return []
        async with self._s() as s:
            rows = list(await s.scalars(
                select(Call).where(Call.caller_number == caller_number,
                                   Call.uniqueid != before_uniqueid)
                .order_by(Call.id.desc()).limit(limit)
                .options(selectinload(Call.key_trail), selectinload(Call.events))))
            notes: dict[str, list[str]] = {}
            for n in await s.scalars(select(CallNote).where(
                    CallNote.call_uniqueid.in_([c.uniqueid for c in rows]))):
                notes.setdefault(n.call_uniqueid, []).append(n.text)
        return [{**call_summary(c), "notes": notes.get(c.uniqueid, [])} for c in rows]

    # --- call records for the admin API ------------------------------------------------------

    async def find_calls(self, *, since: datetime | None = None, until: datetime | None = None,
                         group: str | None = None, agent: str | None = None,
                         end_reason: str | None = None, number: str | None = None,
                         verification: str | None = None, limit: int = 100,
                         offset: int = 0, with_legs: bool = False) -> list[dict[str, Any]]:
        """Call records, newest first; ``with_legs``: also each agent's part (talk, hold,
        wrap-up) and the agents' notes, as the export has them."""
        async with self._s() as s:
            q = select(Call)
            if since is not None:
                q = q.where(Call.arrived_at >= since)
            if until is not None:
                q = q.where(Call.arrived_at < until)
            if group:
                q = q.where(Call.skill_group == group)
            if agent:
                q = q.where(_answered_by(agent))
            if end_reason:
                q = q.where(Call.end_reason == end_reason)
            if number:
                q = q.where(or_(Call.caller_number == number, Call.did == number))
            if verification:
                q = q.where(Call.verification == verification)
            rows = list(await s.scalars(q.order_by(Call.id.desc()).limit(limit).offset(offset)
                                        .options(selectinload(Call.key_trail),
                                                 selectinload(Call.events))))
            out = [call_summary(c) for c in rows]
            if not with_legs or not rows:
                return out
            legs: dict[int, list[CallLeg]] = {}
            for g in await s.scalars(select(CallLeg).where(CallLeg.call_id.in_([c.id for c in rows]))
                                     .order_by(CallLeg.id)):
                legs.setdefault(g.call_id, []).append(g)
            notes: dict[str, list[CallNote]] = {}
            for n in await s.scalars(select(CallNote).where(
                    CallNote.call_uniqueid.in_([c.uniqueid for c in rows])).order_by(CallNote.id)):
                notes.setdefault(n.call_uniqueid, []).append(n)
            for c, row in zip(rows, out):
                mine = legs.get(c.id, [])
                row["talk_seconds"] = round(sum(g.talk_seconds for g in mine), 1)
                row["hold_seconds"] = round(sum(g.hold_seconds for g in mine), 1)
                row["wrapup_seconds"] = round(sum(g.wrapup_seconds or 0.0 for g in mine), 1)
                row["legs"] = [{"agent_id": g.agent_id, "role": g.role, "reason": g.reason,
                                "talk_seconds": round(g.talk_seconds, 1),
                                "hold_seconds": round(g.hold_seconds, 1),
                                "wrapup_seconds": (None if g.wrapup_seconds is None
                                                   else round(g.wrapup_seconds, 1))}
                               for g in mine]
                row["notes"] = [{"agent_id": n.agent_id, "text": n.text}
                                for n in notes.get(c.uniqueid, [])]
            return out

    # --- rows for the statistics ---------------------------------------------------------------

    async def calls_active_since(self, since: datetime) -> list[dict[str, Any]]:
        """Every call with a timeline entry at or after ``since``, with its whole timeline
        (times as UNIX seconds)."""
        async with self._s() as s:
            ids = select(CallEvent.call_id).where(CallEvent.at >= since).distinct()
            rows = await s.scalars(select(Call).where(Call.id.in_(ids)).order_by(Call.id)
                                   .options(selectinload(Call.events)))
            return [{"uniqueid": c.uniqueid, "group": c.skill_group,
                     "verification": c.verification,
                     "events": [{"kind": e.kind, "at": _aware(e.at).timestamp(),
                                 "detail": e.detail if isinstance(e.detail, dict) else {}}
                                for e in c.events]} for c in rows]

    async def state_rows_since(self, since: datetime) -> dict[str, list[dict[str, Any]]]:
        """Per agent: the last state row before ``since`` (where they were at its start),
        then every row after it, oldest first (times as UNIX seconds)."""
        out: dict[str, list[dict[str, Any]]] = {}
        async with self._s() as s:
            before = (select(AgentStateChange.agent_id, func.max(AgentStateChange.id).label("id"))
                      .where(AgentStateChange.at < since).group_by(AgentStateChange.agent_id)
                      .subquery())
            first = await s.scalars(select(AgentStateChange)
                                    .join(before, AgentStateChange.id == before.c.id))
            for r in first:
                out.setdefault(r.agent_id, []).append({"state": r.state, "at": since.timestamp()})
            rows = await s.scalars(select(AgentStateChange).where(AgentStateChange.at >= since)
                                   .order_by(AgentStateChange.id))
            for r in rows:
                out.setdefault(r.agent_id, []).append({"state": r.state,
                                                       "at": _aware(r.at).timestamp()})
        return out


CSV_FIELDS = ("uniqueid", "arrived_at", "answered_at", "ended_at", "caller_number", "caller_name",
              "did", "skill_group", "agent_id", "end_reason", "verification",
              "verification_method", "key_trail", "wait_seconds", "talk_seconds",
              "hold_seconds", "wrapup_seconds", "rating", "legs", "notes")


def calls_csv(calls: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_FIELDS)
    for c in calls:
        row = dict(c)
        row["key_trail"] = " ".join(k["keys"] for k in c.get("key_trail", []))
        # one agent's part per line within the cell: agent, role, talk/hold/wrap-up, why it ended
        row["legs"] = "\n".join(
            f"{g['agent_id']} {g['role']} talk {g['talk_seconds']} hold {g['hold_seconds']} "
            f"wrapup {g['wrapup_seconds'] if g['wrapup_seconds'] is not None else '-'} "
            f"{g['reason']}" for g in c.get("legs") or [])
        row["notes"] = "\n".join(f"{n['agent_id']}: {n['text']}" for n in c.get("notes") or [])
        w.writerow([_csv_cell(row.get(f)) for f in CSV_FIELDS])
    return buf.getvalue()
