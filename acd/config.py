"""Configuration: defaults, then ``config.yaml``, then environment variables.

Validated once at start-up. Every error names the key, and the file and line it came from
(or the environment variable). Constructors elsewhere take plain values; only ``app.py`` reads
this.

Environment: ``ACD_CONFIG`` names the file; ``ACD_<SECTION>__<KEY>`` overrides one key, e.g.
``ACD_HTTP__PORT=8081`` or ``ACD_LOGGING__FORMAT=json`` (values are parsed as YAML scalars).
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, NoReturn, Union, get_args, get_origin, get_type_hints

import yaml

from acd.config_checks import check_values
from acd.config_checks import core_groups, parse_destination, parse_hours  # noqa: F401 (ours too)
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
    # Asterisk's own web server, for the browser phone's SIP over WebSocket (ws://host:port/ws);
    # on sip_host (loopback by default).
    http_port: int = 8088
    # The same over TLS (wss://host:wss_port/ws) with the admin's certificate, for pages on
    # other machines (an https page may not open ws://): 0 is off (acd.asterisk.tls).
    wss_port: int = 0
    tls_cert: str = ""              # PEM; relative paths: to the configuration's folder
    tls_key: str = ""
    media_address: str = "127.0.0.1"  # the address Asterisk offers for RTP
    rtp_start: int = 20000
    rtp_end: int = 20999
    loopback_trunk: bool = False    # an endpoint for Asterisk to call itself (tests, load)
    # Calls from sip_host itself that are no agent's reach the hotline as a customer's
    # (`acd call`: a caller's phone for demos and trying it out); the loopback trunk does too.
    local_callers: bool = False
    start_timeout: float = 60.0
    # Agents' phones: Asterisk asks each registered phone every qualify_seconds (SIP OPTIONS)
    # and counts it unreachable after qualify_timeout without an answer. A phone that dies
    # during a call is found by this (the caller goes back to the queue at the front).
    qualify_seconds: int = 15
    qualify_timeout: float = 3.0
    # A conversation is taken from a phone only once this many qualifies in a row failed
    # (1: at the first). One late answer is what a busy machine gives, not a dead phone.
    phone_lost_qualifies: int = 2
    # The longest registration Asterisk grants a phone: phones register again within this,
    # so after an Asterisk crash that lost a fresh registration they are back in time.
    registration_seconds: int = 120
    # The codecs a browser phone may use, in Asterisk's order of preference (Opus costs
    # Asterisk more CPU than G.711: it transcodes to the callers' G.711; docs/benchmarks.md).
    browser_codecs: tuple[str, ...] = ("opus", "ulaw", "alaw")


def phone_grace(a: AsteriskConfig) -> float:
    """Seconds a phone stays unreachable mid-call, after its first failed qualify, before
    the caller is taken back: until the answer to the last of ``phone_lost_qualifies``
    qualifies is overdue."""
    return (a.phone_lost_qualifies - 1) * a.qualify_seconds + (
        a.qualify_timeout if a.phone_lost_qualifies > 1 else 0.0)


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
    # Connections that have not yet sent a valid header, per address; past it the address's
    # oldest is closed. Asterisk sends its header right after connecting: it never has many.
    max_pending_per_address: int = 16
    header_timeout: float = 2.0     # Asterisk's header follows its connect within milliseconds
    command_timeout: float = 30.0
    # The FastAGI servers the dialplan tries, in order, as host:port (a leader and its
    # standbys: ha); empty: this server's host and port alone.
    servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class HaConfig:
    """A standby server (acd.leader): servers sharing one PostgreSQL database and one
    Asterisk; one leads (a lease in the database), the others take over when it is gone."""

    enabled: bool = False
    node: str = ""                  # this server's name in the lease; empty: host name and port
    lease_seconds: float = 6.0      # a dead leader is replaced after at most this long


@dataclass(frozen=True)
class OverloadConfig:
    """Past what the server can serve, new callers get their group's overload_destination
    instead of a place in the queue: while the event loop runs this late (ms), or while
    Asterisk answers an AMI Ping this late (ms; 0: not watched)."""
    max_lag_ms: float = 500.0
    max_asterisk_ms: float = 1000.0


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
    phone: str = ""                 # a SIP phone to listen, whisper and barge from (its user
                                    # name, registered like an agent's); empty: none
    phone_password: str = ""        # its SIP password; empty: generated into secrets.yaml
    groups: tuple[str, ...] = ()    # a supervisor's skill groups: the memberships they may
                                    # change (empty: every group)


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
    secure_cookies: bool = False    # the session cookie only over HTTPS (behind TLS); it is
                                    # Secure anyway when the client came over HTTPS
    trusted_proxies: tuple[str, ...] = ()   # reverse proxies (addresses, networks) whose
                                    # X-Forwarded-For / -Proto are believed
    # The wall board: with wallboard_mask_callers, a waiting caller's number shows only its
    # last wallboard_caller_digits digits (0: none); red when a group's service level today is
    # under wallboard_service_level_target or its longest wait is over wallboard_longest_wait_alert.
    wallboard_mask_callers: bool = True
    wallboard_caller_digits: int = 4
    wallboard_service_level_target: float = 0.8
    wallboard_longest_wait_alert: float = 60.0
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
    phone: str = "sip"              # the phone the agent page offers first: sip | browser


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
    service_level_target: float = 0.8     # the share to answer within it (reports' staffing)
    no_answer_break: bool = True
    retry_seconds: float = 5.0
    min_level: int = 0
    widen: tuple[WidenConfig, ...] = ()
    max_wait: float | None = None
    max_wait_destination: str = "hangup"
    max_queue_length: int | None = None
    queue_full_destination: str = "hangup"
    overload_destination: str = "hangup:all-circuits-busy-now"   # new callers while overloaded
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
    # Record the agents' conversations: all, none, or the share to record (0.2: one in
    # five, drawn per call). From the bridge on: the IVR and the queue are never recorded.
    record: str = "none"


@dataclass(frozen=True)
class RecordingsConfig:
    """Where and how long conversations are kept (groups say which: ``groups[].record``)."""
    folder: str = "recordings"      # under data_dir unless absolute; a folder per day
    keep_days: int = 0              # 0: kept until deleted; else purged daily after this
    agents_hear_own: bool = False   # agents may play their own calls' recordings


@dataclass(frozen=True)
class CoreConfig:
    """The ACD core's memory: the last ended calls it keeps (for what comes after the end:
    the wrap-up's end, a rating, a look-up); every call is in the store regardless. About
    2 KB a call."""
    ended_calls_kept: int = 10000


@dataclass(frozen=True)
class Config:
    data_dir: str = "data"
    hotline: HotlineConfig = field(default_factory=HotlineConfig)
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    overload: OverloadConfig = field(default_factory=OverloadConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    ha: HaConfig = field(default_factory=HaConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    agents: tuple[AgentConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    web: WebConfig = field(default_factory=WebConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)

    # Filled in by load(): where the file was, for messages and relative paths.
    source: str = "defaults"
    base_dir: str = "."
    file_secrets: tuple[str, ...] = ()      # secret keys the file itself gives (not the env)

    def path(self, p: str) -> Path:
        """A configured path, relative to the config file's folder."""
        q = Path(p)
        return q if q.is_absolute() else Path(self.base_dir) / q

    @property
    def recordings_folder(self) -> Path:
        """Where finished recordings live (``recordings.folder`` under the data folder)."""
        q = Path(self.recordings.folder)
        return q if q.is_absolute() else self.path(self.data_dir) / q

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.path(self.data_dir).resolve() / 'acd.db'}"


