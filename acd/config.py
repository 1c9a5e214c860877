"""Configuration: defaults, then ``config.yaml``, then environment variables.

Validated once at start-up. Every error names the key, and the file and line it came from
(or the environment variable). Constructors elsewhere take plain values; only ``app.py`` reads
this.

Environment: ``ACD_CONFIG`` names the file; ``ACD_<SECTION>__<KEY>`` overrides one key, e.g.
``ACD_HTTP__PORT=8081`` or ``ACD_LOGGING__FORMAT=json`` (values are parsed as YAML scalars).
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from acd.errors import UserError


class ConfigError(UserError):
    def __init__(self, key: str, where: str, message: str) -> None:
        super().__init__("config.invalid", f"{where}: {key}: {message}")
        self.key = key
        self.where = where


# --- the schema: every key, with its default -----------------------------------------------

@dataclass(frozen=True)
class HotlineConfig:
    number: str = "7000"            # the number callers dial
    agi_retry_seconds: int = 5      # while our server is away, callers hear music this long, then retry
    agi_retry_count: int = 60       # ... this many times, then a goodbye


@dataclass(frozen=True)
class AsteriskConfig:
    mode: str = "auto"              # auto: the PATH's Asterisk 20+, else managed; system; managed
    root: str = ".cache/asterisk-root"
    instance: str = "main"          # names the folder of rendered config, logs and spool
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    media_address: str = "127.0.0.1"  # the address Asterisk offers for RTP
    rtp_start: int = 20000
    rtp_end: int = 20999
    loopback_trunk: bool = False    # an endpoint for Asterisk to call itself (tests, load)
    start_timeout: float = 60.0
    # Agents' phones: Asterisk asks each registered phone every qualify_seconds (SIP OPTIONS)
    # and counts it unreachable after qualify_timeout without an answer. A phone that dies
    # during a call is found by this (the caller goes back to the queue at the front).
    qualify_seconds: int = 15
    qualify_timeout: float = 3.0
    # The longest registration Asterisk grants a phone: phones register again within this,
    # so after an Asterisk crash that lost a fresh registration they are back in time.
    registration_seconds: int = 120


@dataclass(frozen=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "acd"
    secret: str = ""                # empty: generated once into <data_dir>/secrets.yaml
    action_timeout: float = 5.0
    ping_interval: float = 5.0
    ping_timeout: float = 3.0


@dataclass(frozen=True)
class AgiConfig:
    host: str = "127.0.0.1"
    port: int = 4573
    allow: tuple[str, ...] = ("127.0.0.1", "::1")
    max_sessions: int = 200
    header_timeout: float = 5.0
    command_timeout: float = 30.0


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""                   # empty: SQLite in <data_dir>/acd.db


@dataclass(frozen=True)
class OutboundConfig:
    # How to reach a customer's number (callbacks): {number} is replaced. E.g.
    # PJSIP/{number}@my-provider. Empty: only with the loopback trunk (tests), whose test
    # customers answer; callbacks need one of the two.
    dial: str = ""
    # The caller id customers see on outbound calls and callbacks: a number, or
    # "Name" <number>. Empty: the hotline number.
    caller_id: str = ""
    ring_timeout: float = 20.0      # an agent's outbound call: their own phone rings this long
    dial_timeout: float = 45.0      # ... then the customer's


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "console"         # console | json


@dataclass(frozen=True)
class WebUserConfig:
    """A web login that is not an agent: a supervisor or an admin. (Each agent logs in with
    their agent id and ``agents[].web_password``.)"""

    username: str = ""
    role: str = "supervisor"        # supervisor | admin
    password: str = ""              # empty: generated once into <data_dir>/secrets.yaml


@dataclass(frozen=True)
class SidePanelConfig:
    """A page beside the screen pop: ``{customer_id}``, ``{caller_number}``, ``{call_id}``,
    ``{agent_id}`` are filled in, URL-encoded."""

    title: str = ""
    url: str = ""
    needs: str = "customer_id"      # shown only when this value is known (or "" for always)


@dataclass(frozen=True)
class WebConfig:
    session_hours: float = 12.0     # a web session expires this long after the login
    login_attempts: int = 5         # failed logins per user and address within login_window,
    login_window: float = 300.0     # then refused (auth.rate_limited) until the window passes
    timezone: str = "UTC"           # "today" and its 15-minute intervals on the wall board
    default_region: str = "CN"      # for caller numbers without a country code
    region_language: str = "zh"     # the language of the caller's region (province, city)
    metrics_token: str = ""         # bearer token for /metrics; empty: generated
    websockets_per_session: int = 8     # live pages open at once per login; more are refused
    websockets_per_address: int = 100   # ... and per client address (close code 1008)
    users: tuple[WebUserConfig, ...] = (WebUserConfig(username="admin", role="admin"),)
    side_panels: tuple[SidePanelConfig, ...] = ()


@dataclass(frozen=True)
class FlowsConfig:
    """IVR flows in YAML (agi/flows): which number runs which flow, and how they are loaded."""

    dir: str = "ivr_flows"          # the flow files (*.yaml), relative to this file
    numbers: dict[str, str] | None = None   # dialled number (DID) -> flow; others: built-in IVR
    watch_seconds: float = 2.0      # look for changed files this often (0: only on reload)
    prompts_dir: str = ""           # where Asterisk reads our prompt files (as we see it);
    prompts_dir_asterisk: str = ""  # ... and as Asterisk sees it; empty: its instance's sounds/
    voice_command: str = "espeak-ng"  # speaks text prompts (voice: cmn for Mandarin)
    max_steps: int = 500            # nodes one call may pass through


@dataclass(frozen=True)
class DirectoryConfig:
    """The customer directory that verify_identity nodes check callers against."""

    backend: str = "database"       # database (acd directory import FILE.csv) | http
    url: str = ""                   # http: GET url?kind=phone|id_number|customer_number&value=...
    timeout: float = 3.0            # seconds; a slower or failing lookup takes the failure branch


@dataclass(frozen=True)
class AgentConfig:
    id: str = ""                    # also the SIP user name the phone registers with
    name: str = ""
    password: str = ""              # empty: generated once into <data_dir>/secrets.yaml
    web_password: str = ""          # the agent page's login (user = id); empty: generated


@dataclass(frozen=True)
class WidenConfig:
    after: float = 0.0              # seconds in the queue
    groups: tuple[str, ...] = ()    # also offer to these groups' members
    min_level: int | None = None    # and/or to home members down to this skill level


@dataclass(frozen=True)
class CallbackConfig:
    key: str = "*"                  # the key a waiting caller presses to be called back
    attempts: int = 3
    gap: float = 300.0              # seconds between attempts
    expiry: float = 14400.0         # seconds after the request; then it is dropped
    dial_timeout: float = 30.0


@dataclass(frozen=True)
class GroupConfig:
    """A skill group. Destinations: hangup, group:NAME, ivr:FLOW, voicemail:BOX, callback."""

    name: str = ""
    number: str = ""                # optional: dialing it queues straight into this group
    strategy: str = "longest_idle"  # longest_idle, round_robin, fewest_calls, skill_level, random
    members: dict[str, int] | None = None   # agent id -> skill level
    ring_timeout: float = 15.0
    wrapup_seconds: float = 0.0
    service_level_seconds: float = 20.0
    no_answer_break: bool = True
    retry_seconds: float = 5.0
    min_level: int = 0
    widen: tuple[WidenConfig, ...] = ()
    max_wait: float | None = None
    max_wait_destination: str = "hangup"
    max_queue_length: int | None = None
    queue_full_destination: str = "hangup"
    hours: tuple[str, ...] = ()     # e.g. ["mon-fri 09:00-18:00", "sat 10:00-14:00"]; empty: always open
    holidays: tuple[str, ...] = ()  # YYYY-MM-DD, closed all day
    timezone: str = "UTC"
    closed_destination: str = "hangup"
    no_agents_destination: str | None = None
    familiar_seconds: float = 0.0
    familiar_window: float = 604800.0
    announce_every: float | None = None
    announce_position: bool = True
    announce_estimated_wait: bool = True
    callback: CallbackConfig | None = None
    expected_handle_time: float = 180.0


@dataclass(frozen=True)
class Config:
    data_dir: str = "data"
    hotline: HotlineConfig = field(default_factory=HotlineConfig)
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    agents: tuple[AgentConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    web: WebConfig = field(default_factory=WebConfig)

    # Filled in by load(): where the file was, for messages and relative paths.
    source: str = "defaults"
    base_dir: str = "."
    file_secrets: tuple[str, ...] = ()      # secret keys the file itself gives (not the env)

    def path(self, p: str) -> Path:
        """A configured path, relative to the config file's folder."""
        q = Path(p)
        return q if q.is_absolute() else Path(self.base_dir) / q

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.path(self.data_dir).resolve() / 'acd.db'}"


