"""Every configuration key wrong in turn, generated from the schema (acd.config's dataclasses),
so a key added later is covered without touching this file.

For each key: a value of the wrong type, and for each number a negative one, written into a
config file that is otherwise valid; the error names the key, the file and the line of the
value. For each key of a section, the same through ``ACD_<SECTION>__<KEY>``: the error names
the variable. Each section (and each item of a list of sections) refuses an unknown key."""
from __future__ import annotations

import copy
import dataclasses
import re
import typing

import pytest
import yaml

from acd import config as configmod
from acd.config import Config, ConfigError

#: A valid config that has one of everything (a list item of each kind), to break one key of.
BASE = {
    "asterisk": {"loopback_trunk": True},            # callbacks need a way out
    "agents": [{"id": "1001", "name": "Alice"}],
    "groups": [{"name": "general", "members": {"1001": 5},
                "widen": [{"after": 10, "groups": [], "min_level": 1}],
                "callback": {"key": "*"}}],
    "web": {"users": [{"username": "admin", "role": "admin"}],
            "side_panels": [{"title": "Orders", "url": "https://erp.example/o?c={customer_id}"}]},
    "flows": {"numbers": {"7005": "hotline"}},
}


def _unwrap(tp):
    """X | None -> X."""
    if typing.get_origin(tp) is typing.Union or type(tp).__name__ == "UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def schema(tp=Config, prefix=""):
    """(dotted key, type, kind) for every key; kind: section, sections (a list of them), leaf.
    A list of sections is walked through its first item (``key[0].sub``)."""
    hints = typing.get_type_hints(tp)
    for f in dataclasses.fields(tp):
        if f.name in configmod._INTERNAL:
            continue
        t = _unwrap(hints[f.name])
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(t):
            yield key, t, "section"
            yield from schema(t, key + ".")
        elif typing.get_origin(t) is tuple and dataclasses.is_dataclass(typing.get_args(t)[0]):
            yield key, t, "sections"
            yield from schema(typing.get_args(t)[0], key + "[0].")
        else:
            yield key, t, "leaf"


def wrong_type(tp, kind):
    """A YAML value of the wrong type for ``tp``, and a word the error must say."""
    if kind == "section":
        return "plain text", "mapping"
    if kind == "sections" or typing.get_origin(tp) is tuple:
        return "plain text", "list"
    if typing.get_origin(tp) is dict:
        return "plain text", "mapping"
    return {int: ("eleven", "whole number"), float: ("fast", "number"),
            bool: ("maybe", "true or false"), str: ([1, 2], "text")}[tp]


def _parts(key):
    return [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"[^.\[\]]+|\[\d+\]", key)]


def put(data, key, value):
    cur = data
    *head, last = _parts(key)
    for p in head:
        cur = cur[p] if isinstance(p, int) else cur.setdefault(p, {})
    cur[last] = value


def line_of(text, key):
    """The line of ``key``'s value in ``text``, found by walking YAML's own node tree."""
    node = yaml.compose(text)
    for p in _parts(key):
        if isinstance(p, int):
            node = node.value[p]
        else:
            node = next(v for k, v in node.value if k.value == p)
    return node.start_mark.line + 1


def write(tmp_path, data):
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def load_error(path, environ=None):
    with pytest.raises(ConfigError) as info:
        configmod.load(path, environ=environ or {})
    return info.value


KEYS = list(schema())
CASES = [pytest.param(key, *wrong_type(tp, kind), id=f"{key}-type") for key, tp, kind in KEYS]
CASES += [pytest.param(key, -1, "", id=f"{key}-negative")
          for key, tp, kind in KEYS if kind == "leaf" and tp in (int, float)]


def test_the_base_config_is_valid_and_the_schema_is_walked(tmp_path):
    path, _ = write(tmp_path, BASE)
    cfg = configmod.load(path, environ={})
    assert cfg.groups[0].callback is not None and cfg.groups[0].widen
    keys = {k for k, _t, _kind in KEYS}
    assert {"http.port", "groups[0].widen[0].after", "groups[0].callback.attempts",
            "web.side_panels[0].url", "web.websockets_per_session"} <= keys
    assert len(keys) > 100


@pytest.mark.parametrize("key, value, word", CASES)
def test_every_key_wrong_in_the_file_names_key_file_and_line(tmp_path, key, value, word):
    data = copy.deepcopy(BASE)
    put(data, key, value)
    path, text = write(tmp_path, data)
    err = load_error(path)
    assert err.id == "config.invalid"
    assert err.key == key, str(err)
    assert err.where == f"{path}, line {line_of(text, key)}", str(err)
    assert word in err.message and err.message.strip(), str(err)
    if value == -1:
        assert "-1" in err.message, str(err)       # says which value it refused


ENV_KEYS = [(k, tp, kind) for k, tp, kind in KEYS
            if k.count(".") == 1 and "[" not in k and kind == "leaf"]


@pytest.mark.parametrize("key, tp", [pytest.param(k, tp, id=k) for k, tp, _ in ENV_KEYS])
def test_every_section_key_wrong_in_the_environment_names_the_variable(tmp_path, key, tp):
    section, name = key.split(".")
    var = f"ACD_{section.upper()}__{name.upper()}"
    value, word = wrong_type(tp, "leaf")
    raw = "[1, 2]" if isinstance(value, list) else value
    path, _ = write(tmp_path, BASE)
    err = load_error(path, {var: raw})
    assert (err.key, err.where) == (key, f"environment variable {var}"), str(err)
    assert word in err.message, str(err)
    if tp in (int, float):
        err = load_error(path, {var: "-1"})
        assert (err.key, err.where) == (key, f"environment variable {var}"), str(err)


SECTIONS = [k for k, _tp, kind in KEYS if kind == "section"] + \
           [f"{k}[0]" for k, _tp, kind in KEYS if kind == "sections"] + [""]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s or "top")
def test_every_section_refuses_an_unknown_key(tmp_path, section):
    data = copy.deepcopy(BASE)
    key = f"{section}.colour" if section else "colour"
    put(data, key, "red")
    path, text = write(tmp_path, data)
    err = load_error(path)
    assert err.key == key and "unknown key" in err.message, str(err)
    assert err.where == f"{path}, line {line_of(text, key)}"
