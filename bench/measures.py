"""The measures on real calls (1-5), both arms on one Asterisk, arms alternating.

* ``ours``: callers dial the ACD's bench group (FastAGI queue script, our ACD core, AMI
  Originate to the agent); our server runs as a process of its own (:class:`ServerProcess`).
* ``app_queue``: callers dial a number whose dialplan runs ``Queue()`` on a queue with the
  same agents as members and the nearest settings (asterisk-conf/queues_bench.part). Our server
  is stopped meanwhile, so it costs Asterisk nothing (no AMI consumer, no FastAGI).

The same Asterisk, the same phones (baresip, registered once for the whole bench), the same
callers (the loopback trunk), the same call mix. Each measure runs in chunks, alternating
which arm goes first, so a change of the machine's load during the run hits both.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from acd.tools import load, load_calls, server_api
from acd.ami.client import AmiClient, AmiDisconnected, AmiTimeout
from acd.errors import UserError
from bench import instance as inst
from bench.stats import summary

OURS, AQ = "ours", "app_queue"
ARMS = (OURS, AQ)
NUMBERS = {OURS: inst.OURS_DIRECT, AQ: inst.AQ_DIRECT}
HOTLINES = {OURS: inst.OURS_HOTLINE, AQ: inst.AQ_HOTLINE}


def arm_order(i: int) -> tuple[str, str]:
    """Chunk i runs ours first when i is even, app_queue first when odd."""
    return (OURS, AQ) if i % 2 == 0 else (AQ, OURS)


@dataclass
class RunResult:
    """One run of one arm: every call's record and the resources it took."""
    arm: str
    label: str
    profile: dict[str, Any]
    talk: dict[str, Any]
    records: list[load_calls.LoadCall]
    legs: list[load_calls.AgentLeg]
    started: float
    seconds: float
    cpu: dict[str, float | None]
    load_before: list[float]
    load_after: list[float]
    ami_disconnects: int
    agents: list[str]
    pages: dict[str, int] = field(default_factory=dict)
    quiet: dict[str, Any] = field(default_factory=dict)   # the wait for a calm Asterisk before
    stopped: str | None = None        # why placing calls stopped early (``stop_early``)
    #: The end of the run: channels still in Asterisk once its calls were over (see
    #: :func:`bench.instance.left_over`): {"left": [...], "waited": s}; empty when not checked.
    left_over: dict[str, Any] = field(default_factory=dict)

    @property
    def channels_left(self) -> int | None:
        """How many channels the run left in Asterisk (None: not known)."""
        left = self.left_over.get("left") if self.left_over else None
        return None if left is None else len(left)

    @property
    def completed(self) -> int:
        return sum(1 for r in self.records if r.outcome == load_calls.COMPLETED)

    @property
    def failed(self) -> int:
        return len(self.records) - self.completed

    def outcomes(self) -> dict[str, int]:
        return load_calls.outcome_counts(self.records)