_INTERNAL = {"source", "base_dir", "file_secrets"}


# --- checks on values, beyond their types ----------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_NUMBER = re.compile(r"^[0-9*#+]{1,32}$")
_CALLER_ID = re.compile(r'^(?:(?:"[^"\\<>\r\n]{0,40}" ?)?<\+?[0-9*#]{1,32}>|\+?[0-9*#]{1,32})$')


def _check_values(cfg: Config, where: dict[str, str]) -> None:
    def bad(key: str, msg: str) -> None:
        raise ConfigError(key, where.get(key, cfg.source), msg)

    for key, port in (("asterisk.sip_port", cfg.asterisk.sip_port), ("ami.port", cfg.ami.port),
                      ("agi.port", cfg.agi.port), ("http.port", cfg.http.port),
                      ("asterisk.rtp_start", cfg.asterisk.rtp_start),
                      ("asterisk.rtp_end", cfg.asterisk.rtp_end)):
        if not 0 < port < 65536:
            bad(key, f"{port} is not a port number (1-65535)")
    if cfg.asterisk.rtp_end <= cfg.asterisk.rtp_start:
        bad("asterisk.rtp_end", "must be above asterisk.rtp_start")
    if cfg.asterisk.mode not in ("auto", "system", "managed"):
        bad("asterisk.mode", f"{cfg.asterisk.mode!r} is not one of auto, system, managed")
    if not _NAME.match(cfg.asterisk.instance):
        bad("asterisk.instance", "use letters, digits, '-', '_' or '.'")
    for key, host in (("asterisk.sip_host", cfg.asterisk.sip_host),
                      ("asterisk.media_address", cfg.asterisk.media_address),
                      ("ami.host", cfg.ami.host), ("agi.host", cfg.agi.host),
                      ("http.host", cfg.http.host)):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            bad(key, f"{host!r} is not an IP address")
    for i, net in enumerate(cfg.agi.allow):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            bad(f"agi.allow[{i}]", f"{net!r} is not an address or network")
    if not _NUMBER.match(cfg.hotline.number):
        bad("hotline.number", f"{cfg.hotline.number!r} is not a dialable number (digits, *, #, +)")
    if cfg.logging.level.lower() not in ("debug", "info", "warning", "error"):
        bad("logging.level", f"{cfg.logging.level!r} is not one of debug, info, warning, error")
    if cfg.logging.format not in ("console", "json"):
        bad("logging.format", f"{cfg.logging.format!r} is not one of console, json")
    for key, val in (("ami.action_timeout", cfg.ami.action_timeout),
                     ("ami.ping_interval", cfg.ami.ping_interval),
                     ("ami.ping_timeout", cfg.ami.ping_timeout),
                     ("agi.header_timeout", cfg.agi.header_timeout),
                     ("agi.command_timeout", cfg.agi.command_timeout),
                     ("agi.max_sessions", cfg.agi.max_sessions),
                     ("hotline.agi_retry_seconds", cfg.hotline.agi_retry_seconds),
                     ("asterisk.start_timeout", cfg.asterisk.start_timeout),
                     ("asterisk.qualify_seconds", cfg.asterisk.qualify_seconds),
                     ("asterisk.qualify_timeout", cfg.asterisk.qualify_timeout),
                     ("asterisk.registration_seconds", cfg.asterisk.registration_seconds)):
        if val <= 0:
            bad(key, f"must be above 0, not {val}")
    if cfg.hotline.agi_retry_count < 0:
        bad("hotline.agi_retry_count", f"0 (no retry) or more, not {cfg.hotline.agi_retry_count}")
    if cfg.asterisk.qualify_timeout >= cfg.asterisk.qualify_seconds:
        bad("asterisk.qualify_timeout", "must be below asterisk.qualify_seconds")
    if not _NAME.match(cfg.ami.username):
        bad("ami.username", "use letters, digits, '-', '_' or '.'")
    seen: set[str] = set()
    for i, agent in enumerate(cfg.agents):
        if not _NAME.match(agent.id):
            bad(f"agents[{i}].id", f"{agent.id!r}: use letters, digits, '-', '_' or '.' (1-40)")
        if agent.id in seen:
            bad(f"agents[{i}].id", f"{agent.id!r} is listed twice")
        if agent.id in ("acd-caller", "acd-trunk"):
            bad(f"agents[{i}].id", f"{agent.id!r} is reserved")
        if any(c in agent.name for c in '";[]\\') or any(ord(c) < 32 for c in agent.name):
            bad(f"agents[{i}].name", "no quotes, ';', brackets, backslashes or control characters")
        seen.add(agent.id)
    if cfg.outbound.dial and ("{number}" not in cfg.outbound.dial
                              or any(c in cfg.outbound.dial for c in "\r\n;,")):
        bad("outbound.dial", "a dial string with {number} in it, e.g. PJSIP/{number}@my-provider")
    if cfg.outbound.caller_id and not _CALLER_ID.match(cfg.outbound.caller_id):
        bad("outbound.caller_id", 'a number (digits, *, #, + first), or "Name" <number>')
    for key, val in (("outbound.ring_timeout", cfg.outbound.ring_timeout),
                     ("outbound.dial_timeout", cfg.outbound.dial_timeout)):
        if not 0 < val <= 600:
            bad(key, f"seconds, above 0 and at most 600, not {val}")
    _check_groups(cfg, bad, seen)
    _check_flows(cfg, bad)
    _check_web(cfg, bad, seen)
    for key, secret in [("ami.secret", cfg.ami.secret)] + [
            (f"agents[{i}].password", a.password) for i, a in enumerate(cfg.agents)]:
        if secret and (len(secret) < 8 or any(c in secret for c in "\r\n;\"")):
            bad(key, "at least 8 characters, without quotes, ';' or line breaks")


