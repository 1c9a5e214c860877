"""Call recordings as files: which calls a group records, the finished file made from what
Asterisk wrote, where it lives, and the way back from a stored path to the file. No AMI, no
database: :mod:`acd.runtime.recorder` drives these.

Asterisk's MixMonitor writes each agent's part of a call with the ``D`` option: the audio the
agent's phone sends (the agent) and the audio sent to it (the caller, or whoever the agent
talks with) interleaved as two channels of 16-bit signed linear samples at 8 kHz (a ``.raw``
file; Asterisk writes no header for it). When Asterisk is done with it, the file becomes a
stereo WAV under the data folder, by day: left the agent, right the other party, so QA tools
tell who said what. 8 kHz x 2 channels x 2 bytes: 32,000 bytes a second, 115 MB an hour.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import wave
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from acd.errors import UserError

#: Asterisk's interleaved recording: 8 kHz, 16 bit, two channels (agent, other party).
RATE, WIDTH, CHANNELS = 8000, 2, 2
BYTES_PER_SECOND = RATE * WIDTH * CHANNELS
#: A recording's name: the call's and the leg's Asterisk ids (letters, digits, . - _).
_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}")
#: A stored path: a day folder and a file name, nothing else.
_STORED = re.compile(r"\d{4}-\d{2}-\d{2}/[A-Za-z0-9._-]{1,160}\.wav")
_CHUNK = 1 << 20


def record_share(value: str) -> float:
    """A group's ``record`` setting as the share of its calls to record: ``all`` 1,
    ``none`` 0, or a number from 0 to 1 (``0.2``: one call in five, drawn at random).
    ValueError for anything else."""
    text = str(value).strip().lower()
    if text == "all":
        return 1.0
    if text == "none":
        return 0.0
    try:
        share = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not all, none or a share from 0 to 1") from None
    if not 0.0 <= share <= 1.0 or share != share:
        raise ValueError(f"{value!r} is not all, none or a share from 0 to 1")
    return share


def recording_name(call_id: str, leg_id: str) -> str:
    """The file name (without extension) of one leg's recording; ValueError if the ids would
    make anything but a plain file name."""
    name = f"{call_id}-{leg_id}"
    if not call_id or not leg_id or not _NAME.fullmatch(name) or name[0] in ".-":
        raise ValueError(f"no recording name can be made of {call_id!r} and {leg_id!r}")
    return name


@dataclass(frozen=True)
class Finished:
    """A finished recording: ``path`` relative to the recordings folder."""
    path: str
    bytes: int
    seconds: float
    sha256: str


def finish(raw: Path, folder: Path, day: datetime, name: str) -> Finished:
    """Make the stereo WAV of an interleaved recording ``raw`` under ``folder/<day>/`` and
    remove ``raw``. The file is written beside its final name and renamed into place, so a
    crash leaves no half file under that name. OSError as the file system gives it."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"bad recording name {name!r}")
    rel = f"{day.astimezone(timezone.utc):%Y-%m-%d}/{name}.wav"
    dest = folder / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    size = raw.stat().st_size
    frames = size // (WIDTH * CHANNELS)
    with open(raw, "rb") as src, wave.open(str(tmp), "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(WIDTH)
        w.setframerate(RATE)
        w.setnframes(frames)           # the header is right from the start: no seek back
        left = frames * WIDTH * CHANNELS
        while left > 0:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                break
            w.writeframesraw(chunk)
            left -= len(chunk)
    digest = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    os.replace(tmp, dest)
    raw.unlink(missing_ok=True)
    return Finished(rel, dest.stat().st_size, round(frames / RATE, 3), digest.hexdigest())


def stored_file(folder: Path, path: str) -> Path:
    """The file of a stored recording path, never outside ``folder``: UserError
    ``recording.bad_path`` for a path that is not one this module stores (``..``, absolute,
    another folder), ``recording.file_missing`` for one whose file is gone."""
    if not isinstance(path, str) or not _STORED.fullmatch(path):
        raise UserError("recording.bad_path", "not a recording's path")
    root = folder.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise UserError("recording.bad_path", "not a recording's path")
    if not target.is_file():
        raise UserError("recording.file_missing", "the recording's file is gone")
    return target


def free_bytes(folder: Path) -> int | None:
    """Free space where recordings are written (None if it cannot be read). Before the first
    recording makes ``folder``, its nearest existing parent: the file system it will be on."""
    try:
        here = Path(os.path.abspath(folder))
        while not here.exists() and here.parent != here:
            here = here.parent
        return shutil.disk_usage(here).free
    except OSError:
        return None


__all__ = ["group_share", "record_share", "recording_name", "finish", "Finished", "stored_file",
           "free_bytes", "BYTES_PER_SECOND", "RATE", "CHANNELS", "WIDTH"]


def group_share(group: Any) -> float:
    """A group's share of recorded calls (its ``record`` setting; none if unreadable: the
    config check refuses such a value before it gets here)."""
    try:
        return record_share(getattr(group, "record", "none"))
    except ValueError:
        return 0.0
