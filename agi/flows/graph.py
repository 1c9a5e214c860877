"""A picture of a flow: Graphviz DOT text (:func:`to_dot`), drawn as SVG or PNG by ``dot``
(Debian's ``graphviz`` package; ``make setup`` installs it).

One box per node, shaped and coloured by kind, with what the caller hears or does; one arrow
per next step, labelled with the key or the outcome. A ``goto`` points at the other flow.
Everything written into the DOT text is escaped, so no name or prompt can break the picture.
"""
from __future__ import annotations

import shutil
import subprocess

from acd.errors import UserError
from agi.flows.model import Flow, Node, Prompt

#: kind -> (shape, fill colour)
STYLE = {
    "play": ("box", "#e8f1fb"), "say": ("box", "#e8f1fb"),
    "menu": ("box3d", "#fff2cc"), "collect": ("box3d", "#fff2cc"),
    "verify_identity": ("hexagon", "#e2f0d9"), "survey": ("box3d", "#fff2cc"),
    "set": ("note", "#f2f2f2"), "branch": ("diamond", "#fce4d6"), "hours": ("diamond", "#fce4d6"),
    "http": ("component", "#ede7f6"), "queue": ("doubleoctagon", "#d9ead3"),
    "voicemail": ("cylinder", "#f4cccc"), "transfer": ("cds", "#d9d2e9"),
    "goto": ("larrow", "#d9d2e9"), "hangup": ("octagon", "#eeeeee"),
}
EDGE_COLOUR = {"failed": "#c00000", "closed": "#c00000", "fallback": "#c00000", "else": "#7f7f7f",
               "verified": "#38761d", "open": "#38761d", "ok": "#38761d"}
MAX_LABEL = 48


def _esc(text: str) -> str:
    """Text inside a double-quoted DOT string (escString): no line breaks, quotes escaped."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _prompt_text(prompts: list[Prompt] | None) -> str:
    if not prompts:
        return ""
    p = prompts[0]
    shown = {"sound": p.value, "file": p.value.rsplit("/", 1)[-1], "text": f"“{p.value}”"}[p.kind]
    return shown + (f" +{len(prompts) - 1}" if len(prompts) > 1 else "")


def _detail(n: Node) -> list[str]:
    g = n.get
    out: list[str] = []
    if n.kind in ("play", "menu", "collect", "verify_identity", "survey", "hangup", "transfer"):
        if (t := _prompt_text(g("prompt"))):
            out.append(f"♪ {t}")
    if n.kind == "say":
        out.append(f"say {'digits' if g('digits') else 'number'} {g('digits') or g('number')}")
    if n.kind == "collect":
        out.append(f"{g('var')}: {g('min_digits')}-{g('max_digits')} digits")
    if n.kind == "verify_identity":
        out.append(f"asks {g('ask')}" + (" / caller number" if g("match_caller") else ""))
        out.append(f"{g('tries')} tries")
    if n.kind == "menu":
        out.append(f"{g('retries')} retries, {g('timeout'):g} s")
    if n.kind == "set":
        out.extend(f"{k} = {v}" for k, v in list(g("vars").items())[:4])
    if n.kind == "hours":
        out.append(f"group {g('group')}" if g("group") else ", ".join(g("hours") or ()))
    if n.kind == "queue":
        out.append(f"group {g('group') or '${group}'}")
    if n.kind == "voicemail":
        out.append(f"box {g('box')}")
    if n.kind == "http":
        out.append(f"{g('method')} {g('url')}")
    if n.kind == "goto":
        out.append(f"flow {g('flow')}" + (f".{g('node')}" if g("node") else ""))
    if n.kind == "transfer":
        out.append(f"to {g('number')}")
    if g("note"):
        out.append(str(g("note")))
    return out


def _case_label(cond: dict) -> str:
    parts = []
    if "var" in cond:
        if "equals" in cond:
            parts.append(f"{cond['var']} = {cond['equals']}")
        elif "in" in cond:
            parts.append(f"{cond['var']} in {', '.join(cond['in'])}")
        elif "matches" in cond:
            parts.append(f"{cond['var']} ~ {cond['matches']}")
        else:
            parts.append(f"{cond['var']} set")
    if "caller" in cond:
        parts.append(f"caller ~ {cond['caller']}")
    if "verified" in cond:
        parts.append("verified" if cond["verified"] else "not verified")
    if "time" in cond:
        parts.append(", ".join(cond["time"]))
    return " and ".join(parts)


def to_dot(flow: Flow) -> str:
    lines = [f'digraph "{_esc(flow.name)}" {{',
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=16, labelloc=t, nodesep=0.35, ranksep=0.45,',
             f'         label="{_esc("flow " + flow.name + (": " + flow.description if flow.description else ""))}"];',
             '  node [fontname="Helvetica", fontsize=11, style="filled,rounded", color="#555555"];',
             '  edge [fontname="Helvetica", fontsize=10, color="#555555"];',
             '  "__start" [label="call arrives", shape=circle, style=filled, fillcolor="#333333", '
             'fontcolor=white, fontsize=10, width=0.9];',
             f'  "__start" -> "n_{flow.start}";']
    for n in flow.nodes.values():
        shape, fill = STYLE[n.kind]
        label = "\\n".join([_esc(f"{n.name}"), _esc(f"[{n.kind}]")] + [_esc(d) for d in _detail(n)])
        style = "filled" if shape in ("diamond", "hexagon", "cylinder", "doubleoctagon",
                                      "octagon", "larrow", "cds", "component", "note", "box3d") \
            else "filled,rounded"
        lines.append(f'  "n_{n.name}" [label="{label}", shape={shape}, fillcolor="{fill}", style="{style}"];')
    for n in flow.nodes.values():
        cases = n.get("cases") if n.kind == "branch" else None
        for label, target, _line in n.edges():
            if label.startswith("case ") and cases:
                label = _case_label(cases[int(label.split()[1]) - 1].conditions)
            elif label == "next":
                label = ""
            colour = EDGE_COLOUR.get(label, "#555555")
            lines.append(f'  "n_{n.name}" -> "n_{target}" [label="{_esc(label)}", color="{colour}", '
                         f'fontcolor="{colour}"];')
        if n.kind == "goto":
            other = f"flow_{n.get('flow')}"
            lines.append(f'  "{_esc(other)}" [label="{_esc("flow " + n.get("flow"))}", shape=folder, '
                         'fillcolor="#d9d2e9", style=filled];')
            lines.append(f'  "n_{n.name}" -> "{_esc(other)}" [style=dashed];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(flow: Flow, fmt: str = "svg", dot: str = "dot", timeout: float = 30.0) -> bytes:
    """The picture as bytes (``svg`` or ``png``)."""
    if fmt not in ("svg", "png"):
        raise UserError("flows.graph_format", f"{fmt!r}: the picture is svg or png")
    exe = shutil.which(dot)
    if exe is None:
        raise UserError("flows.graph_no_dot",
                        "Graphviz's dot is needed to draw flows: apt-get install graphviz (make setup does)")
    r = subprocess.run([exe, f"-T{fmt}"], input=to_dot(flow).encode(), capture_output=True,
                       timeout=timeout, stdin=None)
    if r.returncode != 0:
        raise UserError("flows.graph_failed", f"dot failed: {r.stderr.decode(errors='replace')[:300]}")
    return r.stdout
