"""The flow language: what a flow is, its node kinds and their keys, as one table.

A flow is a named graph of nodes with explicit next steps. Each node has a ``kind`` (the
table :data:`KINDS`); the keys a kind takes, their types and which of them name the next
node are all in that table, so the checker, the runner and the picture read the same facts.

Nothing here does I/O. The loader (:mod:`agi.flows.loader`) builds these objects from YAML
and checks them; the runner (:mod:`agi.flows.runner`) walks them on a call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: DTMF keys a caller can press.
DTMF = "0123456789*#"
#: A name of a flow, a node or a call variable.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
#: ``${name}`` in a template.
TEMPLATE_VAR = re.compile(r"\$\{([^}]*)\}")


class FlowError(Exception):
    """One problem in a flow file: a stable id, the file, the line (1-based, 0 if none) and a
    plain message."""

    def __init__(self, error_id: str, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message} [{error_id}]")
        self.id = error_id
        self.file = file
        self.line = line
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "line": self.line, "message": self.message}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message} [{self.id}]"


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Key:
    """One key of a node kind. ``type`` is one of :data:`TYPES`; ``edge`` names the branch
    label when the key's value is a next node (``node``) or a map of them (``keymap``)."""

    type: str
    required: bool = False
    default: Any = None
    edge: str | None = None
    help: str = ""


#: The value types a key can have. ``node`` and ``keymap`` are edges of the graph.
TYPES = {
    "node": "the name of a node of this flow",
    "keymap": "a mapping of keys (0-9, * or #) to node names",
    "prompt": "a prompt: a sound name, {sound: NAME}, {file: PATH}, {text: TEXT}, or a list of them",
    "text": "text (may use ${variables})",
    "name": "a name (letters, digits, _)",
    "int": "a whole number",
    "seconds": "a number of seconds",
    "bool": "true or false",
    "keys": "keys from 0-9, * and #",
    "regex": "a regular expression",
    "vars": "a mapping of variable names to values",
    "strmap": "a mapping of names to text",
    "cases": "a list of cases, each with conditions and next",
    "hours": "a list like ['mon-fri 09:00-18:00']",
    "dates": "a list of dates (YYYY-MM-DD)",
    "timezone": "a time zone name like Asia/Shanghai",
    "url": "an http:// or https:// URL (may use ${variables})",
    "method": "GET or POST",
    "flow": "the name of another flow",
    "group": "a skill group name (or ${variable})",
    "ask": "phone, id_number or customer_number",
}

_PROMPT = Key("prompt", help="what the caller hears")

#: kind -> {key: Key}. ``kind`` and ``note`` (free text for the picture) go with every kind.
KINDS: dict[str, dict[str, Key]] = {
    "play": {
        "prompt": Key("prompt", required=True),
        "keys": Key("keymap", edge="key", help="keys that stop the prompt and branch"),
        "next": Key("node", required=True, edge="next"),
    },
    "say": {
        "digits": Key("text", help="read out digit by digit, e.g. ${order_number}"),
        "number": Key("text", help="read out as a number"),
        "next": Key("node", required=True, edge="next"),
    },
    "menu": {
        "prompt": Key("prompt", required=True),
        "keys": Key("keymap", required=True, edge="key"),
        "timeout": Key("seconds", default=5.0),
        "retries": Key("int", default=2),
        "no_input_prompt": Key("prompt"),
        "invalid_prompt": Key("prompt", default="pm-invalid-option"),
        "fallback": Key("node", required=True, edge="fallback"),
    },
    "collect": {
        "prompt": Key("prompt", required=True),
        "var": Key("name", required=True),
        "min_digits": Key("int", default=1),
        "max_digits": Key("int", default=20),
        "terminator": Key("keys", default="#"),
        "timeout": Key("seconds", default=5.0),
        "pattern": Key("regex"),
        "retries": Key("int", default=2),
        "invalid_prompt": Key("prompt", default="pm-invalid-option"),
        "next": Key("node", required=True, edge="next"),
        "fallback": Key("node", required=True, edge="fallback"),
    },
    "verify_identity": {
        "prompt": Key("prompt", required=True),
        "ask": Key("ask", default="customer_number"),
        "match_caller": Key("bool", default=True,
                            help="first look the calling number up; a match verifies at once"),
        "tries": Key("int", default=3),
        "max_digits": Key("int", default=20),
        "timeout": Key("seconds", default=6.0),
        "skip_key": Key("keys", help="this key alone skips the check"),
        "invalid_prompt": Key("prompt", default="vm-invalid-password"),
        "verified": Key("node", required=True, edge="verified"),
        "failed": Key("node", required=True, edge="failed"),
        "skipped": Key("node", edge="skipped"),
    },
    "set": {
        "vars": Key("vars", required=True),
        "next": Key("node", required=True, edge="next"),
    },
    "branch": {
        "cases": Key("cases", required=True),
        "else": Key("node", required=True, edge="else"),
    },
    "hours": {
        "group": Key("group", help="use this skill group's service hours"),
        "hours": Key("hours"),
        "holidays": Key("dates", default=()),
        "timezone": Key("timezone", default="UTC"),
        "open": Key("node", required=True, edge="open"),
        "closed": Key("node", required=True, edge="closed"),
    },
    "queue": {
        "group": Key("group", help="default: the variable 'group'"),
        "priority": Key("text", help="default: the variable 'priority', else 0"),
    },
    "voicemail": {
        "box": Key("name", required=True),
    },
    "survey": {
        "prompt": Key("prompt"),
        "next": Key("node", edge="next", help="default: hang up"),
    },
    "http": {
        "url": Key("url", required=True),
        "method": Key("method", default="POST"),
        "body": Key("strmap", default=None, help="sent as JSON (POST) or query (GET)"),
        "timeout": Key("seconds", default=3.0),
        "save": Key("strmap", default=None, help="variable -> field of the JSON reply"),
        "ok": Key("node", required=True, edge="ok"),
        "failed": Key("node", required=True, edge="failed"),
    },
    "goto": {
        "flow": Key("flow", required=True),
        "node": Key("name", help="default: that flow's start"),
    },
    "transfer": {
        "number": Key("text", required=True),
        "prompt": Key("prompt", help="played before the transfer"),
    },
    "hangup": {
        "prompt": Key("prompt", help="played before hanging up"),
    },
}
COMMON = {"kind": Key("name", required=True), "note": Key("text")}

