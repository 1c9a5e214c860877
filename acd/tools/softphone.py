"""Real softphones for tests, demos (`acd phone`) and load runs: one baresip 1.1.0 process per phone, from the
managed Asterisk root, driven over its ctrl_tcp socket (netstrings of JSON).

Each phone gets a config folder inside the root (baresip runs chrooted), pinned to loopback:
SIP, RTP and the control socket are all on 127.0.0.1. It sends an 8 kHz tone from a WAV file
(``aufile``) and discards what it hears. No sound card is touched.

    async with SoftPhone("1001", password, "127.0.0.1", 15060) as phone:
        await phone.dial("sip:7000@127.0.0.1:15060")
        await phone.wait_event("CALL_ESTABLISHED")
        await phone.send_dtmf("1234#")
        await phone.hangup()

Facts about baresip 1.1.0 this relies on:

* The UA is created with ``uanew`` over ctrl_tcp after we are connected, not from an accounts
  file: events only reach a connected client, and a registration made at start-up would be
  over before we could see its REGISTER_OK.
* With ``answermode=auto`` and no answer delay, baresip answers at once and sends no
  CALL_INCOMING; with a delay (``answerdelay`` in ms) it sends CALL_INCOMING, then answers.
* ``aufile`` does not loop: at the end of the WAV the call is closed ("end of file"), so the
  file is as long as the longest call (``tone_seconds``).
* Besides UDP and TCP on the SIP port, baresip listens for SIP/TLS on the SIP port + 1.
* ``sip_listen 127.0.0.1:PORT`` puts SIP (Via, Contact) on loopback, but without
  ``net_interface 127.0.0.1`` the SDP still offers the network card's address (``o=`` and
  ``c=IN IP4 192.0.2.2`` here). ``net_interface lo`` is refused ("could not get network
  address"); the address 127.0.0.1 is accepted and the SDP then offers 127.0.0.1.
* ``sndcode DIGITS`` (a command only while a call is up) queues RFC 4733 events; each digit
  lasts at least 9 packets (180 ms) and is ended before the next.
* Its RTP and RTCP sockets are bound to 0.0.0.0 whatever the config says (``net_interface``,
  ``sip_listen`` and ``rtp_ports`` do not change it: stream.c binds "all interfaces"), and so is
  its DNS client's socket. The phone is therefore started with a small preloaded library
  (``loopback_bind.c``, compiled here once with the system's C compiler) that binds a socket
  asked for the wildcard address to loopback instead; ``ss -uanp`` then shows every socket of
  baresip on 127.0.0.1.
* An account with ``regint=0`` never registers: a phone that only calls out (a caller).
"""
from __future__ import annotations

import asyncio
import atexit
import ctypes
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import wave
import weakref
from pathlib import Path
from typing import Any

#: The managed Asterisk root of this checkout, which also holds baresip.
ROOT = Path(__file__).resolve().parents[2] / ".cache" / "asterisk-root"
WAIT = 20.0
#: How many times a phone is started on fresh ports when one was taken meanwhile.
PORT_TRIES = 3
#: A person answers no sooner than this after the ring starts (``answer()`` keeps to it).
ANSWER_AFTER = 0.3

#: The loopback shim inside the root, as baresip sees it, and its source beside this file.
SHIM_INSIDE = "/usr/local/lib/acd/loopback_bind.so"
SHIM_SOURCE = Path(__file__).with_name("loopback_bind.c")

_names = itertools.count(1)
_live: set[subprocess.Popen] = set()


class PhoneError(RuntimeError):
    pass


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    _live.discard(proc)


@atexit.register
def _kill_all() -> None:
    for proc in list(_live):
        _kill(proc)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _sweep(phones_dir: Path) -> None:
    """Remove the folders of test processes that are gone (killed before they cleaned up)."""
    for d in phones_dir.glob("*"):
        if d.name.isdigit() and int(d.name) != os.getpid() and not Path(f"/proc/{d.name}").exists():
            shutil.rmtree(d, ignore_errors=True)


