"""The runtime's two tables: every fact from Asterisk has a meaning, and every decision the
core can emit has exactly one handler. A decision added to the core without a handler fails
the build here; at run time it would be logged as an error, never dropped in silence."""
from __future__ import annotations

import typing

import structlog

from acd.core import DECISION_TYPES, Acd, Decision, GroupConfig
from acd.runtime import AcdRuntime
from acd.runtime import ami_in


class _Nothing:
    def on_event(self, cb): ...
    def on_connection(self, cb): ...


def _runtime() -> AcdRuntime:
    return AcdRuntime(Acd([GroupConfig("sales", members={"1001": 1})]), _Nothing(), None, None,
                      endpoints={"1001": "1001"})


def test_every_decision_type_has_exactly_one_handler():
    table = _runtime()._decision_table()
    assert set(table) == set(DECISION_TYPES), (
        "decisions without a handler: "
        f"{sorted(t.__name__ for t in set(DECISION_TYPES) - set(table))}; "
        f"handlers of no decision: {sorted(t.__name__ for t in set(table) - set(DECISION_TYPES))}")
    assert len(DECISION_TYPES) == len(set(DECISION_TYPES))


def test_the_decision_union_and_the_list_of_types_agree():
    assert set(typing.get_args(Decision)) == set(DECISION_TYPES)


def test_every_fact_has_a_meaning():
    assert set(_runtime()._fact_table()) == set(ami_in.FACT_TYPES)
    assert set(typing.get_args(ami_in.Fact)) == set(ami_in.FACT_TYPES)


def test_a_decision_without_a_handler_is_logged_not_dropped_silently():
    rt = _runtime()

    class Unknown:
        call_id, agent_id = "c1", "1001"

    with structlog.testing.capture_logs() as logs:
        rt.apply([Unknown()])
    [entry] = [e for e in logs if e["event"] == "runtime.decision_unhandled"]
    assert entry["log_level"] == "error" and entry["decision"] == "Unknown"
    assert entry["call"] == "c1"
