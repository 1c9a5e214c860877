"""Erlang C (acd/reports/erlang.py) against a published worked example, and its properties."""
from __future__ import annotations

import math
import time

import pytest

from acd.reports import erlang

# The published example: 100 calls in 30 minutes, an average handle time of 180 s, a
# service-level threshold of 20 s, 14 agents. Published figures, from the README of the
# ErlangC package on CRAN (version 0.1.0, "erlang_c" and "calculate_agents" examples), and
# the same figures in the README of the pyworkforce package on PyPI (version 0.1.0, the
# ErlangC example):
#   traffic intensity 10 erlangs, occupancy 0.7142857,
#   wait probability 0.1741319, service level 0.88835, average speed of answer 7.835937 s,
#   agents required for 80% within 20 s: 14;
#   and the first row of CRAN ErlangC's search table (11 agents):
#   wait probability 0.6821182, service level 0.3896138.
CALLS, INTERVAL, AHT, THRESHOLD = 100, 30 * 60, 180, 20
TRAFFIC = CALLS * AHT / INTERVAL


def test_the_published_example():
    assert TRAFFIC == 10
    assert erlang.erlang_c(TRAFFIC, 14) == pytest.approx(0.1741319, abs=5e-8)
    assert erlang.service_level(TRAFFIC, 14, AHT, THRESHOLD) == pytest.approx(0.88835, abs=5e-6)
    assert erlang.asa(TRAFFIC, 14, AHT) == pytest.approx(7.83593701177724, abs=1e-9)
    assert erlang.agents_needed(CALLS, INTERVAL, AHT, THRESHOLD, 0.8) == 14


def test_the_published_search_table_row():
    assert erlang.erlang_c(TRAFFIC, 11) == pytest.approx(0.6821182, abs=5e-8)
    assert erlang.service_level(TRAFFIC, 11, AHT, THRESHOLD) == pytest.approx(0.3896138,
                                                                              abs=5e-8)


def test_the_formulas_by_hand_for_a_small_case():
    # 1 erlang, 2 agents: C = (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A))
    #                       = (1/2 * 2) / (1 + 1 + 1) = 1/3
    assert erlang.erlang_c(1.0, 2) == pytest.approx(1 / 3)
    assert erlang.asa(1.0, 2, 60) == pytest.approx(1 / 3 * 60 / 1)
    assert erlang.service_level(1.0, 2, 60, 30) == pytest.approx(1 - 1 / 3 * math.exp(-0.5))


def test_agents_needed_is_the_fewest_that_reach_the_target():
    n = erlang.agents_needed(CALLS, INTERVAL, AHT, THRESHOLD, 0.8)
    assert erlang.service_level(TRAFFIC, n, AHT, THRESHOLD) >= 0.8
    assert erlang.service_level(TRAFFIC, n - 1, AHT, THRESHOLD) < 0.8
    assert erlang.agents_needed(CALLS, INTERVAL, AHT, THRESHOLD, 0.0) == 11   # just stable
    assert erlang.agents_needed(CALLS, INTERVAL, AHT, THRESHOLD, 0.95) > n


def test_no_calls_or_no_handle_time_need_nobody():
    assert erlang.agents_needed(0, 900, 180, 20, 0.8) == 0
    assert erlang.agents_needed(12, 900, 0, 20, 0.8) == 0


def test_more_agents_never_hurt():
    for traffic in (0.5, 3.0, 10.0, 47.9):
        prev_c, prev_sl, prev_asa = 1.0, 0.0, math.inf
        for n in range(0, int(traffic) + 30):
            c = erlang.erlang_c(traffic, n)
            sl = erlang.service_level(traffic, n, 180, 20)
            w = erlang.asa(traffic, n, 180)
            assert 0.0 <= c <= 1.0 and 0.0 <= sl <= 1.0
            assert c <= prev_c and sl >= prev_sl and w <= prev_asa
            prev_c, prev_sl, prev_asa = c, sl, w


def test_too_few_agents_means_every_call_waits():
    assert erlang.erlang_c(10, 10) == 1.0
    assert erlang.erlang_c(10, 3) == 1.0
    assert erlang.service_level(10, 10, 180, 20) == 0.0
    assert erlang.asa(10, 9, 180) == math.inf


def test_no_traffic_never_waits():
    assert erlang.erlang_c(0, 1) == 0.0
    assert erlang.service_level(0, 1, 180, 20) == 1.0
    assert erlang.asa(0, 1, 180) == 0.0


def test_a_thousand_agents_finish_quickly_without_overflow():
    start = time.perf_counter()
    c = erlang.erlang_c(950.0, 1000)
    n = erlang.agents_needed(57_000, 3600, 60, 20, 0.9)       # 950 erlangs
    assert time.perf_counter() - start < 1.0
    assert 0.0 < c < 1.0 and math.isfinite(c)
    assert 950 < n < 1000
    assert erlang.service_level(950.0, n, 60, 20) >= 0.9 > erlang.service_level(950.0, n - 1,
                                                                                   60, 20)
    assert 0.0 <= erlang.erlang_c(9_000.0, 10_000) < 1e-6    # far past any factorial's range


@pytest.mark.parametrize("call, message", [
    (lambda: erlang.erlang_c(-1, 3), "traffic must be a finite number, 0 or more, not -1"),
    (lambda: erlang.erlang_c(math.nan, 3), "traffic must be a finite number"),
    (lambda: erlang.erlang_c(2, 2.5), "agents must be a whole number, 0 or more, not 2.5"),
    (lambda: erlang.erlang_c(2, -1), "agents must be a whole number"),
    (lambda: erlang.erlang_c("2", 3), "traffic must be a number, not '2'"),
    (lambda: erlang.service_level(2, 3, 0, 20), "aht must be a finite number above 0, not 0"),
    (lambda: erlang.service_level(2, 3, 180, -5), "threshold must be a finite number, 0 or"),
    (lambda: erlang.asa(2, 3, math.inf), "aht must be a finite number above 0"),
    (lambda: erlang.agents_needed(10, 0, 180, 20, 0.8), "interval_seconds must be a finite "
                                                        "number above 0, not 0"),
    (lambda: erlang.agents_needed(10, 900, 180, 20, 1.0), "target must be a share below 1"),
    (lambda: erlang.agents_needed(10, 900, 180, 20, -0.1), "target must be a finite number"),
    (lambda: erlang.agents_needed(-3, 900, 180, 20, 0.8), "calls must be a finite number"),
    (lambda: erlang.agents_needed(10_000, 900, 180, 20, 0.8, max_agents=50),
     "2000.0 erlangs: more than max_agents (50)"),
])
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


def test_a_load_just_under_the_cap_that_cannot_reach_the_target_is_refused():
    with pytest.raises(ValueError, match=r"need more than max_agents \(11\) to answer 80%"):
        erlang.agents_needed(CALLS, INTERVAL, AHT, THRESHOLD, 0.8, max_agents=11)
