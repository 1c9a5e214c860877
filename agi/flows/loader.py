"""Load flow files and check them: every problem is a :class:`FlowError` with the file, the
line and a plain message.

What is checked, per file: YAML syntax; unknown node kinds; unknown keys (of the flow, of a
node, of a branch case); missing keys; wrong types and values (a number where a node name
belongs, a bad regular expression, a key that is no DTMF key, bad hours, dates, time zones);
a ``next`` (or any branch) that names no node; nodes the start can never reach; loops that
take no input (a cycle of nodes none of which waits for the caller); prompt files that are
not there (and, where Asterisk's sounds are known, sound names it does not have); skill
groups that are not configured. Across files: duplicate flow names, a ``goto`` to a flow or
node that does not exist, and loops without input that pass through several flows.

Pure apart from reading the flow files (and, for the prompt check, looking at the disk).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from yaml.constructor import SafeConstructor

from acd.config import parse_hours
from agi.flows.model import (ASK, CASE_KEYS, COMMON, CONDITIONS, DTMF, FLOW_KEYS, KINDS, NAME,
                             TAKES_INPUT, TEMPLATE_VAR, Case, Flow, FlowError, Key, Node, Prompt)

#: Prompt files the runner can publish for Asterisk, by extension.
PROMPT_FILE_TYPES = (".wav", ".gsm", ".ulaw", ".alaw", ".sln")
MAX_FILE_BYTES = 256 * 1024
#: Errors that leave the graph whole: the graph checks still run after them.
_NOT_STRUCTURAL = frozenset({"flow.prompt_missing", "flow.unknown_group"})
#: A sound name Asterisk can play: a relative path of plain parts.
_SOUND = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")

#: sound_known(name, language) -> True, False, or None when Asterisk's sounds are unknown.
SoundCheck = Callable[[str, str], "bool | None"]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _kind_of(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(_scalar(node))


def _scalar(node: yaml.Node) -> Any:
    return SafeConstructor().construct_object(node, deep=True)


def _text_problem(t: str, v: str) -> str | None:
    """What is wrong with the text ``v`` as a ``t`` (url, method, ...); None when nothing is
    (a group is checked against the configured ones by the checker)."""
    if t == "keys" and not set(v) <= set(DTMF):
        return f"{v!r}: only 0-9, * and # are keys"
    if t == "url" and not re.match(r"^https?://[^\s]+$", v):
        return f"{v!r} is not an http:// or https:// URL"
    if t == "method" and v.upper() not in ("GET", "POST"):
        return f"{v!r} is not GET or POST"
    if t == "ask" and v not in ASK:
        return f"{v!r} is not one of {', '.join(ASK)}"
    if t == "timezone":
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {v!r}"
    if t == "regex":
        try:
            re.compile(v)
        except re.error as e:
            return f"not a regular expression: {e}"
    return None


class _FileChecker:
    """Reads one flow file into a :class:`Flow`, collecting every error it finds."""

    def __init__(self, file: str, text: str, *, groups: Iterable[str] | None,
                 sound_known: SoundCheck | None) -> None:
        self.file = file
        self.text = text
        self.groups = set(groups) if groups is not None else None
        self.sound_known = sound_known
        self.errors: list[FlowError] = []
        self.base = Path(file).resolve().parent
        self.voice: str | None = None
        self.language = "en"

    def err(self, error_id: str, line: int, message: str) -> None:
        self.errors.append(FlowError(error_id, self.file, line, message))

    # ---- values by type

    def value(self, spec: Key, node: yaml.Node, what: str, lines: dict[str, int],
              key: str) -> Any:
        """Check ``node`` against ``spec.type``; the parsed value, or None after an error.
        ``lines`` gets the line of each entry of a key map (as ``key.entry``)."""
        check = _TYPE_CHECKS.get(spec.type)
        if check is None:
            raise AssertionError(f"no check for type {spec.type}")
        return check(self, spec.type, node, what, lines, key)

    def _bad_type(self, node: yaml.Node, what: str, message: str) -> None:
        self.err("flow.bad_type", _line(node), f"{what}: {message}")

    def _name(self, t: str, node: yaml.Node, what: str, lines: dict[str, int], key: str) -> Any:
        v = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(v, str) or not NAME.match(v):
            hint = (" (yes, no, on and off are true and false in YAML: quote the name)"
                    if isinstance(v, bool) else "")
            self._bad_type(node, what, f"expected {'a node name' if t == 'node' else 'a name'} "
                                       f"(letters, digits, _), got {_kind_of(node)}{hint}")
            return None
        return v

    def _prompt(self, t: str, node: yaml.Node, what: str, lines: dict[str, int],
                key: str) -> Any:
        return self.prompt(node, what)

    def _keymap(self, t: str, node: yaml.Node, what: str, lines: dict[str, int],
                key: str) -> Any:
        if not isinstance(node, yaml.MappingNode) or not node.value:
            self._bad_type(node, what, f"expected a mapping of keys to node names, "
                                       f"got {_kind_of(node)}")
            return None
        out: dict[str, str] = {}
        for k, v in node.value:
            kv = _scalar(k) if isinstance(k, yaml.ScalarNode) else None
            ks = str(kv) if isinstance(kv, (str, int)) and not isinstance(kv, bool) else None
            if ks is None or len(ks) != 1 or ks not in DTMF:
                self.err("flow.bad_value", _line(k),
                         f"{what}: {_kind_of(k)} is not a key (one of 0-9, * or #; "
                         "write '*' and '#' in quotes)")
                continue
            if ks in out:
                self.err("flow.bad_value", _line(k), f"{what}: key {ks} is given twice")
                continue
            target = self.value(Key("node"), v, f"{what}.{ks}", lines, f"{key}.{ks}")
            if target is not None:
                out[ks] = target
                lines[f"{key}.{ks}"] = _line(v)
        return out

    def _text(self, t: str, node: yaml.Node, what: str, lines: dict[str, int], key: str) -> Any:
        """Text, and the kinds of text: url, group, method, ask, timezone, regex, keys."""
        v = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if t in ("text", "keys") and isinstance(v, int) and not isinstance(v, bool):
            v = str(node.value)        # written without quotes: keep it as written
        if t == "text" and isinstance(v, float):
            v = str(node.value)
        if not isinstance(v, str):
            hint = " (write '#' in quotes: a bare # starts a comment)" if v is None and t == "keys" else ""
            self._bad_type(node, what, f"expected text, got "
                                       f"{_kind_of(node) if v is not None else 'nothing'}{hint}")
            return None
        line = _line(node)
        for name in TEMPLATE_VAR.findall(v):
            if not NAME.match(name):
                self.err("flow.bad_value", line, f"{what}: ${{{name}}} is not a variable name")
                return None
        problem = _text_problem(t, v)
        if problem is None and t == "group":
            problem = self._group_problem(v, what, line)
        if problem is not None:
            if problem:
                self.err("flow.bad_value", line, f"{what}: {problem}")
            return None
        return v.upper() if t == "method" else v

    def _group_problem(self, v: str, what: str, line: int) -> str | None:
        """None when ``v`` is a configured group (or a variable); "" after its own error."""
        if not (NAME.match(v) or re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", v)):
            return f"{v!r} is not a group name or ${{variable}}"
        if self.groups is not None and "${" not in v and v not in self.groups:
            known = ", ".join(sorted(self.groups)) or "none"
            self.err("flow.unknown_group", line,
                     f"{what}: no skill group {v!r} is configured (known: {known})")
            return ""
        return None

    def _number(self, t: str, node: yaml.Node, what: str, lines: dict[str, int],
                key: str) -> Any:
        v = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
        ok = isinstance(v, int) if t == "int" else isinstance(v, (int, float))
        if not ok or isinstance(v, bool):
            expected = "a whole number" if t == "int" else "a number of seconds"
            self._bad_type(node, what, f"expected {expected}, got {_kind_of(node)}")
            return None
        if v < 0 or (t == "seconds" and v == 0) or v > 3600:
            self.err("flow.bad_value", _line(node), f"{what}: {v} is out of range")
            return None
        return float(v) if t == "seconds" else v

    def _bool(self, t: str, node: yaml.Node, what: str, lines: dict[str, int], key: str) -> Any:
        v = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(v, bool):
            self._bad_type(node, what, f"expected true or false, got {_kind_of(node)}")
            return None
        return v

    def _strmap(self, t: str, node: yaml.Node, what: str, lines: dict[str, int],
                key: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            self._bad_type(node, what, f"expected a mapping, got {_kind_of(node)}")
            return None
        out: dict[str, str] = {}
        for k, v in node.value:
            name = _scalar(k) if isinstance(k, yaml.ScalarNode) else None
            if not isinstance(name, str) or not NAME.match(name):
                self.err("flow.bad_value", _line(k), f"{what}: {_kind_of(k)} is not a name")
                continue
            sv = self.value(Key("text"), v, f"{what}.{name}", lines, f"{key}.{name}")
            if sv is not None:
                out[name] = sv
        return out

    def _days(self, t: str, node: yaml.Node, what: str, lines: dict[str, int], key: str) -> Any:
        """Service hours (one, or a list) and dates (a list)."""
        items = [node] if isinstance(node, yaml.ScalarNode) and t == "hours" else None
        if items is None:
            if not isinstance(node, yaml.SequenceNode):
                self._bad_type(node, what, f"expected a list, got {_kind_of(node)}")
                return None
            items = node.value
        out = []
        for item in items:
            v = _scalar(item) if isinstance(item, yaml.ScalarNode) else None
            v = str(v) if isinstance(v, date) else v
            if not isinstance(v, str):
                self._bad_type(item, what, f"expected text, got {_kind_of(item)}")
                continue
            try:
                parse_hours(v) if t == "hours" else date.fromisoformat(v)
            except ValueError as e:
                msg = str(e) if t == "hours" else f"{v!r} is not a date (YYYY-MM-DD)"
                self.err("flow.bad_value", _line(item), f"{what}: {msg}")
                continue
            out.append(v)
        return tuple(out)

    def _cases(self, t: str, node: yaml.Node, what: str, lines: dict[str, int],
               key: str) -> Any:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self._bad_type(node, what, f"expected a list of cases, got {_kind_of(node)}")
            return None
        return [c for i, item in enumerate(node.value)
                if (c := self.case(item, f"{what}[{i + 1}]")) is not None]

    def prompt(self, node: yaml.Node, what: str) -> list[Prompt] | None:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not items:
            self.err("flow.bad_type", _line(node), f"{what}: an empty list of prompts")
            return None
        out: list[Prompt] = []
        for item in items:
            line = _line(item)
            p: Prompt | None = None
            if isinstance(item, yaml.ScalarNode) and isinstance(_scalar(item), str):
                p = Prompt("sound", _scalar(item), line)
            elif isinstance(item, yaml.MappingNode):
                fields = {}
                for k, v in item.value:
                    kn = _scalar(k) if isinstance(k, yaml.ScalarNode) else None
                    if kn not in ("sound", "file", "text", "voice"):
                        self.err("flow.unknown_key", _line(k),
                                 f"{what}: unknown prompt key {kn!r} (known: sound, file, text, voice)")
                        continue
                    sv = _scalar(v) if isinstance(v, yaml.ScalarNode) else None
                    if not isinstance(sv, str) or not sv:
                        self.err("flow.bad_type", _line(v), f"{what}.{kn}: expected text, got {_kind_of(v)}")
                        continue
                    fields[kn] = (sv, _line(v))
                kinds = [k for k in ("sound", "file", "text") if k in fields]
                if len(kinds) != 1:
                    self.err("flow.bad_value", line, f"{what}: a prompt has one of sound, file or text")
                    continue
                kind = kinds[0]
                value, vline = fields[kind]
                voice = fields.get("voice", (None, 0))[0]
                if voice and kind != "text":
                    self.err("flow.bad_value", fields["voice"][1], f"{what}: voice goes with text")
                    continue
                p = Prompt(kind, value, vline, voice=voice)
            else:
                self.err("flow.bad_type", line, f"{what}: expected a prompt (a sound name, "
                         f"{{sound: ..}}, {{file: ..}} or {{text: ..}}), got {_kind_of(item)}")
                continue
            if self.check_prompt(p, what):
                out.append(p)
        return out if len(out) == len(items) else None

    def check_prompt(self, p: Prompt, what: str) -> bool:
        if p.kind == "sound":
            if not _SOUND.match(p.value) or ".." in p.value:
                self.err("flow.bad_value", p.line, f"{what}: {p.value!r} is not a sound name")
                return False
            known = self.sound_known(p.value, self.language) if self.sound_known else None
            if known is False:
                self.err("flow.prompt_missing", p.line,
                         f"{what}: Asterisk has no sound {p.value!r} for language {self.language!r}")
                return False
        elif p.kind == "file":
            path = (self.base / p.value).resolve()
            if path.suffix.lower() not in PROMPT_FILE_TYPES:
                self.err("flow.bad_value", p.line,
                         f"{what}: {p.value!r}: a prompt file is one of {', '.join(PROMPT_FILE_TYPES)}")
                return False
            if not path.is_file():
                self.err("flow.prompt_missing", p.line, f"{what}: prompt file {p.value!r} not found "
                         f"(looked for {path})")
                return False
            p.value = str(path)
        elif p.kind == "text":
            p.voice = p.voice or self.voice
            if not p.voice:
                self.err("flow.bad_value", p.line,
                         f"{what}: a text prompt needs a voice (the flow's voice: or the prompt's)")
                return False
            if len(p.value) > 500:
                self.err("flow.bad_value", p.line, f"{what}: a text prompt is at most 500 characters")
                return False
        return True

    def case(self, node: yaml.Node, what: str) -> Case | None:
        if not isinstance(node, yaml.MappingNode):
            self.err("flow.bad_type", _line(node), f"{what}: expected a mapping, got {_kind_of(node)}")
            return None
        lines: dict[str, int] = {}
        values = self.keys(node, CASE_KEYS, what, lines, "case")
        if values is None or "next" not in values:
            return None
        conds = {k: v for k, v in values.items() if k != "next"}
        if not any(k in conds for k in CONDITIONS):
            self.err("flow.missing_key", _line(node),
                     f"{what}: a case needs a condition: one of {', '.join(CONDITIONS)}")
            return None
        if any(k in conds for k in ("equals", "in", "matches")) and "var" not in conds:
            self.err("flow.missing_key", _line(node), f"{what}: equals, in and matches go with var")
            return None
        if "timezone" in node_keys(node) and "time" not in conds:
            self.err("flow.missing_key", _line(node), f"{what}: timezone goes with time")
            return None
        if "in" in conds:
            conds["in"] = [s.strip() for s in conds["in"].split(",")]
        return Case(conds, values["next"], lines.get("next", _line(node)))

    def keys(self, node: yaml.MappingNode, table: dict[str, Key], what: str,
             lines: dict[str, int], known_as: str) -> dict[str, Any] | None:
        """The keys of a mapping checked against ``table``; None if a required one is missing."""
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for k, v in node.value:
            name = _scalar(k) if isinstance(k, yaml.ScalarNode) else None
            if not isinstance(name, str) or name not in table:
                near = ", ".join(sorted(table))
                self.err("flow.unknown_key", _line(k),
                         f"{what}: unknown key {name!r} for {known_as} (known: {near})")
                continue
            if name in seen:
                self.err("flow.bad_value", _line(k), f"{what}: {name} is given twice")
                continue
            seen.add(name)
            lines[name] = _line(v)
            parsed = self.value(table[name], v, f"{what}.{name}", lines, name)
            if parsed is not None:
                out[name] = parsed
        missing = [n for n, spec in table.items() if spec.required and n not in seen]
        for n in missing:
            self.err("flow.missing_key", _line(node), f"{what}: {known_as} needs {n}:")
        return None if missing else out

    # ---- a node, a flow

    def node(self, name: str, node: yaml.Node, key_line: int) -> Node | None:
        what = f"node {name!r}"
        if not isinstance(node, yaml.MappingNode):
            self.err("flow.bad_type", _line(node), f"{what}: expected a mapping with kind:, got {_kind_of(node)}")
            return None
        kind_node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "kind"), None)
        if kind_node is None:
            self.err("flow.missing_key", key_line, f"{what}: every node needs kind: (one of {', '.join(KINDS)})")
            return None
        kind = _scalar(kind_node) if isinstance(kind_node, yaml.ScalarNode) else None
        if kind not in KINDS:
            self.err("flow.unknown_kind", _line(kind_node),
                     f"{what}: unknown node kind {kind!r} (known: {', '.join(KINDS)})")
            return None
        table = {**COMMON, **KINDS[kind]}
        lines: dict[str, int] = {}
        before = len(self.errors)
        params = self.keys(node, table, what, lines, f"a {kind} node")
        if params is None or any(e.id not in _NOT_STRUCTURAL for e in self.errors[before:]):
            return None
        params.pop("kind", None)
        for key, spec in KINDS[kind].items():       # defaults, prompts made objects
            if key not in params and spec.default is not None:
                params[key] = ([Prompt("sound", spec.default, _line(node))]
                               if spec.type == "prompt" else spec.default)
        n = Node(name, kind, key_line, params, lines)
        self.node_rules(n, node)
        return n

    def node_rules(self, n: Node, raw: yaml.MappingNode) -> None:
        """Checks that join several keys of one node."""
        what, p, line = f"node {n.name!r}", n.params, n.line
        if n.kind == "say" and ("digits" in p) == ("number" in p):
            self.err("flow.missing_key", line, f"{what}: say needs one of digits: or number:")
        if n.kind == "hours" and ("group" in p) == ("hours" in p):
            self.err("flow.missing_key", line, f"{what}: hours needs group: or hours: (one of them)")
        if n.kind == "collect":
            if not 1 <= p["min_digits"] <= p["max_digits"] <= 64:
                self.err("flow.bad_value", n.lines.get("max_digits", line),
                         f"{what}: need 1 <= min_digits <= max_digits <= 64")
            if len(p["terminator"]) > 1:
                self.err("flow.bad_value", n.lines.get("terminator", line), f"{what}: one terminator key")
            if p["var"] in ("caller_number", "did", "uniqueid", "verification"):
                self.err("flow.bad_value", n.lines.get("var", line), f"{what}: {p['var']} is kept by the IVR")
        if n.kind == "verify_identity":
            skip = p.get("skip_key")
            if skip is not None and len(skip) != 1:
                self.err("flow.bad_value", n.lines.get("skip_key", line), f"{what}: skip_key is one key")
            if skip is not None and "skipped" not in p:
                self.err("flow.missing_key", line, f"{what}: skip_key needs skipped: (where to go)")
            if not 1 <= p["tries"] <= 10:
                self.err("flow.bad_value", n.lines.get("tries", line), f"{what}: tries is 1 to 10")
        if n.kind == "menu" and p["retries"] > 10:
            self.err("flow.bad_value", n.lines.get("retries", line), f"{what}: at most 10 retries")

    def flow(self) -> Flow | None:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            self.err("flow.yaml_syntax", mark.line + 1 if mark else 0,
                     f"not valid YAML: {getattr(e, 'problem', None) or e}")
            return None
        if not isinstance(root, yaml.MappingNode):
            self.err("flow.bad_type", _line(root) if root is not None else 1,
                     "a flow file is a mapping with nodes:")
            return None
        lines: dict[str, int] = {}
        head = {k: v for k, v in FLOW_KEYS.items() if k != "nodes"}
        nodes_raw: yaml.Node | None = None
        rest = []
        for k, v in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "nodes":
                nodes_raw = v
            else:
                rest.append((k, v))
        values = self.keys(yaml.MappingNode(root.tag, rest, root.start_mark, root.end_mark),
                           head, "flow", lines, "a flow") or {}
        if nodes_raw is None:
            self.err("flow.missing_key", 1, "a flow needs nodes:")
            return None
        if not isinstance(nodes_raw, yaml.MappingNode) or not nodes_raw.value:
            self.err("flow.bad_type", _line(nodes_raw), f"nodes: expected a mapping of named nodes, got {_kind_of(nodes_raw)}")
            return None
        self.voice = values.get("voice")
        self.language = values.get("language", "en")
        name = values.get("name") or Path(self.file).stem
        if not NAME.match(name):
            self.err("flow.bad_value", 1, f"the flow name {name!r} (from the file name) is not a "
                     "name: letters, digits, _ (set name:)")
            return None
        nodes: dict[str, Node] = {}
        order: list[str] = []
        for k, v in nodes_raw.value:
            nname = _scalar(k) if isinstance(k, yaml.ScalarNode) else None
            if not isinstance(nname, str) or not NAME.match(nname):
                self.err("flow.bad_value", _line(k), f"{_kind_of(k)} is not a node name (letters, digits, _)")
                continue
            if nname in order:
                self.err("flow.bad_value", _line(k), f"node {nname!r} is defined twice")
                continue
            order.append(nname)
            n = self.node(nname, v, _line(k))
            if n is not None:
                nodes[nname] = n
        start = values.get("start") or (order[0] if order else "")
        if start not in order:
            self.err("flow.unknown_node", lines.get("start", 1), f"start: no node named {start!r}")
        for n in nodes.values():
            for label, target, line in n.edges():
                if target not in order:
                    self.err("flow.unknown_node", line,
                             f"node {n.name!r}: {label} -> {target!r}: no node of that name in this flow")
        if any(e.id not in _NOT_STRUCTURAL for e in self.errors):
            return None
        flow = Flow(name=name, file=self.file, line=1, nodes=nodes, start=start,
                    language=self.language, voice=self.voice,
                    description=values.get("description", ""),
                    version=hashlib.sha256(self.text.encode()).hexdigest()[:12])
        self.graph_rules(flow)
        return None if self.errors else flow

    def graph_rules(self, flow: Flow) -> None:
        reached = {flow.start}
        todo = [flow.start]
        while todo:
            for _label, target, _line in flow.nodes[todo.pop()].edges():
                if target not in reached:
                    reached.add(target)
                    todo.append(target)
        for n in flow.nodes.values():
            if n.name not in reached:
                self.err("flow.unreachable", n.line,
                         f"node {n.name!r} is unreachable: no path from the start ({flow.start!r}) leads to it")
        for cycle in loops_without_input({(flow.name, k): [(flow.name, t) for _l, t, _ in n.edges()]
                                          for k, n in flow.nodes.items()},
                                         {(flow.name, k) for k, n in flow.nodes.items()
                                          if n.kind in TAKES_INPUT}):
            first = flow.nodes[cycle[0][1]]
            path = " -> ".join(c[1] for c in cycle + [cycle[0]])
            self.err("flow.loop_without_input", first.line,
                     f"node {first.name!r}: a loop that takes no input: {path} "
                     "(put a menu, collect or other node that waits for the caller in it)")


#: The check of each value type of the flow model (:data:`agi.flows.model.Key.type`).
_TYPE_CHECKS: dict[str, Callable[..., Any]] = {
    **dict.fromkeys(("node", "name", "flow"), _FileChecker._name),
    "prompt": _FileChecker._prompt,
    "keymap": _FileChecker._keymap,
    **dict.fromkeys(("text", "url", "group", "method", "ask", "timezone", "regex", "keys"),
                    _FileChecker._text),
    **dict.fromkeys(("int", "seconds"), _FileChecker._number),
    "bool": _FileChecker._bool,
    **dict.fromkeys(("vars", "strmap"), _FileChecker._strmap),
    **dict.fromkeys(("hours", "dates"), _FileChecker._days),
    "cases": _FileChecker._cases,
}


def node_keys(node: yaml.MappingNode) -> set[str]:
    return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def loops_without_input(graph: dict[Any, list[Any]], takes_input: set[Any]) -> list[list[Any]]:
    """Cycles of the graph that pass through no node of ``takes_input``: one per strongly
    connected component (Tarjan), in the order the nodes were given."""
    sub = {v: [w for w in ws if w in graph and w not in takes_input]
           for v, ws in graph.items() if v not in takes_input}
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    stack: list[Any] = []
    on: set[Any] = set()
    found: list[list[Any]] = []
    counter = 0

    def strong(v: Any) -> None:               # iterative Tarjan: flows can be long
        nonlocal counter
        work = [(v, iter(sub[v]))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sub[w])))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in sub[node]:
                        found.append(_cycle_in(comp, sub))

    for v in sub:
        if v not in index:
            strong(v)
    order = list(graph)
    found.sort(key=lambda c: order.index(c[0]))
    return found


def _cycle_in(comp: list[Any], sub: dict[Any, list[Any]]) -> list[Any]:
    """One concrete cycle inside a strongly connected component, from its first node."""
    members = set(comp)
    start = min(comp, key=lambda v: list(sub).index(v))
    path, seen, v = [start], {start}, start
    while True:
        nxt = next(w for w in sub[v] if w in members)
        if nxt == start or nxt in seen:
            return path[path.index(nxt):] if nxt in seen else path
        path.append(nxt)
        seen.add(nxt)
        v = nxt


# --------------------------------------------------------------------------- public

def load_file(path: str | Path, *, groups: Iterable[str] | None = None,
              sound_known: SoundCheck | None = None,
              display: str | None = None) -> tuple[Flow | None, list[FlowError]]:
    """One flow file: the flow, or None and the errors."""
    name = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        return None, [FlowError("flow.read_error", name, 0, f"cannot read the file: {e.strerror or e}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return None, [FlowError("flow.read_error", name, line, "the file is not UTF-8 text")]
    return load_text(text, name, groups=groups, sound_known=sound_known, base=Path(path))


def load_text(text: str, file: str, *, groups: Iterable[str] | None = None,
              sound_known: SoundCheck | None = None,
              base: Path | None = None) -> tuple[Flow | None, list[FlowError]]:
    checker = _FileChecker(file, text, groups=groups, sound_known=sound_known)
    if base is not None:
        checker.base = base.resolve().parent
    flow = checker.flow()
    return flow, checker.errors


def check_set(flows: Iterable[Flow]) -> list[FlowError]:
    """Checks across files: duplicate names, goto targets, loops without input through gotos."""
    errors: list[FlowError] = []
    by_name: dict[str, Flow] = {}
    for f in flows:
        if f.name in by_name:
            errors.append(FlowError("flow.duplicate_flow", f.file, 1,
                                    f"flow {f.name!r} is also defined in {by_name[f.name].file}"))
            continue
        by_name[f.name] = f
    graph: dict[Any, list[Any]] = {}
    takes: set[Any] = set()
    for f in by_name.values():
        for name, n in f.nodes.items():
            out = [(f.name, t) for _l, t, _ in n.edges()]
            if n.kind == "goto":
                target = by_name.get(n.params["flow"])
                line = n.lines.get("flow", n.line)
                if target is None:
                    errors.append(FlowError("flow.unknown_flow", f.file, line,
                                            f"node {name!r}: goto flow {n.params['flow']!r}: no such flow"))
                    continue
                tnode = n.params.get("node") or target.start
                if tnode not in target.nodes:
                    errors.append(FlowError("flow.unknown_node", f.file, n.lines.get("node", line),
                                            f"node {name!r}: flow {target.name!r} has no node {tnode!r}"))
                    continue
                out.append((target.name, tnode))
            graph[(f.name, name)] = out
            if n.kind in TAKES_INPUT:
                takes.add((f.name, name))
    for cycle in loops_without_input(graph, takes):
        if len({c[0] for c in cycle}) < 2:
            continue                         # within one flow: reported by that file's check
        f = by_name[cycle[0][0]]
        path = " -> ".join(f"{a}.{b}" for a, b in cycle + [cycle[0]])
        errors.append(FlowError("flow.loop_without_input", f.file, f.nodes[cycle[0][1]].line,
                                f"a loop across flows that takes no input: {path}"))
    return errors
