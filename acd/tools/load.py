"""The load generator (`acd load`): real SIP calls into Asterisk at a given rate, answered by
real agent phones.

* **Callers** are Asterisk calling itself over the loopback trunk (``asterisk.loopback_trunk``):
  AMI ``Originate PJSIP/<number>@acd-trunk`` sends a real INVITE to Asterisk's own SIP port;
  the incoming leg lands on the hotline with a caller number unique to the call, which is how
  the call is found again among the others. Arrivals are at a fixed rate or Poisson (seeded).
  Where the flow first asks for keys (the FastAGI IVR's ``GET DATA``, ``WAIT FOR DIGIT`` or a
  menu prompt with escape digits, or the dialplan's ``Read()``), before the queue, the caller
  keys ``dtmf`` as RFC 4733 events (AMI ``PlayDTMF``).
* **Agents** are baresip phones (:class:`acd.tools.softphone.SoftPhone`) registered with their
  passwords: they answer after ``answer_delay`` and hang up after a talk time, fixed or
  exponential (seeded).
* **Pages** (optional): agent pages on ``/api/agents/{id}/ws``; every ``ring`` event is
  timed as it arrives.

Every call gets a :class:`acd.tools.load_calls.LoadCall`: its outcome and the times of each
step, taken from the ``Timestamp`` Asterisk puts on every AMI event (``timestampevents = yes``,
microseconds, the machine's wall clock), by a :class:`acd.tools.load_calls.CallTracker`. Nothing
is averaged here: the records are the result. The server's API and the agent pages, as a
client, are :mod:`acd.tools.server_api`.

The pure parts (arrival and talk times, caller numbers, agent lists) are at the top; the
bench (``bench/``) and the tests use them.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from acd.errors import UserError
from acd.tools.load_calls import COMPLETED, CallTracker, Follower, LoadCall, classify, outcome_counts
from acd.tools.server_api import AgentPages, ServerApi, web_login

# =========================================================================== plans (pure)

ARRIVALS = ("fixed", "poisson")
TALK_DISTS = ("fixed", "exponential")


def arrival_offsets(kind: str, rate: float, *, duration: float | None = None,
                    count: int | None = None, rng: random.Random | None = None) -> list[float]:
    """Seconds after the start at which callers dial: ``rate`` calls a second, for
    ``duration`` seconds (offsets < duration) or ``count`` calls (whichever is given; both:
    the fewer). ``fixed``: exactly 1/rate apart, the first at 0. ``poisson``: exponential gaps
    with mean 1/rate drawn from ``rng`` (seed it to repeat a run), the first after one gap."""
    if kind not in ARRIVALS:
        raise UserError("load.arrivals", f"arrivals {kind!r}: one of {', '.join(ARRIVALS)}")
    if not rate > 0 or math.isinf(rate):
        raise UserError("load.rate", f"rate {rate!r}: calls per second, above 0")
    if duration is None and count is None:
        raise UserError("load.length", "give a duration or a count of calls")
    if duration is not None and not duration > 0:
        raise UserError("load.length", f"duration {duration!r}: seconds, above 0")
    if count is not None and count < 0:
        raise UserError("load.length", f"count {count!r}: 0 or more calls")
    out: list[float] = []
    if kind == "fixed":
        for i in itertools.count():
            t = i / rate
            if (duration is not None and t >= duration) or (count is not None and i >= count):
                break
            out.append(t)
        return out
    if rng is None:
        raise UserError("load.seed", "Poisson arrivals need a random generator (a seed)")
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if (duration is not None and t >= duration) or (count is not None and len(out) >= count):
            break
        out.append(t)
    return out


def stream(seed: int, name: str) -> random.Random:
    """One independent random stream of a run (``arrivals``, ``talk``): streams must not share
    a generator, or with the same seed each talk time would be a function of an arrival gap
    (both exponential draws of the same uniform numbers) and waiting times come out low."""
    return random.Random(f"{seed}:{name}")


def talk_durations(kind: str, mean: float, n: int, rng: random.Random | None = None,
                   cap: float | None = None, minimum: float = 0.0) -> list[float]:
    """``n`` talk times in seconds: all ``mean`` (fixed) or exponential with that mean, drawn
    from ``rng``. ``minimum``: exponential times start there (``minimum`` plus an exponential
    time with mean ``mean - minimum``, so the mean stays): nobody hangs up within milliseconds
    of answering, before a queue could even connect the caller. ``cap`` bounds each (a
    phone's tone lasts only so long)."""
    if kind not in TALK_DISTS:
        raise UserError("load.talk", f"talk distribution {kind!r}: one of {', '.join(TALK_DISTS)}")
    if not mean > 0:
        raise UserError("load.talk", f"talk time {mean!r}: seconds, above 0")
    if not 0 <= minimum < mean:
        raise UserError("load.talk", f"shortest talk time {minimum!r}: 0 or more, below the mean")
    if kind == "fixed":
        out = [float(mean)] * n
    else:
        if rng is None:
            raise UserError("load.seed", "exponential talk times need a random generator")
        out = [minimum + rng.expovariate(1.0 / (mean - minimum)) for _ in range(n)]
    return [min(x, cap) for x in out] if cap is not None else out


class TalkTimes:
    """Talk times handed out one by one as phones answer (one seeded stream for the run)."""

    def __init__(self, kind: str, mean: float, seed: int, cap: float | None = None,
                 minimum: float = 0.0) -> None:
        self.rng = stream(seed, "talk")
        talk_durations(kind, mean, 0, self.rng, minimum=minimum)   # checks the arguments
        self.kind, self.mean, self.cap, self.minimum = kind, mean, cap, minimum

    def __call__(self) -> float:
        return talk_durations(self.kind, self.mean, 1, self.rng, self.cap, self.minimum)[0]


def caller_number(run: int, n: int) -> str:
    """A caller number unique to call ``n`` of run ``run``: it finds the call's incoming leg."""
    return f"55{run % 1000:03d}{n:06d}"


_RANGE = re.compile(r"^(\D*?)(\d+)-\1?(\d+)$")


def agent_list(spec: str) -> list[str]:
    """'2001-2003' -> ['2001', '2002', '2003']; 'a01-a03' -> ['a01', 'a02', 'a03'];
    '2001,2005' -> ['2001', '2005']; both mix."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        m = _RANGE.match(part)
        if m:
            prefix, a, b = m.group(1), int(m.group(2)), int(m.group(3))
            if b < a:
                raise UserError("load.agents", f"{part!r}: the range ends before it starts")
            width = len(m.group(2))
            out += [f"{prefix}{i:0{width}d}" for i in range(a, b + 1)]
        else:
            out.append(part)
    if len(set(out)) != len(out):
        raise UserError("load.agents", f"{spec!r} lists an agent twice")
    return out


# =========================================================================== agent phones

@dataclass
class PhoneStats:
    agent: str
    established: int = 0
    hung_up: int = 0              # our hangup after the talk time
    closed_by_far_end: int = 0    # the call was gone before the talk time was up
    closed_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class PhoneCall:
    """A call as the agent's phone saw it (our clock)."""
    agent: str
    caller: str                   # the user part of the caller's URI: the caller number
    established_at: float
    talk: float                   # the talk time drawn for it
    hangup_sent_at: float | None = None
    closed_at: float | None = None
    closed_early: bool = False    # closed by the far end before the talk time was up
    reason: str = ""


def _uri_user(uri: str) -> str:
    m = re.match(r"^(?:sips?:)?([^@;>]+)@", uri.strip().lstrip("<"))
    return m.group(1) if m else ""


class AgentPhones:
    """Real phones (baresip) registered as agents: each answers after ``answer_delay`` and
    hangs up after the next talk time."""

    def __init__(self, agents: dict[str, str], host: str, port: int, *, answer_delay: float,
                 talk: Callable[[], float], tone_seconds: int = 120, root: Any = None,
                 start_at_once: int = 8) -> None:
        from acd.tools.softphone import ROOT, SoftPhone
        self.agents = agents              # agent id -> password
        self.talk = talk
        self.start_at_once = start_at_once
        self.phones = {a: SoftPhone(a, pw, host, port, answer="auto", answer_delay=answer_delay,
                                    tone_seconds=tone_seconds, root=root or ROOT)
                       for a, pw in agents.items()}
        self.stats = {a: PhoneStats(a) for a in agents}
        self.calls: list[PhoneCall] = []
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        sem = asyncio.Semaphore(self.start_at_once)

        async def one(p: Any) -> None:
            async with sem:
                await p.start()
        try:
            await asyncio.gather(*(one(p) for p in self.phones.values()))
        except BaseException:
            await self.stop()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(a, p), name=f"phone-{a}")
                       for a, p in self.phones.items()]

    def pids(self) -> list[int]:
        return [p._proc.pid for p in self.phones.values() if p._proc is not None]  # noqa: SLF001

    async def _run(self, agent: str, phone: Any) -> None:
        """Read the phone's events as they come; hang up each answered call after its talk
        time."""
        seen = 0
        st = self.stats[agent]
        calls: dict[str, tuple[PhoneCall, asyncio.Task]] = {}
        changed = phone._changed          # noqa: SLF001 (SoftPhone's event condition)
        while True:
            async with changed:
                while len(phone.events) <= seen:
                    await changed.wait()
                new = phone.events[seen:]
                seen = len(phone.events)
            now = time.time()
            for ev in new:
                kind = ev.get("type")
                if kind == "CALL_ESTABLISHED":
                    st.established += 1
                    call = PhoneCall(agent, _uri_user(str(ev.get("peeruri", ""))), now,
                                     self.talk())
                    self.calls.append(call)
                    calls[str(ev.get("id", ""))] = (call, asyncio.get_running_loop().create_task(
                        self._hang_up_later(phone, st, call)))
                elif kind == "CALL_CLOSED":
                    reason = str(ev.get("param", "")) or "?"
                    st.closed_reasons[reason] = st.closed_reasons.get(reason, 0) + 1
                    entry = calls.pop(str(ev.get("id", "")), None)
                    if entry is not None:
                        call, task = entry
                        call.closed_at, call.reason = now, reason
                        if call.hangup_sent_at is None:
                            task.cancel()
                            call.closed_early = True
                            st.closed_by_far_end += 1
                elif kind == "CONTROL_CLOSED":
                    return

    async def _hang_up_later(self, phone: Any, st: PhoneStats, call: PhoneCall) -> None:
        await asyncio.sleep(call.talk)      # the agent talks this long
        call.hangup_sent_at = time.time()
        try:
            if await phone.hangup():
                st.hung_up += 1
        except Exception:                   # the phone went away: its stats show it
            pass

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(p.stop() for p in self.phones.values()), return_exceptions=True)


