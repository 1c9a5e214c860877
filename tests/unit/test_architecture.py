"""The server's shape, read from its source (nothing imported):

* no import circle among the modules of ``acd/`` and ``agi/``: every ``import`` and
  ``from ... import`` counts, also inside functions and under ``if TYPE_CHECKING:``; relative
  imports are resolved, and ``from pkg import name`` is an import of ``pkg.name`` when that is
  a module. A package's ``__init__`` importing its own submodules (re-exports) is no edge;
  a submodule importing its package's ``__init__`` is one.
* no module of the server longer than 800 lines (migrations apart);
* no function longer than 80 lines (tables and data at module level are not functions).
"""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.conftest import PROJECT

SERVER = ("acd", "agi")
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 80


def _modules(root: Path, tops: tuple[str, ...] = SERVER) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the top packages."""
    out: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, anywhere in its source."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    out: set[str] = set()

    def add(module: str) -> None:
        while module and module not in known:      # ``import acd.core.x.y``: the module part
            module = module.rpartition(".")[0]
        if module:
            out.add(module)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                add(sub if sub in known else base_name)
    return out


def import_graph(root: Path, tops: tuple[str, ...] = SERVER) -> dict[str, set[str]]:
    """Module -> the modules it imports; no edge from a package to its own submodules."""
    known = _modules(root, tops)
    graph = {}
    for name, path in known.items():
        edges = _imports(name, path, known)
        if _is_package(path):
            edges = {m for m in edges if not m.startswith(f"{name}.")}
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles, each as ``a -> b -> ... -> a`` starting at its smallest module.
    The standard library's ``graphlib`` names one circle at a time; one of its edges is set
    aside and the search goes on, until no circle is left."""
    deps = {node: set(imports) for node, imports in graph.items()}
    found: list[list[str]] = []
    while True:
        try:
            TopologicalSorter(deps).prepare()
            return found
        except CycleError as exc:
            chain = list(reversed(exc.args[1]))[:-1]      # importer first, without the repeat
            i = chain.index(min(chain))
            chain = chain[i:] + chain[:i]
            found.append([*chain, chain[0]])
            deps[chain[0]].discard(chain[1 % len(chain)])


def _server_files() -> list[Path]:
    return [p for top in SERVER for p in sorted((PROJECT / top).rglob("*.py"))
            if "migrations" not in p.relative_to(PROJECT).parts]


# ---------------------------------------------------------------------------- the tests

def test_no_import_circle():
    graph = import_graph(PROJECT)
    assert "acd.core.calls" in graph["acd.core.decisions"]          # the graph sees imports
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_module_over_800_lines():
    long = {str(p.relative_to(PROJECT)): n for p in _server_files()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_80_lines():
    long = []
    for path in _server_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PROJECT)}:{node.lineno} {node.name} ({n})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(long)


# ---------------------------------------------------------------------------- the tools

def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_graph_finds_every_kind_of_import(tmp_path):
    root = _tree(tmp_path, {
        "p/__init__.py": "from p.a import A\nfrom . import b\n",          # re-exports: no edge
        "p/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import B\n",
        "p/b.py": "def f():\n    from . import c\n",                        # in a function
        "p/c.py": "from ..p import a\nimport p.d.e\nfrom p import thing\n",
        "p/d/__init__.py": "",
        "p/d/e.py": "from .. import thing as x\nfrom ...p.d import e\n",
    })
    graph = import_graph(root, ("p",))
    assert graph == {"p": set(), "p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a", "p.d.e", "p"},
                     "p.d": set(), "p.d.e": {"p", "p.d.e"}}
    assert sorted(circles(graph)) == [["p.a", "p.b", "p.c", "p.a"], ["p.d.e", "p.d.e"]]


def test_a_package_re_exporting_its_submodules_is_no_circle(tmp_path):
    """The package imports its submodule only to re-export it: a submodule may take a name
    from its package. A package importing a module that imports the package back is one."""
    root = _tree(tmp_path, {"q/__init__.py": "from q.m import M\n",
                            "q/m.py": "from q import helper\n",
                            "r/__init__.py": "from s import S\n",
                            "s.py": "import r\n"})
    assert circles(import_graph(root, ("q",))) == []
    (root / "s").mkdir()
    (root / "s.py").rename(root / "s" / "__init__.py")
    assert circles(import_graph(root, ("q", "r", "s"))) == [["r", "s", "r"]]
