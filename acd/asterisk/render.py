"""Render ``asterisk-conf/`` with the values of ``config.yaml`` into an instance's etc folder.

Templates use ``{{name}}``; an unknown name is an error, so a typo never reaches Asterisk.
``*.part`` files are fragments repeated per agent (or added when a feature is on).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from acd.asterisk import dialplan as dp
from acd.asterisk import ice, tls
from acd.config import Config

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "asterisk-conf"
_VAR = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Layout:
    """An instance's folders, as Asterisk sees them (``inside``) and as the host sees them."""

    inside: str          # e.g. /srv/acd/main inside the managed root
    host: Path           # the same folder seen from the host

    def host_dir(self, name: str) -> Path:
        return self.host / name

    def inside_dir(self, name: str) -> str:
        return f"{self.inside}/{name}"

    @property
    def conf_inside(self) -> str:
        return self.inside_dir("etc") + "/asterisk.conf"


def fill(text: str, values: dict[str, str], name: str) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"{name}: unknown template value {{{{{key}}}}}")
        return values[key]
    return _VAR.sub(sub, text)


def _conf_value(text: str, what: str) -> str:
    """Values from config go into Asterisk's files: refuse what would break a line or a section."""
    if any(c in text for c in "\r\n;[]") or text != text.strip():
        raise ValueError(f"{what}: {text!r} cannot be written into Asterisk's configuration")
    return text


def agi_servers(cfg: Config) -> list[str]:
    """The FastAGI servers the dialplan tries, in order, as host:port: ``agi.servers`` (a
    leader and its standbys), else this server alone."""
    if cfg.agi.servers:
        return list(cfg.agi.servers)
    host = cfg.agi.host if cfg.agi.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return [f"{host}:{cfg.agi.port}"]


def values(cfg: Config, layout: Layout) -> dict[str, str]:
    a, ami, agi = cfg.asterisk, cfg.ami, cfg.agi
    return {
        "etc_dir": layout.inside_dir("etc"),
        "run_dir": layout.inside_dir("run"),
        "log_dir": layout.inside_dir("log"),
        "spool_dir": layout.inside_dir("spool"),
        "db_dir": layout.inside_dir("db"),
        "ami_host": ami.host,
        "ami_port": str(ami.port),
        "ami_username": ami.username,
        "ami_secret": _conf_value(ami.secret, "ami.secret"),
        "ami_permit": "127.0.0.1/255.255.255.255" if ami.host.startswith("127.") else f"{ami.host}/255.255.255.255",
        "sip_host": a.sip_host,
        "sip_port": str(a.sip_port),
        "http_port": str(a.http_port),
        "media_address": a.media_address,
        "browser_codecs": ",".join(_conf_value(c, "asterisk.browser_codecs")
                                   for c in a.browser_codecs),
        "ice_host_candidates": ice.host_candidates(a.media_address),
        "rtp_start": str(a.rtp_start),
        "rtp_end": str(a.rtp_end),
        "qualify_seconds": str(a.qualify_seconds),
        "qualify_timeout": f"{a.qualify_timeout:g}",
        "registration_seconds": str(a.registration_seconds),
        "registration_min": str(min(60, a.registration_seconds)),
        "agi_host": agi.host if agi.host not in ("0.0.0.0", "::") else "127.0.0.1",
        "agi_port": str(agi.port),
        "agi_count": str(len(agi_servers(cfg))),
        "hotline_number": cfg.hotline.number,
        "agi_retry_seconds": str(cfg.hotline.agi_retry_seconds),
        "agi_retry_count": str(cfg.hotline.agi_retry_count),
        "queue_args": ",".join(f"${{{v}}}" for v in dp.QUEUE_ARGS),
        # Filled only by the benchmarks (bench/): app_queue's side-by-side arm.
        "bench_queues": "",
        "bench_contexts": "",
    }


