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


def _bridge_event(name: str, creator: str, context: str, exten: str = "s"):
    from acd.ami.events import parse_event
    return parse_event({"Event": name, "Channel": "PJSIP/x-1", "Uniqueid": "u1",
                        "Context": context, "Exten": exten, "BridgeUniqueid": "b1",
                        "BridgeCreator": creator, "BridgeNumChannels": "1"})


def test_a_holding_bridge_is_no_conversation_but_a_leg_entering_its_first_says_it_is_up():
    enter, leave = "BridgeEnter", "BridgeLeave"
    for context, exten in (("acd-agent", "s"), ("acd-customer", "s"), ("acd-hold", "target")):
        assert ami_in.translate(_bridge_event(enter, "BridgeWait", context, exten)) == \
            ami_in.OriginateAnswered("u1", "PJSIP/x-1")
    for context, exten in (("acd-queue", "wait"), ("acd-hold", "caller"), ("acd-hold", "agent")):
        assert ami_in.translate(_bridge_event(enter, "BridgeWait", context, exten)) is None
    assert ami_in.translate(_bridge_event(leave, "BridgeWait", "acd-agent")) is None
    # A bridge of ours (AMI Bridge: no creator) is a conversation, whoever enters it.
    assert ami_in.translate(_bridge_event(enter, "", "acd-agent")) == ami_in.BridgeEntered(
        "u1", "b1")
    assert ami_in.translate(_bridge_event(leave, "", "acd-queue")) == ami_in.BridgeLeft(
        "u1", "b1", "PJSIP/x-1")


def test_a_channel_alone_in_its_bridge_counts_as_in_no_bridge():
    from acd.runtime.ami_out import conversations_only
    chans = [{"Channel": "a", "BridgeId": "b1"}, {"Channel": "b", "BridgeId": "b1"},
             {"Channel": "c", "BridgeId": "hold-c"}, {"Channel": "d", "BridgeId": ""},
             {"Channel": "e"}]
    assert [c.get("BridgeId") for c in conversations_only(chans)] == ["b1", "b1", "", "", None]
    assert chans[2]["BridgeId"] == "hold-c"          # the reading itself is left as it was
