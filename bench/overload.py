"""Measure 6b: past the sustained rate. Our server is offered twice the rate it sustained in
the throughput steps, for a minute, then its sustained rate again (the same server process, no
restart): does it stay up and answer, what do the callers beyond capacity get, and does service
come back by itself?

While calls run, an API client asks ``GET /api/queues`` (a supervisor's live figures) and
``GET /api/health`` in turns, a request every ``interval`` seconds, and times each answer: a
request that fails or takes over ``timeout`` counts as an error. The server's log says when it
judged itself overloaded (``runtime.overload_started`` / ``runtime.overload_ended``, with the
callers it turned away) and whether its AMI link dropped.

:func:`figures` turns what was seen into the measure's figures (pure, unit-tested).
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from acd.tools import load_calls
from bench.stats import summary

#: Callers the load tool counts as having been given the group's overload treatment: the
#: queue script sent them to a destination (the message and goodbye) instead of a place.
TURNED_AWAY = "sent_away"
#: Callers who waited as long as a load caller waits (its ``max_wait``) and hung up.
GAVE_UP = "not_connected"
API_P95_LIMIT_MS = 200.0
#: Callers Asterisk never placed (the load tool's own Originate failed, or no incoming leg
#: appeared): they never reached either arm's queue. The machine, not the ACD, ran out.
NOT_PLACED = ("originate_failed", "no_incoming_leg")
#: Ours may lose at most this many more calls before the ACD than app_queue did at the same
#: rate on the same machine (and 0.1% of the calls besides, for chance).
NOT_PLACED_SLACK = 1.1


class ApiProbe:
    """Asks the server's API again and again while a run goes on; keeps each answer's time."""

    PATHS = ("/api/queues", "/api/health")

    def __init__(self, api: Any, interval: float = 0.2, timeout: float = 5.0) -> None:
        self.api = api
        self.interval = interval
        self.timeout = timeout
        self.samples: list[tuple[float, str, float | None, int | None]] = []
        self.overloaded_seen = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def take(self) -> list[tuple[float, str, float | None, int | None]]:
        """The samples so far (time, path, seconds or None on error, status); starts anew."""
        out, self.samples = self.samples, []
        return out

    async def _run(self) -> None:
        i = 0
        while True:
            path = self.PATHS[i % len(self.PATHS)]
            i += 1
            t0 = time.monotonic()
            status: int | None = None
            took: float | None = None
            try:
                status, body = await asyncio.wait_for(self.api.call("GET", path), self.timeout)
                took = time.monotonic() - t0 if status == 200 else None
                if path == "/api/health" and isinstance(body, dict) and body.get("overloaded"):
                    self.overloaded_seen = True
            except (asyncio.TimeoutError, OSError, ValueError):
                took = None
            except Exception:               # noqa: BLE001 - aiohttp's errors: counted, not fatal
                took = None
            self.samples.append((time.time(), path, took, status))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - t0)))


def reference(*, over: Any, after: Any) -> dict[str, Any]:
    """app_queue offered the same two runs: its outcomes, beside ours."""
    o = over.outcomes()
    return {"calls": len(over.records), "served": o.get(load_calls.COMPLETED, 0),
            "not_placed": sum(o.get(k, 0) for k in NOT_PLACED), "outcomes": o,
            "queue_to_invite_ms": summary([r.queue_to_invite for r in over.records
                                           if r.queue_to_invite is not None], 1000),
            "ami_disconnects": over.ami_disconnects + after.ami_disconnects,
            "after": {"calls": len(after.records), "completed": after.completed}}


def overload_episodes(log_path: Path, since: float) -> dict[str, Any]:
    """The server's own account from its JSON log, from ``since`` (epoch seconds) on: how many
    times it judged itself overloaded, how many callers it turned away, AMI links lost."""
    started = ended = turned = disconnects = 0
    try:
        lines = log_path.read_bytes().splitlines()
    except OSError:
        lines = []
    for raw in lines:
        if b"overload_" not in raw and b"ami.disconnected" not in raw:
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        ts = rec.get("timestamp") or ""
        try:
            t = datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
        except ValueError:
            t = since
        if t < since:
            continue
        ev = rec.get("event")
        if ev == "runtime.overload_started":
            started += 1
        elif ev == "runtime.overload_ended":
            ended += 1
            turned += int(rec.get("turned_away") or 0)
        elif ev == "ami.disconnected":
            disconnects += 1
    return {"episodes": started, "ended": ended, "turned_away_logged": turned,
            "ami_disconnects_logged": disconnects}


def api_figures(samples: list[tuple[float, str, float | None, int | None]]) -> dict[str, Any]:
    ok = [s[2] for s in samples if s[2] is not None]
    return {"requests": len(samples), "errors": len(samples) - len(ok),
            "ms": summary(ok, 1000, 1)}


def figures(*, rate: float, sustained: float, over: Any, after: Any,
            api_over: list, api_after: list, server_alive: bool,
            episodes: dict[str, Any], overloaded_at_end: bool | None,
            reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The measure's figures from the two runs (:class:`bench.measures.RunResult`) and the
    probe's samples, and whether the target's overload part is met: no AMI disconnect, no
    crash, the API's p95 under 200 ms with no error, every caller who reached the queue
    either served or given the treatment (or waited the load caller's patience out), the run
    after at the sustained rate passing as a throughput step does (at most 0.1% failed).

    Callers Asterisk itself never placed (:data:`NOT_PLACED`) are no failure of the ACD when
    app_queue, offered the same rate on the same machine (``reference``: :func:`reference`),
    lost as many: both arms share the one Asterisk that also plays the callers and the
    phones. Without a reference every such caller counts as failed."""
    o = over.outcomes()
    calls = len(over.records)
    served = o.get(load_calls.COMPLETED, 0)
    # A caller sent to a destination was given the treatment only if the server says it
    # turned callers away (its log, per overload episode); any more are failures.
    turned = min(o.get(TURNED_AWAY, 0), int(episodes.get("turned_away_logged") or 0))
    gave_up = o.get(GAVE_UP, 0)
    not_placed = sum(o.get(k, 0) for k in NOT_PLACED)
    failed_other = calls - served - turned - gave_up
    failed_acd = failed_other - not_placed        # reached the queue, then failed
    ref_not_placed = None if reference is None else reference.get("not_placed")
    placed_ok = (not_placed == 0 if ref_not_placed is None
                 else not_placed <= NOT_PLACED_SLACK * ref_not_placed + 0.001 * calls)
    api_o, api_a = api_figures(api_over), api_figures(api_after)
    a_calls = len(after.records)
    a_failed = a_calls - after.completed
    recovered = (a_calls > 0 and a_failed <= 0.001 * a_calls and not overloaded_at_end)
    p95 = api_o["ms"].get("p95")
    met = (over.ami_disconnects == 0 and after.ami_disconnects == 0 and server_alive
           and p95 is not None and p95 < API_P95_LIMIT_MS and api_o["errors"] == 0
           and failed_acd == 0 and placed_ok and recovered)
    q = summary([r.queue_to_invite for r in over.records if r.queue_to_invite is not None], 1000)
    qa = summary([r.queue_to_invite for r in after.records if r.queue_to_invite is not None], 1000)
    return {
        "sustained_rate": sustained, "rate": rate, "seconds": over.profile.get("duration"),
        "calls": calls, "served": served, "turned_away": turned, "gave_up": gave_up,
        "failed_other": failed_other, "not_placed": not_placed, "failed_after_arrival": failed_acd,
        "not_placed_ok": placed_ok, "reference": reference, "outcomes": o,
        "ami_disconnects": over.ami_disconnects + after.ami_disconnects,
        "server_alive": server_alive, "server_log": episodes,
        "api_during": api_o, "api_after": api_a,
        "queue_to_invite_ms": q, "after": {
            "rate": after.profile.get("rate"), "calls": a_calls, "completed": after.completed,
            "failed": a_failed, "queue_to_invite_ms": qa,
            "overloaded_at_end": overloaded_at_end},
        "recovered": recovered, "met": met,
    }