def _check_groups(cfg: Config, bad, agent_ids: set[str]) -> None:  # noqa: ANN001
    from acd.errors import UserError as _UserError
    names = set()
    numbers = {cfg.hotline.number: "hotline.number"}
    for i, g in enumerate(cfg.groups):
        k = f"groups[{i}]"
        if not _NAME.match(g.name):
            bad(f"{k}.name", f"{g.name!r}: use letters, digits, '-', '_' or '.' (1-40)")
        if g.name in names:
            bad(f"{k}.name", f"{g.name!r} is listed twice")
        names.add(g.name)
        strategies = ("longest_idle", "round_robin", "fewest_calls", "skill_level", "random")
        if g.strategy not in strategies:
            bad(f"{k}.strategy", f"{g.strategy!r} is not one of {', '.join(strategies)}")
        if g.number:
            if not _NUMBER.match(g.number):
                bad(f"{k}.number", f"{g.number!r} is not a dialable number")
            if g.number in numbers:
                bad(f"{k}.number", f"{g.number} is already {numbers[g.number]}")
            numbers[g.number] = f"{k}.number"
        _check_group_numbers(g, k, bad)
        for agent in (g.members or {}):
            if agent not in agent_ids:
                bad(f"{k}.members.{agent}", "no such agent in agents")
        for j, spec in enumerate(g.hours):
            try:
                parse_hours(spec)
            except ValueError as e:
                bad(f"{k}.hours[{j}]", str(e))
        for j, day in enumerate(g.holidays):
            try:
                date.fromisoformat(day)
            except ValueError:
                bad(f"{k}.holidays[{j}]", f"{day!r} is not a date (YYYY-MM-DD)")
        try:
            ZoneInfo(g.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            bad(f"{k}.timezone", f"unknown time zone {g.timezone!r}")
        if g.callback is not None and not (cfg.outbound.dial or cfg.asterisk.loopback_trunk):
            bad(f"{k}.callback", "callbacks need outbound.dial, the way to reach customers")
        if g.callback is not None and (len(g.callback.key) != 1 or g.callback.key not in "0123456789*#"):
            bad(f"{k}.callback.key", "one key: 0-9, * or #")
        for field_name in ("max_wait_destination", "queue_full_destination", "closed_destination",
                           "no_agents_destination"):
            value = getattr(g, field_name)
            if value is not None:
                try:
                    parse_destination(value)
                except ValueError as e:
                    bad(f"{k}.{field_name}", str(e))
    try:
        core_groups(cfg)
    except _UserError as e:  # the core's own checks: loops, unknown groups, bad numbers
        bad("groups", e.message)


#: A skill group's numbers: "above 0" or "0 or more" (the core checks them too, but its
#: message names only the group; these name the key and its line).
_GROUP_NUMBERS = {"ring_timeout": ">0", "wrapup_seconds": ">=0", "service_level_seconds": ">=0",
                  "retry_seconds": ">0", "min_level": ">=0", "max_wait": ">0",
                  "max_queue_length": ">=0", "familiar_seconds": ">=0", "familiar_window": ">=0",
                  "announce_every": ">0", "expected_handle_time": ">0"}
_WIDEN_NUMBERS = {"after": ">=0", "min_level": ">=0"}
_CALLBACK_NUMBERS = {"attempts": ">0", "gap": ">=0", "expiry": ">0", "dial_timeout": ">0"}


def _check_group_numbers(g: GroupConfig, k: str, bad) -> None:  # noqa: ANN001
    def check(obj: Any, prefix: str, rules: dict[str, str]) -> None:
        for name, rule in rules.items():
            value = getattr(obj, name)
            if value is not None and (value <= 0 if rule == ">0" else value < 0):
                bad(f"{prefix}.{name}", f"{'above 0' if rule == '>0' else '0 or more'}, not {value}")
    check(g, k, _GROUP_NUMBERS)
    for j, w in enumerate(g.widen):
        check(w, f"{k}.widen[{j}]", _WIDEN_NUMBERS)
    if g.callback is not None:
        check(g.callback, f"{k}.callback", _CALLBACK_NUMBERS)


def _check_web(cfg: Config, bad, agent_ids: set[str]) -> None:  # noqa: ANN001
    """The web section: users (not clashing with agent ids), side panels, time zone."""
    w = cfg.web
    if w.session_hours <= 0:
        bad("web.session_hours", f"must be above 0, not {w.session_hours}")
    if w.login_attempts < 1:
        bad("web.login_attempts", f"at least 1 attempt within login_window, not {w.login_attempts}")
    if w.login_window <= 0:
        bad("web.login_window", f"seconds, above 0, not {w.login_window}")
    for key in ("websockets_per_session", "websockets_per_address"):
        if getattr(w, key) < 1:
            bad(f"web.{key}", f"at least 1, not {getattr(w, key)}")
    try:
        ZoneInfo(w.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        bad("web.timezone", f"unknown time zone {w.timezone!r}")
    if not re.fullmatch(r"[A-Z]{2}", w.default_region):
        bad("web.default_region", f"{w.default_region!r}: a two-letter country code, e.g. CN")
    seen: set[str] = set()
    for i, u in enumerate(w.users):
        if not _NAME.match(u.username):
            bad(f"web.users[{i}].username", f"{u.username!r}: use letters, digits, '-', '_' or '.'")
        if u.username in agent_ids:
            bad(f"web.users[{i}].username", f"{u.username!r} is an agent id (agents log in as themselves)")
        if u.username in seen:
            bad(f"web.users[{i}].username", f"{u.username!r} is listed twice")
        seen.add(u.username)
        if u.role not in ("supervisor", "admin"):
            bad(f"web.users[{i}].role", f"{u.role!r} is not one of supervisor, admin")
        if u.password and len(u.password) < 8:
            bad(f"web.users[{i}].password", "at least 8 characters")
    for i, a in enumerate(cfg.agents):
        if a.web_password and len(a.web_password) < 8:
            bad(f"agents[{i}].web_password", "at least 8 characters")
    for i, panel in enumerate(w.side_panels):
        if not panel.title or len(panel.title) > 40:
            bad(f"web.side_panels[{i}].title", "a title of 1 to 40 characters")
        if not re.match(r"^https?://[^\s]+$", panel.url):
            bad(f"web.side_panels[{i}].url", f"{panel.url!r}: an http:// or https:// URL")
        names = set(re.findall(r"\{([^{}]*)\}", panel.url))
        unknown = names - {"customer_id", "caller_number", "call_id", "agent_id"}
        if unknown:
            bad(f"web.side_panels[{i}].url", f"unknown value {{{sorted(unknown)[0]}}} (known: "
                "{customer_id}, {caller_number}, {call_id}, {agent_id})")
        if panel.needs not in ("", "customer_id", "caller_number"):
            bad(f"web.side_panels[{i}].needs", f"{panel.needs!r}: customer_id, caller_number or \"\"")


def _check_flows(cfg: Config, bad) -> None:  # noqa: ANN001
    """The flows and directory sections: numbers are dialable and not taken, names are names."""
    taken = {g.number: f"groups {g.name}" for g in cfg.groups if g.number}
    for number, flow in (cfg.flows.numbers or {}).items():
        if not _NUMBER.match(number):
            bad(f"flows.numbers.{number}", f"{number!r} is not a dialable number (digits, *, #, +)")
        if number in taken:
            bad(f"flows.numbers.{number}", f"{number} is already the number of {taken[number]}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,47}", flow):
            bad(f"flows.numbers.{number}", f"{flow!r} is not a flow name (letters, digits, _)")
    if cfg.flows.watch_seconds < 0:
        bad("flows.watch_seconds", f"0 (off) or more, not {cfg.flows.watch_seconds}")
    if cfg.flows.max_steps < 10:
        bad("flows.max_steps", f"at least 10, not {cfg.flows.max_steps}")
    if bool(cfg.flows.prompts_dir) != bool(cfg.flows.prompts_dir_asterisk):
        bad("flows.prompts_dir", "give prompts_dir and prompts_dir_asterisk together (or neither)")
    d = cfg.directory
    if d.backend not in ("database", "http"):
        bad("directory.backend", f"{d.backend!r} is not one of database, http")
    if d.backend == "http" and not re.match(r"^https?://[^\s]+$", d.url):
        bad("directory.url", "directory.backend http needs an http:// or https:// URL")
    if not 0 < d.timeout <= 60:
        bad("directory.timeout", f"seconds, above 0 and at most 60, not {d.timeout}")


_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_hours(spec: str) -> tuple[set[int], int, int]:
    """'mon-fri 09:00-18:00' -> ({0..4}, 540, 1080): weekdays and minutes of the day."""
    m = re.fullmatch(r"\s*([a-z]{3})(?:-([a-z]{3}))?\s+(\d\d):(\d\d)-(\d\d):(\d\d)\s*", spec.lower())
    if not m or m.group(1) not in _DAYS or (m.group(2) and m.group(2) not in _DAYS):
        raise ValueError(f"{spec!r}: write e.g. 'mon-fri 09:00-18:00' or 'sat 10:00-14:00'")
    a = _DAYS.index(m.group(1))
    b = _DAYS.index(m.group(2)) if m.group(2) else a
    days = {d % 7 for d in range(a, (b if b >= a else b + 7) + 1)}
    start = int(m.group(3)) * 60 + int(m.group(4))
    end = int(m.group(5)) * 60 + int(m.group(6))
    if not (0 <= start < end <= 24 * 60) or int(m.group(4)) > 59 or int(m.group(6)) > 59:
        raise ValueError(f"{spec!r}: the times must be HH:MM, the start before the end")
    return days, start, end


def parse_destination(text: str):
    """'hangup', 'hangup:sound', 'group:NAME', 'ivr:FLOW', 'voicemail:BOX', 'callback'."""
    from acd.core import Destination, DestinationKind
    kind, _, target = text.partition(":")
    try:
        k = DestinationKind(kind)
    except ValueError:
        raise ValueError(f"{text!r}: one of hangup, group:NAME, ivr:FLOW, voicemail:BOX, callback") from None
    if k in (DestinationKind.GROUP, DestinationKind.IVR, DestinationKind.VOICEMAIL) and not target:
        raise ValueError(f"{text!r}: {kind} needs a name after ':'")
    return Destination(k, target)


def core_groups(cfg: Config) -> list:
    """The skill groups as the ACD core takes them (checked by the core too)."""
    from acd import core
    from acd.core.config import validate_groups
    out = []
    for g in cfg.groups:
        cb = g.callback
        out.append(core.GroupConfig(
            name=g.name, members=dict(g.members or {}), strategy=(core.Strategy(g.strategy)
                                                          if g.strategy in {x.value for x in core.Strategy}
                                                          else g.strategy),
            ring_timeout=g.ring_timeout, wrapup_seconds=g.wrapup_seconds,
            service_level_seconds=g.service_level_seconds, no_answer_break=g.no_answer_break,
            retry_seconds=g.retry_seconds, min_level=g.min_level,
            widen=tuple(core.WidenStep(w.after, tuple(w.groups), w.min_level) for w in g.widen),
            max_wait=g.max_wait, max_wait_destination=parse_destination(g.max_wait_destination),
            max_queue_length=g.max_queue_length,
            queue_full_destination=parse_destination(g.queue_full_destination),
            closed_destination=parse_destination(g.closed_destination),
            no_agents_destination=(parse_destination(g.no_agents_destination)
                                   if g.no_agents_destination else None),
            familiar_seconds=g.familiar_seconds, familiar_window=g.familiar_window,
            announce_every=g.announce_every, announce_position=g.announce_position,
            announce_estimated_wait=g.announce_estimated_wait,
            callback=(core.CallbackSettings(cb.attempts, cb.gap, cb.expiry, cb.dial_timeout)
                      if cb else None),
            expected_handle_time=g.expected_handle_time))
    validate_groups(out)
    return out


# --- loading --------------------------------------------------------------------------------

class _Where:
    """Remembers the file and line each key came from."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, str] = {}
        self.raw: dict[str, str] = {}   # the text of each scalar as written


def _to_python(node: yaml.Node, path: str, where: _Where) -> Any:
    where.lines[path or "."] = f"{where.source}, line {node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise ConfigError(path or ".", f"{where.source}, line {k.start_mark.line + 1}",
                                  "keys must be plain names")
            key = str(k.value)
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(sub, f"{where.source}, line {k.start_mark.line + 1}",
                                  "given twice")
            out[key] = _to_python(v, sub, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, f"{path}[{i}]", where) for i, v in enumerate(node.value)]
    where.raw[path] = str(node.value)
    return yaml.safe_load(yaml.serialize(node))


def _coerce(tp: Any, value: Any, key: str, where: dict[str, str], source: str,
            raw: dict[str, str] | None = None) -> Any:
    raw = raw if raw is not None else {}
    loc = where.get(key, source)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(key, loc, f"expected a mapping of keys, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in fields(tp)} - _INTERNAL
        kwargs = {}
        for k, v in value.items():
            sub = f"{key}.{k}" if key else k
            if k not in names:
                near = ", ".join(sorted(names))
                raise ConfigError(sub, where.get(sub, loc), f"unknown key (known here: {near})")
            kwargs[k] = _coerce(hints[k], v, sub, where, source, raw)
        return tp(**kwargs)
    if type(tp).__name__ == "UnionType" or get_origin(tp) is Union:
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, key, where, source, raw)
    if get_origin(tp) is dict:
        kt, vt = get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(key, loc, f"expected a mapping, got {type(value).__name__}")
        return {_coerce(kt, k, key, where, source): _coerce(vt, v, f"{key}.{k}", where, source, raw)
                for k, v in value.items()}
    if get_origin(tp) is tuple:
        (inner, _ellipsis) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(key, loc, f"expected a list, got {type(value).__name__}")
        return tuple(_coerce(inner, v, f"{key}[{i}]", where, source, raw) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, loc, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, loc, f"expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, loc, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # Written without quotes (an agent id 1001, a number +4930123, a secret 0x1234567):
            # keep the text as written, never YAML's reading of it as a number.
            return raw.get(key, str(value))
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            raise ConfigError(key, loc, f"expected text, got {value!r}")
        return str(value)
    raise TypeError(f"no coercion for {tp}")


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = data
    for p in parts[:-1]:
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            nxt = cur[p] = {}
        cur = nxt
    cur[parts[-1]] = value


def load(path: str | os.PathLike[str] | None = None,
         environ: dict[str, str] | None = None) -> Config:
    """Defaults, then the YAML file (if any), then ``ACD_<SECTION>__<KEY>`` variables."""
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get("ACD_CONFIG") or ("config.yaml" if Path("config.yaml").exists() else None)
    data: dict[str, Any] = {}
    where = _Where("defaults")
    source, base_dir = "defaults", "."
    if path is not None:
        p = Path(path)
        source, base_dir = str(p), str(p.resolve().parent)
        where = _Where(source)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(".", source, f"cannot read the file: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ConfigError(".", source, "the file is not UTF-8 text") from None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark else ""
            raise ConfigError(".", f"{source}{line}", f"not valid YAML: {getattr(e, 'problem', e)}") from None
        if node is not None:
            data = _to_python(node, "", where)
            if not isinstance(data, dict):
                raise ConfigError(".", source, "the file must be a mapping of sections")
    file_secrets = _secret_keys(data)            # before the environment adds its own
    for name, raw in env.items():
        if not name.startswith("ACD_") or "__" not in name:
            continue
        dotted = name[4:].lower().replace("__", ".")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_path(data, dotted, value)
        where.lines[dotted] = f"environment variable {name}"
        where.raw[dotted] = raw
        parts = dotted.split(".")
        for i in range(1, len(parts)):  # an unknown section is named by the variable too
            where.lines.setdefault(".".join(parts[:i]), f"environment variable {name}")
    cfg = _coerce(Config, data, "", where.lines, source, where.raw)
    cfg = replace(cfg, source=source, base_dir=base_dir, file_secrets=file_secrets)
    _check_values(cfg, where.lines)
    return cfg


def _secret_keys(data: dict[str, Any]) -> tuple[str, ...]:
    """The secret keys a config file's data gives: the AMI secret, SIP and web passwords, the
    metrics token (non-empty ones)."""
    def section(name: str) -> dict[str, Any]:
        v = data.get(name)
        return v if isinstance(v, dict) else {}

    out = []
    if section("ami").get("secret"):
        out.append("ami.secret")
    for i, a in enumerate(data.get("agents") or []):
        for k in ("password", "web_password"):
            if isinstance(a, dict) and a.get(k):
                out.append(f"agents[{i}].{k}")
    web = section("web")
    if web.get("metrics_token"):
        out.append("web.metrics_token")
    for i, u in enumerate(web.get("users") or []):
        if isinstance(u, dict) and u.get("password"):
            out.append(f"web.users[{i}].password")
    return tuple(out)


def secrets_in_file(cfg: Config) -> list[str]:
    """The secret keys that ``cfg``'s config file itself gives (not generated, not from the
    environment), as :func:`load` found them."""
    return list(cfg.file_secrets)


def check_secret_file_mode(cfg: Config) -> None:
    """Refuse a config file that holds secrets and that every user of the machine can read
    (as sshd refuses a readable private key): the fix is ``chmod 600``, or leaving the secret
    empty so that it is generated into ``<data_dir>/secrets.yaml`` (mode 0600)."""
    keys = secrets_in_file(cfg)
    if not keys:
        return
    mode = Path(cfg.source).stat().st_mode
    if mode & 0o004:
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        raise ConfigError(".", cfg.source,
                          f"holds secrets ({shown}) and every user can read it (mode "
                          f"{mode & 0o777:o}): chmod 600 {cfg.source}, or leave them empty to "
                          "have them generated into the data folder's secrets.yaml (mode 0600)")


# --- secrets: never a default password in a running system ---------------------------------

def with_secrets(cfg: Config) -> tuple[Config, Path]:
    """Fill empty secrets from ``<data_dir>/secrets.yaml``, generating any that are missing.

    The file is created mode 0600. Returns the completed config and the file's path.
    """
    data_dir = cfg.path(cfg.data_dir)
    if not data_dir.exists():
        data_dir.mkdir(parents=True)
        data_dir.chmod(0o700)     # secrets, the database (password hashes), recordings
    else:
        mode = data_dir.stat().st_mode & 0o777
        if mode & 0o007 and data_dir.stat().st_uid == os.getuid():
            data_dir.chmod(mode & ~0o007)    # an older one: not for every user of the machine
    spath = data_dir / "secrets.yaml"
    stored: dict[str, Any] = {}
    if spath.exists():
        loaded = yaml.safe_load(spath.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(".", str(spath), "must be a mapping (delete it to generate anew)")
        stored = loaded
    changed = False

    def secret(key: str, given: str) -> str:
        nonlocal changed
        if given:
            return given
        if not isinstance(stored.get(key), str) or len(stored[key]) < 8:
            stored[key] = secrets.token_urlsafe(18)
            changed = True
        return stored[key]

    ami = replace(cfg.ami, secret=secret("ami_secret", cfg.ami.secret))
    agents = tuple(replace(a, password=secret(f"agent_{a.id}_password", a.password),
                           web_password=secret(f"web_{a.id}_password", a.web_password))
                   for a in cfg.agents)
    web = replace(cfg.web, metrics_token=secret("web_metrics_token", cfg.web.metrics_token),
                  users=tuple(replace(u, password=secret(f"web_{u.username}_password", u.password))
                              for u in cfg.web.users))
    if changed or not spath.exists():
        tmp = spath.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Generated secrets. Keep this file private (mode 0600).\n")
            yaml.safe_dump(stored, f, sort_keys=True)
        os.replace(tmp, spath)
    os.chmod(spath, 0o600)
    return replace(cfg, ami=ami, agents=agents, web=web), spath