def _free(port: int, kind: int) -> bool:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _free_ports() -> tuple[int, int]:
    """A SIP port (UDP and TCP free, and TCP on port + 1 for baresip's SIP/TLS) and a control
    port apart from both."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        sip = s.getsockname()[1]
        s.close()
        if sip < 65534 and _free(sip, socket.SOCK_STREAM) and _free(sip + 1, socket.SOCK_STREAM):
            t = socket.socket()
            t.bind(("127.0.0.1", 0))
            ctrl = t.getsockname()[1]
            t.close()
            if ctrl not in (sip, sip + 1):
                return sip, ctrl
    raise PhoneError("no free ports on 127.0.0.1 for a phone")


def build_shim(root: Path) -> Path:
    """Compile ``loopback_bind.c`` into the root (once; again when the source is newer)."""
    out = root / SHIM_INSIDE.lstrip("/")
    if out.exists() and out.stat().st_mtime >= SHIM_SOURCE.stat().st_mtime:
        return out
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PhoneError("no C compiler (cc) to build the phones' loopback shim: "
                         "install Debian's gcc (make run does)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SHIM_SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise PhoneError(f"building the phones' loopback shim failed:\n{done.stderr}")
    os.replace(tmp, out)     # atomic: phones started meanwhile see the old one or the new one
    return out


def write_tone(path: Path, seconds: float, hz: float = 440.0, rate: int = 8000) -> None:
    """An 8 kHz, 16 bit, mono WAV with a quiet sine tone."""
    period = [struct.pack("<h", int(4000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(rate)]
    second = b"".join(period)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for _ in range(int(seconds)):
            w.writeframes(second)


CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
net_interface		127.0.0.1
dns_server		127.0.0.1:53
call_local_timeout	120
call_max_calls		4
audio_path		/usr/share/baresip
audio_source		aufile,{inside}/tone.wav
audio_player		aufile,{player}
audio_alert		aufile,/dev/null
audio_level		no
ausrc_format		s16
auplay_format		s16
rtcp_mux		no
jitter_buffer_type	fixed
jitter_buffer_delay	5-10
rtp_stats		no
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{ctrl_port}
ringback_disabled	yes
sip_autoanswer_beep	no
statmode_default	off
"""


