"""Agents, groups and users: config.yaml seeds them, the page changes them (acd.admin_config):
the same model as the memberships, and the same rules as the file."""
from __future__ import annotations

import pytest

from acd import admin_config as ac
from acd.config import AgentConfig, Config, ConfigError, GroupConfig, WebConfig, WebUserConfig


def cfg() -> Config:
    return Config(agents=(AgentConfig("1001", "Alice", "sip-pass-1", "web-pass-1"),
                          AgentConfig("1002", "Bob", "sip-pass-2", "web-pass-2")),
                  groups=(GroupConfig("sales", members={"1001": 1, "1002": 2}),),
                  web=WebConfig(users=(WebUserConfig("admin", "admin", "admin-pass"),)))


def test_the_file_seeds_then_the_page_is_the_truth_then_file_edits_win():
    file = ac.entries_of(cfg())
    first = ac.reconcile(file, [])
    assert first.entries == file and len(first.upserts) == 4 and not first.notes
    rows = {(r.kind, r.key): r for r in first.upserts}
    # on the page: Bob renamed, a new agent, the admin removed
    bob = {**rows[("agent", "1002")].doc, "name": "Robert"}
    rows[("agent", "1002")] = ac.Row("agent", "1002", bob, rows[("agent", "1002")].seeded)
    rows[("agent", "1003")] = ac.Row("agent", "1003", ac.doc_of("agent", AgentConfig(
        "1003", "Carol", "sip-pass-3", "web-pass-3")), None)
    rows[("user", "admin")] = ac.Row("user", "admin", None, rows[("user", "admin")].seeded)
    again = ac.reconcile(file, rows.values())
    assert list(again.entries["agent"]) == ["1001", "1002", "1003"]
    assert again.entries["agent"]["1002"]["name"] == "Robert"
    assert again.entries["user"] == {} and not again.upserts and not again.deletes
    # the file edited since: Bob's name there wins; Alice removed there goes
    edited = ac.entries_of(cfg())
    edited["agent"]["1002"] = {**edited["agent"]["1002"], "name": "Bobby"}
    del edited["agent"]["1001"]
    third = ac.reconcile(edited, rows.values())
    assert third.entries["agent"]["1002"]["name"] == "Bobby"
    assert ("agent", "1001") in third.deletes and "1003" in third.entries["agent"]
    assert any("1002" in n for n in third.notes) and any("1001 removed" in n for n in third.notes)


def test_config_with_checks_by_the_files_rules_and_keeps_members():
    base = cfg()
    entries = ac.entries_of(base)
    entries["agent"]["x y"] = ac.doc_of("agent", AgentConfig("x y", "Bad", "sip-pass-9", ""))
    with pytest.raises(ConfigError) as err:
        ac.config_with(base, entries)
    assert err.value.id == "config.invalid" and "agents[2].id" in err.value.message
    assert ac.field_of(err.value.key, entries, "agent", "x y") == "id"
    assert ac.field_of(err.value.key, entries, "agent", "1001") == "agents[2].id"
    del entries["agent"]["x y"]
    entries["group"]["vip"] = {**ac.doc_of("group", GroupConfig("vip")), "wrapup_seconds": 5}
    new = ac.config_with(base, entries)
    assert [g.name for g in new.groups] == ["sales", "vip"]
    assert new.groups[0].members == {"1001": 1, "1002": 2} and new.groups[1].members == {}
    assert new.groups[1].wrapup_seconds == 5.0
    entries["group"]["vip"]["strategy"] = "loudest"
    with pytest.raises(ConfigError):
        ac.config_with(base, entries)
    entries["group"]["vip"]["strategy"] = "round_robin"
    entries["group"]["vip"]["unknown_key"] = 1
    with pytest.raises(ConfigError) as err:
        ac.config_with(base, entries)
    assert "unknown key" in err.value.message
    # an agent removed leaves the groups
    del entries["group"]["vip"]["unknown_key"]
    del entries["agent"]["1002"]
    assert ac.config_with(base, entries).groups[0].members == {"1001": 1}


def test_secrets_are_never_shown_and_versions_follow_the_text():
    doc = ac.doc_of("agent", cfg().agents[0])
    shown = ac.public("agent", doc)
    assert "password" not in shown and "web_password" not in shown
    assert shown["has_password"] is True and shown["name"] == "Alice"
    assert ac.version(doc) == ac.version(dict(reversed(list(doc.items()))))
    assert ac.version(doc) != ac.version({**doc, "name": "Alicia"})
