"""The ``acd`` command: run the server, manage Asterisk, check config, migrate the database.

    acd run                      Asterisk up (unless --no-asterisk), then the server; Ctrl-C stops
                                 both (Asterisk only if this run started it; --keep-asterisk: never)
    acd asterisk provision       build the managed Asterisk root once (shows progress)
    acd asterisk up|down|status  start, stop, show the project's Asterisk
    acd asterisk logs [-n N]     the tail of Asterisk's log
    acd asterisk render          write the rendered configuration only
    acd asterisk rx 'COMMAND'    one Asterisk CLI command
    acd phone AGENT [--dial N]   a real softphone (baresip) registered as AGENT; auto-answers, or
                                 --answer manual / --answer-after S; keys: a, h, digits, q
    acd call NUMBER [--dtmf D]   a caller's phone (baresip, not an agent) calling NUMBER
    acd load --number N --rate R real calls at a rate into Asterisk, real agent phones answering
    acd config check             load and validate the configuration, print it (secrets hidden)
    acd db upgrade               migrate the database to the newest schema
    acd flows check [FILES]      check IVR flow files: file, line and message per error
    acd flows graph FLOW [-o F]  a picture of a flow (SVG or PNG)
    acd directory import FILE    customers from CSV, for identity verification in flows

Errors a user can cause print one line with a stable id and exit 2.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from acd import config as configmod
from acd import log as acdlog
from acd.errors import UserError


def _load(args: argparse.Namespace) -> configmod.Config:
    cfg = configmod.load(args.config)
    cfg, _ = configmod.with_secrets(cfg)
    return cfg


def _asterisk(cfg: configmod.Config, build: bool = True):
    from acd.asterisk.runner import Asterisk
    return Asterisk.for_config(cfg, build=build)


def cmd_asterisk(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.action == "provision":
        from acd.asterisk import provision
        inst = provision.resolve(cfg.asterisk.mode, cfg.path(cfg.asterisk.root))
        print(f"Asterisk {inst.version}: "
              + (f"managed root {inst.root}" if inst.root else f"{inst.binary} from the PATH"))
        return 0
    if args.action == "tls-selfsigned":
        from acd.asterisk import tls
        host = cfg.asterisk.sip_host
        crt, key = tls.selfsigned(host, cfg.path(cfg.data_dir) / "tls")
        print(f"a self-signed certificate for {host} (a lab only: browsers must be told to "
              f"trust it):\n  {crt}\n  {key}\nin config.yaml, under asterisk:\n"
              f"  wss_port: 8089\n  tls_cert: {crt}\n  tls_key: {key}")
        return 0
    if args.action == "render" and args.out:
        from acd.asterisk.render import Layout, render
        for p in render(cfg, Layout(inside=args.inside, host=Path(args.out))):
            print(p)
        return 0
    ast = _asterisk(cfg, build=args.action in ("up", "render"))
    if args.action == "up":
        ast.up()
    elif args.action == "down":
        if not ast.down():
            print("Asterisk was not running")
    elif args.action == "render":
        for p in ast.render():
            print(p)
    elif args.action == "status":
        st = ast.status()
        for k, v in st.items():
            print(f"{k}: {v}")
        return 0 if st["running"] else 3
    elif args.action == "logs":
        path = ast.log_file
        if not path.exists():
            print(f"no log yet at {path}")
            return 0
        lines = path.read_text(errors="replace").splitlines()
        print("\n".join(lines[-args.lines:]))
    elif args.action == "rx":
        if not args.command:
            raise UserError("cli.usage", "acd asterisk rx 'core show channels'")
        print(ast.rx(" ".join(args.command)), end="")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = configmod.load(args.config)
    configmod.check_secret_file_mode(cfg)
    data = asdict(cfg)
    data.pop("file_secrets")
    data["ami"]["secret"] = "(hidden)" if cfg.ami.secret else "(generated)"
    for a in data["agents"]:
        a["password"] = "(hidden)" if a["password"] else "(generated)"
        a["web_password"] = "(hidden)" if a.get("web_password") else "(generated)"
    for u in data["web"]["users"]:
        u["password"] = "(hidden)" if u["password"] else "(generated)"
    data["web"]["metrics_token"] = "(hidden)" if cfg.web.metrics_token else "(generated)"
    print(json.dumps(data, indent=2, ensure_ascii=False))
    print(f"config OK ({cfg.source})", file=sys.stderr)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from acd.store.db import migrate
    cfg = configmod.load(args.config)
    migrate(cfg.database_url)
    print(f"database at the newest schema: {cfg.database_url}")
    return 0


def phone_event_text(ev: dict) -> str:
    """One line of `acd phone`'s output for a call event of baresip."""
    from acd.tools.phone_session import event_text
    return event_text(ev)