# =========================================================================== the run

@dataclass
class LoadProfile:
    """What a run does: who is dialled, how often, for how long, and what callers key."""
    number: str
    rate: float
    arrivals: str = "poisson"
    duration: float | None = 60.0
    count: int | None = None
    seed: int = 1
    dtmf: str = ""                  # keyed when the flow asks (IVR), e.g. "13800138000#"
    max_wait: float = 60.0          # not connected to an agent by then: failed
    settle: float = 30.0            # after the last call's planned end, the longest we wait
    run_id: int = 0

    def offsets(self) -> list[float]:
        return arrival_offsets(self.arrivals, self.rate, duration=self.duration,
                               count=self.count, rng=stream(self.seed, "arrivals"))


def check_call_mix(number: str, dtmf: str) -> None:
    """What callers dial and key: refused with a stable id before any call is placed."""
    if dtmf and not re.fullmatch(r"[0-9*#]{1,32}", dtmf):
        raise UserError("load.dtmf", f"{dtmf!r}: keys 0-9, * and #, at most 32")
    if not re.fullmatch(r"[0-9*#+]{1,32}", number or ""):
        raise UserError("load.number", f"{number!r} is not a dialable number")


class LoadRun:
    """Places the calls of a profile and follows them to their end.

    ``ami`` is a started :class:`acd.ami.client.AmiClient` whose events go to ``tracker``
    (see :class:`Follower`)."""

    def __init__(self, ami: Any, tracker: CallTracker, profile: LoadProfile,
                 talk_max: float, phones: AgentPhones | None = None,
                 stop_when: Callable[[list[LoadCall], int], str | None] | None = None) -> None:
        """``stop_when(records so far, calls planned)``, asked once a second while calls are
        placed: a reason (text) stops placing more (the calls under way go on to their end)."""
        check_call_mix(profile.number, profile.dtmf)
        self.ami = ami
        self.tracker = tracker
        self.profile = profile
        self.talk_max = talk_max
        self.phones = phones
        self.stop_when = stop_when
        self.stopped: str | None = None
        self.records: list[LoadCall] = []
        self._tasks: set[asyncio.Task] = set()
        self._cut: set[int] = set()         # calls we hung up for waiting too long
        self._timers: list[asyncio.TimerHandle] = []    # each call's max_wait
        self._over = False                  # the run is over: no call is cut any more
        tracker.on_ask = self._key_in

    async def run(self, progress: Callable[[str], None] | None = None) -> list[LoadCall]:
        """Place the calls at their offsets, each bounded by its own ``max_wait`` from the
        moment it was to dial (a timer per call, so an early caller is cut while later ones
        are still being placed), then follow them to their end (at most ``settle`` seconds
        after the last call's planned end)."""
        p = self.profile
        offsets = p.offsets()
        hold = int(p.max_wait + self.talk_max + 60)
        loop = asyncio.get_running_loop()
        start = loop.time()
        checked = start
        try:
            for n, off in enumerate(offsets):
                if self.stop_when is not None and loop.time() - checked >= 1.0:
                    checked = loop.time()
                    self.stopped = self.stop_when(self.records, len(offsets))
                    if self.stopped:
                        if progress:
                            progress(f"stopped placing calls: {self.stopped}")
                        break
                rec = LoadCall(n=n, caller_number=caller_number(p.run_id, n), planned=off,
                               trunk_uid=f"load{p.run_id}-{n}-caller")
                self.records.append(rec)
                self.tracker.add(rec)
                self._timers.append(loop.call_at(start + off + p.max_wait, self._expire_call,
                                                 rec))
                delay = start + off - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)      # the arrival process sets the pace
                self._spawn(self._dial(rec, hold))
            placed = [r.planned for r in self.records]
            last_end = start + (placed[-1] if placed else 0) + p.max_wait + self.talk_max + 5
            await self._follow(last_end + p.settle, start)
        finally:
            self._over = True
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.phones is not None:
            attach_phone_calls(self.records, self.phones.calls)
        for rec in self.records:
            rec.outcome = classify(rec)
        return self.records

    async def _follow(self, deadline: float, start: float) -> None:
        """Until every call has ended or the loop's clock reaches ``deadline``."""
        loop = asyncio.get_running_loop()
        while self._open():
            left = deadline - loop.time()
            if left <= 0:
                break
            self.tracker.changed.clear()
            try:
                await asyncio.wait_for(self.tracker.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
            self._expire(loop.time() - start)

    def _open(self) -> bool:
        return any(r.outcome != "originate_failed" and r.ended_at is None for r in self.records)

    def _expire(self, elapsed: float) -> None:
        """Every caller past their ``max_wait`` (``elapsed``: seconds since the start)."""
        for r in self.records:
            if elapsed > r.planned + self.profile.max_wait:
                self._expire_call(r)

    def _expire_call(self, r: LoadCall) -> None:
        """A caller at their ``max_wait`` and still not connected: hang them up (a
        failure), once."""
        if (r.bridged_at is None and r.ended_at is None and r.outcome != "originate_failed"
                and r.n not in self._cut):
            self._cut.add(r.n)
            self._spawn(self._cut_call(r))

    async def _cut_call(self, r: LoadCall) -> None:
        """Hang up a caller's own channel. Refused while it is not there yet (an Originate
        still under way): tried again shortly, while the call is not over."""
        try:
            await self.ami.action("Hangup", Channel=r.trunk_uid)
        except Exception:
            if r.ended_at is None and r.outcome != "originate_failed" and not self._over:
                self._cut.discard(r.n)
                self._timers.append(asyncio.get_running_loop().call_later(
                    0.5, self._expire_call, r))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, rec: LoadCall, hold: int) -> None:
        rec.sent_at = time.time()
        try:
            await self.ami.action("Originate", Channel=f"PJSIP/{self.profile.number}@acd-trunk",
                                  Context="acd-testcaller", Exten="wait", Priority=1,
                                  CallerID=f"<{rec.caller_number}>", Async="true",
                                  Variable=[f"HOLD_FOR={hold}"], ChannelId=rec.trunk_uid)
        except Exception:
            rec.outcome = "originate_failed"

    def _key_in(self, rec: LoadCall) -> None:
        if self.profile.dtmf:
            self._spawn(self._send_keys(rec))

    async def _send_keys(self, rec: LoadCall) -> None:
        # PlayDTMF answers once the digit has been played; a person keys about this fast.
        for d in self.profile.dtmf:
            try:
                await self.ami.action("PlayDTMF", Channel=rec.trunk_uid, Digit=d, Duration=120)
            except Exception:
                return
            await asyncio.sleep(0.1)
        rec.keyed_at = time.time()