def render(cfg: Config, layout: Layout, template_dir: Path = TEMPLATE_DIR,
           extra: dict[str, str] | None = None,
           browser: Mapping[str, str] | None = None) -> list[Path]:
    """Write every rendered file into the instance's etc folder; returns the files written.
    ``extra`` sets template values that only a caller knows (the benchmarks' app_queue arm).
    ``browser``: agent id -> the password issued to the web session whose page is that
    agent's phone now (acd.web.browser_phone); their endpoint is a WebRTC one with it."""
    vals = values(cfg, layout)
    vals.update(extra or {})
    browser = browser or {}
    agent_part = (template_dir / "pjsip_agent.part").read_text()
    vals["agents"] = "".join(
        fill(agent_part, {**vals, "agent_id": ag.id,
                          "agent_name": _conf_value(ag.name or ag.id, f"agent {ag.id} name").replace('"', "'"),
                          "endpoint_defaults": "browser-defaults" if ag.id in browser else "agent-defaults",
                          "agent_password": _conf_value(browser.get(ag.id) or ag.password,
                                                        f"agent {ag.id} password")},
             "pjsip_agent.part")
        for ag in cfg.agents) + "".join(
        # a supervisor's phone (listen, whisper, barge) is an endpoint as an agent's is
        fill(agent_part, {**vals, "agent_id": u.phone, "endpoint_defaults": "agent-defaults",
                          "agent_name": f"Supervisor {u.username}",
                          "agent_password": _conf_value(u.phone_password,
                                                        f"web user {u.username} phone_password")},
             "pjsip_agent.part")
        for u in cfg.web.users if u.phone)
    vals["loopback_trunk"] = (fill((template_dir / "pjsip_loopback.part").read_text(), vals,
                                   "pjsip_loopback.part") if cfg.asterisk.loopback_trunk else "")
    if cfg.asterisk.loopback_trunk or cfg.asterisk.local_callers:   # acd-caller: `acd call`
        vals["loopback_trunk"] += fill((template_dir / "pjsip_caller.part").read_text(), vals,
                                       "pjsip_caller.part")
    agi_part = (template_dir / "extensions_agi.part").read_text()    # the FastAGI servers
    vals["agi_servers"] = "".join(
        fill(agi_part, {"agi_index": str(i), "agi_server": _conf_value(a, "agi.servers")},
             "extensions_agi.part") for i, a in enumerate(agi_servers(cfg), start=1))
    group_part = (template_dir / "extensions_group.part").read_text()
    vals["group_numbers"] = "".join(
        fill(group_part, {**vals, "group_name": _conf_value(g.name, f"group {g.name} name"),
                          "group_number": _conf_value(g.number, f"group {g.name} number")},
             "extensions_group.part")
        for g in cfg.groups if g.number)
    vals["test_customers"] = (fill((template_dir / "extensions_loopback.part").read_text(), vals,
                                   "extensions_loopback.part") if cfg.asterisk.loopback_trunk else "")
    flow_part = (template_dir / "extensions_flow.part").read_text()   # IVR flows' own numbers
    vals["flow_numbers"] = "".join(
        fill(flow_part, {**vals, "flow_number": _conf_value(n, f"flows.numbers {n}")},
             "extensions_flow.part")
        for n in sorted(cfg.flows.numbers or {}) if n != cfg.hotline.number)
    for sub in ("etc", "run", "log", "spool", "db", "spool/recordings"):
        layout.host_dir(sub).mkdir(parents=True, exist_ok=True)
    vals["http_tls"], vals["wss_transport"] = tls.http_block(cfg, layout)   # wss: off or on
    etc = layout.host_dir("etc")
    os.chmod(etc, 0o700)  # the AMI secret and SIP passwords are in here
    written = []
    for tmpl in sorted(template_dir.glob("*.conf")):
        out = etc / tmpl.name
        text = fill(tmpl.read_text(), vals, tmpl.name)
        tmp = out.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
        written.append(out)
    return written
