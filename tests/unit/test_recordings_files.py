"""Recording files: the group setting, names, the stereo WAV made from Asterisk's interleaved
raw file, and the way from a stored path back to a file (never outside the folder)."""
from __future__ import annotations

import hashlib
import math
import struct
import wave
from array import array
from datetime import datetime, timezone

import pytest

from acd import recordings as rec
from acd.errors import UserError


def test_record_setting_reads_all_none_and_a_share():
    assert rec.record_share("all") == 1.0
    assert rec.record_share("NONE") == 0.0
    assert rec.record_share("0.2") == 0.2
    assert rec.record_share("1") == 1.0
    for bad in ("some", "1.5", "-0.1", "nan", ""):
        with pytest.raises(ValueError):
            rec.record_share(bad)


def test_a_recording_name_is_a_plain_file_name():
    assert rec.recording_name("1733.12", "acd-1a2b-3-a1001") == "1733.12-acd-1a2b-3-a1001"
    for call, leg in (("../x", "y"), ("a/b", "c"), ("a", "b c"), ("", ".."), ("x" * 100, "y" * 30)):
        with pytest.raises(ValueError):
            rec.recording_name(call, leg)


def _interleaved(seconds: float, left_hz: float, right_hz: float) -> bytes:
    n = int(seconds * rec.RATE)
    out = array("h")
    for i in range(n):
        out.append(int(3000 * math.sin(2 * math.pi * left_hz * i / rec.RATE)))
        out.append(int(3000 * math.sin(2 * math.pi * right_hz * i / rec.RATE)))
    return out.tobytes()


def test_the_finished_file_is_a_stereo_wav_by_day_with_its_checksum(tmp_path):
    raw = tmp_path / "spool" / "c1-leg1.raw"
    raw.parent.mkdir()
    data = _interleaved(1.5, 1000, 440)
    raw.write_bytes(data + b"\x01")          # a torn last sample is left out
    day = datetime(2026, 12, 4, 23, 59, tzinfo=timezone.utc)
    done = rec.finish(raw, tmp_path / "rec", day, "c1-leg1")
    assert done.path == "2026-12-04/c1-leg1.wav"
    path = tmp_path / "rec" / done.path
    assert not raw.exists() and not path.with_name(path.name + ".part").exists()
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == 12000
        frames = w.readframes(w.getnframes())
    assert frames == data
    assert done.seconds == 1.5 and done.bytes == path.stat().st_size == 44 + len(data)
    assert done.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    left = array("h", frames)[0::2]
    assert struct.unpack("<h", frames[:2])[0] == left[0]


def test_a_stored_path_never_leads_outside_the_folder(tmp_path):
    folder = tmp_path / "rec"
    (folder / "2026-12-04").mkdir(parents=True)
    (folder / "2026-12-04" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"no")
    assert rec.stored_file(folder, "2026-12-04/a.wav") == (folder / "2026-12-04" / "a.wav").resolve()
    for bad in ("../secret.wav", "2026-12-04/../../secret.wav", "/etc/passwd", "a.wav",
                "2026-12-04/a.mp3", "2026-12-04/sub/a.wav", "", None, "2026-12-04/..wav/x"):
        with pytest.raises(UserError) as e:
            rec.stored_file(folder, bad)
        assert e.value.id == "recording.bad_path", bad
    # a day folder that is a link out of the recordings folder is refused too
    (folder / "2026-12-05").symlink_to(tmp_path)
    with pytest.raises(UserError) as e:
        rec.stored_file(folder, "2026-12-05/secret.wav")
    assert e.value.id == "recording.bad_path"
    with pytest.raises(UserError) as e:
        rec.stored_file(folder, "2026-12-04/gone.wav")
    assert e.value.id == "recording.file_missing"


def test_free_space_is_read_before_the_folder_exists(tmp_path, monkeypatch):
    """Before the first recording makes the folder, the free space is its nearest existing
    parent's (the file system the recordings will go to), not unknown."""
    asked: list[str] = []
    real = rec.shutil.disk_usage

    def disk_usage(path):
        asked.append(str(path))
        return real(path)
    monkeypatch.setattr(rec.shutil, "disk_usage", disk_usage)
    folder = tmp_path / "data" / "recordings"
    free = rec.free_bytes(folder)
    assert isinstance(free, int) and free > 0
    assert asked == [str(tmp_path)]
    assert not (tmp_path / "data").exists()         # reading it makes no folder
    folder.mkdir(parents=True)
    asked.clear()
    assert isinstance(rec.free_bytes(folder), int)
    assert asked == [str(folder)]
