"""The wall board's figures: computed from the call records with the core's own counting
rules, checked against the core's counters on the same calls (the real runtime over a fake
AMI, a real store), and their pure parts (intervals, occupancy, the Prometheus text)."""
from __future__ import annotations

import re

import pytest

from acd.config import WebConfig
from acd.web import stats
from acd.web.pages import WebContext
from tests.unit.test_runtime import T0, env, start  # noqa: F401
from tests.web_login import FAST_PASSWORDS


class _Cfg:
    web = WebConfig(timezone="UTC")
    groups = ()
    agents = ()


async def _answered_call(env, uid, wait, talk, number="13800138000"):  # noqa: F811
    await env.arrive(uid, number=number)
    leg = env.leg("1001")
    env.clock.now += wait
    env.ringing(leg)
    env.answered(leg)
    await env.settle()
    env.clock.now += talk
    env.hangup(leg["ChannelId"], f"PJSIP/x-{leg['ChannelId']}")
    await env.settle()


async def test_board_figures_match_the_core_counters_on_the_same_calls(env):  # noqa: F811
    from acd.web.auth import Auth
    from acd.web.webdb import WebDb
    await start(env, "1001")
    env.rt.login("1001")
    await env.settle()
    await _answered_call(env, "c1", wait=5, talk=60)        # within the 20 s service level
    await _answered_call(env, "c2", wait=0, talk=0)
    env.rt.set_state("1001", "break", "")                   # nobody to take the next ones
    await env.settle()
    await env.arrive("c3")
    env.clock.now += 40
    env.hangup("c3", "PJSIP/acd-caller-c3")                 # abandoned while waiting
    await env.arrive("c4")
    env.clock.now += 25                                      # answered after 25 s: outside
    env.rt.set_state("1001", "idle", "")
    await env.settle()
    leg = env.leg("1001")
    env.ringing(leg)
    env.answered(leg)
    await env.settle()
    env.clock.now += 30
    await env.settle()

    cfg = _Cfg()
    cfg.groups = [g for g in __import__("tests.unit.test_runtime", fromlist=["GROUPS"]).GROUPS]
    ctx = WebContext(cfg, env.store, Auth(WebDb(env.store), passwords=FAST_PASSWORDS),
                     env.rt, clock=env.clock)
    board = await ctx.board()
    core = env.rt.queues()["sales"]
    g = board["groups"]["sales"]
    for key in ("offered", "answered", "abandoned"):
        assert g[key] == core[key], key
    assert g["answered_within_sl"] == core["answered_within_sl"] == 2
    assert (g["offered"], g["answered"], g["abandoned"]) == (4, 3, 1)
    assert g["service_level"] == pytest.approx(core["service_level"]) == 0.5
    assert g["answer_rate"] == 0.75 and g["abandon_rate"] == 0.25
    assert g["asa"] == pytest.approx((5 + 0 + 25) / 3, abs=0.1)
    assert g["aht"] == pytest.approx(30.0, abs=0.1)          # 60 and 0: handling ended
    # live figures are the core's
    assert g["waiting"] == core["waiting"] and g["agents"] == core["agents"]
    a = board["agents"]["1001"]
    assert a["state"] == "talking" and a["calls_handled"] == 3
    assert a["talk_time"] == pytest.approx(60 + 0 + 30, abs=0.1)
    # idle, ringing, talking and wrap-up time: occupancy = talk / all of it
    assert 0 < a["occupancy"] <= 1
    rows = board["intervals"]["sales"]
    assert sum(r["offered"] for r in rows) == 4 and sum(r["abandoned"] for r in rows) == 1


