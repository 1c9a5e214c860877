"""`acd run` under systemd (a unit with Type=notify and WatchdogSec=): a real `acd run` process
and a real datagram socket where systemd would listen. READY=1 once the server serves,
WATCHDOG=1 every half interval from then on, STOPPING=1 at a stop; nothing at all when
NOTIFY_SOCKET is not set (the unit tier: tests/unit/test_sdnotify.py)."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys

from tests.conftest import PROJECT
from tests.postgres import free_port

WAIT = 30.0


async def _next(loop, sock) -> str:
    return (await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)).decode()


async def test_ready_then_watchdog_pings_then_stopping(tmp_path):
    loop = asyncio.get_running_loop()
    where = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(where))
    sock.setblocking(False)
    config = tmp_path / "config.yaml"
    shutil.copyfile(PROJECT / "config.yaml", config)
    config.chmod(0o600)
    env = {**os.environ, "NOTIFY_SOCKET": str(where), "WATCHDOG_USEC": "200000",
           "ACD_HTTP__PORT": str(free_port()), "ACD_AGI__PORT": str(free_port()),
           "ACD_AMI__PORT": str(free_port()),            # no Asterisk: AMI keeps trying
           "ACD_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}",
           "ACD_FLOWS__DIR": str(PROJECT / "ivr_flows")}
    with open(tmp_path / "server.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "acd", "-c", str(config), "run", "--no-asterisk",
            cwd=str(tmp_path), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT)
    try:
        got: list[str] = []
        while not any(m.startswith("READY=1") for m in got):
            got.append(await _next(loop, sock))
        ready = next(m for m in got if m.startswith("READY=1"))
        assert ready.split("\n") == ["READY=1", "STATUS=running"], ready
        pings = 0
        while pings < 3:                                 # 0.1 s apart: half of 200 ms
            msg = await _next(loop, sock)
            assert msg == "WATCHDOG=1", msg
            pings += 1
        proc.send_signal(signal.SIGTERM)
        while (msg := await _next(loop, sock)) == "WATCHDOG=1":
            pass
        assert msg == "STOPPING=1", msg
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        sock.close()
        print((tmp_path / "server.log").read_text()[-3000:])
