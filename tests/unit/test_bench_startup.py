"""Measure 8 (start-up): the phases read from a server log, the target, the page."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from bench import report, startup


def _log(tmp_path, lines):
    path = tmp_path / "server.log"
    path.write_text("\n  ACD server is running (the banner: not JSON)\n" + "\n".join(
        json.dumps({"event": e, "timestamp": datetime.fromtimestamp(t, timezone.utc)
                    .isoformat().replace("+00:00", "Z"), **kw}) for t, e, kw in lines) + "\n")
    return path


def test_phases_run_from_the_process_start_each_to_its_event(tmp_path):
    path = _log(tmp_path, [
        (100.75, "app.config_loaded", {"took": 0.25}),
        (101.0, "app.starting", {}), (101.5, "app.migrated", {}),
        (101.75, "app.users_ready", {"users": 1002, "pending": 0}),
        (102.0, "app.started", {}), (102.1, "ami.connected", {}),
        (102.1, "runtime.phone", {}), (102.35, "runtime.rebuilt", {"agents": 1000}),
        (103.0, "app.passwords_hashed", {"hashed": 0, "took": 0.0})])
    events = startup.log_events(path)
    assert [e for _, e, _ in events][:2] == ["app.config_loaded", "app.starting"]
    assert startup.phases(events, spawned=100.0) == {
        "interpreter and imports": 0.5, "configuration (YAML, secrets)": 0.25,
        "database schema": 0.75, "web users (passwords)": 0.25,
        "runtime, FastAGI, HTTP": 0.25, "AMI login": 0.1,
        "taking up the state (Asterisk, store)": 0.25}
    assert startup.counts(events) == {"log_lines": 9, "users": 1002, "pending": 0,
                                      "agents_taken_up": 1000,
                                      "hashed_behind": {"hashed": 0, "seconds": 0.0}}


def test_a_phase_whose_event_is_missing_is_left_out(tmp_path):
    events = startup.log_events(_log(tmp_path, [(101.0, "app.migrated", {}),
                                                (103.0, "app.started", {})]))
    assert startup.phases(events, spawned=100.0) == {"database schema": 1.0,
                                                     "runtime, FastAGI, HTTP": 2.0}


def _size(first, second, restart, own=0.3):
    return {k: {"seconds": v, "server_seconds": own, "phases": {"AMI login": 0.01}}
            for k, v in (("first", first), ("second", second), ("restart", restart))}


def test_the_target_wants_every_start_in_time_and_a_restart_that_does_not_grow():
    ok = {"target_seconds": 5.0, "sizes": {"100": _size(1.2, 1.1, 1.2, own=0.25),
                                           "1000": _size(1.4, 1.3, 1.7, own=0.4)}}
    met, text = report.startup_target(ok)
    assert met is True and "1000 agents" in text and "(+0.15 s)" in text
    slow = {"sizes": {"1000": _size(158.0, 2.4, 2.5)}}
    assert report.startup_target(slow)[0] is False
    grows = {"sizes": {"100": _size(1.0, 1.0, 1.0, own=0.3),
                       "1000": _size(1.0, 1.0, 2.0, own=1.3)}}
    assert report.startup_target(grows)[0] is False
    assert report.startup_target({}) == (None, "not measured")
    assert report.startup_target({"sizes": {"300": _size(1.0, 1.0, 1.0)}})[0] is None
    targets = {t["id"]: t["met"] for t in report.evaluate({"measures": {"startup": ok}})}
    assert targets[8] is True


def test_the_page_has_the_start_up_table_and_says_why_a_miss(tmp_path):
    big = _size(158.0, 2.4, 2.5)
    big["first"].update(hashed_behind={"hashed": 1002, "seconds": 150.2},
                        pending_login_status=200, pending=1002, log_lines=15)
    big["first"]["phases"] = {"web users (passwords)": 155.0, "AMI login": 0.01}
    res = {"measures": {"startup": {"target_seconds": 5.0, "sizes": {"1000": {
        "groups": 50, "web_users": 1002, **big}}}}}
    res["targets"] = report.evaluate(res)
    res["notes"] = report.gap_notes(res)
    md = report.write_docs(res, tmp_path).read_text()
    assert "## Start-up (target 8)" in md and "| first | 158 |" in md
    assert "1002 passwords were hashed behind in 150.2 s" in md
    assert "**Why (8) is missed.**" in md and "web users (passwords) (155 s)" in md
