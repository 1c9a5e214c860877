"""A configuration's values, checked beyond their types, one section at a time, and the
parsers they share with the rest of the server: service hours, destinations, and the skill
groups as the ACD core takes them.

Each check is given ``bad(key, message)``, which raises :class:`acd.config.ConfigError` naming
the key and the file and line it came from; :func:`acd.config.load` runs :func:`check_values`
on every configuration it loads. ``cfg`` is an :class:`acd.config.Config` (this module does not
import it: ``acd.config`` imports this one).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acd.errors import UserError
from acd.recordings import record_share

#: Raises the configuration error for a key: ``bad(key, message)``.
Bad = Callable[[str, str], NoReturn]

#: What ``asterisk.browser_codecs`` may name: the codecs both Chromium's WebRTC and Asterisk 22
#: here (codec_opus_open_source, codec_g722, codec_ulaw, codec_alaw) have, by Asterisk's names.
BROWSER_CODECS = ("opus", "g722", "ulaw", "alaw")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_NUMBER = re.compile(r"^[0-9*#+]{1,32}$")
_CALLER_ID = re.compile(r'^(?:(?:"[^"\\<>\r\n]{0,40}" ?)?<\+?[0-9*#]{1,32}>|\+?[0-9*#]{1,32})$')


def check_values(cfg: Any, bad: Bad) -> None:
    """Every check, in this order; the first that fails raises through ``bad``."""
    _check_servers(cfg, bad)
    agent_ids = _check_agents(cfg, bad)
    _check_outbound(cfg, bad)
    _check_groups(cfg, bad, agent_ids)
    _check_flows(cfg, bad)
    _check_web(cfg, bad, agent_ids)
    _check_secrets(cfg, bad)


def check_entries(cfg: Any, bad: Bad) -> None:
    """The checks of agents, groups and web users, and of what names them (the admin page's
    changes: the servers' sections are as the file gave them)."""
    agent_ids = _check_agents(cfg, bad)
    _check_groups(cfg, bad, agent_ids)
    _check_flows(cfg, bad)
    _check_web(cfg, bad, agent_ids)
    _check_secrets(cfg, bad)


def _check_ha(cfg: Any, bad: Bad) -> None:
    """A standby server: the FastAGI servers the dialplan tries, the lease."""
    for i, server in enumerate(cfg.agi.servers):
        host, _, port = str(server).rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
            ok = 0 < int(port) < 65536
        except ValueError:
            ok = False
        if not ok:
            bad(f"agi.servers[{i}]", f"{server!r}: host:port, e.g. 127.0.0.1:4573")
    if not 1.0 <= cfg.ha.lease_seconds <= 300:
        bad("ha.lease_seconds", f"seconds, 1 to 300, not {cfg.ha.lease_seconds}")
    if cfg.ha.node and not _NAME.match(cfg.ha.node):
        bad("ha.node", "use letters, digits, '-', '_' or '.'")


def _check_servers(cfg: Any, bad: Bad) -> None:
    """Asterisk, AMI, FastAGI, HTTP, the hotline and logging: ports, addresses, timeouts."""
    for key, port in (("asterisk.sip_port", cfg.asterisk.sip_port), ("ami.port", cfg.ami.port),
                      ("agi.port", cfg.agi.port), ("http.port", cfg.http.port),
                      ("asterisk.http_port", cfg.asterisk.http_port),
                      ("asterisk.rtp_start", cfg.asterisk.rtp_start),
                      ("asterisk.rtp_end", cfg.asterisk.rtp_end)):
        if not 0 < port < 65536:
            bad(key, f"{port} is not a port number (1-65535)")
    if cfg.asterisk.wss_port and not (0 < cfg.asterisk.wss_port < 65536):
        bad("asterisk.wss_port", f"{cfg.asterisk.wss_port} is not a port number (0: off)")
    if cfg.asterisk.wss_port and not (cfg.asterisk.tls_cert and cfg.asterisk.tls_key):
        bad("asterisk.tls_cert", "wss_port needs tls_cert and tls_key (acd asterisk "
                                 "tls-selfsigned makes a pair for a lab)")
    if cfg.asterisk.rtp_end <= cfg.asterisk.rtp_start:
        bad("asterisk.rtp_end", "must be above asterisk.rtp_start")
    codecs = cfg.asterisk.browser_codecs
    if not codecs or any(c not in BROWSER_CODECS for c in codecs) or len(set(codecs)) < len(codecs):
        bad("asterisk.browser_codecs", f"{list(codecs)!r}: one or more of "
                                       f"{', '.join(BROWSER_CODECS)}, each once")
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
    _check_ha(cfg, bad)
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
    _check_timeouts(cfg, bad)


def _check_timeouts(cfg: Any, bad: Bad) -> None:
    for key, val in (("ami.action_timeout", cfg.ami.action_timeout),
                     ("ami.ping_interval", cfg.ami.ping_interval),
                     ("ami.ping_timeout", cfg.ami.ping_timeout),
                     ("agi.header_timeout", cfg.agi.header_timeout),
                     ("agi.command_timeout", cfg.agi.command_timeout),
                     ("agi.max_sessions", cfg.agi.max_sessions),
                     ("agi.max_pending_per_address", cfg.agi.max_pending_per_address),
                     ("overload.max_lag_ms", cfg.overload.max_lag_ms),
                     ("core.ended_calls_kept", cfg.core.ended_calls_kept),
                     ("hotline.agi_retry_seconds", cfg.hotline.agi_retry_seconds),
                     ("asterisk.start_timeout", cfg.asterisk.start_timeout),
                     ("asterisk.qualify_seconds", cfg.asterisk.qualify_seconds),
                     ("asterisk.qualify_timeout", cfg.asterisk.qualify_timeout),
                     ("asterisk.registration_seconds", cfg.asterisk.registration_seconds)):
        if val <= 0:
            bad(key, f"must be above 0, not {val}")
    if cfg.overload.max_asterisk_ms < 0:
        bad("overload.max_asterisk_ms", f"0 (not watched) or more, not {cfg.overload.max_asterisk_ms}")
    if cfg.asterisk.phone_lost_qualifies < 1:
        bad("asterisk.phone_lost_qualifies",
            f"1 (the first failed qualify) or more, not {cfg.asterisk.phone_lost_qualifies}")
    if cfg.hotline.agi_retry_count < 0:
        bad("hotline.agi_retry_count", f"0 (no retry) or more, not {cfg.hotline.agi_retry_count}")
    if cfg.asterisk.qualify_timeout >= cfg.asterisk.qualify_seconds:
        bad("asterisk.qualify_timeout", "must be below asterisk.qualify_seconds")
    if not _NAME.match(cfg.ami.username):
        bad("ami.username", "use letters, digits, '-', '_' or '.'")


def _check_agents(cfg: Any, bad: Bad) -> set[str]:
    """The agents' ids and names; returns the ids."""
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
        if agent.phone not in ("sip", "browser"):
            bad(f"agents[{i}].phone", f"{agent.phone!r}: sip (a SIP phone) or browser (the agent page)")
        seen.add(agent.id)
    return seen


def _check_outbound(cfg: Any, bad: Bad) -> None:
    if cfg.outbound.dial and ("{number}" not in cfg.outbound.dial
                              or any(c in cfg.outbound.dial for c in "\r\n;,")):
        bad("outbound.dial", "a dial string with {number} in it, e.g. PJSIP/{number}@my-provider")
    if cfg.outbound.caller_id and not _CALLER_ID.match(cfg.outbound.caller_id):
        bad("outbound.caller_id", 'a number (digits, *, #, + first), or "Name" <number>')
    for key, val in (("outbound.ring_timeout", cfg.outbound.ring_timeout),
                     ("outbound.dial_timeout", cfg.outbound.dial_timeout)):
        if not 0 < val <= 600:
            bad(key, f"seconds, above 0 and at most 600, not {val}")


def _check_secrets(cfg: Any, bad: Bad) -> None:
    for key, secret in [("ami.secret", cfg.ami.secret)] + [
            (f"agents[{i}].password", a.password) for i, a in enumerate(cfg.agents)]:
        if secret and (len(secret) < 8 or any(c in secret for c in "\r\n;\"")):
            bad(key, "at least 8 characters, without quotes, ';' or line breaks")


def _check_groups(cfg: Any, bad: Bad, agent_ids: set[str]) -> None:
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
        for field_name in ("max_wait_destination", "queue_full_destination",
                           "overload_destination", "closed_destination",
                           "no_agents_destination"):
            value = getattr(g, field_name)
            if value is not None:
                try:
                    parse_destination(value)
                except ValueError as e:
                    bad(f"{k}.{field_name}", str(e))
        try:
            record_share(g.record)
        except ValueError as e:
            bad(f"{k}.record", str(e))
    if cfg.recordings.keep_days < 0:
        bad("recordings.keep_days", f"0 (keep) or more days, not {cfg.recordings.keep_days}")
    if not cfg.recordings.folder.strip():
        bad("recordings.folder", "a folder, e.g. recordings")
    try:
        core_groups(cfg)
    except UserError as e:  # the core's own checks: loops, unknown groups, bad numbers
        bad("groups", e.message)


#: A skill group's numbers: "above 0" or "0 or more" (the core checks them too, but its
#: message names only the group; these name the key and its line).
_GROUP_NUMBERS = {"ring_timeout": ">0", "wrapup_seconds": ">=0", "service_level_seconds": ">=0",
                  "service_level_target": ">0",
                  "retry_seconds": ">0", "min_level": ">=0", "max_wait": ">0",
                  "max_queue_length": ">=0", "familiar_seconds": ">=0", "familiar_window": ">=0",
                  "announce_every": ">0", "expected_handle_time": ">0"}
_WIDEN_NUMBERS = {"after": ">=0", "min_level": ">=0"}
_CALLBACK_NUMBERS = {"attempts": ">0", "gap": ">=0", "expiry": ">0", "dial_timeout": ">0"}


def _check_group_numbers(g: Any, k: str, bad: Bad) -> None:
    def check(obj: Any, prefix: str, rules: dict[str, str]) -> None:
        for name, rule in rules.items():
            value = getattr(obj, name)
            if value is not None and (value <= 0 if rule == ">0" else value < 0):
                bad(f"{prefix}.{name}", f"{'above 0' if rule == '>0' else '0 or more'}, not {value}")
    check(g, k, _GROUP_NUMBERS)
    if g.service_level_target >= 1:
        bad(f"{k}.service_level_target", f"a share below 1 (0.8: 80%), not {g.service_level_target}")
    for j, w in enumerate(g.widen):
        check(w, f"{k}.widen[{j}]", _WIDEN_NUMBERS)
    if g.callback is not None:
        check(g.callback, f"{k}.callback", _CALLBACK_NUMBERS)


def _check_web(cfg: Any, bad: Bad, agent_ids: set[str]) -> None:
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
    if w.wallboard_caller_digits < 0:
        bad("web.wallboard_caller_digits", f"0 (none) or more, not {w.wallboard_caller_digits}")
    if not 0 <= w.wallboard_service_level_target <= 1:
        bad("web.wallboard_service_level_target", f"a share from 0 to 1 (0.8: 80 %), not "
            f"{w.wallboard_service_level_target}")
    if w.wallboard_longest_wait_alert <= 0:
        bad("web.wallboard_longest_wait_alert", f"seconds, above 0, not {w.wallboard_longest_wait_alert}")
    for i, item in enumerate(w.trusted_proxies):
        try:
            ipaddress.ip_network(str(item).strip(), strict=False)
        except ValueError:
            bad(f"web.trusted_proxies[{i}]", f"an IP address or network, not {item!r}")
    try:
        ZoneInfo(w.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        bad("web.timezone", f"unknown time zone {w.timezone!r}")
    if not re.fullmatch(r"[A-Z]{2}", w.default_region):
        bad("web.default_region", f"{w.default_region!r}: a two-letter country code, e.g. CN")
    seen: set[str] = set()
    phones: set[str] = set()
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
        if u.phone:
            if not _NAME.match(u.phone):
                bad(f"web.users[{i}].phone", f"{u.phone!r}: use letters, digits, '-', '_' or '.'")
            elif u.phone in agent_ids or u.phone in ("acd-caller", "acd-trunk"):
                bad(f"web.users[{i}].phone", f"{u.phone!r} is an agent's phone or reserved")
            elif u.phone in phones:
                bad(f"web.users[{i}].phone", f"{u.phone!r} is another user's phone")
            phones.add(u.phone)
        for g in u.groups:
            if g not in {x.name for x in cfg.groups}:
                bad(f"web.users[{i}].groups", f"{g!r} is no skill group")
        if u.phone_password and not u.phone:
            bad(f"web.users[{i}].phone_password", "a phone password without a phone: set phone too")
        elif u.phone_password and (len(u.phone_password) < 8
                                 or any(c in u.phone_password for c in ' \t\r\n;"')):
            bad(f"web.users[{i}].phone_password", "at least 8 characters, no spaces, ';' or quotes")
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


def _check_flows(cfg: Any, bad: Bad) -> None:
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


def core_groups(cfg: Any) -> list:
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
            overload_destination=parse_destination(g.overload_destination),
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