class SoftPhone:
    """One baresip phone registered to ``registrar_host:registrar_port`` as ``user``."""

    def __init__(self, user: str, password: str, registrar_host: str = "127.0.0.1",
                 registrar_port: int = 5060, answer: str = "auto", answer_delay: float = 0,
                 *, name: str | None = None, root: Path = ROOT, tone_seconds: int = 300,
                 sip_trace: bool = False, tone_hz: float = 440.0,
                 keep_heard: bool = False, register: bool = True) -> None:
        if answer not in ("auto", "manual"):
            raise ValueError("answer is 'auto' or 'manual'")
        for what, v, bad in (("user", user, ' \t\r\n;<>"@:,'), ("password", password, ' \t\r\n;<>"'),
                             ("registrar_host", registrar_host, ' \t\r\n;<>"@')):
            if (not v and (what != "password" or register)) or any(c in bad for c in v):
                raise ValueError(f"{what} {v!r} cannot go into a baresip account line")
        self.user = user
        self.password = password
        self.registrar_host = registrar_host
        self.registrar_port = registrar_port
        self.answer_mode = answer
        self.answer_delay = answer_delay
        self.registers = register   # False: a caller's phone, which never registers
        self.name = name or f"{user}-{os.getpid()}-{next(_names)}"
        self.root = Path(root)
        self.tone_seconds = tone_seconds
        self.tone_hz = tone_hz      # the phone's own tone: who is heard is told by frequency
        self.keep_heard = keep_heard  # what the phone receives goes to heard.wav (tests)
        self.sip_trace = sip_trace  # baresip -s: every SIP message into its output
        self.inside = f"/tmp/phones/{os.getpid()}/{self.name}"  # the folder as baresip sees it
        self.dir = self.root / self.inside.lstrip("/")  # ... and as we see it
        self.sip_port = 0
        self.ctrl_port = 0
        self.events: list[dict[str, Any]] = []  # every event baresip sent, in order
        self._taken: set[int] = set()           # indexes of events handed out by wait_event
        self._changed = asyncio.Condition()
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._tokens = itertools.count(1)
        self._output = ""

    @property
    def heard_path(self) -> Path:
        """What the phone received in its last call (8 kHz 16-bit mono WAV; ``keep_heard``),
        complete once the call is over."""
        return self.dir / "heard.wav"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.registrar_host}:{self.registrar_port}"

    def account_line(self) -> str:
        params = [f"auth_pass={self.password}"] if self.password else []
        params.append(f"answermode={self.answer_mode}")
        if not self.registers:
            params.append("regint=0")
        if self.answer_mode == "auto" and self.answer_delay:
            params.append(f"answerdelay={int(self.answer_delay * 1000)}")
        return f"<{self.aor}>;" + ";".join(params)

    # --- life ----------------------------------------------------------------------------

    async def start(self, timeout: float = WAIT) -> None:
        """Start baresip, create the account over ctrl_tcp and wait for REGISTER_OK.

        The ports are picked free, then bound by baresip a moment later: another process may
        take one in between. baresip then exits with EADDRINUSE, and it is started again on
        other ports (at most :data:`PORT_TRIES` times)."""
        for attempt in range(1, PORT_TRIES + 1):
            try:
                await self._launch(timeout)
                if self.registers:
                    await self.register(timeout)
                else:
                    await self.command("uanew", self.account_line())
                return
            except PhoneError as e:
                await self.stop()
                if attempt == PORT_TRIES or "Address already in use" not in str(e):
                    raise
            except BaseException:
                await self.stop()
                raise

    async def _launch(self, timeout: float) -> None:
        if not (self.root / "usr" / "bin" / "baresip").exists():
            raise PhoneError(f"no baresip in {self.root} (is the managed Asterisk root built?)")
        build_shim(self.root)
        _sweep(self.dir.parent.parent)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        write_tone(self.dir / "tone.wav", self.tone_seconds, self.tone_hz)
        self.sip_port, self.ctrl_port = _free_ports()
        player = f"{self.inside}/heard.wav" if self.keep_heard else "/dev/null"
        (self.dir / "config").write_text(CONFIG.format(sip_port=self.sip_port, ctrl_port=self.ctrl_port,
                                                       inside=self.inside, player=player))
        (self.dir / "accounts").write_text("")
        log = open(self.dir / "output.log", "wb")
        try:
            self._proc = subprocess.Popen(
                ["chroot", str(self.root), "env", f"LD_PRELOAD={SHIM_INSIDE}", "baresip", "-4", "-v", *(["-s"] if self.sip_trace else []),
                 "-f", self.inside],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()
        _live.add(self._proc)
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._proc.poll() is not None:
                raise PhoneError(f"baresip {self.name} exited with {self._proc.returncode}:\n{self.output_tail()}")
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                break
            except OSError:
                if loop.time() > deadline:
                    raise PhoneError(f"baresip {self.name}: no control socket on 127.0.0.1:{self.ctrl_port}"
                                     f" within {timeout}s:\n{self.output_tail()}") from None
                await asyncio.sleep(0.05)  # polling for the listening socket to appear
        self._read_task = asyncio.create_task(self._read_loop(), name=f"phone-{self.name}")

    async def register(self, timeout: float = WAIT) -> dict[str, Any]:
        """Create the account (``uanew``) and wait for its REGISTER_OK (also after
        ``unregister()``)."""
        mark = len(self.events)
        await self.command("uanew", self.account_line())
        try:
            ev = await self.wait_event(("REGISTER_OK", "REGISTER_FAIL"), timeout, since=mark)
        except AssertionError as e:
            raise PhoneError(f"{self.user} was not registered at {self.aor}: {e}") from None
        if ev["type"] != "REGISTER_OK":
            raise PhoneError(f"{self.user} was not registered: {ev.get('param', '')}\n{self.output_tail()}")
        return ev

    async def unregister(self) -> None:
        """Delete the account (``uadel``): baresip sends a REGISTER with Expires: 0 and an
        UNREGISTERING event (the registrar's answer is not reported: watch the registrar)."""
        await self.command("uadel", self.aor)

    async def stop(self) -> None:
        """Stop baresip (SIGTERM: it unregisters; SIGKILL after 5 s) and remove its folder."""
        if self._read_task:
            self._read_task.cancel()
            try:
                await self._read_task
            except BaseException:
                pass
            self._read_task = None
        if self._writer:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                for _ in range(100):
                    if proc.poll() is not None:
                        break
                    await asyncio.sleep(0.05)  # polling for exit, bounded; then killed
            _kill(proc)
            if self._finalizer:
                self._finalizer.detach()
            self._output = self.output_tail(60)
            self._proc = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PhoneError(f"phone {self.name} stopped"))
        self._pending.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()  # this process's folder, once its last phone is gone
        except OSError:
            pass

    async def __aenter__(self) -> "SoftPhone":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> str:
        """What baresip printed so far (after stop(), only the last lines)."""
        try:
            return (self.dir / "output.log").read_text(errors="replace")
        except OSError:
            return self._output

    def output_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def sdp_addresses(self) -> list[str]:
        """Every address in the ``o=`` and ``c=`` lines of the SDP the phone sent and received
        (needs ``sip_trace=True``)."""
        if not self.sip_trace:
            raise PhoneError("sdp_addresses() needs SoftPhone(..., sip_trace=True)")
        return re.findall(r"^[oc]=.*\bIN IP[46] (\S+)\s*$", self.output(), re.MULTILINE)

    # --- calls -----------------------------------------------------------------------------

    async def dial(self, uri: str) -> str:
        """Place a call; returns its SIP Call-ID (the ``id`` of its events)."""
        text = await self.command("dial", uri)
        return text.strip().removeprefix("call id:").strip()

    async def wait_established(self, call_id: str | None = None, timeout: float = WAIT) -> dict[str, Any]:
        """Wait for a call (``call_id`` from dial(), or the next one) to be established;
        PhoneError with the reason (e.g. '403 Forbidden') if it closed instead."""
        match = {"id": call_id} if call_id else {}
        ev = await self.wait_event(("CALL_ESTABLISHED", "CALL_CLOSED"), timeout, **match)
        if ev["type"] == "CALL_CLOSED":
            raise PhoneError(f"phone {self.name}: the call to {ev.get('peeruri', '?')} closed before it was "
                             f"established: {ev.get('param', '')}")
        return ev

    async def answer(self) -> None:
        """Answer the ringing call (``accept``; for ``answer='manual'``) as a person would:
        once the phone has closed its earlier calls, and no sooner than :data:`ANSWER_AFTER`
        after the ring. baresip 1.1.0 has frozen (no SIP, no control socket) when told to
        accept a call a millisecond after the call before it ended, under load."""
        loop = asyncio.get_running_loop()

        def earlier_open() -> bool:
            ids = [e.get("id") for e in self.events if e.get("type") == "CALL_INCOMING"]
            closed = {e.get("id") for e in self.events if e.get("type") == "CALL_CLOSED"}
            return any(i not in closed for i in ids[:-1])

        async def settled() -> None:
            async with self._changed:
                while earlier_open():
                    await self._changed.wait()
        try:
            await asyncio.wait_for(settled(), WAIT)
        except asyncio.TimeoutError:
            pass            # an earlier call that never closed: answer anyway, and see
        rings = [e for e in self.events if e.get("type") == "CALL_INCOMING"]
        if rings:
            await asyncio.sleep(max(0.0, rings[-1]["_at"] + ANSWER_AFTER - loop.time()))
        await self.command("accept")

    async def hangup(self) -> bool:
        """Hang up the current call (``hangup``). False if there was none (baresip 1.1.0
        answers "no active call"), e.g. because the far end hung up first."""
        try:
            await self.command("hangup")
        except PhoneError as e:
            if "no active call" in str(e):
                return False
            raise
        return True

    async def send_dtmf(self, digits: str) -> None:
        """Send digits as RFC 4733 telephone events on the current call (``sndcode``): queued
        in order, each at least 180 ms long and ended."""
        if not digits or any(d not in "0123456789*#ABCD" for d in digits.upper()):
            raise ValueError(f"not DTMF digits: {digits!r}")
        await self.command("sndcode", digits.upper())

    # --- control socket -------------------------------------------------------------------

    async def command(self, command: str, params: str | None = None, timeout: float = WAIT) -> str:
        """Run a baresip command; returns its text, raises PhoneError if it failed."""
        if not self._writer:
            raise PhoneError(f"phone {self.name} is not started")
        token = str(next(self._tokens))
        msg: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg).encode()
        fut = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        self._writer.write(b"%d:%s," % (len(body), body))
        await self._writer.drain()
        try:
            resp = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise PhoneError(f"baresip {self.name}: no answer to {command!r} within {timeout}s") from None
        finally:
            self._pending.pop(token, None)
        if not resp.get("ok"):
            raise PhoneError(f"baresip {self.name}: {command} {params or ''} failed: {resp.get('data', '')}")
        return str(resp.get("data", ""))

    async def _read_loop(self) -> None:
        assert self._reader
        try:
            while True:
                size = int((await self._reader.readuntil(b":"))[:-1])
                body = await self._reader.readexactly(size)
                if await self._reader.readexactly(1) != b",":
                    raise PhoneError("bad netstring from baresip")
                msg = json.loads(body)
                if msg.get("response"):
                    fut = self._pending.get(str(msg.get("token")))
                    if fut and not fut.done():
                        fut.set_result(msg)
                elif msg.get("event"):
                    msg["_at"] = asyncio.get_running_loop().time()   # when it came
                    async with self._changed:
                        self.events.append(msg)
                        self._changed.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            async with self._changed:
                self.events.append({"event": True, "type": "CONTROL_CLOSED"})
                self._changed.notify_all()

    async def wait_event(self, type: str | tuple[str, ...], timeout: float = WAIT, *,
                         since: int = 0, **fields: Any) -> dict[str, Any]:
        """The earliest event of ``type`` (one type or a tuple) not yet returned by a wait, at
        or after index ``since`` of ``events``, with the given fields (e.g. ``param="audio"``).
        Fails on timeout (AssertionError) or if baresip went away (PhoneError).

        Types seen from baresip 1.1.0: REGISTERING, REGISTER_OK, REGISTER_FAIL, UNREGISTERING,
        CALL_INCOMING, CALL_RINGING, CALL_PROGRESS, CALL_LOCAL_SDP, CALL_ESTABLISHED,
        CALL_RTPESTAB (first RTP received), CALL_RTCP (a sender report received; carries
        ``rtcp_stats``), CALL_DTMF_START, CALL_DTMF_END, CALL_CLOSED (``param`` is the reason).
        Call events carry ``id`` (the SIP Call-ID), ``direction`` and ``peeruri``."""
        types = (type,) if isinstance(type, str) else tuple(type)

        async def _wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for i, ev in enumerate(self.events):
                        if i < since or i in self._taken:
                            continue
                        if ev.get("type") in types and all(ev.get(k) == v for k, v in fields.items()):
                            self._taken.add(i)
                            return ev
                        if ev.get("type") == "CONTROL_CLOSED":
                            raise PhoneError(f"baresip {self.name} went away while waiting for "
                                             f"{types}:\n{self.output_tail()}")
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(_wait(), timeout)
        except asyncio.TimeoutError:
            seen = [e.get("type") for e in self.events[-20:]]
            raise AssertionError(f"phone {self.name}: no {'/'.join(types)} within {timeout}s; "
                                 f"events: {seen}\n{self.output_tail()}") from None
