"""docs/architecture.md and its picture cannot rot in silence.

* every path the picture or the page names (``acd/runtime/service.py``, ``agi/queue.py``, ...)
  exists in the tree, and so does every entry of the README's layout, which lists every
  module of ``acd/runtime/``;
* the two tables of the loop on the page list exactly the entries of ``_fact_table`` and
  ``_decision_table`` in ``acd/runtime/service.py``, each with its handler (read from the
  source, nothing imported);
* the core imports none of the adapters, nor any other library (the house the page
  describes);
* ``docs/architecture.dot`` renders, and the committed svg has the texts of a fresh render.
  ``dot`` (Graphviz) is installed by ``make setup`` (``make flow-tools``): its absence fails.
"""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from tests.conftest import PROJECT

DOT = PROJECT / "docs" / "architecture.dot"
SVG = PROJECT / "docs" / "architecture.svg"
PAGE = PROJECT / "docs" / "architecture.md"
SERVICE = PROJECT / "acd" / "runtime" / "service.py"
README = PROJECT / "README.md"

#: A path in the tree: one of our top folders, then a slash. Not preceded by a path character
#: (so ``/api/agents/...`` and ``PJSIP/<endpoint>`` are not taken for one).
PATH = re.compile(r"(?<![\w./-])(?:acd|agi|asterisk-conf|tests|docs|bench|ivr_flows|docker)"
                  r"/[\w./-]*")
SVG_NS = "{http://www.w3.org/2000/svg}"


def _paths(text: str) -> set[str]:
    return {m.group(0).rstrip("./") for m in PATH.finditer(text)}


def test_every_path_the_picture_and_the_page_name_exists():
    named = {}
    for doc in (DOT, PAGE):
        for path in _paths(doc.read_text()):
            named.setdefault(path, doc.name)
    assert "acd/runtime/service.py" in named and "agi/queue.py" in named   # the pattern works
    missing = sorted(f"{p} (named in docs/{doc})" for p, doc in named.items()
                     if not (PROJECT / p).exists())
    assert not missing, "paths named in the architecture docs that are not in the tree: " + \
        ", ".join(missing)


def _layout() -> list[str]:
    """The paths of the README's layout tree (``## Layout``): two spaces of indent per level;
    a line indented deeper than an entry can be continues the description above it."""
    text = README.read_text()
    block = text[text.index("## Layout"):].split("```")[1]
    paths: list[str] = []
    parents: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent % 2 or indent // 2 > len(parents):
            continue                                  # a description's second line
        parents = parents[:indent // 2]
        name = line.split()[0]
        paths.append("/".join([*parents, name.rstrip("/")]))
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return paths


def test_the_readme_layout_is_the_tree():
    paths = _layout()
    assert "acd/runtime/service.py" in paths and "acd/asterisk/dialplan.py" in paths
    missing = [p for p in paths if not (PROJECT / p).exists()]
    assert not missing, f"README's layout names what is not in the tree: {missing}"
    runtime = {f"acd/runtime/{p.name}" for p in (PROJECT / "acd" / "runtime").glob("*.py")
               if p.name != "__init__.py"}
    assert not runtime - set(paths), \
        f"modules of acd/runtime/ missing from README's layout: {sorted(runtime - set(paths))}"
    assert "](docs/architecture.md)" in README.read_text()


def test_the_page_shows_the_picture():
    assert "](architecture.svg)" in PAGE.read_text()


# ---- the two tables of the loop ---------------------------------------------------------------

def _table_in_source(method: str) -> dict[str, str]:
    """``{key name: handler method name}`` of the dict ``AcdRuntime.<method>`` returns."""
    tree = ast.parse(SERVICE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == method:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Return) and isinstance(sub.value, ast.Dict):
                    out = {}
                    for k, v in zip(sub.value.keys, sub.value.values):
                        key = k.attr if isinstance(k, ast.Attribute) else k.id  # f.X or X
                        assert isinstance(v, ast.Attribute), ast.unparse(v)
                        out[key] = v.attr
                    return out
    raise AssertionError(f"no dict returned by {method} in {SERVICE}")


def _table_on_page(header: str) -> dict[str, str]:
    """``{name in the first column: the whole row}`` of the page's table whose header row
    starts with ``| <header> |``."""
    lines = PAGE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        first = line.split("|")[1]
        for name in re.findall(r"`(\w+)`", first):
            rows[name] = line
    return rows


def _check(method: str, header: str) -> None:
    code, page = _table_in_source(method), _table_on_page(header)
    assert set(page) == set(code), (
        f"docs/architecture.md's {header} table and AcdRuntime.{method} disagree: "
        f"only in the code {sorted(set(code) - set(page))}, "
        f"only on the page {sorted(set(page) - set(code))}")
    wrong = sorted(f"{k}: {code[k]}" for k in code if f".{code[k]}`" not in page[k])
    assert not wrong, f"handlers the page names wrongly ({method}): {wrong}"


def test_the_pages_fact_table_is_the_codes():
    _check("_fact_table", "fact")


def test_the_pages_decision_table_is_the_codes():
    _check("_decision_table", "decision")


# ---- the house --------------------------------------------------------------------------------

#: What the core may import besides itself and the standard library: the base class of the
#: errors with stable ids (no I/O; the edges map it to statuses and exit codes).
CORE_MAY_IMPORT = {"acd.errors"}


def test_the_core_imports_none_of_the_adapters():
    wrong = []
    for path in sorted((PROJECT / "acd" / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if name == "acd.core" or name.startswith("acd.core.") or \
                        name in CORE_MAY_IMPORT or top in sys.stdlib_module_names or \
                        top == "__future__":
                    continue
                wrong.append(f"{path.relative_to(PROJECT)}: {name}")
    assert not wrong, f"the core imports outside itself and the standard library: {wrong}"


# ---- the picture ------------------------------------------------------------------------------

def _texts(svg: str) -> set[str]:
    root = ET.fromstring(svg)
    return {"".join(t.itertext()).strip() for t in root.iter(f"{SVG_NS}text")} - {""}


def test_the_committed_svg_is_the_dot_rendered():
    dot = shutil.which("dot")
    assert dot, ("Graphviz's `dot` is not on PATH: run `make flow-tools` (part of `make setup`) "
                 "to install it; this test renders docs/architecture.dot")
    run = subprocess.run([dot, "-Tsvg", str(DOT)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"dot failed on docs/architecture.dot:\n{run.stderr}"
    fresh, committed = _texts(run.stdout), _texts(SVG.read_text())
    assert "acd/runtime/service.py" in fresh
    assert fresh == committed, (
        "docs/architecture.svg is not docs/architecture.dot rendered; run "
        "`dot -Tsvg docs/architecture.dot -o docs/architecture.svg` and commit both. "
        f"Only in a fresh render: {sorted(fresh - committed)}; "
        f"only in the committed svg: {sorted(committed - fresh)}")
