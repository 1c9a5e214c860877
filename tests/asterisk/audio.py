"""Who is heard, told by frequency: each party of a test call sends its own tone, and a
Goertzel filter measures a tone's strength in recorded audio."""
from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path


def goertzel(samples: "array[int] | list[int]", rate: int, hz: float) -> float:
    """The strength of ``hz`` in ``samples`` (an amplitude, comparable across tones)."""
    n = len(samples)
    if n == 0:
        return 0.0
    k = round(n * hz / rate)
    w = 2 * math.pi * k / n
    coeff = 2 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return math.sqrt(max(power, 0.0)) / n


def rms(samples: "array[int] | list[int]") -> float:
    return math.sqrt(sum(x * x for x in samples) / len(samples)) if len(samples) else 0.0


def stereo(path: Path) -> tuple[int, "array[int]", "array[int]"]:
    """A stereo 16-bit WAV: (rate, left, right)."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (2, 2), (w.getnchannels(), w.getsampwidth())
        rate = w.getframerate()
        data = array("h", w.readframes(w.getnframes()))
    return rate, data[0::2], data[1::2]


def span(samples: "array[int]", rate: int, start: float, end: float) -> "array[int]":
    return samples[int(start * rate):int(end * rate)]
