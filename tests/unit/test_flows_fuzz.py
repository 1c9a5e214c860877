"""Property-based tests (Hypothesis) for the flow loader: arbitrary text, arbitrary YAML
documents and mutated good flows never crash it; what comes out is a flow, or FlowErrors with
one of the documented ids, the file's name and a line inside the file. A flow that loads
passes the checks across files (check_set) without crashing, and a file that is not UTF-8
is refused as such.

Examples are few (the whole file runs in seconds); each run draws new ones."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agi.flows.loader import check_set, load_file, load_text
from agi.flows.model import FlowError

GOOD_TEXT = (Path(__file__).parent / "flows" / "good.yaml").read_text()
GOOD = yaml.safe_load(GOOD_TEXT)
FILE = "flows/fuzz.yaml"
GROUPS = ("general", "orders")

#: The error ids of the checker (agi/flows/loader.py's docstring; tests/unit/test_flows_checker).
DOCUMENTED = {"flow.yaml_syntax", "flow.unknown_kind", "flow.unknown_key", "flow.missing_key",
              "flow.bad_type", "flow.bad_value", "flow.unknown_node", "flow.unreachable",
              "flow.loop_without_input", "flow.prompt_missing", "flow.unknown_flow",
              "flow.unknown_group", "flow.duplicate_flow", "flow.read_error"}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                    st.sampled_from(["next", "start", "menu", "kind", "play", "*", "#", "${x}",
                                     "${", "mon-fri 09:00-18:00", "2026-02-30", "UTC", "(", "1",
                                     "http://127.0.0.1/x", "hangup", "agent", "general"]))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(
        ["nodes", "kind", "next", "prompt", "keys", "cases", "start", "name", "voice"])),
        inner, max_size=5)), max_leaves=25)


def check(text: str, flow, errors) -> None:
    lines = text.count("\n") + 1
    assert flow is not None or errors, "no flow and no error"
    for e in errors:
        assert isinstance(e, FlowError)
        assert e.id in DOCUMENTED, e
        assert e.file == FILE and 0 <= e.line <= lines + 1, e
        assert e.message and str(e).endswith(f"[{e.id}]")
    if flow is not None and not errors:
        assert flow.start in flow.nodes
        for other in check_set([flow]):
            assert other.id in DOCUMENTED, other


@FAST
@given(st.text(max_size=400))
def test_any_text(text):
    flow, errors = load_text(text, FILE, groups=GROUPS)
    check(text, flow, errors)


@FAST
@given(documents)
def test_any_yaml_document(doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    flow, errors = load_text(text, FILE, groups=GROUPS)
    check(text, flow, errors)


def _paths(value, prefix=()):
    """Every path into a document (keys of mappings, indexes of lists)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(GOOD) if p]


@st.composite
def mutated(draw):
    doc = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        cur = doc
        try:
            for p in path[:-1]:
                cur = cur[p]
            last = path[-1]
            cur[last]                                  # an earlier mutation may have moved it
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "rename"]))
        if action == "replace":
            cur[last] = draw(documents)
        elif action == "delete":
            del cur[last]
        elif isinstance(cur, dict):
            cur[draw(st.text(min_size=1, max_size=10))] = cur.pop(last)
    return doc


@FAST
@given(mutated())
def test_mutated_good_flows(doc):
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    flow, errors = load_text(text, FILE, groups=GROUPS)
    check(text, flow, errors)


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_from_a_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "flow.yaml"
    path.write_bytes(data)
    flow, errors = load_file(path, groups=GROUPS, display=FILE)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert flow is None and [e.id for e in errors] == ["flow.read_error"]
        return
    check(text, flow, errors)


def test_the_good_flow_is_a_fixed_point():
    """The base of the mutations loads clean (so a mutation is what breaks it)."""
    flow, errors = load_text(GOOD_TEXT, FILE, groups=GROUPS)
    assert errors == [] and flow is not None
    flow, errors = load_text(yaml.safe_dump(GOOD, sort_keys=False), FILE, groups=GROUPS)
    assert errors == [] and flow is not None
