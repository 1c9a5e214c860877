"""`make bench` (``python -m bench``) and `make bench-quick` (``python -m bench --quick``).

Runs every measure, both arms alternating on one Asterisk, and writes
bench/results/latest.json (every figure, both arms, the ratios, the machine),
bench/results/calls-latest.jsonl.gz (every call's record) and docs/benchmarks.md with its
plots (docs/benchmarks/*.svg). ``--only`` runs some measures (the others are left out of the
results).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import wave
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acd.tools import load, load_calls, server_api
from acd import log as acdlog
from acd.errors import UserError
from bench import core_bench, memory, overload, report, reports_bench, startup, webrtc
from bench import instance as inst
from bench.measures import (AQ, HOTLINES, NUMBERS, OURS, Bench, RunResult, agent_free_latencies,
                            arm_order, idle_agent_latencies, ours_breakdown,
                            screen_pop_latencies, server_log_times)
from bench.profile_server import by_package, calls_of
from bench.stats import cdf, summary

RESULTS = inst.PROJECT / "bench" / "results"
DOCS = inst.PROJECT / "docs"
MEASURES = ("idle", "free", "ivr", "throughput", "overload", "pop", "profile", "recording", "webrtc",
            "core", "memory", "startup", "reports")


@dataclass(frozen=True)
class Plan:
    name: str
    phones: int
    talk: float                      # fixed talk time for measures 1, 2 and the IVR mix
    idle_chunks: int
    idle_calls: int                  # per chunk and arm
    idle_rate: float
    free_chunks: int
    free_agents: int
    free_calls: int                  # per chunk and arm
    free_rate: float
    ivr_calls: int                   # per arm
    steps: tuple[float, ...]         # offered calls per second, stepped upward
    step_seconds: float
    steps_budget: float              # seconds of steps per arm; then no more steps
    step_talk: float                 # exponential talk time's mean in the throughput steps
    pop_seconds: float
    pages: int
    profile_seconds: float
    profile_rate: float
    core_cycles: int
    mem_agents: int
    mem_callers: int
    overload_seconds: float = 60.0   # measure 6b: twice the sustained rate this long
    recovery_seconds: float = 30.0   # ... then the sustained rate this long (same server)
    startup_agents: int = 1000       # measure 8: the agents (and their web users)
    startup_small: int = 100         # ... and a smaller size beside it (0: none)
    rec_rate: float = 10.0           # measure "recording": calls/s, the group recorded or not
    rec_seconds: float = 45.0        # ... each run this long
    rec_chunks: int = 2              # ... this many runs of each, alternating
    report_calls: int = 1_000_000    # measure 9: history reports over this many calls
    webrtc_calls: int = 10           # measure "webrtc": concurrent calls in each arm
    webrtc_hold: float = 30.0        # ... held this long (the measured window)
    webrtc_idle: float = 15.0        # ... after an idle window this long (no call)


FULL = Plan("full", phones=100, talk=2.0, idle_chunks=4, idle_calls=50, idle_rate=2.0,
            free_chunks=4, free_agents=5, free_calls=30, free_rate=10.0, ivr_calls=10,
            steps=(5, 10, 15, 20, 25, 30, 35, 40, 45, 50), step_seconds=60.0, steps_budget=600.0,
            step_talk=2.0, pop_seconds=60.0,
            pages=300, profile_seconds=20.0, profile_rate=10.0, core_cycles=3000,
            mem_agents=5000, mem_callers=10_000)
QUICK = Plan("quick", phones=40, talk=2.0, idle_chunks=1, idle_calls=15, idle_rate=2.0,
             free_chunks=1, free_agents=4, free_calls=16, free_rate=8.0, ivr_calls=3,
             steps=(5, 10), step_seconds=15.0, steps_budget=30.0, step_talk=2.0,
             pop_seconds=15.0, pages=300,
             profile_seconds=10.0, profile_rate=5.0, core_cycles=500, mem_agents=1000,
             mem_callers=2000, startup_agents=300, startup_small=0, overload_seconds=15.0,
             recovery_seconds=10.0, rec_rate=5.0, rec_seconds=10.0, rec_chunks=1,
             report_calls=50_000, webrtc_calls=3, webrtc_hold=10.0, webrtc_idle=5.0)
TALK_CAP = 10.0                      # exponential talk times are cut at this many seconds
TALK_MIN = 1.0                       # ... and start at this many (nobody hangs up at once)


def say(msg: str) -> None:
    print(msg, flush=True)


def _run_summary(r: RunResult) -> dict[str, Any]:
    return {"arm": r.arm, "label": r.label, "calls": len(r.records), "completed": r.completed,
            "failed": r.failed, "outcomes": r.outcomes(), "seconds": round(r.seconds, 2),
            "cpu_seconds": r.cpu, "loadavg_before": [round(x, 2) for x in r.load_before],
            "loadavg_after": [round(x, 2) for x in r.load_after],
            "ami_disconnects": r.ami_disconnects, "profile": r.profile, "talk": r.talk,
            "agents": len(r.agents), "quiet_before": r.quiet, "stopped_early": r.stopped,
            "channels_left": r.left_over, **({"pages": r.pages} if r.pages else {})}


def _failed(runs: list[RunResult]) -> list[dict[str, Any]]:
    return [{"arm": r.arm, "label": r.label, **rec.to_dict()}
            for r in runs for rec in r.records if rec.outcome != load_calls.COMPLETED]


def _dist(samples: list[float]) -> dict[str, Any]:
    """A latency distribution in milliseconds: summary, every sample, and the CDF to plot."""
    return {"ms": summary(samples, 1000, 3), "samples_ms": [round(x * 1000, 3) for x in samples],
            "cdf_ms": [(round(x * 1000, 3), round(f, 4)) for x, f in cdf(samples)]}


class Runner:
    def __init__(self, plan: Plan, only: set[str], sustained: float | None = None) -> None:
        self.plan = plan
        self.only = only
        self.sustained = sustained      # our sustained rate for 6b, when throughput is not run
        self.bench = Bench(inst.BenchSetup(
            phones=plan.phones, browser_agents=plan.webrtc_calls if "webrtc" in only else 0), say)
        self.runs: dict[str, list[RunResult]] = {}
        self.results: dict[str, Any] = {}

    def want(self, m: str) -> bool:
        return m in self.only

    def _keep(self, measure: str, r: RunResult) -> RunResult:
        self.runs.setdefault(measure, []).append(r)
        return r

    async def _arm(self, arm: str, **up: Any) -> None:
        if arm == OURS:
            await self.bench.ours_up(**up)
        else:
            await self.bench.ours_down()

    # ---------------------------------------------------------------- 1
    async def idle(self) -> None:
        p = self.plan
        say(f"(1) queue entry -> agent INVITE with idle agents: {p.idle_chunks} x {p.idle_calls} "
            f"calls per arm at {p.idle_rate}/s")
        lat: dict[str, list[float]] = {OURS: [], AQ: []}
        ours_runs = []
        for i in range(p.idle_chunks):
            for arm in arm_order(i):
                await self._arm(arm)
                prof = load.LoadProfile(number=NUMBERS[arm], rate=p.idle_rate, arrivals="poisson",
                                        count=p.idle_calls, seed=100 + i, max_wait=30)
                r = self._keep("idle", await self.bench.run(
                    arm, f"idle chunk {i + 1}", prof, load.TalkTimes("fixed", p.talk, 0)))
                lat[arm] += idle_agent_latencies(r, p.phones)
                if arm == OURS:
                    ours_runs.append(r)
        await self.bench.ours_down()
        times = server_log_times(self.bench.setup.run_dir / "server.log")
        parts = {k: summary(v, 1000, 3) for k, v in
                 ours_breakdown([x for r in ours_runs for x in r.records], times).items()}
        self.results["idle_agent"] = {OURS: _dist(lat[OURS]), AQ: _dist(lat[AQ]),
                                      "ours_breakdown_ms": parts}

    # ---------------------------------------------------------------- 2
    async def free(self) -> None:
        p = self.plan
        agents = self.bench.setup.phone_ids()[: p.free_agents]
        say(f"(2) agent free -> next waiting caller's INVITE: {p.free_agents} agents, "
            f"{p.free_chunks} x {p.free_calls} calls per arm at {p.free_rate}/s")
        lat: dict[str, list[float]] = {OURS: [], AQ: []}
        for i in range(p.free_chunks):
            for arm in arm_order(i):
                if arm == OURS:
                    await self.bench.ours_up(agents=agents)
                else:
                    await self.bench.ours_down()
                    await self.bench.set_agents(AQ, agents)
                prof = load.LoadProfile(number=NUMBERS[arm], rate=p.free_rate, arrivals="fixed",
                                        count=p.free_calls, seed=200 + i, max_wait=120)
                try:
                    r = self._keep("free", await self.bench.run(
                        arm, f"free chunk {i + 1}", prof, load.TalkTimes("fixed", p.talk, 0),
                        agents=agents))
                finally:
                    if arm == AQ:
                        await self.bench.set_agents(AQ, self.bench.setup.phone_ids())
                    else:
                        await self.bench.ours_down()
                lat[arm] += agent_free_latencies(r)
        self.results["agent_free"] = {OURS: _dist(lat[OURS]), AQ: _dist(lat[AQ]),
                                      "agents": p.free_agents}

    # ---------------------------------------------------------------- the IVR mix
    async def ivr(self) -> None:
        p = self.plan
        say(f"the hotline mix (IVR asks for a number, callers key it): {p.ivr_calls} calls per arm")
        out: dict[str, Any] = {}
        for arm in (OURS, AQ):
            await self._arm(arm)
            prof = load.LoadProfile(number=HOTLINES[arm], rate=0.5, arrivals="fixed",
                                    count=p.ivr_calls, seed=300, dtmf="13800138000#", max_wait=60)
            r = self._keep("ivr", await self.bench.run(arm, "hotline IVR", prof,
                                                       load.TalkTimes("fixed", p.talk, 0)))
            q = [x.queue_to_invite for x in r.records if x.queue_to_invite is not None]
            keyed = [x.queued_at - x.asked_at for x in r.records
                     if x.asked_at is not None and x.queued_at is not None]
            out[arm] = {"calls": len(r.records), "completed": r.completed,
                        "asked": sum(1 for x in r.records if x.asked_at is not None),
                        "keyed": sum(1 for x in r.records if x.keyed_at is not None),
                        "queue_to_invite_ms": summary(q, 1000, 3),
                        "ask_to_queue_s": summary(keyed, 1, 2)}
        await self.bench.ours_down()
        self.results["ivr_mix"] = out

    # ---------------------------------------------------------------- 3 and 4
    async def throughput(self) -> None:
        p = self.plan
        say(f"(3)+(4) throughput, stepped: {list(p.steps)} calls/s, {p.step_seconds:.0f} s each "
            f"({p.steps_budget / 60:g} minutes of steps per arm at most), talk exponential mean "
            f"{p.step_talk} s from {TALK_MIN} s; an arm stops at >0.1% failed, p95 > 1 s or an "
            f"AMI disconnect")
        steps = []
        stopped: dict[str, str] = {}
        spent = {OURS: 0.0, AQ: 0.0}
        for i, rate in enumerate(p.steps):
            for arm in arm_order(i):
                if arm in stopped:
                    continue
                if spent[arm] + p.step_seconds > p.steps_budget:
                    stopped[arm] = f"its {p.steps_budget / 60:g}-minute budget of steps is spent"
                    say(f"  {arm}: no step at {rate:g} calls/s, {stopped[arm]}")
                    continue
                spent[arm] += p.step_seconds
                await self._arm(arm)
                prof = load.LoadProfile(number=NUMBERS[arm], rate=rate, arrivals="poisson",
                                        duration=p.step_seconds, seed=400 + i, max_wait=60)
                r = self._keep("throughput", await self.bench.run(
                    arm, f"{rate:g} calls/s", prof,
                    load.TalkTimes("exponential", p.step_talk, 400 + i, cap=TALK_CAP,
                                   minimum=TALK_MIN), stop_early=True))
                await self.bench.ours_down()
                step = report.step_figures(r, p.step_seconds)
                steps.append(step)
                if not step["passed"]:
                    stopped[arm] = step["reason"]
                    say(f"  {arm} stops at {rate:g} calls/s: {step['reason']}")
            if len(stopped) == 2:
                break
        self.results["throughput"] = report.throughput_summary(steps, list(p.steps))
        self.results["throughput"]["not_run"] = {a: why for a, why in stopped.items()
                                                 if "budget" in why}
        handle = p.step_talk + 0.2 + 0.1          # talk, the phone's answer delay, setup
        self.results["throughput"].update(phones=p.phones, handle_seconds=round(handle, 2),
                                          agents_capacity_cps=round(p.phones / handle, 1))

    # ---------------------------------------------------------------- 6b
    async def overload(self) -> None:
        """Twice our sustained rate for a minute, then the sustained rate (bench/overload.py)."""
        p = self.plan
        t = self.results.get("throughput", {})
        base = float((t.get(OURS) or {}).get("rate") or self.sustained or p.steps[0])
        rate = 2 * base
        say(f"(6b) overload: {rate:g} calls/s (twice our sustained {base:g}) for "
            f"{p.overload_seconds:.0f} s, then {base:g} calls/s for {p.recovery_seconds:.0f} s, "
            f"the same server; the API asked every 0.2 s (ours)")
        await self.bench.ours_up()
        assert self.bench.server is not None
        since = time.time()
        try:
            async with server_api.ServerApi(self.bench.http,
                                            server_api.web_login(self.bench.cfg)) as api:
                probe = overload.ApiProbe(api)
                probe.start()
                try:
                    over = await self._overload_run(OURS, f"{rate:g} calls/s (2x)", rate, 700,
                                                    p.overload_seconds)
                    api_over = probe.take()
                    after = await self._overload_run(OURS, f"{base:g} calls/s after", base, 701,
                                                     p.recovery_seconds)
                    api_after = probe.take()
                finally:
                    await probe.stop()
                _, health = await api.call("GET", "/api/health")
                at_end = bool(health.get("overloaded")) if isinstance(health, dict) else None
            alive = self.bench.server.alive()
        finally:
            await self.bench.ours_down()
        episodes = overload.overload_episodes(self.bench.setup.run_dir / "server.log", since)
        # app_queue offered the same, after ours (the same Asterisk also plays the callers
        # and the phones: what it could not place at this rate is the machine's limit).
        say(f"  app_queue offered the same: {rate:g} calls/s for {p.overload_seconds:.0f} s, "
            f"then {base:g}")
        ref = None
        try:
            await self._arm(AQ)
            ref = overload.reference(
                over=await self._overload_run(AQ, f"{rate:g} calls/s (2x)", rate, 700,
                                              p.overload_seconds),
                after=await self._overload_run(AQ, f"{base:g} calls/s after", base, 701,
                                               p.recovery_seconds))
        except UserError as e:
            say(f"  app_queue's run did not finish: {e.id}: {e.message[:200]}")
        self.results["overload"] = overload.figures(
            rate=rate, sustained=base, over=over, after=after, api_over=api_over,
            api_after=api_after, server_alive=alive, overloaded_at_end=at_end,
            episodes=episodes, reference=ref)
        o = self.results["overload"]
        say(f"  served {o['served']}, turned away {o['turned_away']}, gave up waiting "
            f"{o['gave_up']}, failed otherwise {o['failed_other']} of {o['calls']}; API p95 "
            f"{o['api_during']['ms'].get('p95')} ms ({o['api_during']['errors']} errors); AMI "
            f"disconnects {o['ami_disconnects']}; after: {o['after']['completed']} of "
            f"{o['after']['calls']} completed; not placed by Asterisk: ours {o['not_placed']}, "
            f"app_queue {(ref or {}).get('not_placed')}")

    async def _overload_run(self, arm: str, label: str, rate: float, seed: int,
                            seconds: float) -> Any:
        p = self.plan
        return self._keep("overload", await self.bench.run(
            arm, label, load.LoadProfile(number=NUMBERS[arm], rate=rate, arrivals="poisson",
                                         duration=seconds, seed=seed, max_wait=60),
            load.TalkTimes("exponential", p.step_talk, seed, cap=TALK_CAP, minimum=TALK_MIN)))

    # ---------------------------------------------------------------- 5
    async def pop(self) -> None:
        p = self.plan
        t = self.results.get("throughput", {})
        rate = (t.get(OURS) or {}).get("rate") or p.steps[0]
        say(f"(5) screen pop: {p.pages} agent pages connected, {rate:g} calls/s for "
            f"{p.pop_seconds:.0f} s (ours)")
        await self.bench.ours_up()
        try:
            async with server_api.ServerApi(self.bench.http, server_api.web_login(self.bench.cfg)) as api:
                pages = server_api.AgentPages(api, self.bench.setup.agent_ids()[: p.pages])
                try:
                    await pages.start()
                    prof = load.LoadProfile(number=NUMBERS[OURS], rate=rate, arrivals="poisson",
                                            duration=p.pop_seconds, seed=500, max_wait=60)
                    r = self._keep("pop", await self.bench.run(
                        OURS, f"{rate:g} calls/s, {p.pages} pages", prof,
                        load.TalkTimes("exponential", p.step_talk, 500, cap=TALK_CAP,
                                       minimum=TALK_MIN),
                        pages=pages))
                finally:
                    await pages.stop()
        finally:
            await self.bench.ours_down()
        lat, rings, lost = screen_pop_latencies(r)
        self.results["screen_pop"] = {"rate": rate, "pages": p.pages, **_dist(lat),
                                      "rings": rings, "lost": lost,
                                      "connected_calls": rings + lost, "page_messages": r.pages.get("messages"),
                                      "pages_cut": r.pages.get("cut")}

    # ---------------------------------------------------------------- where the CPU goes
    async def profile(self) -> None:
        p = self.plan
        say(f"our server under cProfile: {p.profile_rate:g} calls/s for {p.profile_seconds:.0f} s")
        path = self.bench.setup.run_dir / "server.prof"
        path.unlink(missing_ok=True)
        await self.bench.ours_up(profile=path)
        assert self.bench.server is not None
        os.kill(self.bench.server.pid, signal.SIGUSR1)      # profile from here on
        try:
            prof = load.LoadProfile(number=NUMBERS[OURS], rate=p.profile_rate, arrivals="poisson",
                                    duration=p.profile_seconds, seed=600, max_wait=60)
            r = self._keep("profile", await self.bench.run(
                OURS, "profiled", prof, load.TalkTimes("exponential", p.step_talk, 600,
                                                       cap=TALK_CAP, minimum=TALK_MIN)))
        finally:
            await self.bench.ours_down()
        found = path.exists()
        self.results["server_profile"] = {
            "rate": p.profile_rate, "calls": len(r.records), "completed": r.completed,
            "by_package": by_package(str(path)) if found else [],
            "ami_messages": calls_of(str(path), "acd/ami/client.py", "parse_message") if found else None}

    # ---------------------------------------------------------------- recording
    async def recording(self) -> None:
        """CPU per recorded call: the same calls to the bench group with ``record: none`` and
        with ``record: all`` (our server restarted between), in turn; and the files' size."""
        p = self.plan
        say(f"recording: {p.rec_chunks} x {p.rec_seconds:.0f} s at {p.rec_rate:g} calls/s with "
            f"the group recorded and not, in turn (ours only)")
        folder = self.bench.cfg.recordings_folder
        runs: dict[str, list[dict[str, Any]]] = {"none": [], "all": []}
        try:
            for i in range(p.rec_chunks):
                for record in (("none", "all") if i % 2 == 0 else ("all", "none")):
                    await self.bench.ours_down()
                    self.bench.record_calls(record)
                    await self.bench.ours_up()
                    before = set(folder.rglob("*.wav")) if folder.exists() else set()
                    prof = load.LoadProfile(number=NUMBERS[OURS], rate=p.rec_rate,
                                            arrivals="poisson", duration=p.rec_seconds,
                                            seed=700 + i, max_wait=60)
                    r = self._keep("recording", await self.bench.run(
                        OURS, f"record {record} {i + 1}", prof,
                        load.TalkTimes("exponential", p.step_talk, 700 + i, cap=TALK_CAP,
                                       minimum=TALK_MIN)))
                    files = await recordings_made(folder, before, r.completed if record == "all"
                                                  else 0, r.cpu, self.bench)
                    runs[record].append({"calls": len(r.records), "completed": r.completed,
                                         "cpu": r.cpu, **files})
        finally:
            await self.bench.ours_down()
            self.bench.record_calls("none")
        self.results["recording"] = report.recording_figures(runs, p.rec_rate)

    # ---------------------------------------------------------------- webrtc
    async def webrtc(self) -> None:
        """What a browser phone costs Asterisk: SIP phones, browser G.711, browser Opus
        (bench/webrtc.py)."""
        p = self.plan
        say(f"webrtc: {p.webrtc_calls} calls held {p.webrtc_hold:.0f} s (after {p.webrtc_idle:.0f}"
            f" s idle) with agents on SIP phones, on browser phones G.711, then Opus (ours)")
        self.results["webrtc"] = await webrtc.measure(
            self.bench, calls=p.webrtc_calls, hold=p.webrtc_hold, idle=p.webrtc_idle, say=say)

    # ---------------------------------------------------------------- 6 and 7
    def core(self) -> None:
        say(f"(6) the core alone: 100, 1,000, 10,000 agents, 10,000 waiting, 100 groups, "
            f"{self.plan.core_cycles} cycles")
        res = core_bench.measure(cycles=self.plan.core_cycles)
        for op, sizes in res["ops"].items():
            for n, d in sizes.items():
                xs = d.pop("samples_us")
                d["cdf_us"] = [(round(x, 2), round(f, 4)) for x, f in cdf(xs, 100)]
        self.results["core"] = res

    async def memory(self) -> None:
        p = self.plan
        say(f"(7) our server's memory: {p.mem_agents} agents, {p.mem_callers} waiting callers")
        self.results["memory"] = await memory.measure(agents=p.mem_agents, callers=p.mem_callers,
                                                      say=say)

    # ---------------------------------------------------------------- 8
    async def startup(self) -> None:
        p = self.plan
        say(f"(8) start-up: `acd run` with {p.startup_agents} agents and their web users "
            f"(and with {p.startup_small})" if p.startup_small else
            f"(8) start-up: `acd run` with {p.startup_agents} agents and their web users")
        self.results["startup"] = await startup.measure(agents=p.startup_agents,
                                                        small=p.startup_small, say=say)

    # ---------------------------------------------------------------- 9
    async def reports(self) -> None:
        n = self.plan.report_calls
        say(f"(9) history reports over {n:,} calls (SQLite), and the indexer's rate")
        self.results["reports"] = await reports_bench.measure(calls=n, say=say)

    # ---------------------------------------------------------------- all
    async def run(self) -> None:
        real = {"idle", "free", "ivr", "throughput", "overload", "pop", "profile",
                "recording", "webrtc"} & self.only
        if real:
            await self.bench.start(talk_cap=TALK_CAP)
            try:
                # Overload last: twice the sustained rate can leave the bench's Asterisk too
                # far behind for the measures after it (it is its own measure of recovery).
                for m in ("idle", "free", "ivr", "throughput", "pop", "profile", "recording",
                          "webrtc", "overload"):
                    if self.want(m):
                        try:
                            await getattr(self, m)()
                        except UserError as e:
                            # one measure that cannot finish does not lose the others' figures
                            say(f"  {m} did not finish: {e.id}: {e.message[:300]}")
                            self.results.setdefault("errors", {})[m] = f"{e.id}: {e.message[:500]}"
            finally:
                await self.bench.stop()
        if self.want("core"):
            self.core()
        if self.want("memory"):
            await self.memory()
        if self.want("startup"):
            await self.startup()
        if self.want("reports"):
            await self.reports()