def attach_phone_calls(records: Iterable[LoadCall], calls: Iterable[PhoneCall]) -> None:
    """What the agents' phones saw, onto the call records (by caller number and agent)."""
    seen: dict[tuple[str, str], PhoneCall] = {}
    for c in calls:
        seen.setdefault((c.agent, c.caller), c)
    for r in records:
        c = seen.get((r.agent or "", r.caller_number))
        if c is not None:
            r.answered_at = c.established_at
            r.talk_end_at = None if c.closed_early else c.hangup_sent_at


def attach_rings(records: Iterable[LoadCall], pages: AgentPages) -> None:
    for r in records:
        if r.agent and r.call_uid:
            r.ring_at = pages.rings.get((r.agent, r.call_uid))


# =========================================================================== `acd load`

def add_arguments(p: Any) -> None:
    """The options of `acd load` (an argparse parser)."""
    p.add_argument("--number", required=True, help="what callers dial, e.g. the hotline or a "
                                                   "skill group's number")
    p.add_argument("--rate", type=float, required=True, help="calls per second")
    p.add_argument("--arrivals", choices=ARRIVALS, default="poisson")
    p.add_argument("--duration", type=float, help="seconds of arrivals")
    p.add_argument("--count", type=int, help="number of calls (with or instead of --duration)")
    p.add_argument("--seed", type=int, default=1, help="seeds the arrivals and talk times")
    p.add_argument("--agents", default="", help="agents whose phones answer, e.g. 1001-1020 or "
                                               "1001,1002 (default: every agent in the config)")
    p.add_argument("--answer-delay", type=float, default=0.5, help="seconds a phone rings")
    p.add_argument("--talk", type=float, default=10.0, help="talk time in seconds (the mean)")
    p.add_argument("--talk-dist", choices=TALK_DISTS, default="fixed")
    p.add_argument("--talk-min", type=float, default=0.0,
                   help="exponential talk times start at this many seconds (the mean stays)")
    p.add_argument("--dtmf", default="", help="keys a caller presses when the flow asks")
    p.add_argument("--max-wait", type=float, default=60.0,
                   help="a caller not with an agent after this many seconds is hung up and "
                        "fails (each on their own clock, while later calls are still placed)")
    p.add_argument("--login", action="store_true",
                   help="log the agents in to our server first (those offline; agents logged "
                        "in already are left as they are)")
    p.add_argument("--take-over", action="store_true",
                   help="start the agents' phones even if a phone of theirs is registered "
                        "(ours replace it)")
    p.add_argument("--pages", action="store_true",
                   help="open each agent's page (WebSocket) and time the ring events")
    p.add_argument("--out", help="every call's record, one JSON object a line "
                                 "(default: load-<time>.jsonl)")
    p.add_argument("--quiet", action="store_true", help="no line per call, only the summary")


