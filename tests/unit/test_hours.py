from datetime import datetime, timezone

from acd.hours import ServiceHours

UTC = timezone.utc


def test_weekday_span_in_local_time():
    h = ServiceHours(("mon-fri 09:00-18:00",), (), "Asia/Shanghai")
    # Monday 2026-11-23 01:00 UTC is 09:00 in Shanghai: open; 00:59 UTC is 08:59: closed.
    assert h.is_open(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2026, 11, 23, 0, 59, tzinfo=UTC))
    assert not h.is_open(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))   # 18:00 local: closed
    assert not h.is_open(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))    # Sunday


def test_wrapping_day_range_and_holidays():
    h = ServiceHours(("sat-mon 10:00-14:00",), ("2026-11-23",), "UTC")
    assert h.is_open(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))       # Saturday
    assert h.is_open(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))       # Sunday
    assert not h.is_open(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))   # Monday, a holiday
    assert not h.is_open(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))   # Tuesday


def test_no_spans_means_always_open_except_holidays():
    h = ServiceHours((), ("2026-12-25",), "UTC")
    assert h.is_open(datetime(2026, 12, 24, 3, 0, tzinfo=UTC))
    assert not h.is_open(datetime(2026, 12, 25, 3, 0, tzinfo=UTC))
