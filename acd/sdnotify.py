"""systemd's notify protocol (sd_notify(3)) without libsystemd: readiness and a watchdog.

Under a unit with ``Type=notify`` systemd passes ``NOTIFY_SOCKET``; with ``WatchdogSec=`` it
also passes ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). The server says ``READY=1`` once it
serves (or stands by, ``ha`` on), ``STOPPING=1`` when it stops, and ``WATCHDOG=1`` every half
interval **from its event loop**: a process whose loop stops turning (frozen, blocked, hung)
stops pinging, and systemd kills it and starts it again. That matters with a standby: a caller
whose FastAGI session reached a frozen leader waits until that process's sockets close
(Asterisk's res_agi has no timeout there), which only its end brings.

Without ``NOTIFY_SOCKET`` (``make run``, Docker, the tests) every call here does nothing.
"""
from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):                      # an abstract socket
            addr = "\0" + addr[1:]
        self.addr = addr or None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: seconds between pings (half of systemd's interval); None: no watchdog asked
        self.interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None

    def send(self, *fields: str) -> bool:
        """One notification (``"READY=1"``, ``"STATUS=..."``); False if none was sent."""
        if self.addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto("\n".join(fields).encode(), self.addr)
            return True
        except OSError:
            return False           # systemd away: nothing to tell

    def start_watchdog(self) -> None:
        if self.addr is not None and self.interval and self._task is None:
            self._task = asyncio.ensure_future(self._ping(self.interval))

    async def _ping(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.send("STOPPING=1")
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["Notifier"]