def _phone_root(cfg: configmod.Config) -> Path:
    from acd.asterisk.provision import resolve
    install = resolve(cfg.asterisk.mode, cfg.path(cfg.asterisk.root), build=False)
    return install.root if install.root is not None else cfg.path(cfg.asterisk.root)


def _run_phone(phone, first_line: str, *, manual: bool, dial: str | None = None,
               dtmf: str | None = None, dtmf_delay: float = 0.0) -> int:
    """Start ``phone``, print ``first_line`` and the keys, optionally dial and key in digits,
    then print its call events and act on keys (acd/tools/phone_session.py)."""
    from acd.tools import phone_session
    from acd.tools.softphone import PhoneError

    def say(line: str) -> None:
        print(line, flush=True)

    async def main() -> int:
        # SIGTERM (e.g. from `timeout`) ends the phone like Ctrl-C: it hangs up and unregisters.
        me = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
        try:
            await phone.start()
        except PhoneError as e:
            raise UserError("phone.failed", str(e)) from None
        try:
            say(first_line)
            say(phone_session.KEYS_HELP + " (Ctrl-C ends)")
            if dial:
                call = await phone.dial(f"sip:{dial}@{phone.registrar_host}:{phone.registrar_port}")
                try:
                    await phone.wait_established(call)
                except PhoneError as e:      # refused (403: a number this phone may not call)
                    raise UserError("phone.call_refused", f"{e} (an agent's phone may call the "
                                    "hotline, the skill groups' and the IVR flows' numbers)"
                                    ) from None
                say(f"call to {dial} established")
                if dtmf:
                    await asyncio.sleep(dtmf_delay)  # let the prompt start: a person waits too
                    await phone.send_dtmf(dtmf)
                    say(f"keyed {dtmf}")
            return await phone_session.run(phone, manual=manual, end_with_call=bool(dial), say=say)
        finally:
            await phone.stop()

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0


def cmd_phone(args: argparse.Namespace) -> int:
    """Register baresip as an agent's phone; optionally dial a number and key in digits."""
    from acd.tools.softphone import SoftPhone
    cfg = _load(args)
    agent = next((a for a in cfg.agents if a.id == args.agent), None)
    if agent is None:
        raise UserError("agent.unknown", f"no agent {args.agent!r} in {cfg.source} "
                        f"(known: {', '.join(a.id for a in cfg.agents) or 'none'})")
    if args.answer == "manual" and args.answer_after:
        raise UserError("cli.usage", "--answer-after is for --answer auto (a manual phone is "
                        "answered with the a key)")
    if args.answer_after < 0:
        raise UserError("cli.usage", "--answer-after takes seconds, 0 or more")
    host, port = cfg.asterisk.sip_host, cfg.asterisk.sip_port
    phone = SoftPhone(agent.id, agent.password, host, port, answer=args.answer,
                      answer_delay=args.answer_after, root=_phone_root(cfg), tone_seconds=600)
    how = ("rings until you press a" if args.answer == "manual" else
           f"answers {args.answer_after:g} s after the ring" if args.answer_after else "auto-answers")
    return _run_phone(phone, f"registered as agent {agent.id} at {host}:{port}; {how}.",
                      manual=args.answer == "manual", dial=args.dial, dtmf=args.dtmf,
                      dtmf_delay=args.dtmf_delay)


