"""A phone in a terminal: what `acd phone` (an agent's phone) and `acd call` (a caller's phone)
do while they run. Call events are printed one per line; keys typed meanwhile act on the call:

    a          answer the ringing call (with --answer manual)
    h          hang up
    0-9 * #    send as DTMF (RFC 4733) on the call
    q          quit (Ctrl-C too)

In a terminal each key acts at once; from a pipe (tests, scripts) they are read as they come,
newlines ignored. Stdin closed (e.g. started in the background) just means no keys.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from typing import Callable

from acd.tools.softphone import PhoneError, SoftPhone

DIGITS = "0123456789*#"
KEYS_HELP = "keys: a answer, h hang up, 0-9 * # send as DTMF, q quit"
#: Events worth a line, in baresip's names.
SHOWN = ("CALL_INCOMING", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_DTMF_START", "CALL_CLOSED")
#: baresip's reasons for a call's end, as a person would say them (its ECONNRESET text is
#: how it reports an ordinary BYE from the other side: no error).
CALL_END_REASONS = {"connection reset by peer": "hung up by the other side",
                    "connection reset by user": "hung up here"}


def event_text(ev: dict, manual: bool = False) -> str:
    """One line of output for a call event of baresip."""
    param = str(ev.get("param", "") or "")
    kind = str(ev.get("type", ""))
    if kind == "CALL_CLOSED":
        param = CALL_END_REASONS.get(param.strip().lower(), param)
    if kind == "CALL_INCOMING":
        return f"ringing: call from {ev.get('peeruri', '')}" + (" (press a to answer)" if manual else "")
    if kind == "CALL_ESTABLISHED":      # its param is the peer's URI again
        return f"call established: {ev.get('peeruri', '')}"
    if kind == "CALL_DTMF_START":
        return f"the other side keyed {param}"
    if kind == "CALL_RINGING":
        return f"ringing at the other end: {ev.get('peeruri', '')}"
    return f"{kind.lower().replace('_', ' ')}: {ev.get('peeruri', '')} {param}".rstrip()


@contextlib.contextmanager
def keys_from_stdin(queue: asyncio.Queue):
    """Put each key typed on stdin into ``queue`` (None at end of input); a terminal is put in
    cbreak mode (keys without Enter, Ctrl-C still stops) and restored afterwards."""
    loop = asyncio.get_running_loop()
    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError, AttributeError):
        queue.put_nowait(None)
        yield
        return
    saved = None
    if os.isatty(fd):
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

    def readable() -> None:
        try:
            data = os.read(fd, 256)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            queue.put_nowait(None)
            return
        for ch in data.decode(errors="replace"):
            if not ch.isspace():
                queue.put_nowait(ch)
    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError, PermissionError):   # e.g. /dev/null: no keys
        queue.put_nowait(None)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(fd)
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def on_key(phone: SoftPhone, key: str, say: Callable[[str], None]) -> bool:
    """Act on one key; False to quit."""
    key = key.lower()
    try:
        if key == "q":
            return False
        if key == "a":
            await phone.answer()
        elif key == "h":
            if not await phone.hangup():
                say("no call to hang up")
        elif key in DIGITS:
            await phone.send_dtmf(key)
            say(f"sent DTMF {key}")
        else:
            say(f"key {key!r} does nothing ({KEYS_HELP})")
    except PhoneError as e:
        say(f"not done: {str(e).rpartition(' failed: ')[2] or e}")
    return True


async def run(phone: SoftPhone, *, manual: bool, end_with_call: bool,
              say: Callable[[str], None]) -> int:
    """Print the phone's call events and act on keys until q, Ctrl-C, or (``end_with_call``)
    the end of the call. Returns the exit status."""
    queue: asyncio.Queue = asyncio.Queue()

    async def pump() -> None:
        seen = 0
        try:
            while True:
                ev = await phone.wait_event(SHOWN, timeout=10**6, since=seen)
                seen = phone.events.index(ev) + 1
                await queue.put(("event", ev))
        except PhoneError as e:
            await queue.put(("gone", str(e)))

    keys: asyncio.Queue = asyncio.Queue()

    async def forward_keys() -> None:
        while (key := await keys.get()) is not None:
            await queue.put(("key", key))

    with keys_from_stdin(keys):
        tasks = [asyncio.create_task(pump()), asyncio.create_task(forward_keys())]
        try:
            while True:
                what, item = await queue.get()
                if what == "gone":
                    say(f"the phone stopped: {item}")
                    return 1
                if what == "key":
                    if not await on_key(phone, item, say):
                        return 0
                    continue
                say(event_text(item, manual))
                if end_with_call and item["type"] == "CALL_CLOSED":
                    return 0
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