class Bench:
    """The bench instance with its phones; runs one arm at a time."""

    def __init__(self, setup: inst.BenchSetup, say: Callable[[str], None] = print) -> None:
        self.setup = setup
        self.say = say
        self.cfg: Any = None
        self.config_path: Any = None
        self.asterisk: inst.BenchAsterisk | None = None
        self.ami: AmiClient | None = None
        self.follower: load_calls.Follower | None = None
        self.phones: load.AgentPhones | None = None
        self.server: inst.ServerProcess | None = None
        self.http = f"http://127.0.0.1:{setup.http_port}"
        self.runs = 0
        self.server_starts = 0
        self.settle = inst.SETTLE_SECONDS   # the end of a run: wait this long at most for
                                            # calls still hanging up before listing leftovers
        self.stuck: set[str] = set()        # Uniqueids of channels a hangup did not remove

    # ------------------------------------------------------------------ life

    async def start(self, talk_cap: float) -> None:
        s = self.setup
        self.cfg, self.config_path = inst.write_config(s)
        self.asterisk = inst.bench_asterisk(self.cfg, s)
        self.say(f"bench Asterisk (instance bench, SIP {s.sip_port}, AMI {s.ami_port})")
        self.asterisk.down()          # a leftover of an interrupted bench
        # Web users hashed by an earlier bench (its configuration may differ): made anew.
        s.run_dir.joinpath("bench.users.db").unlink(missing_ok=True)
        await asyncio.to_thread(self.asterisk.up)
        c = self.cfg.ami
        self.ami = AmiClient(c.host, c.port, c.username, c.secret, action_timeout=15)
        self.follower = load_calls.Follower(self.ami)
        await self.ami.start(connect_timeout=30)
        await self.follower.start()
        pw = {a.id: a.password for a in self.cfg.agents}
        self.say(f"starting {s.phones} agent phones (baresip)")
        self.phones = load.AgentPhones({a: pw[a] for a in s.phone_ids()}, "127.0.0.1", s.sip_port,
                                       answer_delay=0.2, talk=load.TalkTimes("fixed", 1.0, 0),
                                       tone_seconds=int(talk_cap) + 30)
        await self.phones.start()
        await self._wait_registered()

    async def _wait_registered(self, timeout: float = 60.0) -> None:
        """Every phone's contact is known to Asterisk (app_queue sees the members)."""
        assert self.asterisk
        deadline = time.monotonic() + timeout
        want = set(self.setup.phone_ids())
        while True:
            out = await asyncio.to_thread(self.asterisk.rx, "pjsip show contacts")
            have = {line.split()[1].split("/")[0] for line in out.splitlines()
                    if line.strip().startswith("Contact:") and "/sip:" in line}
            if want <= have:
                return
            if time.monotonic() > deadline:
                raise UserError("bench.phones", f"phones not registered: {sorted(want - have)[:10]}")
            await asyncio.sleep(0.5)   # polling Asterisk's contacts, bounded

    async def stop(self) -> None:
        await self.ours_down()
        if self.phones:
            await self.phones.stop()
        if self.ami:
            await self.ami.close()
        if self.asterisk:
            await asyncio.to_thread(self.asterisk.down)

    def record_calls(self, record: str) -> None:
        """Our server's next start records the group's calls so (``groups[].record``: all,
        none): the configuration is written again."""
        self.setup = dataclasses.replace(self.setup, record=record)
        self.cfg, self.config_path = inst.write_config(self.setup)

    # ------------------------------------------------------------------ our server

    async def ours_up(self, agents: list[str] | None = None, profile: Any = None,
                      manage_asterisk: bool = False) -> None:
        """Start our server (fresh database), log the agents in, wait until they are idle and
        reachable. ``agents``: only these (default: every phone). ``profile``: a path, to run
        the server under cProfile. ``manage_asterisk``: the server renders Asterisk's
        configuration (browser phones; see :class:`inst.ServerProcess`)."""
        if self.server is not None:
            return
        s = self.setup
        run = s.run_dir
        self.server = inst.ServerProcess(self.config_path, run / "server.log", run / "bench.db",
                                         profile=profile, manage_asterisk=manage_asterisk)
        self.server.start()
        self.server_starts += 1
        agents = s.phone_ids() if agents is None else agents
        async with server_api.ServerApi(self.http, server_api.web_login(self.cfg)) as api:
            await inst.wait_ready(api)
            # The web passwords hashed behind the start are CPU that no call spent: the
            # measure begins after them (the first start only, see ServerProcess.keep_users).
            deadline = time.monotonic() + 300
            while not self.server.passwords_done():
                if time.monotonic() > deadline:
                    raise UserError("bench.passwords", "the server's web passwords were not "
                                                       "hashed within 300 s")
                await asyncio.sleep(0.2)       # reading our server's log, bounded
            await asyncio.to_thread(self.server.keep_users)
            for a in agents:
                await inst.api_post(api, f"/api/agents/{a}/login")
            await until_available(api, agents, 60.0)

    async def ours_down(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
            self.server = None

    async def set_agents(self, arm: str, agents: list[str]) -> None:
        """Only ``agents`` take calls: the others are paused (app_queue, AMI QueuePause) or on
        break (ours, the HTTP API). The arm's server state must be up for ours."""
        assert self.ami
        others = [a for a in self.setup.phone_ids() if a not in agents]
        if arm == AQ:
            for a in self.setup.phone_ids():
                await self.ami.action("QueuePause", Queue=inst.QUEUE_NAME, Interface=f"PJSIP/{a}",
                                      Paused="true" if a in others else "false")
            return
        async with server_api.ServerApi(self.http, server_api.web_login(self.cfg)) as api:
            for a in self.setup.phone_ids():
                await inst.api_post(api, f"/api/agents/{a}/state",
                                    {"state": "break" if a in others else "idle",
                                     "reason": "bench"})

    # ------------------------------------------------------------------ between runs

    async def quiet(self, timeout: float = 60.0) -> dict[str, Any]:
        """Before a run: wait until Asterisk has no channel left and its CPU is calm (under
        a fifth of a core over a second), so that one run's aftermath (an arm that collapsed,
        say) does not fall on the next. Channels still there after ``timeout`` are hung up;
        those a hangup does not remove (a leaked channel with nothing to hang it up, as a run
        reported in its ``left_over``) are not waited for again."""
        assert self.asterisk and self.ami
        t0 = time.monotonic()
        cleaned = 0
        while True:
            try:
                chans = await inst.channel_list(self.ami)
            except (AmiDisconnected, AmiTimeout):
                # An Asterisk that collapsed under the last run may drop our AMI link or
                # answer late; the client logs in again by itself: wait, as long as for the
                # channels.
                if time.monotonic() - t0 > 2 * timeout:
                    raise
                await asyncio.sleep(1.0)
                continue
            active = [c for c in chans if c["uniqueid"] not in self.stuck]
            pid = self.asterisk.pid()
            c0 = inst.cpu_seconds(pid) if pid else 0.0
            await asyncio.sleep(1.0)          # a second of Asterisk's CPU, measured
            busy = (inst.cpu_seconds(pid) - c0) if pid else 0.0
            if not active and busy < 0.2:
                return {"waited": round(time.monotonic() - t0, 1), "hung_up": cleaned}
            if time.monotonic() - t0 > timeout:
                if active and not cleaned:
                    self.say(f"  {len(active)} channels left over: hanging them up")
                    await self.ami.action("Command", Command="channel request hangup all")
                    cleaned = len(active)
                    t0 = time.monotonic()
                    continue
                self.stuck |= {c["uniqueid"] for c in active}
                self.say(f"  Asterisk not quiet after {timeout:.0f} s ({len(active)} channels "
                         f"that a hangup does not remove, not waited for again: "
                         f"{', '.join(c['channel'] for c in active[:5])}; {busy:.2f} s CPU a "
                         f"second): going on")
                return {"waited": round(time.monotonic() - t0, 1), "hung_up": cleaned,
                        "not_quiet": True, "stuck": [c["channel"] for c in active]}

    # ------------------------------------------------------------------ one run

    def _cpu(self) -> dict[str, float | None]:
        assert self.asterisk and self.phones
        apid = self.asterisk.pid()
        busy, total = inst.machine_busy()
        t = os.times()
        return {"asterisk": inst.cpu_seconds(apid) if apid else None,
                "server": inst.cpu_seconds(self.server.pid) if self.server and self.server.alive() else None,
                "phones": inst.cpu_seconds_many(self.phones.pids()),
                "loadgen": t.user + t.system,
                "machine_busy": busy, "machine_total": total}

    async def run(self, arm: str, label: str, profile: load.LoadProfile, talk: load.TalkTimes,
                  agents: list[str] | None = None, pages: server_api.AgentPages | None = None,
                  stop_early: bool = False) -> RunResult:
        """One run of one arm. ``stop_early``: stop placing calls as soon as the run cannot
        pass the throughput criteria any more (see :func:`doomed`), so that an overloaded arm
        does not go on overloading the machine."""
        assert self.ami and self.follower and self.phones
        if arm == OURS and self.server is None:
            raise UserError("bench.server", "our server is not running")
        self.runs += 1
        profile.run_id = self.runs
        self.phones.talk = talk
        agents = agents or self.setup.phone_ids()
        tracker = load_calls.CallTracker(self.setup.phone_ids())
        self.follower.tracker = tracker
        disc0 = self.follower.disconnects

        def stop_when(records: list[load_calls.LoadCall], planned: int) -> str | None:
            if self.follower.disconnects > disc0:
                return "the load generator's AMI link was lost"
            return doomed(records, planned, time.time())
        lr = load.LoadRun(self.ami, tracker, profile, talk_max=talk.cap or talk.mean * 5,
                          phones=self.phones, stop_when=stop_when if stop_early else None)
        srv_disc0 = self.server.log_count("ami.disconnected") if self.server else 0
        if pages is not None:
            pages.rings.clear()
        quiet = await self.quiet()
        cpu0 = self._cpu()
        load0 = list(os.getloadavg())
        t0 = time.time()
        records = await lr.run()
        seconds = time.time() - t0
        cpu1 = self._cpu()
        load1 = list(os.getloadavg())
        self.follower.tracker = None
        cpu = {k: (None if cpu0[k] is None or cpu1[k] is None else round(cpu1[k] - cpu0[k], 3))
               for k in cpu0}
        disconnects = self.follower.disconnects - disc0
        if self.server is not None:
            disconnects += self.server.log_count("ami.disconnected") - srv_disc0
        page_info: dict[str, int] = {}
        if pages is not None:
            load.attach_rings(records, pages)
            page_info = {"pages": len(pages.agents), "messages": pages.messages, "cut": pages.cut}
        res = RunResult(arm=arm, label=label, profile={
            "number": profile.number, "rate": profile.rate, "arrivals": profile.arrivals,
            "duration": profile.duration, "count": profile.count, "seed": profile.seed,
            "dtmf": profile.dtmf, "max_wait": profile.max_wait},
            talk={"dist": talk.kind, "mean": talk.mean, "cap": talk.cap,
                  "minimum": talk.minimum},
            records=records, legs=list(tracker.legs.values()), started=t0, seconds=seconds,
            cpu=cpu, load_before=load0, load_after=load1, ami_disconnects=disconnects,
            agents=list(agents), pages=page_info, quiet=quiet, stopped=lr.stopped)
        # The run ends with Asterisk's channel list empty: what is left over is reported.
        res.left_over = await inst.left_over(self.ami, settle=self.settle)
        q = summary([r.queue_to_invite for r in records if r.queue_to_invite is not None], 1000)
        left = res.channels_left
        self.say(f"  {arm:9s} {label:24s} calls {len(records):4d} completed {res.completed:4d} "
                 f"failed {res.failed:3d}  queue->INVITE p50 {q['p50']} p95 {q['p95']} ms  "
                 f"cpu ast {cpu['asterisk']} srv {cpu['server']} s  channels left "
                 f"{'?' if left is None else left}")
        if left != 0:
            for line in inst.left_over_lines(res.left_over):
                self.say(f"    {line}")
        return res


# =========================================================================== derived figures

async def until_available(api: Any, agents: list[str], timeout: float, what: str = "agents") -> None:
    """Every one of ``agents`` idle with a reachable phone, as our server's API says
    (reachability comes from AMI ContactStatus); bench.agents if not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = await api.call("GET", "/api/agents")
        snap = body.get("agents", {}) if isinstance(body, dict) else {}
        if status == 200 and all(snap.get(a, {}).get("available") for a in agents):
            return
        if time.monotonic() > deadline:
            raise UserError("bench.agents", f"{what} not available: " + ", ".join(
                a for a in agents if not snap.get(a, {}).get("available")))
        await asyncio.sleep(0.1)        # polling the API, bounded


def doomed(records: list[load_calls.LoadCall], planned: int, now: float,
           max_failed: float = 0.001, slow: float = 1.0, max_slow: float = 0.05) -> str | None:
    """Whether a throughput step can no longer pass, whatever its remaining calls do: more
    than ``max_failed`` of the planned calls failed already (ended without an agent, or the
    originate was refused), or more than ``max_slow`` of them waited over ``slow`` seconds
    for their agent's INVITE (so its p95 is over ``slow``)."""
    failed = sum(1 for r in records if r.outcome == "originate_failed"
                 or (r.ended_at is not None and r.bridged_at is None))
    if failed > max_failed * planned:
        return f"{failed} calls failed already (of {planned} planned)"
    waited = sum(1 for r in records if r.queued_at is not None
                 and (r.invite_at if r.invite_at is not None else now) - r.queued_at > slow)
    if waited > max_slow * planned:
        return f"{waited} callers waited over {slow:g} s for an agent (of {planned} planned)"
    return None


def idle_agent_latencies(run: RunResult, phones: int) -> list[float]:
    """Measure 1: queue entry to the agent's INVITE, for callers who found an idle agent (at
    the moment they entered the queue, fewer agent legs were up than agents taking calls)."""
    legs = run.legs
    n_agents = len(run.agents)
    out = []
    for r in run.records:
        if r.queue_to_invite is None:
            continue
        busy = sum(1 for leg in legs if leg.created <= r.queued_at
                   and (leg.ended is None or leg.ended > r.queued_at))
        if busy < n_agents:
            out.append(r.queue_to_invite)
    return out


def agent_free_latencies(run: RunResult) -> list[float]:
    """Measure 2: an agent's leg hangs up while callers wait; the time to that agent's next
    INVITE. Only when some caller was waiting (queued, not yet rung) at the hang-up."""
    by_agent: dict[str, list[load_calls.AgentLeg]] = {}
    for leg in run.legs:
        by_agent.setdefault(leg.agent, []).append(leg)
    waiting_spans = [(r.queued_at, r.invite_at) for r in run.records
                     if r.queued_at is not None and r.invite_at is not None]
    out = []
    for legs in by_agent.values():
        legs.sort(key=lambda leg: leg.created)
        for a, b in zip(legs, legs[1:]):
            if a.ended is None or b.created < a.ended:
                continue
            free = a.ended
            if any(q < free and inv > free for q, inv in waiting_spans):
                out.append(b.created - free)
    return out


def screen_pop_latencies(run: RunResult) -> tuple[list[float], int, int]:
    """Measure 5: the agent's INVITE to the ring event on that agent's page. Returns the
    latencies, how many connected calls had a ring event, and how many had none (lost)."""
    lat, lost = [], 0
    for r in run.records:
        if r.bridged_at is None or r.invite_at is None:
            continue
        if r.ring_at is None:
            lost += 1
        else:
            lat.append(r.ring_at - r.invite_at)
    return lat, len(lat), lost


def server_log_times(path: Any, events: tuple[str, ...] = ("agi.session_start",
                                                          "runtime.caller_queued",
                                                          "runtime.ring")) -> dict[str, dict[str, float]]:
    """From our server's JSON log: for each event name, call id -> the time of its first
    line (wall clock). ``agi.session_start`` is keyed by ``uniqueid``, the others by ``call``."""
    import json
    from datetime import datetime
    out: dict[str, dict[str, float]] = {e: {} for e in events}
    needles = [e.encode() for e in events]
    try:
        f = open(path, "rb")
    except OSError:
        return out
    with f:
        for line in f:
            if not any(n in line for n in needles):
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            ev = msg.get("event")
            if ev not in out:
                continue
            key = str(msg.get("uniqueid") or msg.get("call") or "")
            ts = datetime.fromisoformat(str(msg["timestamp"]).replace("Z", "+00:00")).timestamp()
            out[ev].setdefault(key, ts)
    return out


def ours_breakdown(records: list[load_calls.LoadCall], log_times: dict[str, dict[str, float]]
                   ) -> dict[str, list[float]]:
    """Where ours' queue entry -> INVITE goes, call by call (seconds): Asterisk opening the
    FastAGI session; the queue script until the caller is in the core (music on, channel
    variables, the call's record written and read back); the core's decision to the agent's
    channel (AMI Originate)."""
    start = log_times.get("agi.session_start", {})
    queued = log_times.get("runtime.caller_queued", {})
    ring = log_times.get("runtime.ring", {})
    out: dict[str, list[float]] = {"fastagi_connect": [], "queue_script_to_core": [],
                                   "core_to_ring_decision": [], "originate_to_channel": []}
    for r in records:
        u = r.call_uid or ""
        if r.queued_at is None or r.invite_at is None or u not in start or u not in queued \
                or u not in ring:
            continue
        out["fastagi_connect"].append(start[u] - r.queued_at)
        out["queue_script_to_core"].append(queued[u] - start[u])
        out["core_to_ring_decision"].append(ring[u] - queued[u])
        out["originate_to_channel"].append(r.invite_at - ring[u])
    return out
