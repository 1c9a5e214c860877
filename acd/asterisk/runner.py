"""Start, stop, status and logs of the project's Asterisk: the one component that does this.

Asterisk runs in its own session (it outlives a crash of our server, so calls go on while the
server restarts). It runs in the foreground mode ``-f`` with stdin from /dev/null (``-c``
without a terminal spins), and is asked things with ``-rx``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from acd.asterisk import provision
from acd.asterisk.render import Layout, render
from acd.config import Config
from acd.errors import UserError


def _say(msg: str) -> None:
    print(f"[asterisk] {msg}", file=sys.stderr, flush=True)


@dataclass
class Asterisk:
    install: provision.Install
    layout: Layout
    cfg: Config

    # --- locating ------------------------------------------------------------------------

    @classmethod
    def for_config(cls, cfg: Config, build: bool = True) -> "Asterisk":
        install = provision.resolve(cfg.asterisk.mode, cfg.path(cfg.asterisk.root), build=build)
        name = cfg.asterisk.instance
        if install.root is None:
            host = (cfg.path(cfg.data_dir) / "asterisk" / name).resolve()
            layout = Layout(inside=str(host), host=host)
        else:
            inside = f"/srv/acd/{name}"
            layout = Layout(inside=inside, host=install.host_path(inside))
        return cls(install=install, layout=layout, cfg=cfg)

    def cli(self, *args: str) -> list[str]:
        return self.install.command("-C", self.layout.conf_inside, *args)

    @property
    def pid_file(self) -> Path:
        return self.layout.host_dir("run") / "asterisk.pid"

    @property
    def log_file(self) -> Path:
        return self.layout.host_dir("log") / "messages.log"

    @property
    def console_log(self) -> Path:
        return self.layout.host_dir("log") / "console.log"

    # --- state -----------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The running Asterisk's pid, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"asterisk" not in cmdline or self.layout.conf_inside.encode() not in cmdline:
            return None
        return pid

    def rx(self, command: str, timeout: float = 15.0) -> str:
        """Run one CLI command in the running Asterisk and return its output."""
        try:
            r = subprocess.run(self.cli("-rx", command), capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UserError("asterisk.cli_timeout", f"'{command}' got no answer in {timeout:.0f} s") from None
        if r.returncode != 0:
            raise UserError("asterisk.cli_failed",
                            f"'{command}': {(r.stderr or r.stdout).strip() or 'exit ' + str(r.returncode)}")
        return r.stdout

    # --- lifecycle ---------------------------------------------------------------------------

    def render(self) -> list[Path]:
        return render(self.cfg, self.layout)

    def up(self) -> int:
        """Render the configuration and start Asterisk unless it runs; wait until fully booted."""
        self.render()
        pid = self.pid()
        if pid:
            _say(f"already running (pid {pid}); reloading the rendered configuration")
            self.rx("core reload")
            return pid
        self._check_ports_free()
        if self.install.root is not None:
            provision.ensure_proc(self.install.root)
        _say(f"starting Asterisk {self.install.version} ({self.where()})")
        log = open(self.console_log, "ab")
        proc = subprocess.Popen(self.cli("-f", "-q"), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.cfg.asterisk.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UserError("asterisk.start_failed",
                                f"Asterisk exited with {proc.returncode}; see {self.console_log}:\n"
                                + self._tail(self.console_log))
            if self.pid_file.exists():
                try:
                    self.rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                    break
                except UserError:
                    pass
            time.sleep(0.1)
        else:
            proc.kill()
            raise UserError("asterisk.start_timeout",
                            f"Asterisk did not finish booting in {self.cfg.asterisk.start_timeout:.0f} s; "
                            f"see {self.log_file}")
        self._wait_port(self.cfg.ami.host, self.cfg.ami.port, deadline)
        _say(f"running, pid {proc.pid}; SIP udp {self.cfg.asterisk.sip_host}:{self.cfg.asterisk.sip_port}, "
             f"AMI {self.cfg.ami.host}:{self.cfg.ami.port}")
        return proc.pid

    def down(self, timeout: float = 15.0) -> bool:
        """Stop Asterisk (hanging up its calls). True if one was running."""
        pid = self.pid()
        if not pid:
            self._release()
            return False
        try:
            self.rx("core stop now", timeout=timeout)
        except UserError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        try:
            self.pid_file.unlink()
        except OSError:
            pass
        self._release()
        _say("stopped")
        return True

    def status(self) -> dict[str, object]:
        pid = self.pid()
        out: dict[str, object] = {"running": bool(pid), "pid": pid, "version": self.install.version,
                                  "where": self.where(), "config": str(self.layout.host_dir("etc")),
                                  "log": str(self.log_file)}
        if pid:
            out["uptime"] = self.rx("core show uptime seconds").strip()
            out["contacts"] = self.rx("pjsip show contacts").strip()
        return out

    def where(self) -> str:
        return f"managed root {self.install.root}" if self.install.root else f"{self.install.binary} from the PATH"

    # --- helpers -----------------------------------------------------------------------------

    def _release(self) -> None:
        """Unmount the root's /proc when no Asterisk of any instance runs in it any more."""
        root = self.install.root
        if root is None:
            return
        for pid_file in (root / "srv" / "acd").glob("*/run/asterisk.pid"):
            try:
                if _alive(int(pid_file.read_text().strip())):
                    return
            except (OSError, ValueError):
                continue
        provision.release_mounts(root)

    def _check_ports_free(self) -> None:
        for what, host, port, kind in (("SIP", self.cfg.asterisk.sip_host, self.cfg.asterisk.sip_port, socket.SOCK_DGRAM),
                                       ("AMI", self.cfg.ami.host, self.cfg.ami.port, socket.SOCK_STREAM),
                                       ("HTTP (SIP over WebSocket)", self.cfg.asterisk.sip_host,
                                        self.cfg.asterisk.http_port, socket.SOCK_STREAM),
                                       ("HTTPS (wss)", self.cfg.asterisk.sip_host,
                                        self.cfg.asterisk.wss_port or self.cfg.asterisk.http_port,
                                        socket.SOCK_STREAM)):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Asterisk does: TIME_WAIT is no owner
            try:
                s.bind((host, port))
            except OSError as e:
                raise UserError("asterisk.port_busy",
                                f"{what} port {host}:{port} is taken ({e.strerror}); is another Asterisk "
                                f"running? Change it in config.yaml") from None
            finally:
                s.close()

    @staticmethod
    def _wait_port(host: str, port: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise UserError("asterisk.ami_not_listening", f"AMI is not listening on {host}:{port}")

    @staticmethod
    def _tail(path: Path, n: int = 20) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return False