_INTERNAL = {"source", "base_dir", "file_secrets"}


def _check_values(cfg: Config, where: dict[str, str]) -> None:
    """The values beyond their types (:mod:`acd.config_checks`); an error names the key and
    where it came from (``where``: key -> file and line, or environment variable)."""
    def bad(key: str, msg: str) -> NoReturn:
        raise ConfigError(key, where.get(key, cfg.source), msg)

    check_values(cfg, bad)


# --- loading --------------------------------------------------------------------------------

#: libyaml's parser where PyYAML has it (ten times faster on a config of 1,000 agents).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Where:
    """Remembers the file and line each key came from."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, str] = {}
        self.raw: dict[str, str] = {}   # the text of each scalar as written
        # A scalar's value from its node, as yaml.safe_load reads it (its tag is resolved).
        self.scalars = yaml.constructor.SafeConstructor()


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
    return where.scalars.construct_object(node, deep=True)


@cache
def _hints(tp: type) -> dict[str, Any]:
    return get_type_hints(tp)


def _coerce(tp: Any, value: Any, key: str, where: dict[str, str], source: str,
            raw: dict[str, str] | None = None) -> Any:
    raw = raw if raw is not None else {}
    loc = where.get(key, source)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(key, loc, f"expected a mapping of keys, got {type(value).__name__}")
        hints = _hints(tp)
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
            node = yaml.compose(text, Loader=_LOADER)
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
        loaded = yaml.load(spath.read_text(), Loader=_LOADER) or {}
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
                  users=tuple(replace(u, password=secret(f"web_{u.username}_password", u.password),
                                      phone_password=(secret(f"phone_{u.phone}_password",
                                                             u.phone_password)
                                                      if u.phone else u.phone_password))
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
