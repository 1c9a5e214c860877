"""Our server under cProfile: ``python -m bench.profile_server OUT.prof [acd arguments]``.

The bench runs one short throughput step this way to show where the server's CPU goes.
Profiling starts at SIGUSR1 (sent once the agents are logged in, so start-up is left out) and
the profile is written when the server stops (SIGTERM ends ``acd run`` cleanly).
"""
from __future__ import annotations

import collections
import cProfile
import pstats
import signal
import sys
from typing import Any


def main() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["acd", *args]
    from acd.cli import main as acd_main
    prof = cProfile.Profile()
    started = False

    def start(_sig: int, _frame: Any) -> None:
        nonlocal started
        if not started:
            started = True
            prof.enable()
    signal.signal(signal.SIGUSR1, start)
    try:
        return acd_main(args)
    finally:
        if started:
            prof.disable()
            prof.dump_stats(out)


def by_package(path: str, top: int = 12) -> list[dict[str, Any]]:
    """Own time (tottime) per package or project module, largest first, in seconds and
    shares of the profiled time (the event loop's idle wait, ``epoll.poll``, left out)."""
    stats = pstats.Stats(path)
    agg: collections.Counter[str] = collections.Counter()
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "epoll" in func and filename == "~":
            continue
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0]
        elif "/acd/" in filename or "/agi/" in filename:
            key = filename[filename.rfind("/acd/") + 1 if "/acd/" in filename
                           else filename.rfind("/agi/") + 1:]
        elif "/lib/python3" in filename:
            key = "stdlib: " + filename.split("/lib/python3")[1].split("/", 2)[1]
        else:
            key = "C functions (str, dict, socket, ...)"
        agg[key] += tottime
    total = sum(agg.values()) or 1.0
    return [{"what": k, "seconds": round(v, 3), "share": round(v / total, 3)}
            for k, v in agg.most_common(top)]


if __name__ == "__main__":
    sys.exit(main())


def calls_of(path: str, filename_end: str, function: str) -> int:
    """How many times a function ran in the profile (primitive calls), e.g. the AMI client's
    ``parse_message`` (one per AMI message read)."""
    stats = pstats.Stats(path)
    n = 0
    for (filename, _line, func), (cc, _nc, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func == function and filename.endswith(filename_end):
            n += cc
    return n
