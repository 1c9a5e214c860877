"""Statistics of samples: percentiles, summaries and distributions. Pure, no I/O.

Percentiles interpolate linearly between the two nearest ranks (numpy's default, "type 7"):
for sorted samples x[0..n-1] and p in [0, 100], the position is (n - 1) * p / 100.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) of ``samples``, linearly interpolated. ValueError if empty."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not within 0-100")
    xs = sorted(samples)
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def summary(samples: Iterable[float], scale: float = 1.0, digits: int = 3) -> dict[str, float | int | None]:
    """n, min, median, p95, p99, max and mean; values multiplied by ``scale`` (e.g. 1000 for
    seconds to milliseconds) and rounded. An empty sample gives n = 0 and None elsewhere."""
    xs = sorted(float(x) for x in samples)
    keys = ("min", "p50", "p95", "p99", "max", "mean")
    if not xs:
        return {"n": 0, **{k: None for k in keys}}
    vals = {"min": xs[0], "p50": percentile(xs, 50), "p95": percentile(xs, 95),
            "p99": percentile(xs, 99), "max": xs[-1], "mean": sum(xs) / len(xs)}
    return {"n": len(xs), **{k: round(v * scale, digits) for k, v in vals.items()}}


def cdf(samples: Iterable[float], points: int = 200) -> list[tuple[float, float]]:
    """The empirical distribution function as (value, fraction of samples <= value) pairs,
    thinned to at most ``points`` pairs (the first and last sample are always kept)."""
    xs = sorted(float(x) for x in samples)
    n = len(xs)
    if n == 0:
        return []
    if n <= points:
        idx = list(range(n))
    else:
        step = (n - 1) / (points - 1)
        idx = sorted({round(i * step) for i in range(points)})
    return [(xs[i], (i + 1) / n) for i in idx]


def ratio(ours: float | None, theirs: float | None, digits: int = 3) -> float | None:
    """ours / theirs, or None when either is missing or theirs is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, digits)


def growth(costs: dict[int, float]) -> dict[str, float]:
    """How a cost grows with a size: for sizes a < b, cost(b) / cost(a) against b / a. A cost
    that is flat has a ratio near 1 whatever the size ratio; a linear one near the size ratio.
    Returns {"sizes": b/a, "cost": cost(b)/cost(a), "exponent": log(cost ratio)/log(size ratio)}
    for the smallest and the largest size."""
    if len(costs) < 2:
        raise ValueError("growth needs at least two sizes")
    a, b = min(costs), max(costs)
    if costs[a] <= 0:
        raise ValueError("costs must be above 0")
    size_ratio = b / a
    cost_ratio = costs[b] / costs[a]
    return {"sizes": round(size_ratio, 3), "cost": round(cost_ratio, 3),
            "exponent": round(math.log(cost_ratio) / math.log(size_ratio), 3)}
