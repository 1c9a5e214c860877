"""The store writer: every record the runtime keeps is written here, in order, on one task.

Each turn of the task takes every write waiting at that moment (up to :data:`BATCH_MAX`) and,
when they are the store's own writes (:attr:`acd.store.db.Store.BATCHED`), writes them in ONE
transaction on one connection (:meth:`acd.store.db.Store.write_batch`); any other callable
is awaited alone, as it comes. The rules below are per write, whatever the batch. An idle
writer woken by a write first lets the writes of the next :data:`LINGER` seconds join it
(a call's records come in bursts a few ms apart; each transaction costs a hop to the writes'
thread and a commit), unless someone waits on the writes: a flush, a drain or the stop.

A write that fails for a reason that passes (the database is locked by another process, the
disk is full, a disk I/O error, a dropped connection to a database server) is tried again,
with a backoff that doubles from :data:`FIRST_DELAY` to :data:`MAX_DELAY`; it and every
write after it stay in memory meanwhile, so the order holds (a call's events are never
written before the call row). One warning when such an outage starts
(``store.write_retrying``), one line when it ends (``store.write_recovered``: how many writes
waited and for how long), never a line per try.

Any other failure (a bug, an integrity error, a record that is not there) is logged with the
call or agent it was about (``store.write_failed``), counted in :attr:`StoreWriter.failed`,
and the writer goes on with the next write: one bad record never blocks the others. In a
batch, the writes before the bad one are committed without it, the ones after it follow.

:meth:`StoreWriter.status` is the backlog as the health route shows it. At stop, writes
still waiting after a bounded time are named in an error: saved to the spill file as JSON
lines (``store.writes_spilled``; :meth:`StoreWriter.replay` writes them at the next start,
before anything new), or, without one or if they cannot be saved, lost
(``store.writes_lost_at_stop``). The backlog is kept in memory without a cap: an outage of
hours at a busy center is for the health route's alarm to catch.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acd import log as acdlog
from acd.store.db import Store, sqlite_file
from acd.store.writes import is_transient

FIRST_DELAY = 0.1          # seconds before the first retry
MAX_DELAY = 5.0            # the backoff doubles up to this
SLOW_AFTER = 2.0           # a write waiting longer than this makes the store "degraded"
FLUSH_WAIT = 5.0           # flush() waits at most this long (the writes stay queued)
STOP_WAIT = 5.0            # at stop, how long the backlog may take to be written
IN_FLIGHT_WAIT = 10.0      # at stop, how long a write already with the database may finish
BATCH_MAX = 500            # writes in one transaction at most
LINGER = 0.05              # an idle writer woken by a write waits this long for more


def _log(**bound: Any):
    return acdlog.get_logger(component="store", **bound)


@dataclass(eq=False)
class _Write:
    op: str
    fn: Callable[..., Awaitable[Any]] | None
    args: tuple
    kwargs: dict
    bind: dict
    at: float                                  # when it was submitted (writer's clock)
    mark: asyncio.Future | None = field(default=None)   # a flush marker, not a write

    @property
    def call(self) -> str | None:
        return str(self.bind["call"]) if "call" in self.bind else None


def _batch_store(w: _Write) -> Store | None:
    """The store whose :meth:`~acd.store.db.Store.write_batch` can run ``w``: ``w.fn`` is
    one of its batched writes, not overridden. None: ``w`` is awaited alone."""
    store, name = getattr(w.fn, "__self__", None), getattr(w.fn, "__name__", "")
    if (isinstance(store, Store) and name in Store.BATCHED
            and getattr(w.fn, "__func__", None) is getattr(Store, name)):
        return store
    return None


class StoreWriter:
    """Writes to the store in order, on one task, never blocking the event path.

    ``clock`` (monotonic seconds) and ``sleep`` are injected for tests; ``spill`` is the file
    the writes still waiting at stop are saved to (None: they are only named in the log);
    ``linger`` (seconds, 0: none) is how long an idle writer woken by a write waits for more
    (the linger runs on the loop's clock, not on ``sleep``)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY,
                 slow_after: float = SLOW_AFTER, spill: str | os.PathLike | None = None,
                 linger: float = LINGER) -> None:
        self.clock = clock
        self.sleep = sleep
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.slow_after = slow_after
        self.spill = Path(spill) if spill else None
        self.stop_wait = STOP_WAIT
        self.batch_max = BATCH_MAX
        self.linger = linger
        self._marks = 0             # the flush markers in _pending
        self._hurry = asyncio.Event()   # ends a linger: someone waits on the writes
        self._pending: deque[_Write] = deque()
        self._count = 0             # the writes in _pending (flush markers apart)
        self._by_call: dict[str, deque[_Write]] = {}   # their writes still waiting, per call
        self._alone = 0             # writes to run one by one (a batch failed as a whole)
        self._batch_size = 0        # the writes of the batch with the database now
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.failed = 0             # writes given up (not transient): logged, counted
        self.written = 0
        self.retries = 0
        self.outages = 0
        self._failing_since: float | None = None
        self._last_error = ""
        self._outage_writes = 0     # writes that waited during the current outage
        self._outage_oldest = 0.0   # when the write that waits longest was submitted
        self._in_flight = False     # a write is with the database right now
        self._stop_now = False
        self._outage: asyncio.Event | None = None   # set while failing (ends flush waits)

    # ------------------------------------------------------------------ life

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._wakeup is None or self._idle is None:
            self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
            if not self._pending:
                self._idle.set()
        return self._wakeup, self._idle

    def start(self) -> None:
        if self._task is None:
            self._events()
            self._stop_now = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    def submit(self, op: str, fn: Callable[..., Awaitable[Any]], *args: Any,
               bind: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._put(_Write(op, fn, args, kwargs, dict(bind or {}), self.clock()))

    def _put(self, w: _Write) -> None:
        wakeup, idle = self._events()
        self._pending.append(w)
        if w.mark is None:
            self._count += 1
            call = w.call
            if call is not None:
                self._by_call.setdefault(call, deque()).append(w)
            if self._failing_since is not None:
                self._outage_writes += 1
            if self._count >= self.batch_max:
                self._hurry_up()
        else:
            self._marks += 1
            self._hurry_up()
        idle.clear()
        wakeup.set()

    def _pop(self) -> _Write:
        """The first write or marker leaves the backlog (written, failed, or a marker)."""
        w = self._pending.popleft()
        if w.mark is None:
            self._count -= 1
            call = w.call
            if call is not None:
                mine = self._by_call[call]
                mine.popleft()              # the call's oldest: the backlog is in order
                if not mine:
                    del self._by_call[call]
        else:
            self._marks -= 1
            if not w.mark.done():
                w.mark.set_result(None)
        return w

    def _hurry_up(self) -> None:
        self._hurry.set()

    async def drain(self) -> None:
        """Wait until everything is written (or has failed), including what comes meanwhile.
        During an outage this waits for its end."""
        self._hurry_up()
        await self._events()[1].wait()

    async def flush(self, timeout: float = FLUSH_WAIT) -> bool:
        """Wait until everything submitted so far is written (or has failed): True. False
        during an outage (at once, or as soon as one starts) or after ``timeout``: the writes
        stay queued in order and are written later; the caller is not held up by a locked
        database."""
        if self._events()[1].is_set():
            return True
        if self._failing_since is not None:
            return False
        mark = asyncio.get_running_loop().create_future()
        self._put(_Write("flush", None, (), {}, {}, self.clock(), mark))
        outage = asyncio.ensure_future(self._outage_event().wait())
        try:
            await asyncio.wait({mark, outage}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            outage.cancel()
        return mark.done()

    def _outage_event(self) -> asyncio.Event:
        if self._outage is None:
            self._outage = asyncio.Event()
            if self._failing_since is not None:
                self._outage.set()
        return self._outage

    async def stop(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` (default :attr:`stop_wait`) for the backlog, then save what
        is left to the spill file, or name it in an error."""
        if self._task is None:
            return
        timeout = self.stop_wait if timeout is None else timeout
        try:
            await asyncio.wait_for(self.drain(), timeout)
        except asyncio.TimeoutError:
            pass
        # A write with the database now is let finish (its SQL cannot be called back), so
        # that what is saved below is exactly what was not written; a backoff is cut short.
        self._stop_now = True
        self._hurry_up()
        if self._in_flight:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), IN_FLIGHT_WAIT)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - cancelled below
                pass
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        left = [w for w in self._pending if w.mark is None]
        while self._pending:
            self._pop()
        self._events()[1].set()
        if not left:
            return
        spilled = self._spill(left)
        _log().error("store.writes_lost_at_stop" if not spilled else "store.writes_spilled",
                     pending=len(left), spilled=spilled,
                     spill=str(self.spill) if spilled else None,
                     calls=sorted({str(w.bind["call"]) for w in left if "call" in w.bind})[:20],
                     error=self._last_error if self._failing_since is not None else None)

    def spill_now(self) -> int:
        """At once, with no await (a leader that lost its lease, just before the process
        ends): the writes still waiting go to the spill file, for this node's next start.
        Returns how many were saved."""
        left = [w for w in self._pending if w.mark is None]
        spilled = self._spill(left) if left else 0
        if left:
            _log().error("store.writes_spilled", pending=len(left), spilled=spilled,
                         spill=str(self.spill) if spilled else None)
        return spilled

    # ------------------------------------------------------------------ the backlog

    def status(self) -> dict[str, Any]:
        """The backlog as the health route shows it."""
        now = self.clock()
        first = next((w for w in self._pending if w.mark is None), None) if self._count else None
        oldest = round(max(0.0, now - first.at), 3) if first is not None else 0.0
        failing = self._failing_since is not None
        return {"pending": self._count, "oldest_seconds": oldest, "failing": failing,
                "failing_for_seconds": (round(now - self._failing_since, 3)
                                        if self._failing_since is not None else None),
                "last_error": self._last_error if failing else None,
                "failed": self.failed, "written": self.written, "retries": self.retries,
                "outages": self.outages,
                "degraded": failing or oldest > self.slow_after}

    @property
    def degraded(self) -> bool:
        return bool(self.status()["degraded"])

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        wakeup, idle = self._events()
        delay = self.first_delay
        while not self._stop_now:
            if not self._pending:
                idle.set()
                wakeup.clear()
                self._hurry.clear()         # from now on, a flush or a drain cuts it short
                await wakeup.wait()
                await self._linger()
                continue
            if self._pending[0].mark is not None:
                self._pop()                 # every write before it is settled
                continue
            head = self._pending[0]
            self._in_flight = True
            try:
                outcomes = await self._turn()
            except Exception as e:  # noqa: BLE001 - transient: retried; else one by one
                self._in_flight = False
                if is_transient(e):
                    self._retrying(head, e)
                    if self._stop_now:
                        return          # stop() saves them with the rest
                    await self.sleep(delay)
                    delay = min(delay * 2, self.max_delay)
                    continue
                outcomes = self._whole_batch_failed(e)
            finally:
                self._in_flight = False
            delay = self.first_delay
            self._recovered()
            self._settle(outcomes)

    async def _linger(self) -> None:
        """Woken from idle by a write of the store: let the writes of the next moments
        (:attr:`linger` seconds at most) join it in one transaction. Not when someone waits
        on the writes (a flush, a drain, the stop) or the batch is full already."""
        if self.linger <= 0 or self._stop_now or self._marks or not self._pending:
            return
        if self._count >= self.batch_max or _batch_store(self._pending[0]) is None:
            return
        timer = asyncio.get_running_loop().call_later(self.linger, self._hurry.set)
        try:
            await self._hurry.wait()
        finally:
            timer.cancel()

    async def _turn(self) -> list[tuple[BaseException | None, Any]]:
        """Write the backlog's first writes: a batch of the store's writes in one transaction,
        else the first write alone. The outcomes of the writes settled, in order (a prefix of
        the backlog). A transient error is raised: nothing was written."""
        head = self._pending[0]
        store = None if self._alone else _batch_store(head)
        if store is None:
            assert head.fn is not None
            try:
                return [(None, await head.fn(*head.args, **head.kwargs))]
            except Exception as e:  # noqa: BLE001 - transient: raised; else its outcome
                if is_transient(e):
                    raise
                return [(e, None)]
        batch: list[tuple[str, tuple, dict]] = []
        for w in self._pending:
            if w.mark is not None:
                continue                    # settled with the writes before it
            if len(batch) >= self.batch_max or _batch_store(w) is not store:
                break
            batch.append((w.fn.__name__, w.args, w.kwargs))  # type: ignore[union-attr]
        self._batch_size = len(batch)
        return await store.write_batch(batch)

    def _whole_batch_failed(self, e: BaseException) -> list[tuple[BaseException | None, Any]]:
        """A batch failed as a whole, not by one of its writes: its writes go one by one,
        each in its own transaction (a bad one is then skipped alone)."""
        _log().error("store.batch_failed", writes=self._batch_size, exc_info=e)
        self._alone = self._batch_size
        return []

    def _settle(self, outcomes: list[tuple[BaseException | None, Any]]) -> None:
        """The first writes of the backlog are written or have failed: off the backlog."""
        for error, _value in outcomes:
            while self._pending[0].mark is not None:
                self._pop()
            w = self._pop()
            self._alone = max(0, self._alone - 1)
            if error is None:
                self.written += 1
            else:
                self.failed += 1
                _log(**w.bind).error("store.write_failed", op=w.op, exc_info=error)

    def _retrying(self, w: _Write, e: BaseException) -> None:
        self.retries += 1
        self._last_error = _short(e)
        if self._failing_since is not None:
            return
        self._failing_since = self.clock()
        self._outage_event().set()
        self.outages += 1
        self._outage_writes = self._count
        self._outage_oldest = w.at
        _log(**w.bind).warning("store.write_retrying", op=w.op, error=self._last_error,
                               pending=self._outage_writes)

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        now = self.clock()
        _log().info("store.write_recovered", waited=self._outage_writes,
                    waited_seconds=round(now - self._outage_oldest, 3),
                    failing_seconds=round(now - self._failing_since, 3), retries=self.retries,
                    error=self._last_error)
        self._failing_since = None
        self._outage_event().clear()
        self._outage_writes = 0

    # ------------------------------------------------------------------ spill and replay

    def _spill(self, left: list[_Write]) -> int:
        """Save the writes to the spill file (JSON lines, appended). Only bound store methods
        with plain arguments can be saved; 0 if any cannot (then none is, and the error names
        them all)."""
        if self.spill is None:
            return 0
        lines = []
        for w in left:
            name = getattr(w.fn, "__name__", "")
            if getattr(w.fn, "__self__", None) is None or name.startswith("_"):
                return 0
            try:
                lines.append(json.dumps({"op": w.op, "method": name, "args": list(w.args),
                                         "kwargs": w.kwargs, "bind": w.bind},
                                        default=_encode))
            except (TypeError, ValueError):
                return 0
        try:
            self.spill.parent.mkdir(parents=True, exist_ok=True)
            with open(self.spill, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            _log().error("store.spill_failed", spill=str(self.spill), exc_info=True)
            return 0
        return len(lines)

    def replay(self, store: Any) -> int:
        """Queue the writes a previous stop spilled (before anything new is submitted), and
        remove the file. A line naming no method of ``store`` is logged and skipped."""
        if self.spill is None or not self.spill.exists():
            return 0
        queued = 0
        text = self.spill.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line, object_hook=_decode)
                fn = getattr(store, item["method"])
                if item["method"].startswith("_") or not callable(fn):
                    raise AttributeError(item["method"])
                self.submit(item["op"], fn, *item["args"], bind=item.get("bind") or {},
                            **item["kwargs"])
                queued += 1
            except (ValueError, KeyError, TypeError, AttributeError):
                _log().error("store.spill_line_bad", spill=str(self.spill), line=n)
        self.spill.unlink()
        _log().info("store.spill_replayed", spill=str(self.spill), writes=queued)
        return queued


    def queued(self, call: str) -> list[tuple[str, tuple, dict]]:
        """The writes about ``call`` (bound to it) still waiting, in order: (store method,
        args, kwargs). The one with the database now is among them until it is done."""
        return [(getattr(w.fn, "__name__", ""), w.args, w.kwargs)
                for w in self._by_call.get(call, ())]


#: The store's writes the IVR scripts make; :class:`QueuedStore` queues them.
QUEUED_WRITES = ("call_arrived", "key_pressed", "call_event", "call_ended",
                 "set_verification", "call_rating")


class QueuedStore:
    """The store as the IVR scripts see it (the flow runner, the hotline script, the survey):
    ``acd/app.py`` gives them this instead of the store.

    Writes (:data:`QUEUED_WRITES`) go to the runtime's :class:`StoreWriter`, the queue the
    ACD's writes go to, so a call's IVR and ACD records keep one order; they return None at
    once (no IVR script uses the store's value). A database locked or full for some seconds
    then holds back the record, never the caller: no "sorry", no ``ivr_error``, and the end
    reason is queued like the rest (:meth:`call_ended` waits a bounded flush first).

    :meth:`get_call` (a read) first waits a bounded flush, so it sees the call's own earlier
    writes; during an outage it reads at once and adds the call's writes still queued (the
    caller is known, their keys are in the trail). Anything else is the store's own (the
    customer directory's ``session``: the IVR never writes customers); a read the database
    cannot answer raises, and the script takes its failure branch as before."""

    def __init__(self, store: Any, writer: StoreWriter, *, flush_wait: float = FLUSH_WAIT) -> None:
        self.store = store
        self.writer = writer
        self.flush_wait = flush_wait

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _submit(self, op: str, method: str, call: str, /, *args: Any, **kwargs: Any) -> None:
        self.writer.submit(op, getattr(self.store, method), *args, bind={"call": call},
                           **kwargs)

    async def call_arrived(self, *, uniqueid: str, **kwargs: Any) -> None:
        self._submit("call_arrived", "call_arrived", uniqueid, uniqueid=uniqueid, **kwargs)

    async def key_pressed(self, uniqueid: str, **kwargs: Any) -> None:
        self._submit("key_pressed", "key_pressed", uniqueid, uniqueid, **kwargs)

    async def call_event(self, uniqueid: str, kind: str, **kwargs: Any) -> None:
        self._submit(kind, "call_event", uniqueid, uniqueid, kind, **kwargs)

    async def call_ended(self, uniqueid: str, **kwargs: Any) -> None:
        """The IVR's last write: it waits a bounded flush, so that the record is whole on
        disk when the session closes (not during an outage: then it waits in the queue)."""
        self._submit("call_ended", "call_ended", uniqueid, uniqueid, **kwargs)
        await self.writer.flush(self.flush_wait)

    async def set_verification(self, uniqueid: str, **kwargs: Any) -> None:
        self._submit("verification", "set_verification", uniqueid, uniqueid, **kwargs)

    async def call_rating(self, uniqueid: str, rating: int, **kwargs: Any) -> None:
        self._submit("call_rating", "call_rating", uniqueid, uniqueid, rating, **kwargs)

    async def get_call(self, uniqueid: str) -> dict[str, Any] | None:
        await self.writer.flush(self.flush_wait)
        queued = self.writer.queued(uniqueid)
        try:
            call = await self.store.get_call(uniqueid)
        except Exception:  # noqa: BLE001 - the database cannot answer: what is queued, else raise
            if not any(m == "call_arrived" for m, _, _ in queued):
                raise
            call = None
        return with_queued(call, queued)


def with_queued(call: dict[str, Any] | None,
                queued: list[tuple[str, tuple, dict]]) -> dict[str, Any] | None:
    """A call's record as the store gives it, plus its writes still queued (an outage): the
    record as it will be once they are written. ``queued`` counts them (0: all written).
    A write finishing during the read may show twice; none is left out."""
    if not queued:
        return call
    if call is not None:
        call = {**call, "key_trail": list(call["key_trail"]), "events": list(call["events"])}
    for method, args, kw in queued:
        at = _utc_text(kw.get("at"))
        if method == "call_arrived" and call is None:
            call = {"uniqueid": kw["uniqueid"], "linkedid": kw.get("linkedid"),
                    "channel": kw.get("channel"), "caller_number": kw.get("caller_number"),
                    "caller_name": kw.get("caller_name"), "did": kw.get("did"),
                    "skill_group": None, "verification": None, "verification_method": None,
                    "arrived_at": at, "answered_at": None, "ended_at": None,
                    "end_reason": None, "direction": "inbound", "rating": None,
                    "rated_at": None, "key_trail": [],
                    "events": [{"kind": "arrived", "at": at, "detail": {"did": kw.get("did")}}]}
        elif call is None:
            continue                    # nothing known of the call yet
        elif method == "key_pressed":
            call["key_trail"].append({"node": kw["node"], "keys": kw["keys"], "at": at})
        elif method == "call_event":
            call["events"].append({"kind": args[1], "at": at, "detail": kw.get("detail") or {}})
        elif method == "set_verification":
            call["verification"] = kw["result"]
            call["verification_method"] = kw.get("method")
            call["events"].append({"kind": "verification", "at": at, "detail": {
                "result": kw["result"], "method": kw.get("method"), **(kw.get("detail") or {})}})
        elif method == "call_rating":
            rating = kw["rating"] if "rating" in kw else args[1]
            call["rating"], call["rated_at"] = rating, at
            call["events"].append({"kind": "rated", "at": at, "detail": {"rating": rating}})
        elif method == "call_ended" and call["end_reason"] is None:
            call["end_reason"], call["ended_at"] = kw["reason"], at
            call["events"].append({"kind": "ended", "at": at, "detail": {"reason": kw["reason"]}})
    if call is not None:
        call["queued"] = len(queued)
    return call


def _utc_text(dt: Any) -> str | None:
    """As the store gives times back: ISO text, UTC."""
    if not isinstance(dt, datetime):
        return dt
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)).isoformat()


def spill_path_for(url: str, data_dir: str | os.PathLike) -> Path:
    """Where a database's unwritten writes are saved at stop: beside a SQLite file (a spill
    belongs to its database), else in ``data_dir``."""
    path = sqlite_file(url)
    if path is not None:
        return path.with_name(path.name + ".backlog.jsonl")
    return Path(data_dir) / "store-backlog.jsonl"


def _short(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _encode(o: Any) -> Any:
    if isinstance(o, datetime):
        return {"$datetime": o.isoformat()}
    raise TypeError(f"not JSON: {type(o).__name__}")


def _decode(d: dict[str, Any]) -> Any:
    if set(d) == {"$datetime"}:
        return datetime.fromisoformat(d["$datetime"])
    return d


__all__ = ["StoreWriter", "QueuedStore", "QUEUED_WRITES", "with_queued", "is_transient",
           "spill_path_for", "FIRST_DELAY", "MAX_DELAY", "SLOW_AFTER", "FLUSH_WAIT"]
