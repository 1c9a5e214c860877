"""The contract between the server and the dialplan has one home, ``acd/asterisk/dialplan.py``,
and it holds.

* Every context in ``dp.CONTEXTS`` is a ``[section]`` of the rendered ``extensions.conf``, and
  every ``context,exten,priority`` target and redirect extension exists in its context.
* Every channel variable in ``dp.VARIABLES`` is named in the rendered ``extensions.conf``; one
  the dialplan never names travels on a channel between two of our own parts (the server
  sets it over AMI, the restore or a FastAGI script reads it back), so it must have a writer
  and a reader in ``acd/`` or ``agi/`` (read from the source, nothing imported but the
  contract itself).
* No module of ``acd/`` or ``agi/`` spells a context, a target or an ``ACD_*`` variable as a
  string literal: they take the names from ``acd.asterisk.dialplan``. Environment variables
  (``ACD_CONFIG``, ``ACD_ASTERISK_MIRROR``, ``ACD_SECTION__KEY``) are not the dialplan.
"""
from __future__ import annotations

import ast
import re
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from acd import config as configmod
from acd.asterisk import dialplan as dp
from acd.asterisk.render import Layout, render
from tests.conftest import PROJECT

CONTRACT = PROJECT / "acd" / "asterisk" / "dialplan.py"
SERVER = ("acd", "agi")
#: Environment variables, not channel variables.
ENV_NAMES = {"ACD_CONFIG", "ACD_ASTERISK_MIRROR"}
ACD_NAME = re.compile(r"^ACD_[A-Z_]+$")



# ---------------------------------------------------------------------------- the dialplan

def _extensions(tmp: Path) -> str:
    cfg = configmod.load(PROJECT / "config.yaml", environ={})
    cfg = replace(cfg, data_dir=str(tmp / "data"))
    cfg = configmod.with_secrets(cfg)[0]
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp / "out"))
    return next(p for p in files if p.name == "extensions.conf").read_text()


@pytest.fixture(scope="module")
def extensions(tmp_path_factory) -> str:
    return _extensions(tmp_path_factory.mktemp("dialplan"))


def _sections(text: str) -> dict[str, set[tuple[str, str]]]:
    """Each ``[context]`` of a rendered dialplan -> its ``(exten, priority)`` entry points."""
    out: dict[str, set[tuple[str, str]]] = {}
    current: set[tuple[str, str]] | None = None
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        m = re.fullmatch(r"\[([^\]]+)\](?:\([^)]*\))?", line)
        if m:
            current = out.setdefault(m.group(1), set())
            continue
        m = re.match(r"exten\s*=>\s*([^,]+),\s*([^,(]+)", line)
        if m and current is not None:
            current.add((m.group(1).strip(), m.group(2).strip()))
    return out


def _named(variable: str, text: str) -> bool:
    """Named as a channel variable: ``${ACD_X}``, ``Set(ACD_X=``, ``Set(__ACD_X=`` ..."""
    return re.search(rf"(?<![\w])_{{0,2}}{variable}(?![\w])", text) is not None


def test_every_context_is_a_section_of_the_dialplan(extensions):
    sections = _sections(extensions)
    assert dp.CONTEXTS and len(set(dp.CONTEXTS)) == len(dp.CONTEXTS)
    missing = [c for c in dp.CONTEXTS if c not in sections]
    assert not missing, f"contexts of acd/asterisk/dialplan.py not in extensions.conf: {missing}"


def test_every_target_and_redirect_extension_exists_in_its_context(extensions):
    sections = _sections(extensions)
    targets = {name: value for name, value in vars(dp).items() if name.endswith("_TARGET")}
    assert len(targets) >= 5
    wanted = {name: tuple(value.split(",")) for name, value in targets.items()}
    wanted |= {
        "HOLD_CALLER_EXTEN": (dp.HOLD_CONTEXT, dp.HOLD_CALLER_EXTEN, "1"),
        "HOLD_AGENT_EXTEN": (dp.HOLD_CONTEXT, dp.HOLD_AGENT_EXTEN, "1"),
        **{f"DEST_{e.upper()}": (dp.DEST_CONTEXT, e, "1")
           for e in (dp.DEST_HANGUP, dp.DEST_CALLBACK, dp.DEST_IVR, dp.DEST_SORRY)},
    }
    missing = [f"{name} = {','.join(t)}" for name, t in wanted.items()
               if len(t) != 3 or (t[1], t[2]) not in sections.get(t[0], set())]
    assert not missing, f"targets with no such extension in extensions.conf: {missing}"


def test_the_test_customers_dial_string_is_the_loopback_trunks(tmp_path):
    cfg = configmod.load(PROJECT / "config.yaml", environ={})
    cfg = replace(cfg, data_dir=str(tmp_path / "data"),
                  asterisk=replace(cfg.asterisk, loopback_trunk=True))
    files = render(configmod.with_secrets(cfg)[0], Layout(inside="/srv/acd/x", host=tmp_path / "o"))
    ext = next(p for p in files if p.name == "extensions.conf").read_text()
    prefix = dp.TEST_CUSTOMER_DIAL.split("/", 1)[1].split("{number}")[0]      # testcust
    assert f"exten => _{prefix}.,1," in ext


