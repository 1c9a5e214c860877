"""The core's shape: no import circle among its modules (counting imports under
TYPE_CHECKING and inside functions), modules of at most 800 lines, functions of at most 80."""
from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[3] / "acd" / "core"


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(CORE.glob("*.py"))}


def _imports(tree: ast.Module, names: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "acd.core":
                out |= {a.name for a in node.names if a.name in names}
            elif node.module.startswith("acd.core."):
                out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names
                    if a.name.startswith("acd.core.")}
    return out


def test_no_import_circle_in_the_core():
    mods = _modules()
    graph = {name: _imports(tree, set(mods)) - {name} for name, tree in mods.items()
             if name != "__init__"}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, " -> ".join(path[path.index(name):] + [name])
        if name in done:
            return
        for nxt in sorted(graph.get(name, ())):
            visit(nxt, path + [name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_modules_and_functions_are_small():
    for p in sorted(CORE.glob("*.py")):
        text = p.read_text()
        assert len(text.splitlines()) <= 800, p.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                assert node.end_lineno - first + 1 <= 80, f"{p.name}: {node.name}"
