"""Erlang C: how many agents a group needs for its service level. Plain Python, no I/O.

The model (M/M/N): calls arrive at random (Poisson), handle times are exponential, a caller
waits as long as it takes (no abandons) and agents take the calls in turn. ``traffic`` is the
offered load in erlangs: calls x average handle time / interval length (both in seconds).

* :func:`erlang_c`: the probability that a call waits at all;
* :func:`service_level`: the share of calls answered within ``threshold`` seconds;
* :func:`asa`: the average speed of answer (mean wait over all calls), seconds;
* :func:`agents_needed`: the fewest agents whose service level reaches a target.

Erlang C is computed from Erlang B by its recurrence ``B(0) = 1``,
``B(n) = A B(n-1) / (n + A B(n-1))``, then ``C = N B / (N - A (1 - B))``: no factorial and
no power of ``A`` is ever formed, so 1,000 or 10,000 agents neither overflow nor lose
precision. With ``agents <= traffic`` the queue grows without end: every call waits
(``erlang_c`` is 1), none is answered within any threshold (``service_level`` is 0) and the
average wait is unbounded (``asa`` is ``inf``).

Bad input (a negative or non-finite number, a fractional agent count, a target outside
[0, 1)) raises :class:`ValueError` naming the argument and the value: these are figures from
the configuration and the database, so a bad one is a bug to see, not a report to show.
"""
from __future__ import annotations

import math

MAX_AGENTS = 10_000


def _number(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        need = "a finite number above 0" if positive else "a finite number, 0 or more"
        raise ValueError(f"{name} must be {need}, not {value!r}")
    return v


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more, not {value!r}")
    return value


def _erlang_b(traffic: float, agents: int, start: tuple[int, float] = (0, 1.0)) -> float:
    """Erlang B for ``agents``, continuing the recurrence from ``start`` = (n, B(n))."""
    n, b = start
    while n < agents:
        n += 1
        b = traffic * b / (n + traffic * b)
    return b


def _c_from_b(traffic: float, agents: int, b: float) -> float:
    if agents <= traffic:
        return 1.0
    return min(1.0, agents * b / (agents - traffic * (1.0 - b)))


def erlang_c(traffic: float, agents: int) -> float:
    """The probability that a call waits (is not answered at once), 0 to 1."""
    a = _number("traffic", traffic)
    n = _count("agents", agents)
    if n <= a:
        return 1.0
    return _c_from_b(a, n, _erlang_b(a, n))


def _sl(traffic: float, agents: int, aht: float, threshold: float, c: float) -> float:
    if agents <= traffic:
        return 0.0
    return max(0.0, min(1.0, 1.0 - c * math.exp(-(agents - traffic) * threshold / aht)))


def service_level(traffic: float, agents: int, aht: float, threshold: float) -> float:
    """The share of calls answered within ``threshold`` seconds:
    ``1 - C * exp(-(agents - traffic) * threshold / aht)``."""
    a = _number("traffic", traffic)
    n = _count("agents", agents)
    h = _number("aht", aht, positive=True)
    t = _number("threshold", threshold)
    return _sl(a, n, h, t, erlang_c(a, n))


def asa(traffic: float, agents: int, aht: float) -> float:
    """The average speed of answer over all calls, seconds: ``C * aht / (agents - traffic)``
    (``inf`` when ``agents <= traffic``)."""
    a = _number("traffic", traffic)
    n = _count("agents", agents)
    h = _number("aht", aht, positive=True)
    if n <= a:
        return math.inf
    return erlang_c(a, n) * h / (n - a)


def agents_needed(calls: float, interval_seconds: float, aht: float, threshold: float,
                  target: float, max_agents: int = MAX_AGENTS) -> int:
    """The fewest agents whose service level (answered within ``threshold`` seconds) is at
    least ``target`` (0.8: 80%), for ``calls`` calls in ``interval_seconds`` with an average
    handle time of ``aht`` seconds. 0 when there are no calls or no handle time. A load that
    needs more than ``max_agents`` raises :class:`ValueError`."""
    c = _number("calls", calls)
    interval = _number("interval_seconds", interval_seconds, positive=True)
    h = _number("aht", aht)
    t = _number("threshold", threshold)
    goal = _number("target", target)
    if goal >= 1:
        raise ValueError(f"target must be a share below 1 (0.8: 80%), not {target!r}")
    limit = _count("max_agents", max_agents)
    if c == 0 or h == 0:
        return 0
    a = c * h / interval
    n = math.floor(a) + 1                  # the fewest agents with a queue that ends
    if n > limit:
        raise ValueError(f"{c:g} calls of {h:g} s in {interval:g} s are {a:.1f} erlangs: "
                         f"more than max_agents ({limit}) can answer")
    b = _erlang_b(a, n)
    while True:
        if _sl(a, n, h, t, _c_from_b(a, n, b)) >= goal:
            return n
        if n >= limit:
            raise ValueError(f"{c:g} calls of {h:g} s in {interval:g} s ({a:.1f} erlangs) "
                             f"need more than max_agents ({limit}) to answer {goal:.0%} "
                             f"within {t:g} s")
        b = _erlang_b(a, n + 1, (n, b))
        n += 1


__all__ = ["MAX_AGENTS", "erlang_c", "service_level", "asa", "agents_needed"]