#: Kinds that wait for the caller's keys (or voice): a loop through one of them is paced by
#: the caller. A loop through none of them would spin without input.
TAKES_INPUT = frozenset({"menu", "collect", "verify_identity", "survey", "voicemail"})
#: Kinds that end the flow (the call goes elsewhere or ends).
TERMINAL = frozenset({"queue", "voicemail", "goto", "transfer", "hangup"})

#: Keys a case of ``branch`` takes; at least one condition and ``next``.
CASE_KEYS = {
    "var": Key("name"), "equals": Key("text"), "in": Key("text"), "matches": Key("regex"),
    "caller": Key("regex", help="the calling number matches"),
    "verified": Key("bool", help="the caller's identity was verified (or not)"),
    "time": Key("hours", help="now is within these hours"),
    "timezone": Key("timezone", default="UTC"),
    "next": Key("node", required=True, edge="case"),
}
CONDITIONS = ("var", "caller", "verified", "time")

#: Flow-level keys.
FLOW_KEYS = {
    "name": Key("name", help="default: the file name without .yaml"),
    "description": Key("text"),
    "language": Key("text", default="en", help="Asterisk's sound language"),
    "voice": Key("text", help="espeak-ng voice for text prompts, e.g. cmn"),
    "start": Key("name", help="default: the first node"),
    "nodes": Key("nodes", required=True),
}

ASK = ("phone", "id_number", "customer_number")


# --------------------------------------------------------------------------- the objects

@dataclass
class Prompt:
    """One prompt. ``kind``: sound (an Asterisk sound name), file (a recording next to the
    flow), text (spoken by a synthesizer). ``play`` is what STREAM FILE gets, filled in when
    the prompt is prepared (a sound name, or the published file's path without extension)."""

    kind: str
    value: str
    line: int
    voice: str | None = None
    play: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "sound" and self.play is None:
            self.play = self.value


@dataclass
class Case:
    conditions: dict[str, Any]
    next: str
    line: int


@dataclass
class Node:
    name: str
    kind: str
    line: int
    params: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)   # key -> line of its value

    def get(self, key: str) -> Any:
        if key in self.params:
            return self.params[key]
        spec = KINDS[self.kind].get(key) or COMMON.get(key)
        return spec.default if spec else None

    def edges(self) -> list[tuple[str, str, int]]:
        """(label, target node, line) for every next step named in this node."""
        out: list[tuple[str, str, int]] = []
        for key, spec in KINDS[self.kind].items():
            value = self.params.get(key)
            if value is None:
                continue
            if spec.type == "node":
                out.append((spec.edge or key, value, self.lines.get(key, self.line)))
            elif spec.type == "keymap":
                for k, target in value.items():
                    out.append((f"{spec.edge} {k}", target,
                                self.lines.get(f"{key}.{k}", self.lines.get(key, self.line))))
            elif spec.type == "cases":
                for i, case in enumerate(value):
                    out.append((f"case {i + 1}", case.next, case.line))
        return out

    def prompts(self) -> list[Prompt]:
        out: list[Prompt] = []
        for key, spec in KINDS[self.kind].items():
            if spec.type == "prompt":
                value = self.get(key)
                if isinstance(value, list):
                    out.extend(p for p in value if isinstance(p, Prompt))
        return out


@dataclass
class Flow:
    name: str
    file: str
    line: int
    nodes: dict[str, Node]
    start: str
    language: str = "en"
    voice: str | None = None
    description: str = ""
    version: str = ""          # a digest of the file's text

    def prompts(self) -> list[Prompt]:
        return [p for n in self.nodes.values() for p in n.prompts()]


def template_names(text: str) -> list[str]:
    return TEMPLATE_VAR.findall(text)


def render_template(text: str, variables: dict[str, str]) -> str:
    """``${name}`` -> the variable's value (empty if unset)."""
    return TEMPLATE_VAR.sub(lambda m: str(variables.get(m.group(1), "")), text)
