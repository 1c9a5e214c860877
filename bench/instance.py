"""The bench instance: its own Asterisk (instance ``bench``, its own ports), its configuration,
app_queue's arm rendered beside the ACD's, our server as a process of its own (so its CPU is
its own), and readings of CPU and of the machine.

Ports stay apart from `make run` (5060...) and from every test slot (15060 + 10 * slot, RTP
21000-40999): SIP 25060, AMI 25038, FastAGI 24573, HTTP 28080, RTP 41000-44999. One bench at a
time per machine: :func:`lock` holds /tmp/acd-bench.lock.
"""
from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import platform
import signal
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acd import config as configmod
from acd.asterisk.render import TEMPLATE_DIR, fill, render
from acd.asterisk.runner import Asterisk
from acd.errors import UserError

PROJECT = Path(__file__).resolve().parents[1]
RUN_DIR = PROJECT / "bench" / "run"          # ignored by git (run/)

#: Our arm: the ACD's bench group (its own number) and the hotline IVR in front of it.
OURS_DIRECT = "7801"
OURS_HOTLINE = "7800"
#: app_queue's arm: the same, with Queue() instead of the ACD.
AQ_DIRECT = "7802"
AQ_HOTLINE = "7803"
#: The measure ``webrtc``'s browser agents: their own group (agents without a SIP phone).
WEBRTC_DIRECT = "7804"
WEBRTC_GROUP = "webrtc"
QUEUE_NAME = "acd-bench"
GROUP = "bench"

#: Our strategies and app_queue's nearest.
AQ_STRATEGY = {"longest_idle": "leastrecent", "round_robin": "rrordered",
               "fewest_calls": "fewestcalls", "random": "random", "skill_level": "linear"}


@dataclass(frozen=True)
class BenchSetup:
    """What both arms share: agents (the first ``phones`` of them have real phones and are
    the bench group's members), the group's settings, the ports."""

    agents: int = 300                   # configured agents (one agent page each for measure 5)
    phones: int = 60                    # of which with a real phone, members of the group
    strategy: str = "longest_idle"
    ring_timeout: float = 15.0
    wrapup_seconds: float = 0.0
    sip_port: int = 25060
    ami_port: int = 25038
    agi_port: int = 24573
    http_port: int = 28080
    rtp_start: int = 41000
    rtp_end: int = 44999
    run_dir: Path = RUN_DIR
    log_level: str = "info"
    record: str = "none"                # the group's recording (groups[].record)
    browser_agents: int = 0             # agents after the phones' in a group of their own
                                        # (WEBRTC_DIRECT), for browser phones (measure webrtc)
    browser_codecs: tuple[str, ...] = ("opus", "ulaw", "alaw")   # asterisk.browser_codecs

    def agent_ids(self) -> list[str]:
        return [str(2001 + i) for i in range(self.agents)]

    def phone_ids(self) -> list[str]:
        return self.agent_ids()[: self.phones]

    def browser_ids(self) -> list[str]:
        return self.agent_ids()[self.phones: self.phones + self.browser_agents]


def config_data(s: BenchSetup) -> dict[str, Any]:
    """The bench's config.yaml, as data."""
    if not 0 < s.phones <= s.agents:
        raise UserError("bench.setup", f"phones ({s.phones}) must be 1..agents ({s.agents})")
    if s.phones + s.browser_agents > s.agents:
        raise UserError("bench.setup", f"phones ({s.phones}) and browser agents "
                                       f"({s.browser_agents}) are more than agents ({s.agents})")
    browser = ([{"name": WEBRTC_GROUP, "number": WEBRTC_DIRECT, "strategy": s.strategy,
                 "members": {a: 1 for a in s.browser_ids()}, "ring_timeout": s.ring_timeout,
                 "wrapup_seconds": s.wrapup_seconds}] if s.browser_agents else [])
    return {
        "data_dir": str(s.run_dir / "data"),
        "hotline": {"number": OURS_HOTLINE, "agi_retry_seconds": 1, "agi_retry_count": 30},
        "asterisk": {"instance": "bench", "root": str(PROJECT / ".cache" / "asterisk-root"),
                     "sip_port": s.sip_port, "rtp_start": s.rtp_start, "rtp_end": s.rtp_end,
                     "http_port": s.sip_port + 28,   # its web server (WebSocket SIP): 25088
                     "loopback_trunk": True, "browser_codecs": list(s.browser_codecs)},
        "ami": {"port": s.ami_port},
        "agi": {"port": s.agi_port, "max_sessions": 2000},
        "http": {"port": s.http_port},
        # Every agent's page is opened from one login on one address here; on a real floor
        # each agent has their own, so the per-login and per-address caps are lifted.
        "web": {"websockets_per_session": s.agents + 10, "websockets_per_address": s.agents + 10},
        "logging": {"level": s.log_level, "format": "json"},
        "agents": [{"id": a, "name": f"Bench {a}"} for a in s.agent_ids()],
        "groups": [{"name": GROUP, "number": OURS_DIRECT, "strategy": s.strategy,
                    "members": {a: 1 for a in s.phone_ids()},
                    "ring_timeout": s.ring_timeout, "wrapup_seconds": s.wrapup_seconds,
                    **({"record": s.record} if s.record != "none" else {})}] + browser,
    }


