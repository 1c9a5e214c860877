"""The core's decisions that touch no telephony: timers, the pages' pushes, the records.

=======================  ==================================================================
decision                 what happens
=======================  ==================================================================
StartTimer/CancelTimer   ``loop.call_later`` on the wall clock; a fired timer is fed back.
Notify                   ``hub.publish("agent:<id>", ...)``; a ``ring`` is held until the
                         phone rings (the screen pops when the phone rings).
RecordCallEvent/         one store writer, in order, retried while the database is locked
RecordAgentState/        or full (:class:`~acd.store.writer.StoreWriter`): the call's
RecordControl/RecordLeg/ timeline, the agent's states, each agent's part of a call, the
RecordLegWrapup/         outbound calls.
OutboundStarted/Ended
=======================  ==================================================================

The supervisors' board is published as changes, at most four times a second, and only while a
supervisor's page is subscribed (:class:`Pages`).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from acd.core import (CallEventKind, CancelTimer, Notify, OutboundEnded, OutboundStarted,
                      RecordAgentState, RecordCallEvent, RecordControl, RecordLeg,
                      RecordLegWrapup, StartTimer)
from acd.core.views import board_delta, board_state
from acd.store.writer import StoreWriter


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, timezone.utc)


class Timers:
    """The core's timers on the event loop; a fired one calls ``fire(key)``."""

    def __init__(self, clock: Callable[[], float], fire: Callable[[str], None]) -> None:
        self.clock = clock
        self.fire = fire
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}

    def start(self, d: StartTimer) -> None:
        old = self._timers.pop(d.key, None)
        if old is not None:
            old[1].cancel()
        loop = self.loop or asyncio.get_running_loop()
        handle = loop.call_later(max(0.0, d.at - self.clock()), self._fired, d.key)
        self._timers[d.key] = (d.at, handle)

    def cancel(self, d: CancelTimer) -> None:
        entry = self._timers.pop(d.key, None)
        if entry is not None:
            entry[1].cancel()

    def _fired(self, key: str) -> None:
        if self._timers.pop(key, None) is None or self.stopping:
            return
        self.fire(key)

    def due(self) -> dict[str, float]:
        """key -> due time."""
        return {k: at for k, (at, _) in self._timers.items()}

    def due_at(self, key: str) -> float | None:
        entry = self._timers.get(key)
        return entry[0] if entry is not None else None

    def fire_now(self, key: str) -> None:
        entry = self._timers.get(key)
        if entry is not None:
            entry[1].cancel()
            self._fired(key)

    def stop(self) -> None:
        self.stopping = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()


class Pages:
    """Pushes to the agents' and supervisors' pages (through the hub).

    The supervisors' board goes out as changes (:func:`~acd.core.views.board_delta`): after
    a change, at most once per ``interval`` (a timer that gathers every change until it
    fires; the first change after a quiet spell goes on the next loop turn), only what
    changed since the last send, and only while a supervisor's page is subscribed. A page
    gets the whole board as it subscribes, or asks for it (:meth:`board_snapshot`)."""

    TOPIC = "supervisor"

    def __init__(self, hub: Any, log: Any, *, ringing: Callable[[str, str], bool],
                 save_pending: Callable[[Notify], None], snapshot: Callable[[], dict],
                 interval: float = 0.25) -> None:
        self.hub = hub
        self.log = log
        self.ringing = ringing            # (call, agent) -> the agent's phone rings already
        self.save_pending = save_pending
        self.snapshot = snapshot
        self.interval = interval          # seconds between two sends of the board, at least
        self.loop: asyncio.AbstractEventLoop | None = None
        self._held_ring: dict[tuple[str, str], Notify] = {}
        self._board_due = False
        self._board: dict[str, dict[str, dict[str, Any]]] | None = None   # as last sent
        self._sent_at = float("-inf")     # loop time of the last send

    def notify(self, d: Notify) -> None:
        key = (str(d.payload.get("call_id", "")), d.agent_id)
        if d.event == "ring":
            if self.ringing(*key):
                self._publish(d)
            else:                      # the screen pops when the phone rings
                self._held_ring[key] = d
            return
        if d.event == "answered":
            self.release_ring(*key)
        elif d.event == "ended":
            self._held_ring.pop(key, None)
        elif d.event == "state":
            self.save_pending(d)
        self._publish(d)

    def release_ring(self, call_id: str, agent_id: str) -> None:
        held = self._held_ring.pop((call_id, agent_id), None)
        if held is not None:
            self._publish(held)

    def drop_ring(self, call_id: str, agent_id: str) -> None:
        self._held_ring.pop((call_id, agent_id), None)

    def drop_all_rings(self) -> None:
        self._held_ring.clear()

    def _publish(self, d: Notify) -> None:
        try:
            self.hub.publish(f"agent:{d.agent_id}", {"type": d.event, **d.payload})
        except Exception:
            self.log.exception("runtime.publish_failed", agent=d.agent_id)

    # ---- the supervisors' board

    def snapshot_soon(self) -> None:
        """Something the supervisors see changed: the board's changes go out when the timer
        fires (one timer for every change until then)."""
        if self._board_due:
            return
        self._board_due = True
        loop = self.loop or asyncio.get_running_loop()
        loop.call_later(max(0.0, self._sent_at + self.interval - loop.time()),
                        self._publish_board)

    def board_snapshot(self) -> dict[str, Any]:
        """The whole board (``queues`` with their calls, ``agents``), for a page that
        subscribed (before this call) or asked for it; with ``seq``, the number of the last
        change sent: the page applies the changes numbered after it."""
        snap = self.snapshot()
        if self._board is None:         # no changes sent yet: they start from here
            self._board = board_state(snap)
        return {**snap, "seq": self.hub.last_seq(self.TOPIC)}

    def _publish_board(self) -> None:
        self._board_due = False
        try:
            if not self.hub.subscribers(self.TOPIC):
                self._board = None      # built only for someone watching
                return
            board = board_state(self.snapshot())
            delta = board_delta(self._board, board)
            self._board = board
            self._sent_at = (self.loop or asyncio.get_running_loop()).time()
            if delta:
                self.hub.publish(self.TOPIC, {"type": "delta", **delta})
        except Exception:
            self.log.exception("runtime.snapshot_failed")