def _check_args(cfg: Any, args: Any) -> list[str]:
    if not cfg.asterisk.loopback_trunk:
        raise UserError("load.no_trunk", "callers come over the loopback trunk: set "
                                         "asterisk.loopback_trunk: true (and restart Asterisk)")
    if not args.duration and not args.count:
        raise UserError("load.length", "give --duration or --count")
    check_call_mix(args.number, args.dtmf)
    for what, v in (("--answer-delay", args.answer_delay), ("--max-wait", args.max_wait)):
        if not (v >= 0) or math.isinf(v):
            raise UserError("load.usage", f"{what} {v!r}: seconds, 0 or more")
    known = {a.id for a in cfg.agents}
    agents = agent_list(args.agents) if args.agents else [a.id for a in cfg.agents]
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise UserError("agent.unknown", f"not in {cfg.source}: {', '.join(unknown[:10])}")
    if not agents:
        raise UserError("load.agents", "no agents to answer the calls")
    arrival_offsets(args.arrivals, args.rate, duration=args.duration, count=args.count,
                    rng=stream(args.seed, "arrivals"))
    TalkTimes(args.talk_dist, args.talk, args.seed, minimum=getattr(args, "talk_min", 0.0))
    return agents


async def registered(ami: Any, agents: list[str]) -> list[str]:
    """The agents among ``agents`` whose endpoint has a contact (a phone registered)."""
    from acd.ami.client import AmiActionError
    try:
        contacts = await ami.action_list("PJSIPShowContacts", timeout=30)
    except AmiActionError as e:
        if "no contacts" in (e.message or "").lower():
            return []
        raise
    have = {str(c.get("Endpoint") or c.get("Aor") or c.get("AOR") or "") for c in contacts}
    return [a for a in agents if a in have]


