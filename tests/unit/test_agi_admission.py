"""The FastAGI server's two pure helpers, without a socket or a clock: which stray connections
get a line of their own and which are summarised (agi.strays), and which stranger is closed
to make room (agi.pending)."""
from __future__ import annotations

import pytest

from acd.netaddr import canonical
from agi.pending import Pending
from agi.strays import OTHERS, StrayLog

# ------------------------------------------------------------------ agi.strays


def test_first_of_a_pair_is_logged_at_once_the_rest_summarised():
    strays = StrayLog(interval=10)
    assert strays.note("10.0.0.1", "agi.bad_header", 100.0, {"peer": "10.0.0.1:1"}) is True
    assert [strays.note("10.0.0.1", "agi.bad_header", 100.0 + i, {"peer": f"10.0.0.1:{i}"})
            for i in range(1, 200)] == [False] * 199
    assert strays.flush(109.9) == []                       # the interval is not over
    [line] = strays.flush(110.0)
    assert (line.address, line.error, line.count, line.first) == ("10.0.0.1", "agi.bad_header",
                                                                  199, 101.0)
    assert line.example == {"peer": "10.0.0.1:1"}          # the first one counted


def test_each_address_and_error_id_is_its_own_pair():
    strays = StrayLog(interval=10)
    firsts = [strays.note(a, e, 0.0, {}) for a in ("10.0.0.1", "10.0.0.2")
              for e in ("agi.bad_header", "agi.header_timeout")]
    assert firsts == [True] * 4
    for a in ("10.0.0.1", "10.0.0.2"):
        for e in ("agi.bad_header", "agi.header_timeout"):
            for _ in range(3):
                strays.note(a, e, 1.0, {})
    lines = strays.flush(10.0)
    assert sorted((s.address, s.error, s.count) for s in lines) == [
        ("10.0.0.1", "agi.bad_header", 3), ("10.0.0.1", "agi.header_timeout", 3),
        ("10.0.0.2", "agi.bad_header", 3), ("10.0.0.2", "agi.header_timeout", 3)]


def test_a_steady_scan_is_one_summary_per_interval_and_a_quiet_interval_resets():
    strays = StrayLog(interval=10)
    logged_at_once = 0
    summaries = []
    for second in range(60):                               # 200 connects a second for a minute
        for _ in range(200):
            logged_at_once += strays.note("10.0.0.1", "agi.header_eof", float(second), {})
        summaries += strays.flush(float(second + 1))
    summaries += strays.flush(1e9, final=True)
    assert logged_at_once == 1
    assert len(summaries) == 6                             # one per 10 s
    assert logged_at_once + sum(s.count for s in summaries) == 60 * 200   # nothing lost
    assert len(strays) == 0
    # quiet for a whole interval: forgotten, so the next one has its own line again
    assert strays.note("10.0.0.1", "agi.header_eof", 2000.0, {}) is True
    assert strays.flush(2010.0) == [] and len(strays) == 0
    assert strays.note("10.0.0.1", "agi.header_eof", 2011.0, {}) is True


def test_many_addresses_are_bounded_by_max_pairs():
    strays = StrayLog(interval=10, max_pairs=4)
    at_once = [strays.note(f"10.0.{i // 256}.{i % 256}", "agi.peer_refused", 0.0, {"i": i})
               for i in range(1000)]
    assert len(strays) == 5                                # 4 addresses and "others"
    assert sum(at_once) == 5
    [others] = [s for s in strays.flush(10.0) if s.address == OTHERS]
    assert others.count == 1000 - 5 and others.example == {"i": 5}


def test_final_flush_gives_every_count_and_next_due():
    strays = StrayLog(interval=10)
    assert strays.next_due() is None
    strays.note("10.0.0.1", "agi.header_timeout", 5.0, {})
    strays.note("10.0.0.1", "agi.header_timeout", 6.0, {})
    assert strays.next_due() == 15.0
    assert [(s.count, s.first) for s in strays.flush(7.0, final=True)] == [(1, 6.0)]
    assert strays.next_due() is None


@pytest.mark.parametrize("interval, max_pairs", [(0, 10), (-1, 10), (10, 0)])
def test_bad_settings_are_refused(interval, max_pairs):
    with pytest.raises(ValueError):
        StrayLog(interval, max_pairs)


# ------------------------------------------------------------------ agi.pending

def test_pending_counts_by_address_oldest_first():
    pending: Pending[str] = Pending()
    for item, address in (("a1", "A"), ("b1", "B"), ("a2", "A"), ("a3", "A")):
        pending.add(address, item)
    assert (pending.count("A"), pending.count("B"), pending.count("C"), len(pending)) == (3, 1, 0, 4)
    assert pending.oldest() == "a1" and pending.oldest("A") == "a1" and pending.oldest("B") == "b1"
    assert pending.oldest("C") is None
    pending.discard("a1")
    assert pending.oldest() == "b1" and pending.oldest("A") == "a2"
    pending.discard("b1")
    pending.discard("b1")                                  # twice: no error
    assert pending.count("B") == 0 and "b1" not in pending and "a2" in pending
    pending.discard("a2")
    pending.discard("a3")
    assert len(pending) == 0 and pending.oldest() is None


@pytest.mark.parametrize("spelling, one", [
    ("::ffff:10.0.0.1", "10.0.0.1"), ("10.0.0.1", "10.0.0.1"),
    ("fe80::1%eth0", "fe80::1"), ("2001:DB8:0::1", "2001:db8::1"), ("not an address", "not an address"),
])
def test_one_spelling_per_address(spelling, one):
    assert canonical(spelling) == one
