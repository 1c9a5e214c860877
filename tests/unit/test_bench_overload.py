"""Measure 6b's figures (bench/overload.py): what counts as served, treated and failed, when
the target is met, and the server's own account read from its JSON log."""
from __future__ import annotations

import json
from types import SimpleNamespace

from acd.tools import load_calls
from bench import overload


def _run(outcomes: dict[str, int], *, disconnects: int = 0, rate: float = 40.0):
    records = []
    for outcome, n in outcomes.items():
        for _ in range(n):
            records.append(SimpleNamespace(outcome=outcome, queue_to_invite=0.004))
    completed = outcomes.get(load_calls.COMPLETED, 0)
    return SimpleNamespace(records=records, completed=completed, ami_disconnects=disconnects,
                           profile={"rate": rate, "duration": 60.0},
                           outcomes=lambda: dict(outcomes))


def _api(ms: list[float | None]):
    return [(float(i), "/api/queues", None if x is None else x / 1000, 200) for i, x in enumerate(ms)]


def _figures(**kw):
    args = dict(rate=40.0, sustained=20.0,
                over=_run({"completed": 900, "sent_away": 100}),
                after=_run({"completed": 300}, rate=20.0),
                api_over=_api([10.0] * 95 + [150.0] * 5), api_after=_api([5.0] * 10),
                server_alive=True, episodes={"episodes": 1, "turned_away_logged": 100},
                overloaded_at_end=False)
    args.update(kw)
    return overload.figures(**args)


def test_callers_turned_away_are_a_treatment_not_a_failure():
    f = _figures()
    assert (f["served"], f["turned_away"], f["failed_other"]) == (900, 100, 0)
    assert f["recovered"] is True and f["met"] is True
    assert f["api_during"]["requests"] == 100 and f["api_during"]["errors"] == 0


def test_callers_sent_away_without_an_overload_episode_are_failures():
    f = _figures(episodes={"episodes": 0, "turned_away_logged": 0})
    assert (f["turned_away"], f["failed_other"], f["met"]) == (0, 100, False)


def test_any_of_the_conditions_misses_the_target():
    assert _figures(over=_run({"completed": 900, "dropped": 2}))["met"] is False
    assert _figures(over=_run({"completed": 900}, disconnects=1))["met"] is False
    assert _figures(server_alive=False)["met"] is False
    assert _figures(api_over=_api([250.0] * 100))["met"] is False       # p95 over 200 ms
    assert _figures(api_over=_api([10.0] * 99 + [None]))["met"] is False  # an error
    slow_after = _figures(after=_run({"completed": 290, "not_connected": 10}, rate=20.0))
    assert slow_after["recovered"] is False and slow_after["met"] is False
    assert _figures(overloaded_at_end=True)["recovered"] is False


def test_the_servers_own_account_is_read_from_its_log(tmp_path):
    log = tmp_path / "server.log"
    lines = [
        {"timestamp": "2026-01-01T00:00:00Z", "event": "runtime.overload_started"},
        {"timestamp": "2026-01-01T00:01:00Z", "event": "runtime.overload_started"},
        {"timestamp": "2026-01-01T00:01:30Z", "event": "runtime.overload_ended", "turned_away": 42},
        {"timestamp": "2026-01-01T00:01:40Z", "event": "ami.disconnected"},
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json overload_\n")
    since = 1767225630.0                                  # 2026-01-01T00:00:30Z
    assert overload.overload_episodes(log, since) == {
        "episodes": 1, "ended": 1, "turned_away_logged": 42, "ami_disconnects_logged": 1}
    assert overload.overload_episodes(tmp_path / "missing.log", 0)["episodes"] == 0


def test_calls_asterisk_never_placed_count_against_us_only_beyond_app_queues():
    """The one Asterisk also plays the callers: what it could not place at this rate is the
    machine's limit, judged beside app_queue offered the same."""
    over = _run({"completed": 800, "sent_away": 100, "originate_failed": 100})
    alone = _figures(over=over)
    assert (alone["not_placed"], alone["failed_after_arrival"]) == (100, 0)
    assert alone["met"] is False                        # no reference: every one counts
    ref = {"not_placed": 95, "calls": 1000}
    assert _figures(over=over, reference=ref)["met"] is True
    assert _figures(over=over, reference={"not_placed": 40})["met"] is False
    dropped = _run({"completed": 799, "sent_away": 100, "originate_failed": 100, "dropped": 1})
    f = _figures(over=dropped, reference=ref)
    assert (f["failed_after_arrival"], f["met"]) == (1, False)
