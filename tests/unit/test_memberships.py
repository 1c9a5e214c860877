"""Memberships: config.yaml seeds, the page changes, the file's later edits win for what they
change (acd.memberships.reconcile); and the same through a real store across "restarts"."""
from __future__ import annotations

from dataclasses import replace

import structlog

from acd import config as configmod
from acd.app import members_in_force
from acd.memberships import Row, reconcile, version
from tests.conftest import BOTH_DATABASES

FILE = {"sales": {"a": 1, "b": 2}, "support": {"b": 1}}
AGENTS = ("a", "b", "c")


def test_the_first_start_seeds_the_file():
    r = reconcile(FILE, AGENTS, [])
    assert r.members == FILE and not r.deletes and not r.notes
    assert sorted(r.upserts, key=lambda x: (x.group, x.agent)) == [
        Row("sales", "a", 1, 1), Row("sales", "b", 2, 2), Row("support", "b", 1, 1)]


def test_the_pages_changes_stay_while_the_file_is_unchanged():
    rows = [Row("sales", "a", 5, 1),          # level changed on the page
            Row("sales", "b", None, 2),       # removed on the page
            Row("support", "b", 1, 1),
            Row("support", "c", 3, None)]     # added on the page
    r = reconcile(FILE, AGENTS, rows)
    assert r.members == {"sales": {"a": 5}, "support": {"b": 1, "c": 3}}
    assert not r.upserts and not r.deletes and not r.notes


def test_a_later_edit_of_the_file_wins_for_what_it_changes():
    rows = [Row("sales", "a", 5, 1), Row("sales", "b", None, 2), Row("support", "b", 1, 1),
            Row("support", "c", 3, None)]
    edited = {"sales": {"a": 4, "b": 2}, "support": {"c": 9}}      # a: 1 -> 4; b left support
    r = reconcile(edited, AGENTS, rows)
    assert r.members == {"sales": {"a": 4}, "support": {"c": 9}}
    assert Row("sales", "a", 4, 4) in r.upserts and Row("support", "c", 9, 9) in r.upserts
    assert ("support", "b") in r.deletes
    assert len(r.notes) == 3                  # a's level, c's level, b's removal


def test_rows_of_groups_or_agents_no_longer_configured_go():
    rows = [Row("gone", "a", 1, None), Row("sales", "zed", 1, None)]
    r = reconcile(FILE, AGENTS, rows)
    assert sorted(r.deletes) == [("gone", "a"), ("sales", "zed")]


def test_the_version_tells_changes_apart():
    assert version({"a": 1, "b": 2}) == version({"b": 2, "a": 1})
    assert version({"a": 1}) != version({"a": 2}) != version({})


@BOTH_DATABASES
async def test_a_change_survives_a_restart_and_a_file_edit_wins(store):
    cfg = configmod.Config(
        agents=(configmod.AgentConfig(id="a"), configmod.AgentConfig(id="b")),
        groups=(configmod.GroupConfig(name="sales", members={"a": 1}),))
    log = structlog.get_logger()
    first = await members_in_force(store, cfg, log)
    assert first.groups[0].members == {"a": 1}
    from datetime import datetime, timezone
    await store.write_members([Row("sales", "b", 3, None), Row("sales", "a", 2, 1)], [],
                              at=datetime.now(timezone.utc), by="sup")
    again = await members_in_force(store, cfg, log)              # a restart, file unchanged
    assert again.groups[0].members == {"a": 2, "b": 3}
    edited = replace(cfg, groups=(replace(cfg.groups[0], members={"a": 7}),))
    after_edit = await members_in_force(store, edited, log)
    assert after_edit.groups[0].members == {"a": 7, "b": 3}