def test_intervals_put_each_event_where_it_happened():
    day = 1_800_000_000 - (1_800_000_000 % 86400)
    calls = [
        {"uniqueid": "a", "group": "g", "verification": "verified", "events": [
            {"kind": "queued", "at": day + 100, "detail": {"group": "g"}},
            {"kind": "answered", "at": day + 110, "detail": {"group": "g", "agent": "1"}},
            {"kind": "ended", "at": day + 1000, "detail": {"reason": "caller_hangup"}},
            {"kind": "rated", "at": day + 1005, "detail": {"rating": 2}},
            {"kind": "survey_ended", "at": day + 1009, "detail": {"rating": 2}},
            {"kind": "rated", "at": day + 1010, "detail": {"rating": 5}}]},
        {"uniqueid": "b", "group": "g", "verification": None, "events": [
            {"kind": "queued", "at": day + 950, "detail": {"group": "g"}},
            {"kind": "ended", "at": day + 1900, "detail": {"reason": "abandoned"}},
            {"kind": "rated", "at": day + 1950, "detail": {"rating": 3}}]},
    ]
    totals, series = stats.group_figures(calls, since=day, until=day + 86400,
                                         sl_seconds={"g": 20})
    g = totals["g"]
    assert (g["offered"], g["answered"], g["abandoned"], g["answered_within_sl"]) == (2, 1, 1, 1)
    assert g["verified_share"] == 0.5 and g["aht"] == 890.0
    assert (g["ratings"], g["satisfied"], g["satisfaction"]) == (2, 1, 0.5)   # last rating per call
    rows = series["g"]
    assert len(rows) == 96
    assert (rows[0]["offered"], rows[0]["answered"]) == (1, 1)
    assert (rows[1]["offered"], rows[1]["abandoned"]) == (1, 0)
    assert rows[2]["abandoned"] == 1


def test_occupancy_and_times_from_state_rows():
    rows = {"1": [{"state": "idle", "at": 0}, {"state": "ringing", "at": 60},
                  {"state": "talking", "at": 70}, {"state": "wrapup", "at": 130},
                  {"state": "break", "at": 160}, {"state": "idle", "at": 460}]}
    f = stats.agent_figures(rows, since=0, now=500)["1"]
    assert f["calls_handled"] == 1 and f["talk_time"] == 60 and f["wrapup_time"] == 30
    # available: idle 60 + 40, ringing 10, talking 60, wrap-up 30 = 200; busy 90
    assert f["occupancy"] == 0.45


def test_metrics_text_is_prometheus_format():
    board = {"groups": {"sa\"les": {"waiting": 2, "longest_wait": 12.5, "callbacks_pending": 0,
                                    "agents": {"idle": 1}, "offered": 3, "answered": 2,
                                    "abandoned": 1, "answer_rate": 0.6667, "abandon_rate": 0.3333,
                                    "service_level": None, "satisfaction": None,
                                    "verified_share": 0.5, "asa": 3.0, "aht": 40.0}},
             "agents": {"1001": {"state": "idle", "calls_handled": 2, "talk_time": 80.0,
                                 "wrapup_time": 10.0, "occupancy": 0.5}}}
    text = stats.metrics_text(board, {"sa\"les": {"offered": 7, "answered": 5, "abandoned": 2}})
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert 'acd_queue_waiting{group="sa\\"les"} 2' in text
    assert 'acd_offered_calls_total{group="sa\\"les"} 7' in text
    assert "acd_today_service_level_ratio" in text and 'service_level_ratio{' not in text
    assert 'acd_agent_state{agent="1001",state="idle"} 1' in text
    assert "acd_store_writes_pending" not in text
    text = stats.metrics_text(board, {}, {"pending": 34, "oldest_seconds": 6.5, "failing": True,
                                          "retries": 9, "failed": 0})
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert "acd_store_writes_pending 34" in text and "acd_store_writes_failing 1" in text
    assert "acd_store_writes_oldest_seconds 6.5" in text
    assert "acd_store_write_retries_total 9" in text


def test_every_figure_on_the_board_has_a_definition():
    for key in ("waiting", "longest_wait", "offered", "answered", "abandoned", "answer_rate",
                "abandon_rate", "service_level", "asa", "aht", "callbacks_pending",
                "satisfaction", "verified_share", "calls_handled", "talk_time", "wrapup_time",
                "occupancy"):
        assert stats.DEFINITIONS[key]