# ---------------------------------------------------------------------------- the variables

@cache
def _server_sources() -> dict[Path, ast.Module]:
    out = {}
    for top in SERVER:
        for path in sorted((PROJECT / top).rglob("*.py")):
            if "migrations" in path.parts or path == CONTRACT:
                continue
            out[path] = ast.parse(path.read_text(), str(path))
    return out


def _dp_name(node: ast.AST) -> str | None:
    """``dp.GROUP`` (or ``dialplan.GROUP``) -> the variable's name."""
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in ("dp", "dialplan")):
        value = getattr(dp, node.attr, None)
        return value if isinstance(value, str) else None
    return None


def _uses() -> dict[str, dict[str, set[str]]]:
    """variable -> {"writes": {file:line}, "reads": {file:line}}, by the forms our parts use:
    writes are ``f"{dp.X}=..."`` (Originate's Variable), a key of a dict literal (Setvar of a
    channel, a redirect's variables) and ``set_variable(dp.X, ...)`` (FastAGI); reads are
    ``get_variable(dp.X)`` (FastAGI), ``something.get(dp.X)`` and ``something[dp.X]`` (the
    variables the restore read with GetVar)."""
    uses: dict[str, dict[str, set[str]]] = {v: {"writes": set(), "reads": set()}
                                            for v in dp.VARIABLES}

    def note(kind: str, node: ast.AST, path: Path) -> None:
        name = _dp_name(node)
        if name in uses:
            uses[name][kind].add(f"{path.relative_to(PROJECT)}:{node.lineno}")

    for path, tree in _server_sources().items():
        for n in ast.walk(tree):
            if isinstance(n, ast.JoinedStr):
                for a, b in zip(n.values, n.values[1:]):
                    if (isinstance(a, ast.FormattedValue) and isinstance(b, ast.Constant)
                            and str(b.value).startswith("=")):
                        note("writes", a.value, path)
            elif isinstance(n, ast.Dict):
                for k in n.keys:
                    if k is not None:
                        note("writes", k, path)
            elif isinstance(n, ast.Call) and n.args:
                fn = n.func.attr if isinstance(n.func, ast.Attribute) else \
                    n.func.id if isinstance(n.func, ast.Name) else ""
                if fn == "set_variable":
                    note("writes", n.args[0], path)
                elif fn in ("get_variable", "get"):
                    note("reads", n.args[0], path)
            elif isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Load):
                note("reads", n.slice, path)
    return uses


@pytest.mark.parametrize("variable", dp.VARIABLES)
def test_every_variable_is_in_the_dialplan_or_goes_between_two_of_our_parts(variable,
                                                                           extensions):
    assert ACD_NAME.match(variable), variable
    if _named(variable, extensions):
        return
    use = _uses()[variable]
    assert use["writes"] and use["reads"], (
        f"{variable} is named nowhere in extensions.conf, so one of our parts must set it on a "
        f"channel and another read it back: writes {sorted(use['writes']) or 'none'}, reads "
        f"{sorted(use['reads']) or 'none'}")


def test_the_variables_and_contexts_are_listed_once():
    assert len(set(dp.VARIABLES)) == len(dp.VARIABLES)
    declared = {v for k, v in vars(dp).items()
                if k.isupper() and isinstance(v, str) and ACD_NAME.match(v)}
    assert declared == set(dp.VARIABLES), \
        f"ACD_* names in acd/asterisk/dialplan.py not in VARIABLES: {declared - set(dp.VARIABLES)}"
    contexts = {v for k, v in vars(dp).items() if k.endswith("_CONTEXT")}
    assert contexts == set(dp.CONTEXTS)


# ---------------------------------------------------------------------------- one home

def _dialplan_literal(text: str) -> bool:
    if ACD_NAME.match(text):
        return text not in ENV_NAMES and "__" not in text
    return text in dp.CONTEXTS or any(text.startswith(f"{c},") for c in dp.CONTEXTS)


def test_no_dialplan_name_is_spelled_outside_the_contract():
    found = []
    for path, tree in _server_sources().items():
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) \
                    and _dialplan_literal(n.value):
                found.append(f"{path.relative_to(PROJECT)}:{n.lineno} {n.value!r}")
    assert not found, ("dialplan names spelled as literals (take them from "
                       "acd.asterisk.dialplan): " + ", ".join(found))


def test_the_scan_sees_a_literal():
    tree = ast.parse('x = "ACD_GROUP"; y = f"acd-queue,{z},1"; e = "ACD_CONFIG"; '
                     'f = "ACD_HTTP__PORT"')
    hits = [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and _dialplan_literal(n.value)]
    assert hits == ["ACD_GROUP", "acd-queue,"]