class Records:
    """The core's records, through the store writer (in order; see StoreWriter)."""

    def __init__(self, store: Any, writer: StoreWriter, log: Any,
                 clock: Callable[[], float]) -> None:
        self.store, self.writer, self.log, self.clock = store, writer, log, clock
        self._pending_saved: dict[str, tuple[str | None, str]] = {}
        #: told of each call's end (the recorder forgets the call's draw)
        self.call_done: Callable[[str], None] = lambda call_id: None

    def submit(self, op: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self.writer.submit(op, fn, *args, **kw)

    def call_event(self, d: RecordCallEvent) -> None:
        rec, call_id = d.record, d.call_id
        at, bind = utc(rec.at), {"call": call_id}
        if rec.kind is CallEventKind.ENDED:
            reason = rec.end_reason.value if rec.end_reason else "ended"
            self.call_ended(call_id, reason, rec.at)
            self.log.info("runtime.call_ended", call=call_id, reason=reason, agent=rec.agent_id)
            self.call_done(call_id)
            return
        detail: dict[str, Any] = {"group": rec.group}
        if rec.agent_id:
            detail["agent"] = rec.agent_id
        if rec.detail:
            detail["detail"] = rec.detail
        kind = "acd_arrived" if rec.kind is CallEventKind.ARRIVED else rec.kind.value
        self.submit(kind, self.store.call_event, call_id, kind, at=at, detail=detail, bind=bind)
        if rec.kind is CallEventKind.QUEUED:
            self.submit("call_group", self.store.call_update, call_id, skill_group=rec.group,
                        bind=bind)
        elif rec.kind is CallEventKind.ANSWERED:
            self.submit("call_answered", self.store.call_update, call_id, answered_at=at,
                        bind=bind)

    def call_ended(self, call_id: str, reason: str, at: float) -> None:
        self.submit("call_ended", self.store.call_ended, call_id, reason=reason, at=utc(at),
                    bind={"call": call_id})

    def event(self, call_id: str, kind: str, at: float, detail: dict[str, Any]) -> None:
        """One event on the call's timeline."""
        self.submit(kind, self.store.call_event, call_id, kind, at=utc(at), detail=detail,
                    bind={"call": call_id})

    def agent_state(self, d: RecordAgentState) -> None:
        self.submit("agent_state", self.store.agent_state, d.agent_id, d.state.value,
                    reason=d.reason, at=utc(d.at), previous=d.previous.value,
                    call_uniqueid=d.call_id, bind={"agent": d.agent_id})

    def control(self, d: RecordControl) -> None:
        detail = dict(d.detail)
        if d.agent_id:
            detail["agent"] = d.agent_id
        self.event(d.call_id, d.kind, d.at, detail)

    def leg(self, d: RecordLeg) -> None:
        self.submit("call_leg", self.store.call_leg, d.call_id, agent_id=d.agent_id,
                    role=d.role, started_at=utc(d.started_at), ended_at=utc(d.ended_at),
                    talk=d.talk, hold=d.hold, reason=d.reason,
                    bind={"call": d.call_id, "agent": d.agent_id})

    def leg_wrapup(self, d: RecordLegWrapup) -> None:
        self.submit("call_leg_wrapup", self.store.call_leg_wrapup, d.call_id, d.agent_id,
                    d.seconds, bind={"call": d.call_id, "agent": d.agent_id})

    def outbound_started(self, d: OutboundStarted) -> None:
        self.log.info("runtime.outbound", call=d.call_id, agent=d.agent_id)
        self.submit("outbound", self.store.outbound_call, uniqueid=d.call_id,
                    agent_id=d.agent_id, number=d.number, at=utc(d.at),
                    bind={"call": d.call_id, "agent": d.agent_id})

    def outbound_ended(self, d: OutboundEnded) -> None:
        self.log.info("runtime.outbound_ended", call=d.call_id, agent=d.agent_id,
                      reason=d.reason, cause=d.cause or None)
        if d.cause:
            self.submit("outbound_failed", self.store.call_event, d.call_id, "dial_failed",
                        at=utc(d.at), detail={"cause": d.cause}, bind={"call": d.call_id})
        self.call_ended(d.call_id, d.reason, d.at)

    # ---- the agents' pending states (kept in the store across restarts)
    def save_pending(self, d: Notify) -> None:
        pending = d.payload.get("pending")
        reason = d.payload.get("pending_reason") or ""
        if self._pending_saved.get(d.agent_id, (None, "")) == (pending, reason):
            return
        self._pending_saved[d.agent_id] = (pending, reason)
        self.submit("agent_pending", self.store.agent_pending, d.agent_id, pending,
                    reason=reason, at=utc(self.clock()), bind={"agent": d.agent_id})

    def pending_loaded(self, agent_id: str, pending: str | None, reason: str) -> None:
        """The pending state the store has for the agent (at a rebuild)."""
        self._pending_saved[agent_id] = (pending, reason)

    def pending_saved(self) -> dict[str, tuple[str | None, str]]:
        return dict(self._pending_saved)


__all__ = ["Timers", "Pages", "Records", "utc"]
