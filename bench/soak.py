"""`make soak`: calls at a steady rate for a long time through the real Asterisk, agents
changing states and doing holds and transfers meanwhile, then a verdict.

What runs, all real: Asterisk (its own instance ``soak``, its own ports, see :class:`SoakSetup`),
callers over the loopback trunk and agents on baresip phones (:mod:`acd.tools.load`), our server as a
process of its own (:class:`bench.instance.ServerProcess`). The agents act over the HTTP API the
way the agent page does: each logs in with their own web password and posts state changes
(break, meeting, back to idle), holds and resumes, and transfers (to an idle colleague, or to
the skill group) while the calls go on. Some callers hang up on their own (``abandon``).

The verdict (bench/results/soak-latest.json and docs/soak.md):

* calls offered, completed, and the rest by cause: the caller hung up (a choice, not a loss),
  or lost: dropped by our side, no agent in time, never queued, unfinished, refused;
* records whole: every call in the database has one end reason, a timeline from ``arrived``
  to one ``ended`` with that reason, legs for the agents who talked, and matches what the
  load generator saw (who hung up, which agents);
* agents in a wrong state at the end, against the truth (Asterisk's channels and contacts);
* our server's memory: VmRSS every few seconds, and its growth after the warm-up (the slope
  of a least-squares line over the last two thirds of the run);
* the end: Asterisk's channel list must be empty once the calls are over (after a short wait
  for calls still hanging up); every channel the run left there is listed (name, state,
  application, how long it has been up).

Exit status 1 when a call was lost or something was wrong (records, agents, channels left
over); memory is reported as met or missed. The judging functions are pure, in
:mod:`bench.soak_judge`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from acd import config as configmod
from acd.tools import load, load_calls, server_api
from acd.errors import UserError
from bench.instance import left_over_lines
from bench.soak_judge import (NOT_LOST, agent_problems, call_outcome, memory_growth, memory_met,
                              record_problems)

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "bench" / "results"
DOCS = PROJECT / "docs"
SOAK_GROUP = "soak"
SOAK_NUMBER = "7130"


# =========================================================================== the set-up

@dataclass(frozen=True)
class SoakSetup:
    """The soak's own Asterisk instance and ports, apart from `make run` (5060...), the test
    slots (15060 + 10 * slot, RTP 21000-40999) and the bench (25060..., RTP 41000-44999)."""
    agents: int = 6
    instance: str = "soak"
    sip_port: int = 26060
    ami_port: int = 26038
    agi_port: int = 26573
    http_port: int = 29080
    rtp_start: int = 45000
    rtp_end: int = 46999
    run_dir: Path = PROJECT / "bench" / "run" / "soak"      # ignored by git (run/)

    def agent_ids(self) -> list[str]:
        return [str(3001 + i) for i in range(self.agents)]


def soak_group_data(agent_ids: Iterable[str], number: str = SOAK_NUMBER) -> dict[str, Any]:
    """The one skill group the soak's callers dial, as config data: every agent a member, a
    short wrap-up."""
    return {"name": SOAK_GROUP, "number": number, "members": {a: 1 for a in agent_ids},
            "ring_timeout": 15, "wrapup_seconds": 2}


def soak_group(agent_ids: Iterable[str], number: str = SOAK_NUMBER) -> configmod.GroupConfig:
    """The same group for a test's configuration."""
    return configmod.GroupConfig(**soak_group_data(agent_ids, number))


def setup_config(s: SoakSetup) -> configmod.Config:
    """`make soak`'s configuration: written to run_dir/asterisk.yaml, secrets generated into
    run_dir/data/secrets.yaml (kept between runs)."""
    s.run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "data_dir": str(s.run_dir / "data"),
        "hotline": {"number": "7800", "agi_retry_seconds": 1, "agi_retry_count": 30},
        "asterisk": {"instance": s.instance, "root": str(PROJECT / ".cache" / "asterisk-root"),
                     "sip_port": s.sip_port, "rtp_start": s.rtp_start, "rtp_end": s.rtp_end,
                     "http_port": s.sip_port + 28,   # its web server (WebSocket SIP): 26088
                     "loopback_trunk": True},
        "ami": {"port": s.ami_port},
        "agi": {"port": s.agi_port},
        "http": {"port": s.http_port},
        "agents": [{"id": a, "name": f"Soak {a}"} for a in s.agent_ids()],
        "groups": [soak_group_data(s.agent_ids())],
    }
    path = s.run_dir / "asterisk.yaml"
    path.write_text("# Written by bench/soak.py for `make soak`; rewritten every run.\n"
                    + yaml.safe_dump(data, sort_keys=False))
    cfg = configmod.load(path, environ={})
    cfg, _ = configmod.with_secrets(cfg)
    return cfg