async def recordings_made(folder: Path, before: set[Path], expected: int,
                          cpu: dict[str, Any], bench: Bench) -> dict[str, Any]:
    """The recordings a run made (new files in the folder), once ``expected`` of them are
    there (the server writes each WAV just after its leg ends) or 30 s have passed. The CPU
    our server and Asterisk spent meanwhile is added to the run's ``cpu``: closing the files
    is part of recording."""
    server_pid = bench.server.pid if bench.server else None
    ast_pid = bench.asterisk.pid() if bench.asterisk else None
    s0 = inst.cpu_seconds(server_pid) if server_pid else None
    a0 = inst.cpu_seconds(ast_pid) if ast_pid else None
    deadline = time.monotonic() + 30
    new: list[Path] = []
    while True:
        new = sorted(set(folder.rglob("*.wav")) - before) if folder.exists() else []
        if len(new) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)          # waiting for files being closed, bounded
    if s0 is not None and cpu.get("server") is not None:
        cpu["server"] = round(cpu["server"] + inst.cpu_seconds(server_pid) - s0, 3)
    if a0 is not None and cpu.get("asterisk") is not None:
        cpu["asterisk"] = round(cpu["asterisk"] + inst.cpu_seconds(ast_pid) - a0, 3)
    size = seconds = 0.0
    channels = set()
    for f in new:
        try:
            with wave.open(str(f)) as w:
                seconds += w.getnframes() / w.getframerate()
                channels.add(w.getnchannels())
            size += f.stat().st_size
        except (OSError, wave.Error, EOFError):
            continue
    return {"files": len(new), "bytes": int(size), "audio_seconds": round(seconds, 1),
            "channels": sorted(channels)}


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=inst.PROJECT, capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="each measure briefly (make bench-quick)")
    ap.add_argument("--only", default=",".join(MEASURES),
                    help=f"measures to run, of {','.join(MEASURES)}")
    ap.add_argument("--results", default=str(RESULTS), help="folder for latest.json")
    ap.add_argument("--docs", default=str(DOCS), help="folder for benchmarks.md")
    ap.add_argument("--report-only", action="store_true",
                    help="no measuring: write docs/benchmarks.md again from latest.json")
    ap.add_argument("--sustained", type=float, default=None,
                    help="our sustained calls/s for the overload measure when throughput "
                         "is not run (e.g. --only overload --sustained 20)")
    ap.add_argument("--steps", default=None,
                    help="the throughput steps' calls/s, comma-separated, instead of the "
                         "plan's (e.g. --only throughput --steps 20 to rerun one step)")
    args = ap.parse_args(argv)
    if args.report_only:
        path = Path(args.results) / "latest.json"
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"error: bench.no_results: {path}: {e}", file=sys.stderr)
            return 2
        results["targets"] = report.evaluate(results)
        results["ratios"] = report.ratios(results)
        results["notes"] = report.gap_notes(results)
        path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        say(f"wrote {report.write_docs(results, Path(args.docs))}")
        return 0
    only = {m.strip() for m in args.only.split(",") if m.strip()}
    if not only <= set(MEASURES):
        print(f"error: bench.usage: unknown measures {sorted(only - set(MEASURES))}", file=sys.stderr)
        return 2
    acdlog.configure("warning", "console")
    plan = QUICK if args.quick else FULL
    if args.steps:
        try:
            steps = tuple(float(x) for x in args.steps.split(",") if x.strip())
        except ValueError:
            steps = ()
        if not steps or min(steps) <= 0:
            print(f"error: bench.usage: --steps wants calls/s > 0, not {args.steps!r}",
                  file=sys.stderr)
            return 2
        plan = dataclasses.replace(plan, steps=steps)
    started = time.time()
    machine0 = inst.machine()
    runner = Runner(plan, only, args.sustained)
    try:
        with inst.Lock():
            inst.RUN_DIR.mkdir(parents=True, exist_ok=True)
            (inst.RUN_DIR / "server.log").write_bytes(b"")
            asyncio.run(runner.run())
    except UserError as e:
        print(f"error: {e.id}: {e.message}", file=sys.stderr)
        return 2
    results = {
        "schema": 1,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "plan": asdict(plan), "command": "make bench-quick" if args.quick else "make bench",
        "wall_seconds": round(time.time() - started, 1),
        "git": _git(), "machine": {**machine0, "loadavg_end": [round(x, 2) for x in
                                                                os.getloadavg()]},
        "asterisk": runner.bench.asterisk.install.version if runner.bench.asterisk else None,
        "setup": report.setup_description(runner.bench.setup),
        "measures": runner.results,
        "runs": {m: [_run_summary(r) for r in rs] for m, rs in runner.runs.items()},
        "failed_calls": {m: _failed(rs) for m, rs in runner.runs.items()},
        "machine_load": {m: report.load_share(rs) for m, rs in runner.runs.items()},
    }
    results["targets"] = report.evaluate(results)
    results["ratios"] = report.ratios(results)
    results["notes"] = report.gap_notes(results)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    with gzip.open(out / "calls-latest.jsonl.gz", "wt") as f:
        for m, rs in runner.runs.items():
            for r in rs:
                for rec in r.records:
                    f.write(json.dumps({"measure": m, "arm": r.arm, "run": r.label,
                                        **rec.to_dict()}) + "\n")
    report.write_docs(results, Path(args.docs))
    say(f"wrote {out / 'latest.json'}, {out / 'calls-latest.jsonl.gz'} and "
        f"{Path(args.docs) / 'benchmarks.md'} in {results['wall_seconds']:.0f} s")
    for t in results["targets"]:
        say(f"  target {t['id']}: {'met' if t['met'] else 'MISSED' if t['met'] is False else 'n/a'}"
            f" - {t['text']}: {t['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
