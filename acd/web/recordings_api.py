"""HTTP routes for call recordings.

======================================  ==============================================
``GET /api/calls/{uniqueid}/recordings``  the call's recordings: agent, status, start,
                                        length, size, SHA-256, pause spans (supervisors,
                                        admins; an agent their own calls' if
                                        ``recordings.agents_hear_own``)
``GET /api/recordings/{id}/audio``      the WAV, with HTTP range requests (a player
                                        seeks); ``?download=1`` as an attachment. Every
                                        play and download is in the audit log
``DELETE /api/recordings/{id}``         the file deleted (admins); the row stays,
                                        ``deleted``, and the call's timeline says who
======================================  ==============================================

A file is only ever reached through its row: the stored path is checked to be a day folder
and a file name inside the recordings folder (:func:`acd.recordings.stored_file`), whatever
the database holds.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from acd.errors import UserError
from acd.recordings import stored_file
from acd.web.auth import USER


def add_recording_routes(app: web.Application, *, store: Any, cfg: Any, auth: Any) -> None:
    def may_hear(user: dict[str, Any], rec: dict[str, Any]) -> bool:
        if user["role"] in ("supervisor", "admin"):
            return True
        return bool(user["role"] == "agent" and cfg.recordings.agents_hear_own
                    and user.get("agent_id") == rec["agent_id"])

    async def one(request: web.Request) -> dict[str, Any]:
        raw = request.match_info["id"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:   # "²" is a digit too
            raise UserError("recording.not_found", "no recording with that id")
        rec = await store.recording(int(raw))
        if rec is None:
            raise UserError("recording.not_found", "no recording with that id")
        return rec

    async def of_call(request: web.Request) -> web.Response:
        user = request[USER]
        recs = await store.recordings(request.match_info["uniqueid"][:64])
        if user["role"] == "agent":
            recs = [r for r in recs if may_hear(user, r)]
        return web.json_response({"recordings": recs})

    async def audio(request: web.Request) -> web.StreamResponse:
        user = request[USER]
        rec = await one(request)
        download = request.query.get("download") in ("1", "true", "yes")
        action = "recording.download" if download else "recording.play"
        detail = {"recording": rec["id"], "call": rec["call"], "agent": rec["agent_id"]}
        if not may_hear(user, rec):
            await auth.audit(request, user, action, 403, {**detail, "refused":
                                                          "recording.forbidden"})
            raise UserError("recording.forbidden",
                            f"the role {user['role']} may not hear this recording")
        if rec["status"] != "done" or not rec["path"]:
            await auth.audit(request, user, action, 410, {**detail, "status": rec["status"]})
            raise UserError("recording.file_missing",
                            f"this recording has no file ({rec['status']})")
        try:
            path = stored_file(cfg.recordings_folder, rec["path"])
        except UserError as e:
            await auth.audit(request, user, action, 410 if e.id == "recording.file_missing"
                             else 400, {**detail, "refused": e.id})
            raise
        # Only a first request is audited, not each range a player asks for while seeking.
        if not request.headers.get("Range") or request.headers["Range"].startswith("bytes=0-"):
            await auth.audit(request, user, action, 200, detail)
        headers = {"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
        return web.FileResponse(path, headers=headers)

    async def delete(request: web.Request) -> web.Response:
        user = request[USER]
        rec = await one(request)
        if rec["status"] == "done" and rec["path"]:
            try:
                stored_file(cfg.recordings_folder, rec["path"]).unlink()
            except UserError as e:
                if e.id != "recording.file_missing":
                    raise
        await store.recording_deleted(rec["id"], at=datetime.now(timezone.utc),
                                      by=user.get("username", ""))
        return web.json_response({"deleted": rec["id"]})

    app.router.add_get("/api/calls/{uniqueid}/recordings", of_call)
    app.router.add_get("/api/recordings/{id}/audio", audio)
    app.router.add_delete("/api/recordings/{id}", delete)


__all__ = ["add_recording_routes"]