SOAK_ENDED_CALLS_KEPT = 50


def write_server_config(cfg: configmod.Config, agents: list[str], run_dir: Path,
                        number: str = SOAK_NUMBER) -> tuple[Path, dict[str, str], str]:
    """Our server's configuration for the soak (mode 0600): the Asterisk it drives (ports, AMI
    secret, the agents' SIP passwords from ``cfg``), only the soak's agents and skill group,
    fresh web passwords for the agents and an admin. Returns the file, the agents' web
    passwords and the admin's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    sip = {a.id: a.password for a in cfg.agents}
    web = {a: secrets.token_urlsafe(15) for a in agents}
    admin = secrets.token_urlsafe(15)
    a = cfg.asterisk
    data = {
        "data_dir": str(run_dir / "data"),
        "hotline": {"number": cfg.hotline.number, "agi_retry_seconds": 1, "agi_retry_count": 30},
        "asterisk": {"instance": a.instance, "root": str(cfg.path(a.root)),
                     "sip_port": a.sip_port, "rtp_start": a.rtp_start, "rtp_end": a.rtp_end,
                     "loopback_trunk": True},
        "ami": {"host": cfg.ami.host, "port": cfg.ami.port, "username": cfg.ami.username,
                "secret": cfg.ami.secret},
        "agi": {"port": cfg.agi.port},
        "http": {"port": cfg.http.port},
        # The core's memory of ended calls is a ring (10,000 calls by default, ~2 KB each):
        # filling it is growth by design, which 30 minutes of calls would show as a slope.
        # Kept small here, it is full after the warm-up, so the slope is what is not bounded.
        "core": {"ended_calls_kept": SOAK_ENDED_CALLS_KEPT},
        "logging": {"level": "info", "format": "json"},
        "agents": [{"id": x, "name": f"Agent {x}", "password": sip[x], "web_password": web[x]}
                   for x in agents],
        "groups": [soak_group_data(agents, number)],
        "web": {"users": [{"username": "admin", "role": "admin", "password": admin}]},
    }
    path = run_dir / "server.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by bench/soak.py: our server's config for a soak run.\n"
                + yaml.safe_dump(data, sort_keys=False))
    os.chmod(path, 0o600)
    return path, web, admin


# =========================================================================== the run

@dataclass
class SoakPlan:
    """What a soak run does. Rates and times are per second, seconds."""
    minutes: float = 30.0
    rate: float = 0.3                 # calls offered a second (Poisson arrivals)
    talk: float = 8.0                 # mean talk time (exponential, from talk_min, cut at talk_max)
    talk_min: float = 5.0
    talk_max: float = 20.0
    answer_delay: float = 0.5         # seconds a phone rings before it answers
    abandon: float = 0.08             # share of callers who hang up on their own ...
    patience: tuple[float, float] = (2.0, 25.0)   # ... this long after dialling
    max_wait: float = 90.0            # a caller still waiting then gives up (no agent in time)
    hold: float = 0.2                 # share of answered calls the agent holds (and resumes)
    transfer: float = 0.15            # share the agent transfers (to a colleague or the group)
    away: float = 0.02                # chance a second that an idle agent takes a break/meeting
    away_seconds: tuple[float, float] = (5.0, 20.0)
    sample_every: float = 10.0        # VmRSS of our server
    progress_every: float = 30.0
    memory_limit_kib_per_min: float = 64.0
    seed: int = 1


@dataclass
class Actions:
    """The agents' actions over the HTTP API: done, refused (409 with the core's id: the
    call moved on meanwhile), failed (anything else)."""
    done: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def note(self, what: str, status: int, body: Any) -> bool:
        if status == 200:
            self.done[what] = self.done.get(what, 0) + 1
            return True
        if status == 409:
            key = f"{what}: {body.get('error') if isinstance(body, dict) else body}"
            self.refused[key] = self.refused.get(key, 0) + 1
            return False
        self.failed.append(f"{what}: {status} {str(body)[:200]}")
        return False


class SoakTracker(load_calls.CallTracker):
    """The load generator's tracker, also noting every agent bridged with each caller (a
    transfer brings a second one)."""

    def __init__(self, agents: Iterable[str]) -> None:
        super().__init__(agents)
        self.talked: dict[str, list[str]] = {}      # call uid -> agents, in order

    def on_event(self, e: Any) -> None:
        super().on_event(e)
        if e.name != "BridgeEnter":
            return
        members = self.bridges[str(e.fields.get("BridgeUniqueid", ""))]
        calls = [u for u in members if u in self.by_call]
        legs = [self.legs[u] for u in members if u in self.legs]
        for u in calls:
            seq = self.talked.setdefault(u, [])
            for leg in legs:
                if leg.agent not in seq:
                    seq.append(leg.agent)


class Soak:
    """One soak run against an Asterisk that is up with ``cfg`` (its AMI, the loopback trunk,
    the agents' endpoints and the soak group's number rendered)."""

    def __init__(self, cfg: configmod.Config, agents: list[str], plan: SoakPlan, run_dir: Path,
                 number: str = SOAK_NUMBER, say: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.agents = agents
        self.plan = plan
        self.run_dir = run_dir
        self.number = number
        self.say = say
        self.base = f"http://{cfg.http.host}:{cfg.http.port}"
        self.rng = random.Random(plan.seed)
        self.actions = Actions()
        self.views: dict[str, dict[str, Any]] = {}
        self.rss: list[tuple[float, int]] = []
        self.cut: dict[int, float] = {}               # call n -> when the caller hung up
        self.acted: set[tuple[str, str]] = set()      # (agent, call id) acted on
        self.away_now: set[str] = set()
        self.stop_acting = asyncio.Event()
        self.t0 = 0.0
        self.server: Any = None
        self.lr: load.LoadRun | None = None
        self.tracker: SoakTracker | None = None
        self.phones: load.AgentPhones | None = None
        self.channels_before: frozenset[str] = frozenset()   # Uniqueids there before the run
        self.channels: dict[str, Any] = {}    # the end's check (bench.instance.left_over)

    # ------------------------------------------------------------------ life

    async def run(self) -> dict[str, Any]:
        from acd.ami.client import AmiClient
        from bench import instance as inst
        p = self.plan
        server_cfg, self.web_pw, admin_pw = write_server_config(self.cfg, self.agents,
                                                                self.run_dir, self.number)
        log_path = self.run_dir / "server.log"
        log_path.write_bytes(b"")
        self.db_path = self.run_dir / "soak.db"
        self.server = inst.ServerProcess(server_cfg, log_path, self.db_path)
        self.log_path = log_path
        c = self.cfg.ami
        ami = AmiClient(c.host, c.port, c.username, c.secret, action_timeout=15)
        sip = {a.id: a.password for a in self.cfg.agents}
        self.phones = load.AgentPhones(
            {a: sip[a] for a in self.agents}, self.cfg.asterisk.sip_host,
            self.cfg.asterisk.sip_port, answer_delay=p.answer_delay,
            talk=load.TalkTimes("exponential", p.talk, p.seed, cap=p.talk_max,
                                minimum=p.talk_min),
            tone_seconds=int(2 * p.talk_max) + 60)
        self.admin = server_api.ServerApi(self.base, ("admin", admin_pw))
        self.agent_api = {a: server_api.ServerApi(self.base, (a, self.web_pw[a])) for a in self.agents}
        tasks: list[asyncio.Task] = []
        await self.admin.__aenter__()
        for api in self.agent_api.values():
            await api.__aenter__()
        try:
            follower = await self._begin(ami)
            self.tracker = SoakTracker(self.agents)
            follower.tracker = self.tracker
            profile = load.LoadProfile(number=self.number, rate=p.rate, arrivals="poisson",
                                       duration=p.minutes * 60, seed=p.seed, max_wait=p.max_wait,
                                       settle=60.0, run_id=int(time.time()) % 1000)
            self.lr = load.LoadRun(ami, self.tracker, profile,
                                   talk_max=2 * p.talk_max + 15, phones=self.phones)
            planned = len(profile.offsets())
            self.say(f"soak: {p.minutes:g} min, {p.rate:g} calls/s (Poisson, {planned} calls), "
                     f"{len(self.agents)} agents, talk {p.talk_min:g}-{p.talk_max:g} s "
                     f"(mean {p.talk:g}), holds {p.hold:.0%}, transfers {p.transfer:.0%}, "
                     f"callers hanging up {p.abandon:.0%}")
            self.t0 = time.monotonic()
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(self._watch_agents()),
                     loop.create_task(self._sample_memory()),
                     loop.create_task(self._progress()),
                     loop.create_task(self._callers_hang_up(ami)),
                     loop.create_task(self._stop_acting_after(p.minutes * 60))]
            actors = [loop.create_task(self._agent(a)) for a in self.agents]
            records = await self.lr.run()
            self.stop_acting.set()
            await asyncio.wait_for(asyncio.gather(*actors, return_exceptions=True), 120)
            self.seconds = time.monotonic() - self.t0
            self.say("calls over; checking the agents against Asterisk")
            agents_check = await self._check_agents()
            # The end: Asterisk's channel list empty, but for what was there before the run.
            self.channels = await inst.left_over(ami, ignore=self.channels_before)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = []
            self.ami_disconnects = follower.disconnects
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.phones.stop()
            await ami.close()
            await asyncio.to_thread(self.server.stop)
            for api in (*self.agent_api.values(), self.admin):
                await api.__aexit__()
        calls = await self._check_records(records)
        return self._result(records, calls, agents_check)

    async def _begin(self, ami: Any) -> load_calls.Follower:
        """Our server, the AMI link (followed), the phones; every agent logged in on their
        own page and available; the channels Asterisk has before the first call (not the
        run's own)."""
        from bench import instance as inst
        self.server.start()
        await ami.start(connect_timeout=30)
        follower = load_calls.Follower(ami)
        await follower.start()
        self.say(f"starting {len(self.agents)} agent phones (baresip) and our server")
        await self.phones.start()
        await inst.wait_ready(self.admin)
        for a in self.agents:          # each agent logs in on their own page
            await inst.api_post(self.agent_api[a], f"/api/agents/{a}/login")
        await self._wait_agents(lambda v: v.get("available"), "available", 60)
        before = await inst.left_over(ami, settle=0)
        self.channels_before = frozenset(c["uniqueid"] for c in before["left"] or ())
        return follower

    async def _wait_agents(self, pred: Callable[[dict[str, Any]], Any], what: str,
                           timeout: float) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.admin.call("GET", "/api/agents")
            snap = body.get("agents", {}) if status == 200 and isinstance(body, dict) else {}
            if snap and all(pred(snap.get(a, {})) for a in self.agents):
                return snap
            if time.monotonic() > deadline:
                return snap
            await asyncio.sleep(0.5)      # polling the server, bounded by the deadline

    # ------------------------------------------------------------------ while calls flow

    async def _watch_agents(self) -> None:
        """The supervisor's view of every agent, once a second."""
        while True:
            try:
                status, body = await self.admin.call("GET", "/api/agents")
                if status == 200 and isinstance(body, dict):
                    self.views = body.get("agents", {})
            except UserError:
                pass
            await asyncio.sleep(1.0)

    async def _sample_memory(self) -> None:
        from bench import instance as inst
        while True:
            if self.server.alive():
                try:
                    rss = inst.rss_bytes(self.server.pid)["VmRSS"]
                    self.rss.append((time.monotonic() - self.t0, rss))
                except (OSError, KeyError):
                    pass
            await asyncio.sleep(self.plan.sample_every)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(self.plan.progress_every)
            recs = self.lr.records if self.lr else []
            ended = sum(1 for r in recs if r.ended_at is not None)
            states: dict[str, int] = {}
            for v in self.views.values():
                states[v.get("state", "?")] = states.get(v.get("state", "?"), 0) + 1
            rss = f"{self.rss[-1][1] // 1024} KiB" if self.rss else "-"
            self.say(f"  {int(time.monotonic() - self.t0):5d} s  calls {len(recs)} placed, "
                     f"{ended} ended, {len(recs) - ended} on  agents "
                     + ", ".join(f"{k} {n}" for k, n in sorted(states.items()))
                     + f"  actions {sum(self.actions.done.values())} "
                     f"(refused {sum(self.actions.refused.values())}, "
                     f"failed {len(self.actions.failed)})  server RSS {rss}")

    async def _callers_hang_up(self, ami: Any) -> None:
        """A share of callers hang up on their own, after their patience, whatever the call
        is doing then (waiting, ringing an agent, talking)."""
        rng = random.Random(self.plan.seed + 1)
        patience: dict[int, float | None] = {}
        while True:
            now = time.time()
            for r in list(self.lr.records if self.lr else []):
                if r.n not in patience:
                    patience[r.n] = (rng.uniform(*self.plan.patience)
                                     if rng.random() < self.plan.abandon else None)
                wait = patience[r.n]
                if (wait is None or r.n in self.cut or r.sent_at is None or r.ended_at is not None
                        or now < r.sent_at + wait):
                    continue
                self.cut[r.n] = time.time()
                try:
                    await ami.action("Hangup", Channel=r.trunk_uid)
                except Exception:           # gone meanwhile: its end shows in the records
                    pass
            await asyncio.sleep(0.25)

    async def _stop_acting_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.stop_acting.set()

    async def _post(self, agent: str, what: str, path: str, body: Any = None) -> bool:
        try:
            status, data = await self.agent_api[agent].call("POST", path, body)
        except UserError as e:
            self.actions.failed.append(f"{what}: {e.message}")
            return False
        return self.actions.note(what, status, data)

    async def _agent(self, agent: str) -> None:
        """One agent at their page: breaks and meetings while idle; holds and transfers on
        some calls, soon after answering (well before their phone hangs up)."""
        p = self.plan
        rng = random.Random(f"{p.seed}-{agent}")
        base = f"/api/agents/{agent}"
        while not self.stop_acting.is_set():
            await asyncio.sleep(1.0)
            v = self.views.get(agent) or {}
            state, call_id = v.get("state"), v.get("call_id")
            control = (v.get("control") or {}).get("state")
            if (state == "idle" and agent not in self.away_now
                    and len(self.away_now) < max(1, len(self.agents) // 3)
                    and rng.random() < p.away):
                self.away_now.add(agent)
                try:
                    kind = rng.choice(("break", "meeting"))
                    if await self._post(agent, kind, f"{base}/state",
                                        {"state": kind, "reason": "soak"}):
                        await asyncio.sleep(rng.uniform(*p.away_seconds))
                    await self._post(agent, "idle", f"{base}/state", {"state": "idle"})
                finally:
                    self.away_now.discard(agent)
            elif state == "talking" and call_id and control == "talking" \
                    and (agent, call_id) not in self.acted:
                self.acted.add((agent, call_id))
                x = rng.random()
                if x < p.hold:
                    if await self._post(agent, "hold", f"{base}/call/hold"):
                        await asyncio.sleep(rng.uniform(1.5, 3.0))
                        await self._post(agent, "resume", f"{base}/call/resume")
                elif x < p.hold + p.transfer:
                    idle = [a for a, w in self.views.items()
                            if a != agent and a in self.agent_api and w.get("available")]
                    if idle and rng.random() < 0.6:
                        await self._post(agent, "transfer to an agent", f"{base}/call/transfer",
                                         {"to_agent": rng.choice(idle)})
                    else:
                        await self._post(agent, "transfer to the group", f"{base}/call/transfer",
                                         {"to_group": SOAK_GROUP})

    # ------------------------------------------------------------------ the verdict

    async def _check_agents(self) -> dict[str, Any]:
        """Once every call is over and the wrap-ups have run out: each agent's state in our
        server against Asterisk's channels and contacts."""
        from acd.ami.client import AmiClient
        views = await self._wait_agents(
            lambda v: v.get("state") == "idle" and not v.get("call_id") and not v.get("pending"),
            "idle", 30)
        c = self.cfg.ami
        truth = AmiClient(c.host, c.port, c.username, c.secret, action_timeout=15)
        await truth.start(connect_timeout=30)
        try:
            chans = await truth.action_list("CoreShowChannels", timeout=30)
            registered = set(await load.registered(truth, self.agents))
        finally:
            await truth.close()
        per_agent: dict[str, int] = {a: 0 for a in self.agents}
        for ch in chans:
            name = str(ch.get("Channel", ""))
            if name.startswith("PJSIP/"):
                a = name[6:].rsplit("-", 1)[0]
                if a in per_agent:
                    per_agent[a] += 1
        wrong = {}
        for a in self.agents:
            probs = agent_problems(a, views.get(a, {}), per_agent[a], a in registered)
            if probs:
                wrong[a] = probs
        return {"agents": {a: {"state": views.get(a, {}).get("state"),
                               "reachable": views.get(a, {}).get("reachable"),
                               "channels": per_agent[a], "registered": a in registered}
                           for a in self.agents},
                "wrong": wrong, "channels_left": len(chans)}

    async def _check_records(self, records: list[load_calls.LoadCall]) -> dict[str, Any]:
        from acd.store.db import Store
        by_caller: dict[str, list[load.PhoneCall]] = {}
        for pc in sorted(self.phones.calls, key=lambda c: c.established_at):
            by_caller.setdefault(pc.caller, []).append(pc)
        gave_up = self.lr._cut if self.lr else set()          # noqa: SLF001 (max_wait cuts)
        store = Store(f"sqlite+aiosqlite:///{self.db_path}")
        out: dict[str, Any] = {"outcomes": {}, "lost": [], "wrong": [], "unknown_records": []}
        try:
            seen: set[str] = set()
            for r in records:
                outcome = call_outcome(r, by_caller.get(r.caller_number, []), self.cut.get(r.n),
                                       r.n in gave_up and r.n not in self.cut)
                out["outcomes"][outcome] = out["outcomes"].get(outcome, 0) + 1
                talked = self.tracker.talked.get(r.call_uid or "", []) if self.tracker else []
                entry = {"n": r.n, "caller": r.caller_number, "call_id": r.call_uid,
                         "outcome": outcome, "agents": talked, "sent_at": r.sent_at,
                         "queued_at": r.queued_at, "bridged_at": r.bridged_at,
                         "ended_at": r.ended_at, "caller_hung_up_at": self.cut.get(r.n),
                         "phones": [(pc.agent, pc.established_at, pc.hangup_sent_at,
                                     pc.closed_at) for pc in by_caller.get(r.caller_number, [])]}
                if outcome not in NOT_LOST:
                    out["lost"].append(entry)
                if r.call_uid is None:
                    continue
                seen.add(r.call_uid)
                stored = await store.get_call(r.call_uid)
                probs = record_problems(stored, outcome, talked)
                if probs:
                    out["wrong"].append({**entry, "problems": probs,
                                         "end_reason": (stored or {}).get("end_reason"),
                                         "timeline": [e["kind"] for e in (stored or {}).get(
                                             "events", [])]})
            every = await store.recent_calls(100_000)
            out["records"] = len(every)
            out["unknown_records"] = [c["uniqueid"] for c in every if c["uniqueid"] not in seen]
            out["open_records"] = [c["uniqueid"] for c in await store.open_calls()]
        finally:
            await store.close()
        evidence = self._log_lines({e["call_id"] for e in out["lost"] + out["wrong"]
                                    if e.get("call_id")})
        for e in out["lost"] + out["wrong"]:
            e["server_log"] = evidence.get(e.get("call_id") or "", [])
        return out

    def _log_lines(self, call_ids: set[str], per_call: int = 25) -> dict[str, list[str]]:
        """Our server's log lines about these calls (event, level, agent), for the report."""
        out: dict[str, list[str]] = {c: [] for c in call_ids}
        if not call_ids:
            return out
        try:
            f = open(self.log_path, "rb")
        except OSError:
            return out
        with f:
            for raw in f:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                cid = str(msg.get("call") or msg.get("uniqueid") or "")
                if cid in out and len(out[cid]) < per_call:
                    extra = {k: v for k, v in msg.items()
                             if k not in ("event", "level", "timestamp", "call", "logger")}
                    out[cid].append(f"{msg.get('timestamp', '')} {msg.get('level', '')} "
                                    f"{msg.get('event', '')} {json.dumps(extra)[:300]}")
        return out

    def _result(self, records: list[load_calls.LoadCall], calls: dict[str, Any],
                agents: dict[str, Any]) -> dict[str, Any]:
        p = self.plan
        growth = memory_growth(self.rss)
        mem_ok = memory_met(growth, p.minutes, p.memory_limit_kib_per_min)
        lost = len(calls["lost"])
        wrong_records = len(calls["wrong"]) + len(calls["unknown_records"]) + len(
            calls["open_records"])
        wrong_agents = len(agents["wrong"])
        left = self.channels.get("left")
        return {
            "plan": {**asdict(p), "agents": len(self.agents), "number": self.number},
            "seconds": round(self.seconds, 1),
            "calls": {"offered": len(records), "outcomes": calls["outcomes"],
                      "lost": lost, "records": calls["records"]},
            "records": {"wrong": wrong_records, "problems": calls["wrong"],
                        "not_seen_by_the_callers": calls["unknown_records"],
                        "without_end": calls["open_records"]},
            "agents": agents,
            "actions": {"done": self.actions.done, "refused": self.actions.refused,
                        "failed": self.actions.failed},
            "memory": {**growth, "every_seconds": p.sample_every,
                       "limit_kib_per_min": p.memory_limit_kib_per_min,
                       "rss_kib": [(round(t, 1), v // 1024) for t, v in self.rss]},
            "ami_disconnects": getattr(self, "ami_disconnects", None),
            "lost_calls": calls["lost"],
            "channels_left": self.channels or {"left": None, "error": "not checked"},
            "targets": {"zero_lost": lost == 0,
                        "zero_wrong": wrong_records + wrong_agents + len(left or ()) == 0,
                        "records_whole": wrong_records == 0, "agents_right": wrong_agents == 0,
                        "no_channels_left": None if left is None else not left,
                        "no_memory_growth": mem_ok},
        }


# =========================================================================== report

def summary_lines(res: dict[str, Any]) -> list[str]:
    c, m, t = res["calls"], res["memory"], res["targets"]

    def met(x: bool | None) -> str:
        return "met" if x else ("missed" if x is False else "not judged (run under 5 min)")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(c["outcomes"].items()))
    return [
        f"calls offered {c['offered']}: {outcomes}",
        f"lost {c['lost']} (target 0: {met(t['zero_lost'])})",
        f"records {c['records']} in the database, wrong {res['records']['wrong']} "
        f"(records whole: {met(t['records_whole'])})",
        f"agents in a wrong state at the end {len(res['agents']['wrong'])} of "
        f"{len(res['agents']['agents'])} (target 0: {met(t['agents_right'])})",
        f"agent actions over the API: {sum(res['actions']['done'].values())} done "
        f"({', '.join(f'{k} {v}' for k, v in sorted(res['actions']['done'].items()))}), "
        f"{sum(res['actions']['refused'].values())} refused, "
        f"{len(res['actions']['failed'])} failed",
        f"server memory (VmRSS): first {m.get('first_kib')} KiB, after warm-up "
        f"{m.get('warmup_end_kib')} KiB, last {m.get('last_kib')} KiB, peak {m.get('peak_kib')}"
        f" KiB; growth after warm-up {m.get('slope_kib_per_min')} KiB/min (limit "
        f"{m['limit_kib_per_min']:g}: {met(t['no_memory_growth'])})",
        *left_over_lines(res.get("channels_left") or {"left": None, "error": "not checked"}),
    ]


def write_doc(res: dict[str, Any], path: Path) -> Path:
    p = res["plan"]
    lines = [
        "# Soak run",
        "",
        "Written by `make soak` (bench/soak.py) from its last run; the figures are in "
        "`bench/results/soak-latest.json`.",
        "",
        f"Run {res.get('generated_at', '')}, {res['seconds'] / 60:.1f} minutes: "
        f"{p['rate']:g} calls/s offered (Poisson) for {p['minutes']:g} min to a skill group of "
        f"{p['agents']} agents on real phones (baresip), talk {p['talk_min']:g}-"
        f"{p['talk_max']:g} s (exponential, mean {p['talk']:g} s); the agents hold "
        f"{p['hold']:.0%} and transfer {p['transfer']:.0%} of their calls and take breaks and "
        f"meetings over the HTTP API; {p['abandon']:.0%} of the callers hang up on their own "
        f"after {p['patience'][0]:g}-{p['patience'][1]:g} s. Machine: "
        f"{res.get('machine', {}).get('cores')} cores, load average "
        f"{res.get('machine', {}).get('loadavg')} at the start.",
        "",
        *[f"- {x}" for x in summary_lines(res)],
        "",
    ]
    if res["lost_calls"]:
        lines += ["## Lost calls", ""]
        for e in res["lost_calls"][:50]:
            lines.append(f"- call {e['n']} ({e['call_id']}): {e['outcome']}, agents "
                         f"{e['agents']}")
        lines.append("")
    if res["records"]["problems"]:
        lines += ["## Wrong records", ""]
        for e in res["records"]["problems"][:50]:
            lines.append(f"- call {e['n']} ({e['call_id']}): {'; '.join(e['problems'])}")
        lines.append("")
    if res["agents"]["wrong"]:
        lines += ["## Agents in a wrong state", ""]
        for a, probs in res["agents"]["wrong"].items():
            lines.append(f"- {a}: {'; '.join(probs)}")
        lines.append("")
    if (res.get("channels_left") or {}).get("left"):
        lines += ["## Channels left in Asterisk", ""]
        lines += [f"- {x.strip()}" for x in left_over_lines(res["channels_left"])[1:]]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


# =========================================================================== `make soak`

async def _soak_on_own_asterisk(setup: SoakSetup, plan: SoakPlan,
                                say: Callable[[str], None]) -> dict[str, Any]:
    from acd.asterisk.runner import Asterisk
    cfg = setup_config(setup)
    ast = Asterisk.for_config(cfg)
    say(f"soak Asterisk (instance {setup.instance}, SIP {setup.sip_port}, AMI {setup.ami_port})")
    await asyncio.to_thread(ast.down)           # a leftover of an interrupted soak
    await asyncio.to_thread(ast.up)
    try:
        res = await Soak(cfg, setup.agent_ids(), plan, setup.run_dir, say=say).run()
        res["asterisk"] = ast.install.version
        return res
    finally:
        await asyncio.to_thread(ast.down)


def main(argv: list[str] | None = None) -> int:
    from acd import log as acdlog
    from bench import instance as inst
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    d = SoakPlan()
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or
                                                              d.minutes))
    ap.add_argument("--rate", type=float, default=d.rate, help="calls offered a second")
    ap.add_argument("--agents", type=int, default=SoakSetup.agents)
    ap.add_argument("--talk", type=float, default=d.talk, help="mean talk time, seconds")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--sample-every", type=float, default=d.sample_every,
                    help="seconds between readings of the server's memory")
    ap.add_argument("--results", default=str(RESULTS), help="folder for soak-latest.json")
    ap.add_argument("--docs", default=str(DOCS), help="folder for soak.md")
    args = ap.parse_args(argv)
    if not (args.minutes > 0 and args.rate > 0 and args.agents >= 2 and args.talk > 1):
        print("error: soak.usage: --minutes and --rate above 0, --agents 2 or more, --talk "
              "over 1 s", file=sys.stderr)
        return 2
    plan = replace(d, minutes=args.minutes, rate=args.rate, talk=args.talk, seed=args.seed,
                   sample_every=args.sample_every,
                   talk_min=d.talk_min if args.talk > d.talk_min + 1 else args.talk / 2,
                   talk_max=max(d.talk_max, args.talk * 2))
    acdlog.configure("warning", "console")
    started = datetime.now(timezone.utc)
    machine = inst.machine()

    def say(msg: str) -> None:
        print(msg, flush=True)
    from bench.instance import Lock
    try:
        with Lock("soak"):
            res = asyncio.run(_soak_on_own_asterisk(SoakSetup(agents=args.agents), plan, say))
    except UserError as e:
        print(f"error: {e.id}: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:         # Ctrl-C: everything started was stopped on the way out
        print("soak interrupted: no results written", file=sys.stderr)
        return 130
    res["generated_at"] = started.isoformat(timespec="seconds")
    res["command"] = " ".join(["python -m bench.soak", *(argv if argv is not None else sys.argv[1:])])
    res["machine"] = {**machine, "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    from bench.__main__ import _git
    res["git"] = _git()
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak-latest.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    doc = write_doc(res, Path(args.docs) / "soak.md")
    for line in summary_lines(res):
        say(line)
    say(f"wrote {out / 'soak-latest.json'} and {doc}")
    t = res["targets"]
    return 0 if t["zero_lost"] and t["zero_wrong"] else 1


if __name__ == "__main__":
    sys.exit(main())
