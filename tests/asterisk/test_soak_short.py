"""The soak (`make soak`, bench/soak.py), short: about a minute of calls through the session's
real Asterisk to a skill group of three agents on real phones, our server as a process of its
own, the agents holding, transferring and taking breaks over the HTTP API while callers come
and some hang up on their own. Then: no call lost, every record whole and matching what the
callers lived, every agent in the right state against Asterisk's channels.

Memory and timing are reported by the soak, never asserted here.
"""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from acd.asterisk.runner import Asterisk
from bench.soak import Soak, SoakPlan, soak_group, summary_lines
from tests.asterisk.control_fixtures import control_config  # noqa: F401
from tests.asterisk.acd_fixtures import acd_config  # noqa: F401
from tests.asterisk.flow_fixtures import FLOW_GROUPS, FLOW_NUMBERS

AGENTS = ["1001", "1002", "1003"]
NUMBER = "7130"


@pytest.fixture
def soak_config(asterisk, control_config):  # noqa: F811
    """Every test group and flow number of the session plus the soak's group, rendered into
    the session's Asterisk (a superset: the tests after this one still find theirs)."""
    names = {g.name for g in control_config.groups}
    groups = (tuple(control_config.groups)
              + tuple(g for g in FLOW_GROUPS if g.name not in names)
              + (soak_group(AGENTS, NUMBER),))
    cfg = replace(control_config, groups=groups,
                  flows=replace(control_config.flows, numbers=dict(FLOW_NUMBERS)))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    return cfg


async def test_short_soak_loses_no_call_and_leaves_records_and_agents_right(soak_config, tmp_path):
    plan = SoakPlan(minutes=1.0, rate=0.2, talk=7.0, talk_min=5.0, talk_max=10.0,
                    abandon=0.15, patience=(2.0, 12.0), max_wait=60.0, hold=0.3, transfer=0.3,
                    away=0.05, away_seconds=(3.0, 8.0), sample_every=2.0, progress_every=20.0,
                    seed=20261121)
    res = await Soak(soak_config, AGENTS, plan, tmp_path / "soak", number=NUMBER).run()
    (tmp_path / "soak-result.json").write_text(json.dumps(res, indent=1))
    print("\n".join(summary_lines(res)))          # shown with a failure

    calls = res["calls"]
    assert calls["offered"] >= 5, calls
    assert calls["lost"] == 0, res["lost_calls"]
    assert calls["outcomes"].get("completed", 0) >= 1, calls
    # Every call the callers placed has its one record, whole; no record the callers did not
    # live; none left open.
    assert res["records"]["wrong"] == 0, res["records"]
    assert calls["records"] == calls["offered"] - calls["outcomes"].get("refused_by_asterisk", 0)
    # The agents acted over the API while calls flowed (the soak is not only calls).
    done = res["actions"]["done"]
    assert sum(done.values()) >= 1, res["actions"]
    assert res["actions"]["failed"] == [], res["actions"]
    # Each agent is where the truth says: idle, no channel in Asterisk, phone registered.
    assert res["agents"]["wrong"] == {}, res["agents"]
    for a in AGENTS:
        view = res["agents"]["agents"][a]
        assert (view["state"], view["channels"], view["registered"]) == ("idle", 0, True), view
    # The run ends with Asterisk's channel list empty (what the session had before apart).
    assert res["channels_left"]["left"] == [], res["channels_left"]
    assert res["targets"]["no_channels_left"] is True
    assert res["targets"]["zero_lost"] and res["targets"]["zero_wrong"], res["targets"]
    assert res["memory"]["samples"] > 0