def cmd_call(args: argparse.Namespace) -> int:
    """A caller's phone: call a number as a customer (never an agent: it does not register)."""
    import re

    from acd.tools.softphone import SoftPhone
    cfg = _load(args)
    a = cfg.asterisk
    if not (a.loopback_trunk or a.local_callers):
        raise UserError("call.no_caller_endpoint", f"calls from this machine reach the hotline "
                        f"only with asterisk.local_callers: true in {cfg.source}")
    if not re.fullmatch(r"\+?[0-9]{1,20}", args.caller):
        raise UserError("call.bad_caller", f"--from {args.caller!r}: a phone number (digits, "
                        "an optional leading +)")
    taken = {ag.id for ag in cfg.agents} | {u.phone for u in cfg.web.users if u.phone}
    if args.caller in taken:
        raise UserError("call.bad_caller", f"--from {args.caller}: that is an agent's or a "
                        "supervisor's phone; a caller needs a number of their own")
    phone = SoftPhone(args.caller, "", a.sip_host, a.sip_port, answer="manual", register=False,
                      root=_phone_root(cfg), tone_seconds=600, tone_hz=args.tone_hz)
    return _run_phone(phone, f"calling {args.number} as caller {args.caller} "
                      f"(a customer, not an agent) via {a.sip_host}:{a.sip_port}",
                      manual=False, dial=args.number, dtmf=args.dtmf, dtmf_delay=args.dtmf_delay)


def cmd_load(args: argparse.Namespace) -> int:
    """The load generator: see acd/tools/load.py."""
    from acd.tools import load
    return load.main(_load(args), args)


#: Agents the banner lists (a big contact center's list would bury the rest).
BANNER_AGENTS = 10


def banner(cfg: configmod.Config, secrets_file: Path, http_port: int, asterisk_where: str) -> str:
    a = cfg.asterisk
    shown = BANNER_AGENTS
    agents = "\n".join(f"      {ag.id:<8} {ag.name}" for ag in cfg.agents[:shown]) or \
        "      (none in config.yaml)"
    if len(cfg.agents) > shown:
        agents += f"\n      ... and {len(cfg.agents) - shown} more (config.yaml)"
    admin = next((u for u in cfg.web.users if u.role == "admin"), None)
    web_admin = f"{admin.username} / {admin.password}" if admin else "(no admin in web.users)"
    return f"""
  ACD server is running.  Ctrl-C stops it{' and Asterisk' if asterisk_where and 'stays up' not in asterisk_where else ''}.

  Hotline        dial {cfg.hotline.number} (a softphone registered below can call it)
  Web pages      http://{cfg.http.host}:{http_port}/   admin login: {web_admin}
                 agents log in with their id; passwords in {secrets_file} (web_<user>_password)
  API            http://{cfg.http.host}:{http_port}/api/health   (OpenAPI: /api/openapi.json)
  Asterisk       {asterisk_where or 'not started by us (--no-asterisk)'}
  FastAGI        {cfg.agi.host}:{cfg.agi.port}     AMI {cfg.ami.host}:{cfg.ami.port}

  Register a SIP softphone as an agent (UDP, no TLS):
      server/registrar  {a.sip_host}:{a.sip_port}
      user / auth user  one of:
{agents}
      password          in {secrets_file} (agent_<id>_password)
  or, with the project's own softphones, each in another terminal (README: Quick start):
      .venv/bin/acd phone {cfg.agents[-1].id if cfg.agents else 'AGENT'} --answer manual      an agent's phone; a answers
      .venv/bin/acd call {cfg.hotline.number} --dtmf 1 --dtmf-delay 6      a customer calling the hotline
"""