async def log_in(api: ServerApi, agents: list[str],
                 say: Callable[[str], None] = print) -> list[str]:
    """`acd load --login`: log in those of ``agents`` who are offline on our server (each is
    read first, ``GET /api/agents/{id}``); the others (logged in already: idle, on a break,
    on a call...) are left as they are, said once. So a run against a center that is up goes
    on. Returns the agents logged in here."""
    already: list[str] = []
    done: list[str] = []
    for a in agents:
        status, body = await api.call("GET", f"/api/agents/{a}")
        if status != 200 or not isinstance(body, dict):
            raise UserError("load.login", f"agent {a}: {status} {str(body)[:200]}")
        if body.get("state") != "offline":
            already.append(a)
            continue
        status, body = await api.call("POST", f"/api/agents/{a}/login")
        refused = body.get("error") if isinstance(body, dict) else None
        if status == 409 and refused == "agent.already_logged_in":
            already.append(a)           # logged in meanwhile, by someone else
        elif status != 200:
            raise UserError("load.login", f"agent {a}: {status} {str(body)[:200]}")
        else:
            done.append(a)
    if already:
        more = " ..." if len(already) > 10 else ""
        say(f"{len(already)} of {len(agents)} agents are logged in already, left as they are: "
            f"{', '.join(already[:10])}{more}")
    return done