def write_config(s: BenchSetup) -> tuple[configmod.Config, Path]:
    """Write bench/run/config.yaml and load it (secrets generated into bench/run/data)."""
    s.run_dir.mkdir(parents=True, exist_ok=True)
    path = s.run_dir / "config.yaml"
    path.write_text("# Written by bench/instance.py for `make bench`; rewritten every run.\n"
                    + yaml.safe_dump(config_data(s), sort_keys=False))
    cfg = configmod.load(path, environ={})
    cfg, _ = configmod.with_secrets(cfg)
    return cfg, path


def app_queue_values(cfg: configmod.Config, s: BenchSetup) -> dict[str, str]:
    """Template values for app_queue's arm: its queue (queues.conf) and its numbers
    (extensions.conf), from asterisk-conf/queues_bench.part and extensions_bench.part."""
    members = "".join(f"member => PJSIP/{a},0,{a}\n" for a in s.phone_ids())
    vals = {"queue_name": QUEUE_NAME, "queue_strategy": AQ_STRATEGY[s.strategy],
            "ring_timeout": str(int(s.ring_timeout)), "wrapup_seconds": str(int(s.wrapup_seconds)),
            "queue_members": members, "aq_direct": AQ_DIRECT, "aq_hotline": AQ_HOTLINE}
    return {
        "bench_queues": fill((TEMPLATE_DIR / "queues_bench.part").read_text(), vals,
                             "queues_bench.part"),
        "bench_contexts": fill((TEMPLATE_DIR / "extensions_bench.part").read_text(), vals,
                               "extensions_bench.part"),
    }


@dataclass
class BenchAsterisk(Asterisk):
    """The project's Asterisk runner, rendering app_queue's arm too."""

    setup: BenchSetup = field(default_factory=BenchSetup)

    def render(self) -> list[Path]:
        return render(self.cfg, self.layout, extra=app_queue_values(self.cfg, self.setup))


def bench_asterisk(cfg: configmod.Config, s: BenchSetup) -> BenchAsterisk:
    base = Asterisk.for_config(cfg)
    return BenchAsterisk(install=base.install, layout=base.layout, cfg=cfg, setup=s)


