"""Recording the agents' conversations (MixMonitor over AMI), pausing them for card numbers,
and making the finished files.

==========================  ===============================================================
what happens                what is done
==========================  ===============================================================
an agent's leg is bridged   if the call's group records it (``record``: all, none or a
with the caller             share, drawn once per call): ``MixMonitor`` on the agent's
                            channel, option ``D`` (agent and other party interleaved, see
                            :mod:`acd.recordings`), into ``<spool>/<name>.rec.raw``, with
                            the command ``mv`` to ``<name>.raw`` once Asterisk has closed it
the agent pauses / resumes  ``MixMonitorMute`` (both directions) on the agent's channel:
                            the file goes on with silence; the span is recorded
the leg ends                the folder is looked at until ``<name>.raw`` is there; then the
                            stereo WAV under the recordings folder, its length, size and
                            SHA-256 go on record (``done``)
MixMonitor refused, or no   the record says ``failed`` and why; the call is never touched
file after the leg ended
==========================  ===============================================================

The state of a recording lives where it cannot be lost by our restart: the file in
Asterisk's spool, the mute in Asterisk, the row (and its pause spans) in the store. A
restarted server reads the rows still ``recording`` (:meth:`Recorder.take_up`) and goes on
finishing them; a paused recording stays paused.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acd import recordings as files
from acd.ami.client import AmiError
from acd.errors import UserError
from acd.runtime.ami_out import AmiOut
from acd.runtime.effects import Records, utc

#: How long after the leg ended Asterisk may take to close the file before it counts as
#: failed (its thread closes it within milliseconds; a loaded machine may take seconds).
CLOSE_GRACE = 30.0
#: With no file at all (not even the one being written), how long after the leg ended the
#: recording counts as failed.
NO_FILE_GRACE = 3.0
#: How often the spool is looked at while a recording is being closed.
LOOK_EVERY = 0.25
#: How often recordings past ``recordings.keep_days`` are purged (and once at start).
PURGE_EVERY = 6 * 3600.0


@dataclass(eq=False)
class Rec:
    """A recording under way (or being closed): one agent's part of one call."""
    name: str
    call_id: str
    agent_id: str
    started: float                   # our clock, when MixMonitor was asked
    paused_at: float | None = None   # our clock, while paused
    ended: float | None = None       # the leg ended: Asterisk closes the file
    failed: str | None = None
    spans: list[list[float | None]] = field(default_factory=list)


