"""Every key of every node kind wrong in turn, generated from the flow model's table
(agi.flows.model.KINDS, COMMON, CASE_KEYS, FLOW_KEYS), so a key or kind added later is covered
without touching this file.

The base is tests/unit/flows/good.yaml (one node of every kind, checked clean). For each key a
value of the wrong type (and for numbers, one out of range) is written in; the loader rejects
the file with a FlowError that names the file, the line of the value, the node and the key."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from agi.flows.loader import load_text
from agi.flows.model import CASE_KEYS, COMMON, FLOW_KEYS, KINDS, TYPES, FlowError

GOOD = Path(__file__).parent / "flows" / "good.yaml"
BASE = yaml.safe_load(GOOD.read_text())
FILE = "flows/every_key.yaml"
GROUPS = ("general", "orders")

#: A wrong value for each type of the table (a wrong type where there is one, else a bad value).
WRONG = {
    "node": [1, 2], "keymap": "not a mapping", "prompt": 5, "text": [1, 2],
    "name": "1 no spaces", "int": "many", "seconds": "long", "bool": "maybe", "keys": "AB",
    "regex": "([unclosed", "vars": "not a mapping", "strmap": ["a", "b"], "cases": "not a list",
    "hours": ["whenever"], "dates": ["someday"], "timezone": "Mars/Olympus_Mons",
    "url": "ftp://127.0.0.1/x", "method": "PUT", "flow": {"a": 1}, "group": "no group!",
    "ask": "dna",
}
#: Numbers out of range.
RANGE = {"int": -1, "seconds": -1}


def node_of(kind):
    """The name of good.yaml's node of this kind."""
    return next(n for n, v in BASE["nodes"].items() if v["kind"] == kind)


def cases():
    out = []
    for kind, table in KINDS.items():
        for key, spec in {**COMMON, **table}.items():
            out.append(pytest.param(("nodes", node_of(kind), key), spec.type, WRONG[spec.type],
                                    id=f"{kind}.{key}-type"))
            if spec.type in RANGE:
                out.append(pytest.param(("nodes", node_of(kind), key), spec.type,
                                        RANGE[spec.type], id=f"{kind}.{key}-range"))
    for key, spec in CASE_KEYS.items():
        out.append(pytest.param(("nodes", "branch", "cases", 0, key), spec.type, WRONG[spec.type],
                                id=f"branch.cases.{key}-type"))
    for key, spec in FLOW_KEYS.items():
        value = "not a mapping" if key == "nodes" else WRONG[spec.type]
        out.append(pytest.param((key,), spec.type, value, id=f"flow.{key}-type"))
    return out


def put(data, path, value):
    cur = data
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


def line_of(text, path):
    """The line of the value at ``path``, by walking YAML's own node tree."""
    node = yaml.compose(text)
    for p in path:
        node = node.value[p] if isinstance(p, int) else next(v for k, v in node.value if k.value == p)
    return node.start_mark.line + 1


def test_good_yaml_has_every_kind_and_loads_clean():
    assert {v["kind"] for v in BASE["nodes"].values()} == set(KINDS)
    assert set(WRONG) == set(TYPES)
    flow, errors = load_text(GOOD.read_text(), FILE, groups=GROUPS)
    assert errors == [] and flow is not None


@pytest.mark.parametrize("path, type_, value", cases())
def test_every_key_wrong_is_rejected_with_file_line_and_message(path, type_, value):
    data = copy.deepcopy(BASE)
    put(data, path, value)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    flow, errors = load_text(text, FILE, groups=GROUPS)
    assert errors, f"{path} = {value!r} was accepted"
    assert all(isinstance(e, FlowError) and e.id.startswith("flow.") for e in errors)
    line = line_of(text, path)
    here = [e for e in errors if e.line == line]
    assert here, f"no error at line {line} for {path}: {[str(e) for e in errors]}"
    e = here[0]
    assert e.file == FILE and e.id in ("flow.bad_type", "flow.bad_value", "flow.unknown_kind",
                                        "flow.unknown_group"), str(e)
    if path[0] == "nodes" and len(path) > 1:
        assert f"node {path[1]!r}" in e.message, str(e)
        assert path[-1] in e.message or path[-1] == "kind", str(e)
    assert str(e).startswith(f"{FILE}:{line}: ")