def _call_line(r: LoadCall) -> str:
    def ms(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{(b - a) * 1000:.1f}"
    return (f"{r.n:5d} {r.caller_number} {r.outcome:16s} agent {r.agent or '-':8s} "
            f"queue->INVITE {ms(r.queued_at, r.invite_at)} ms  INVITE->bridge "
            f"{ms(r.invite_at, r.bridged_at)} ms  ring on page {ms(r.invite_at, r.ring_at)} ms")


async def run_load(cfg: Any, args: Any, agents: list[str],
                   say: Callable[[str], None] = print) -> list[LoadCall]:
    from acd.ami.client import AmiClient
    from acd.asterisk.provision import resolve
    install = resolve(cfg.asterisk.mode, cfg.path(cfg.asterisk.root), build=False)
    root = install.root if install.root is not None else cfg.path(cfg.asterisk.root)
    passwords = {a.id: a.password for a in cfg.agents}
    talk_cap = args.talk * (1 if args.talk_dist == "fixed" else 5)
    phones = AgentPhones({a: passwords[a] for a in agents}, cfg.asterisk.sip_host,
                         cfg.asterisk.sip_port, answer_delay=args.answer_delay,
                         talk=TalkTimes(args.talk_dist, args.talk, args.seed, cap=talk_cap,
                                        minimum=args.talk_min),
                         tone_seconds=int(talk_cap) + 30, root=root)
    ami = AmiClient(cfg.ami.host, cfg.ami.port, cfg.ami.username, cfg.ami.secret,
                    action_timeout=15)
    pages: AgentPages | None = None
    api = ServerApi(f"http://{cfg.http.host}:{cfg.http.port}", web_login(cfg))
    await api.__aenter__()
    try:
        try:
            await ami.start(connect_timeout=15)
        except Exception as e:
            raise UserError("load.ami", f"no AMI at {cfg.ami.host}:{cfg.ami.port}: {e}") from None
        if not getattr(args, "take_over", False):
            busy = await registered(ami, agents)
            if busy:
                raise UserError("load.agents_registered",
                                f"these agents have a phone registered already: "
                                f"{', '.join(busy[:10])}{' ...' if len(busy) > 10 else ''}; our "
                                "phones would replace theirs (--take-over to do so)")
        follower = Follower(ami)
        await follower.start()
        say(f"starting {len(agents)} agent phones")
        try:
            await phones.start()
        except Exception as e:
            raise UserError("load.phones", str(e)) from None
        if args.login:
            await log_in(api, agents, say)
        if args.pages:
            pages = AgentPages(api, agents)
            await pages.start()
        tracker = CallTracker(agents)
        follower.tracker = tracker
        profile = LoadProfile(number=args.number, rate=args.rate, arrivals=args.arrivals,
                              duration=args.duration, count=args.count, seed=args.seed,
                              dtmf=args.dtmf, max_wait=args.max_wait,
                              run_id=int(time.time()) % 1000)
        say(f"calling {args.number}: {args.rate:g} calls/s ({args.arrivals}), "
            f"{len(profile.offsets())} calls")
        records = await LoadRun(ami, tracker, profile, talk_max=talk_cap, phones=phones).run()
        if pages is not None:
            attach_rings(records, pages)
        return records
    finally:
        if pages is not None:
            await pages.stop()
        await phones.stop()
        await ami.close()
        await api.__aexit__()


def main(cfg: Any, args: Any) -> int:
    """`acd load`: every call's record to a JSON-lines file and (unless --quiet) a line each;
    then the outcomes and the latency percentiles. Exit 1 if a call failed."""
    agents = _check_args(cfg, args)
    records = asyncio.run(run_load(cfg, args, agents))
    out = args.out or time.strftime("load-%Y%m%d-%H%M%S.jsonl")
    with open(out, "w") as f:
        for r in records:
            f.write(json.dumps(r.to_dict()) + "\n")
    if not args.quiet:
        for r in records:
            print(_call_line(r))
    counts = outcome_counts(records)
    print(f"calls {len(records)}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    def pct(xs: list[float]) -> str:
        if not xs:
            return "none"
        xs = sorted(xs)
        at = lambda p: xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000  # noqa: E731
        return f"median {at(50):.1f} ms, p95 {at(95):.1f} ms, p99 {at(99):.1f} ms, max {xs[-1] * 1000:.1f} ms"
    print("queue entry -> agent INVITE: " + pct([r.queue_to_invite for r in records
                                                  if r.queue_to_invite is not None]))
    if args.pages:
        print("agent INVITE -> ring on the page: " + pct(
            [r.ring_at - r.invite_at for r in records if r.ring_at and r.invite_at]))
    print(f"every call's record: {out}")
    return 0 if counts.get(COMPLETED, 0) == len(records) else 1