class Recorder:
    """See the module docstring. ``spool``: the folder MixMonitor writes to as Asterisk sees
    it (``inside``) and as we see it (``host``); None: no Asterisk here, recordings fail.
    ``folder``: the finished recordings. ``leg_channel(call, agent)``: the agent's channel
    now (it changes with a transfer or a restart)."""

    def __init__(self, out: AmiOut, records: Records, *, shares: dict[str, float],
                 group_of: Callable[[str], str | None],
                 leg_channel: Callable[[str, str], str | None],
                 spool: tuple[str, Path] | None, folder: Path, log: Any,
                 clock: Callable[[], float], rng: random.Random | None = None,
                 store: Any = None, keep_days: int = 0) -> None:
        self.out, self.records, self.log, self.clock = out, records, log, clock
        self.shares, self.group_of, self.leg_channel = dict(shares), group_of, leg_channel
        self.spool, self.folder = spool, folder
        self.rng = rng or random.Random()
        self.active: dict[str, Rec] = {}       # name -> recording under way or closing
        self.drawn: dict[str, bool] = {}       # call -> recorded or not (drawn once)
        self.failed_total = 0
        self.last_error: str | None = None
        self.store, self.keep_days = store, keep_days
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._purging: asyncio.Task | None = None

    # ------------------------------------------------------------------ the call's side
    def records_call(self, call_id: str) -> bool:
        """Whether this call's conversations are recorded: its group's share, drawn once
        per call (a transfer keeps the draw)."""
        if call_id not in self.drawn:
            share = self.shares.get(self.group_of(call_id) or "", 0.0)
            self.drawn[call_id] = share >= 1.0 or (share > 0.0 and self.rng.random() < share)
        return self.drawn[call_id]

    def bridged(self, call_id: str, agent_id: str, leg_uid: str, channel: str) -> None:
        """The agent's leg ``leg_uid`` talks with the caller: record it if the group says
        so (once per leg: a leg bridged again after a hold goes on in the same file)."""
        if not self.records_call(call_id):
            return
        try:
            name = files.recording_name(call_id, leg_uid)
        except ValueError as e:
            self._failed_now(None, str(e))
            return
        if name in self.active:
            return
        rec = self.active[name] = Rec(name, call_id, agent_id, self.clock())
        self.records.submit("recording_started", self.records.store.recording_started, call_id,
                            agent_id=agent_id, name=name, at=utc(rec.started),
                            bind={"call": call_id, "agent": agent_id})
        self.log.info("recording.started", call=call_id, agent=agent_id, recording=name)
        self.out.chain(call_id, self._start(rec, channel))

    async def _start(self, rec: Rec, channel: str) -> None:
        if self.spool is None:
            self._fail(rec, "no Asterisk spool folder known to this server")
            return
        inside = self.spool[0]
        part, done = f"{inside}/{rec.name}.rec.raw", f"{inside}/{rec.name}.raw"
        try:
            await self.out.action("MixMonitor", call=rec.call_id, agent=rec.agent_id,
                                  Channel=channel, File=part, Options="D",
                                  Command=f"/bin/mv {part} {done}")
        except AmiError as e:
            self._fail(rec, f"MixMonitor refused: {e}")

    def leg_ended(self, call_id: str, agent_id: str, leg_uid: str) -> None:
        """The agent's leg is gone: Asterisk closes the file; it is finished from there."""
        try:
            name = files.recording_name(call_id, leg_uid)
        except ValueError:
            return
        rec = self.active.get(name)
        if rec is not None and rec.ended is None:
            rec.ended = self.clock()
            self._wake.set()

    def call_ended(self, call_id: str) -> None:
        self.drawn.pop(call_id, None)

    # ------------------------------------------------------------------ pause (PCI)
    def _agents_rec(self, agent_id: str) -> Rec:
        for rec in self.active.values():
            if rec.agent_id == agent_id and rec.ended is None and rec.failed is None:
                return rec
        raise UserError("recording.none", f"agent {agent_id} has no call being recorded")

    def pause(self, agent_id: str) -> dict[str, Any]:
        """Stop writing the agent's conversation (silence in the file) until resumed."""
        rec = self._agents_rec(agent_id)
        if rec.paused_at is None:
            self._mute(rec, True)
        return self.status(agent_id)

    def resume(self, agent_id: str) -> dict[str, Any]:
        rec = self._agents_rec(agent_id)
        if rec.paused_at is not None:
            self._mute(rec, False)
        return self.status(agent_id)

    def _mute(self, rec: Rec, paused: bool) -> None:
        now = self.clock()
        offset = now - rec.started
        if paused:
            rec.paused_at = now
            rec.spans.append([round(offset, 3), None])
        else:
            rec.paused_at = None
            if rec.spans and rec.spans[-1][1] is None:
                rec.spans[-1][1] = round(offset, 3)
        channel = self.leg_channel(rec.call_id, rec.agent_id)
        self.log.info("recording.paused" if paused else "recording.resumed", call=rec.call_id,
                      agent=rec.agent_id, recording=rec.name, offset=round(offset, 3))
        self.records.submit("recording_paused", self.records.store.recording_paused, rec.name,
                            paused=paused, at=utc(now), offset=offset,
                            bind={"call": rec.call_id, "agent": rec.agent_id})
        if channel is not None:
            self.out.chain(rec.call_id, self._mute_action(rec, channel, paused))

    async def _mute_action(self, rec: Rec, channel: str, paused: bool) -> None:
        try:
            await self.out.action("MixMonitorMute", call=rec.call_id, agent=rec.agent_id,
                                  Channel=channel, Direction="both", State=1 if paused else 0)
        except AmiError:
            pass                    # logged by AmiOut; the leg is going or gone

    def status(self, agent_id: str) -> dict[str, Any]:
        """The agent's recording as their page shows it."""
        for rec in self.active.values():
            if rec.agent_id == agent_id and rec.ended is None:
                return {"recording": rec.name, "paused": rec.paused_at is not None,
                        "failed": rec.failed}
        return {"recording": None, "paused": False, "failed": None}

    # ------------------------------------------------------------------ finishing
    async def take_up(self, store: Any) -> None:
        """After a restart: the recordings the store says are under way are ours again
        (paused ones stay paused: Asterisk keeps the mute, the row keeps the span)."""
        for r in await store.recordings(status="recording"):
            if r["name"] in self.active:
                continue
            started = datetime.fromisoformat(r["started_at"]).timestamp()
            spans = [list(x) for x in r.get("paused") or []]
            rec = Rec(r["name"], r["call"], r["agent_id"], started, spans=spans)
            if spans and spans[-1][1] is None:
                rec.paused_at = started + float(spans[-1][0] or 0.0)
            self.active[rec.name] = rec
            self.drawn[rec.call_id] = True
        if self.active:
            self._wake.set()

    def still_talking(self, names: set[str]) -> None:
        """After a restart's rebuild: which taken-up recordings still have their leg
        (``names``); the others' legs ended while we were away."""
        now = self.clock()
        for rec in self.active.values():
            if rec.ended is None and rec.name not in names:
                rec.ended = now
        self._wake.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._closing(), name="recordings")
        if self._purging is None and self.keep_days > 0 and self.store is not None:
            self._purging = loop.create_task(self._retention(), name="recordings-retention")

    async def stop(self) -> None:
        for task in (self._task, self._purging):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._purging = None

    # ------------------------------------------------------------------ retention
    async def _retention(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:   # noqa: BLE001 - tried again at the next round
                self.log.exception("recording.purge_failed")
            await asyncio.sleep(PURGE_EVERY)

    async def purge(self) -> int:
        """Delete the files of recordings older than ``keep_days`` (the rows stay, as
        ``deleted`` by ``retention``); logs what it removed. Returns how many."""
        before = datetime.fromtimestamp(self.clock() - self.keep_days * 86400.0, timezone.utc)
        removed = 0
        while True:
            old = await self.store.recordings(status="done", before=before, limit=500)
            if not old:
                break
            for r in old:
                try:
                    files.stored_file(self.folder, r["path"] or "").unlink()
                except UserError:
                    pass                            # gone already, or never a file here
                except OSError as e:
                    self.log.error("recording.purge_failed", recording=r["name"],
                                   error=e.strerror or str(e))
                    return removed
                await self.store.recording_deleted(r["id"], at=utc(self.clock()),
                                                   by="retention")
                removed += 1
                self.log.info("recording.purged", recording=r["name"], call=r["call"],
                              path=r["path"], started=r["started_at"])
        if removed:
            self.log.info("recording.purge_done", removed=removed, keep_days=self.keep_days)
        return removed

    async def _closing(self) -> None:
        """Finish each recording once Asterisk closed its file (or give up on it)."""
        while True:
            closing = [r for r in self.active.values() if r.ended is not None or r.failed]
            if not closing:
                self._wake.clear()
                await self._wake.wait()
                continue
            for rec in closing:
                try:
                    await self._finish_one(rec)
                except Exception:   # noqa: BLE001 - one file must not stop the others
                    self.log.exception("recording.finish_failed", recording=rec.name)
                    self.active.pop(rec.name, None)
            await asyncio.sleep(LOOK_EVERY)

    async def _finish_one(self, rec: Rec) -> None:
        if rec.failed is not None:
            self.active.pop(rec.name, None)
            return
        assert rec.ended is not None
        host = self.spool[1] if self.spool is not None else None
        done = host / f"{rec.name}.raw" if host is not None else None
        part = host / f"{rec.name}.rec.raw" if host is not None else None
        if done is None or not done.exists():
            since = self.clock() - rec.ended
            writing = part is not None and part.exists()
            if since < (CLOSE_GRACE if writing else NO_FILE_GRACE):
                return                          # Asterisk is still closing it
            if writing:
                done = part                     # its command did not run: take it as it is
            else:
                self._fail(rec, "Asterisk wrote no file (recordings folder not writable, or "
                                "the disk full?)")
                self.active.pop(rec.name, None)
                return
        if done.stat().st_size == 0:
            done.unlink(missing_ok=True)
            self._fail(rec, "Asterisk wrote no audio into the file (the disk full?)")
            self.active.pop(rec.name, None)
            return
        try:
            out = await asyncio.to_thread(files.finish, done, self.folder,
                                          datetime.fromtimestamp(rec.started, timezone.utc),
                                          rec.name)
        except OSError as e:
            self._fail(rec, f"the finished file could not be written: {e.strerror or e}")
            self.active.pop(rec.name, None)
            return
        self.active.pop(rec.name, None)
        self.records.submit("recording_finished", self.records.store.recording_finished,
                            rec.name, status="done", at=utc(self.clock()), path=out.path,
                            seconds=out.seconds, size=out.bytes, sha256=out.sha256,
                            bind={"call": rec.call_id, "agent": rec.agent_id})
        self.log.info("recording.finished", call=rec.call_id, agent=rec.agent_id,
                      recording=rec.name, path=out.path, seconds=out.seconds, bytes=out.bytes)

    def _fail(self, rec: Rec, why: str) -> None:
        if rec.failed is not None:
            return
        rec.failed = why
        self._failed_now(rec, why)
        self.records.submit("recording_finished", self.records.store.recording_finished,
                            rec.name, status="failed", at=utc(self.clock()), error=why,
                            bind={"call": rec.call_id, "agent": rec.agent_id})
        self._wake.set()

    def _failed_now(self, rec: Rec | None, why: str) -> None:
        self.failed_total += 1
        self.last_error = why
        self.log.error("recording.failed", call=rec.call_id if rec else None,
                       agent=rec.agent_id if rec else None,
                       recording=rec.name if rec else None, error=why)

    def health(self) -> dict[str, Any]:
        return {"active": sum(1 for r in self.active.values() if r.ended is None),
                "failed": self.failed_total, "last_error": self.last_error,
                "free_bytes": files.free_bytes(self.folder)}


__all__ = ["Recorder", "Rec", "CLOSE_GRACE"]