def cmd_run(args: argparse.Namespace) -> int:
    from acd.app import serve
    started = time.monotonic()
    cfg = configmod.load(args.config)
    configmod.check_secret_file_mode(cfg)
    cfg, secrets_file = configmod.with_secrets(cfg)
    acdlog.configure(cfg.logging.level, cfg.logging.format)
    acdlog.get_logger(component="app").info("app.config_loaded", agents=len(cfg.agents),
                                            took=round(time.monotonic() - started, 3))
    ast = None
    where = ""
    if not args.no_asterisk:
        ast = _asterisk(cfg)
        running_before = bool(ast.pid())
        ast.up()
        where = f"{ast.install.version}, {ast.where()}; logs: acd asterisk logs"
        if running_before or args.keep_asterisk:
            ast = None      # not ours to stop: its calls go on while the server restarts
            where += "; stays up when the server stops"
    try:
        asyncio.run(serve(cfg, ready=lambda s: print(banner(cfg, secrets_file, s.http_port, where),
                                                     file=sys.stderr, flush=True),
                          manage_asterisk=not args.no_asterisk))
    except KeyboardInterrupt:
        pass
    finally:
        if ast is not None:
            ast.down()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acd", description="IVR and ACD server for Asterisk")
    p.add_argument("-c", "--config", help="config file (default: $ACD_CONFIG or ./config.yaml)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="start Asterisk and the server in the foreground")
    r.add_argument("--no-asterisk", action="store_true", help="use an Asterisk started elsewhere")
    r.add_argument("--keep-asterisk", action="store_true",
                   help="leave Asterisk (and its calls) running when the server stops, so that "
                        "running this again restarts the server alone")
    r.set_defaults(func=cmd_run)
    a = sub.add_parser("asterisk", help="the project's Asterisk")
    a.add_argument("action", choices=["provision", "up", "down", "status", "logs", "render", "rx",
                                      "tls-selfsigned"])
    a.add_argument("command", nargs="*", help="for rx: the CLI command")
    a.add_argument("-n", "--lines", type=int, default=50)
    a.add_argument("--out", help="for render: write into this folder instead (e.g. a Docker volume)")
    a.add_argument("--inside", default="/srv/acd/main",
                   help="for render --out: where Asterisk will see that folder")
    a.set_defaults(func=cmd_asterisk)
    ph = sub.add_parser("phone", help="a real softphone (baresip) registered as an agent")
    ph.add_argument("agent", help="agent id from config.yaml")
    ph.add_argument("--dial", help="call this number (e.g. the hotline)")
    ph.add_argument("--dtmf", help="then key in these digits (e.g. 13800138000#)")
    ph.add_argument("--dtmf-delay", type=float, default=3.0, help="seconds before keying")
    ph.add_argument("--answer", choices=["auto", "manual"], default="auto",
                    help="auto: answer by itself; manual: ring until the a key")
    ph.add_argument("--answer-after", type=float, default=0.0, metavar="SECONDS",
                    help="with --answer auto: ring this long first (to watch the screen pop)")
    ph.set_defaults(func=cmd_phone)
    ca = sub.add_parser("call", help="a caller's phone: call a number as a customer (not an agent)")
    ca.add_argument("number", help="the number to call (e.g. the hotline, 7000)")
    ca.add_argument("--from", dest="caller", default="13800138000",
                    help="the caller's number (default 13800138000)")
    ca.add_argument("--dtmf", help="once connected, key in these digits (e.g. 1 for the menu)")
    ca.add_argument("--dtmf-delay", type=float, default=3.0, help="seconds before keying")
    ca.add_argument("--tone-hz", type=float, default=440.0, help="the tone the caller sends")
    ca.set_defaults(func=cmd_call)
    lo = sub.add_parser("load", help="the load generator: real calls at a rate, real agent phones")
    from acd.tools.load import add_arguments as add_load_arguments
    add_load_arguments(lo)
    lo.set_defaults(func=cmd_load)
    c = sub.add_parser("config", help="configuration")
    c.add_argument("action", choices=["check"])
    c.set_defaults(func=cmd_config)
    d = sub.add_parser("db", help="database")
    d.add_argument("action", choices=["upgrade"])
    d.set_defaults(func=cmd_db)
    from agi.flows.cli import add_commands as add_flow_commands
    add_flow_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e.id}: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