class Lock:
    """One run of ``name`` (bench, soak) per machine (the ports and the CPU are shared): an
    exclusive flock."""

    def __init__(self, name: str = "bench") -> None:
        self.name = name
        self.path = Path(tempfile.gettempdir()) / f"acd-{name}.lock"
        self._f: Any = None

    def __enter__(self) -> "Lock":
        self._f = open(self.path, "w")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.close()
            raise UserError(f"{self.name}.busy", f"another {self.name} holds {self.path}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


# --------------------------------------------------------------------------- our server

def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the bench process dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class ServerProcess:
    """``python -m acd -c CONFIG run --no-asterisk``: our server in a process of its own, its
    log (JSON lines) in a file. ``manage_asterisk``: ``run --keep-asterisk`` instead (the
    server renders the bench's Asterisk, as the browser phone needs, and leaves it running)."""

    def __init__(self, config_path: Path, log_path: Path, db_path: Path,
                 profile: Path | None = None, manage_asterisk: bool = False) -> None:
        self.manage_asterisk = manage_asterisk
        self.config_path = config_path
        self.log_path = log_path
        self.db_path = db_path
        self.profile = profile          # run under cProfile, the profile written here
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0             # where this start's lines begin in the log
        #: The web users' table with their argon2 hashes, from the first start: later starts
        #: begin from it instead of an empty database, so that the server does not hash every
        #: web password again behind each start (0.16 s of CPU each: 300 users take 48 s of a
        #: core, which a measure would count as the calls' CPU).
        self.users_template = db_path.with_suffix(".users.db")

    def start(self) -> None:
        # A fresh database (but for the web users' hashes), and no store backlog spilled by
        # the run before (it would be written into the new database at start: agents logged
        # in already).
        for p in (self.db_path, self.db_path.with_suffix(".db-wal"), self.db_path.with_suffix(".db-shm"),
                  self.db_path.with_suffix(".db.backlog.jsonl")):
            p.unlink(missing_ok=True)
        if self.users_template.exists():
            shutil.copyfile(self.users_template, self.db_path)
        try:
            self.log_offset = self.log_path.stat().st_size
        except OSError:
            self.log_offset = 0
        env = {**os.environ, "ACD_DATABASE__URL": f"sqlite+aiosqlite:///{self.db_path}"}
        log = open(self.log_path, "ab")
        try:
            prefix = (["-m", "bench.profile_server", str(self.profile)] if self.profile
                      else ["-m", "acd"])
            self.proc = subprocess.Popen(
                [sys.executable, *prefix, "-c", str(self.config_path), "run",
                 "--keep-asterisk" if self.manage_asterisk else "--no-asterisk"],
                cwd=str(PROJECT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        finally:
            log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def passwords_done(self) -> bool:
        """This start has no web password left to hash (none were pending, or the hashing
        behind the start is over)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                for line in f:
                    if b"app.passwords_hashed" in line or b"app.passwords_failed" in line:
                        return True
                    if b"app.users_ready" in line and re.search(rb'"pending": 0[,}]', line):
                        return True
        except OSError:
            pass
        return False

    def keep_users(self) -> None:
        """Keep the web users' table as it is now (hashed) for the next starts: a copy of the
        database without the rest (SQLite's backup, then every other table emptied)."""
        if self.users_template.exists():
            return
        tmp = self.users_template.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        src = sqlite3.connect(str(self.db_path))
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst)
            tables = [r[0] for r in dst.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for t in tables:
                if t not in ("web_users", "alembic_version"):
                    dst.execute(f'DELETE FROM "{t}"')
            dst.commit()
        finally:
            src.close()
            dst.close()
        tmp.replace(self.users_template)

    def log_count(self, *needles: str) -> int:
        """How many log lines hold one of ``needles`` (e.g. ``runtime.ami_down``)."""
        try:
            with open(self.log_path, "rb") as f:
                return sum(1 for line in f if any(n.encode() in line for n in needles))
        except OSError:
            return 0


async def wait_ready(api: Any, timeout: float = 60.0) -> None:
    """Wait until the server answers and its AMI link is up (``api``: an
    :class:`acd.tools.server_api.ServerApi`). Whether the ACD has taken up its state shows at the first
    login (503 ``acd.starting`` until then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = await api.call("GET", "/api/health")
            if status == 200 and isinstance(body, dict) and body.get("ami_connected"):
                return
        except UserError:
            pass                       # not listening yet
        if time.monotonic() > deadline:
            raise UserError("bench.server_not_ready", f"no ready server at {api.base_url} "
                                                      f"within {timeout:.0f} s")
        await asyncio.sleep(0.1)       # polling a starting process, bounded by the deadline


async def api_post(api: Any, path: str, body: Any = None, timeout: float = 120.0) -> Any:
    """POST, waiting out 503 (the ACD still taking up its state); other errors raise."""
    deadline = time.monotonic() + timeout
    while True:
        status, data = await api.call("POST", path, body)
        if status == 200:
            return data
        if status != 503 or time.monotonic() > deadline:
            raise UserError("bench.api", f"POST {path}: {status} {str(data)[:300]}")
        await asyncio.sleep(0.1)       # 503: the ACD is taking up its state


# --------------------------------------------------------------------------- left over

#: How long the end-of-run check waits for calls still hanging up (seconds, at most).
SETTLE_SECONDS = 15.0


def channel_info(ev: dict[str, Any]) -> dict[str, Any]:
    """One channel of AMI ``CoreShowChannels`` (a ``CoreShowChannel`` event), the fields that
    tell what it is and who left it: name, state, application, how long it has been up."""
    def get(key: str) -> str:
        v = ev.get(key)
        return str(v[0] if isinstance(v, list) and v else v or "")
    return {"channel": get("Channel"), "state": get("ChannelStateDesc") or get("ChannelState"),
            "application": get("Application"), "data": get("ApplicationData"),
            "duration": get("Duration"), "context": get("Context"), "exten": get("Exten"),
            "uniqueid": get("Uniqueid"), "linkedid": get("Linkedid"), "bridge": get("BridgeId"),
            "caller": get("CallerIDNum"), "hidden_from_ami": False}


def concise_info(line: str) -> dict[str, Any] | None:
    """One line of the CLI's ``core show channels concise`` (``name!context!exten!priority!
    state!application!data!caller!account!peer account!AMA flags!seconds!bridge!uniqueid``)
    as :func:`channel_info` gives it; None for a line that is not a channel."""
    parts = line.strip().split("!")
    if len(parts) < 14:
        return None
    extra = len(parts) - 14                   # a "!" in the application's data
    data = "!".join(parts[6:7 + extra])
    rest = parts[7 + extra:]
    try:
        secs = int(rest[4])
        duration = f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    except ValueError:
        duration = rest[4]
    app = parts[5] if parts[5] != "(None)" else ""
    return {"channel": parts[0], "state": parts[4], "application": app, "data": data,
            "duration": duration, "context": parts[1], "exten": parts[2],
            "uniqueid": rest[6], "linkedid": "", "bridge": rest[5], "caller": rest[0],
            "hidden_from_ami": True}


async def channel_list(ami: Any) -> list[dict[str, Any]]:
    """Every channel Asterisk has, as :func:`channel_info` gives them: AMI ``CoreShowChannels``
    and the CLI's ``core show channels concise`` (over AMI ``Command``). AMI's list leaves out
    channels of an internal technology, and a ``Surrogate/...`` channel (what a masquerade
    leaves of a channel taken out of its application by AMI Bridge or Redirect) is one: only
    the CLI's list shows it (``hidden_from_ami``). Raises AmiError."""
    seen = [channel_info(c) for c in await ami.action_list("CoreShowChannels", timeout=30)]
    known = {c["uniqueid"] for c in seen} | {c["channel"] for c in seen}
    r = await ami.action("Command", Command="core show channels concise", timeout=30)
    out = r.get("Output", []) if hasattr(r, "get") else []
    for line in ([out] if isinstance(out, str) else list(out or [])):
        info = concise_info(str(line))
        if info is not None and info["uniqueid"] not in known and info["channel"] not in known:
            seen.append(info)
    return seen


async def left_over(ami: Any, *, settle: float = SETTLE_SECONDS, poll: float = 0.5,
                    ignore: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The end of a run: Asterisk's channel list (:func:`channel_list` on ``ami``, an
    :class:`acd.ami.client.AmiClient`) must be empty. Read again every ``poll`` seconds while
    calls are still hanging up, ``settle`` seconds at most; the channels still there then are
    left over. ``ignore``: Uniqueids that were there before the run (not its own).

    Returns ``{"left": [channel_info...], "waited": seconds}``; ``left`` is None and
    ``error`` says why when Asterisk could not be asked (never raised: the run's results
    are kept)."""
    from acd.ami.client import AmiError
    t0 = time.monotonic()
    while True:
        try:
            chans = await channel_list(ami)
        except AmiError as e:
            return {"left": None, "waited": round(time.monotonic() - t0, 1),
                    "error": f"the channel list: {e}"}
        left = [c for c in chans if c["uniqueid"] not in ignore]
        if not left or time.monotonic() - t0 >= settle:
            return {"left": left, "waited": round(time.monotonic() - t0, 1)}
        await asyncio.sleep(poll)      # calls still hanging up, bounded by ``settle``


def left_over_lines(check: dict[str, Any]) -> list[str]:
    """The end-of-run check for a person: one line, then one per channel left over."""
    if check.get("left") is None:
        return [f"channels left in Asterisk: not known ({check.get('error', '?')})"]
    left = check["left"]
    if not left:
        return ["channels left in Asterisk: none"]
    return ([f"channels left in Asterisk: {len(left)} still there {check.get('waited')} s "
             f"after the last call"]
            + [f"  {c['channel']} state {c['state'] or '-'} application "
               f"{c['application'] or '-'}{'(' + c['data'] + ')' if c['data'] else ''} up "
               f"{c['duration'] or '?'} uniqueid {c['uniqueid']}"
               f"{' linkedid ' + c['linkedid'] if c['linkedid'] else ''}"
               f"{' bridge ' + c['bridge'] if c['bridge'] else ''}"
               f"{' (not in AMI CoreShowChannels)' if c.get('hidden_from_ami') else ''}"
               for c in left])


# --------------------------------------------------------------------------- readings

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds_many(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_bytes(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def machine() -> dict[str, Any]:
    """The machine: cores, CPU model, memory, load, kernel, Python and Asterisk."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "memory_bytes": mem,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "kernel": platform.release(), "python": platform.python_version()}
