"""Measure 9 (bench/reports_bench.py) runs on a small store and counts every generated call
in its reports: the figure `make bench` gives is over the calls it says (no timing here)."""
from __future__ import annotations

from bench import reports_bench


async def test_the_reports_measure_counts_every_call_it_generated():
    out = await reports_bench.measure(calls=1400, indexed=300, days=14,
                                      say=lambda _m: None)
    assert out["calls"] == 1400
    assert out["reports"]["a year by month, per group"]["counted"] == 1400
    assert 0 < out["reports"]["a year by week, per agent"]["counted"] <= 1400
    assert out["indexer"]["calls"] == 300
    assert out["slowest_calls_seconds"] <= out["slowest_seconds"]
