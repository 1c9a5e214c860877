"""``acd flows check [FILES]``, ``acd flows graph FLOW``, ``acd directory import FILE``.

``flows check`` prints every error as ``file:line: message [id]`` and exits 1 when there is
one (0 when all is well); ``flows graph`` writes a picture (SVG or PNG) of a flow;
``directory import`` reads customers from CSV into the database (all rows or none).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from acd.errors import UserError


def add_commands(sub: Any) -> None:
    f = sub.add_parser("flows", help="IVR flows: check the files, draw a flow")
    fs = f.add_subparsers(dest="flows_cmd", required=True)
    c = fs.add_parser("check", help="check flow files (default: every file of flows.dir)")
    c.add_argument("files", nargs="*", help="flow files (.yaml)")
    c.set_defaults(func=cmd_check)
    g = fs.add_parser("graph", help="write a picture of a flow")
    g.add_argument("flow", help="a flow name (from flows.dir) or a flow file")
    g.add_argument("-o", "--out", help="the picture file (default: FLOW.svg); '-' for standard output")
    g.add_argument("--format", choices=["svg", "png", "dot"], help="default: from --out, else svg")
    g.set_defaults(func=cmd_graph)
    d = sub.add_parser("directory", help="the customer directory for identity verification")
    ds = d.add_subparsers(dest="directory_cmd", required=True)
    i = ds.add_parser("import", help="import customers from CSV: customer_number,name,phone,id_number")
    i.add_argument("file")
    i.set_defaults(func=cmd_directory_import)


def _config(args: argparse.Namespace):
    from acd import config as configmod
    return configmod.load(args.config)


def _checker_env(cfg: Any):
    """Groups, Asterisk's sounds (when known) and a prompt library that caches, never publishes."""
    from agi.flows.prompts import PromptLibrary
    from agi.flows.service import _asterisk_paths
    _host, _inside, sounds = _asterisk_paths(cfg)
    library = PromptLibrary(cfg.path(cfg.data_dir) / "prompts", synth=cfg.flows.voice_command)
    return [g.name for g in cfg.groups], sounds, library


def check_files(files: list[Path], folder: Path, groups: list[str] | None, sounds: Any,
                library: Any) -> tuple[list[Any], list[Any]]:
    """(flows that passed, errors) for ``files``; goto targets may be in ``folder``."""
    from agi.flows.loader import check_set, load_file
    errors, flows = [], []
    known = sounds.known if sounds is not None else None
    chosen = {p.resolve() for p in files}
    for p in files:
        flow, errs = load_file(p, groups=groups, sound_known=known, display=str(p))
        if flow is not None and not errs and library is not None:
            errs = library.prepare(flow)
        errors.extend(errs)
        if flow is not None and not errs:
            flows.append(flow)
    others = []
    if folder.is_dir():
        for p in sorted(folder.glob("*.y*ml")):
            if p.resolve() not in chosen:
                flow, errs = load_file(p, groups=groups, display=str(p))
                if flow is not None and not errs:
                    others.append(flow)
    names = {f.name for f in flows}
    shown = {str(p) for p in files}
    errors.extend(e for e in check_set(flows + [f for f in others if f.name not in names])
                  if e.file in shown)
    return flows, errors


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    folder = cfg.path(cfg.flows.dir)
    files = [Path(f) for f in args.files] or sorted(folder.glob("*.y*ml"))
    if not files:
        print(f"no flow files in {folder}", file=sys.stderr)
        return 1
    groups, sounds, library = _checker_env(cfg)
    flows, errors = check_files(files, folder, groups, sounds, library)
    for e in sorted(errors, key=lambda e: (e.file, e.line)):
        print(str(e))
    names = {f.name for f in flows}
    for number, name in sorted((cfg.flows.numbers or {}).items()):
        if not args.files and name not in names:
            print(f"{cfg.source}: flows.numbers: {number} maps to flow {name!r}, which is not "
                  "loaded [flow.unknown_flow]")
            errors.append(None)
    if errors:
        print(f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {len(files)} file"
              f"{'s' if len(files) != 1 else ''}", file=sys.stderr)
        return 1
    print(f"{len(files)} flow file{'s' if len(files) != 1 else ''} OK: "
          f"{', '.join(sorted(names))}", file=sys.stderr)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from agi.flows import graph
    from agi.flows.loader import load_file
    cfg = _config(args)
    path = Path(args.flow)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        folder = cfg.path(cfg.flows.dir)
        path = next((p for p in sorted(folder.glob("*.y*ml"))
                     if (load_file(p)[0] or _Named(p.stem)).name == args.flow), folder / f"{args.flow}.yaml")
    flow, errors = load_file(path, display=str(path))
    if flow is None:
        for e in errors:
            print(str(e), file=sys.stderr)
        raise UserError("flows.invalid", f"{path} has errors: fix them first (acd flows check {path})")
    fmt = args.format or (Path(args.out).suffix.lstrip(".") if args.out and args.out != "-" else "svg")
    if fmt not in ("svg", "png", "dot"):
        raise UserError("flows.graph_format", f"{fmt!r}: the picture is svg, png or dot")
    data = graph.to_dot(flow).encode() if fmt == "dot" else graph.render(flow, fmt)
    if args.out == "-":
        sys.stdout.buffer.write(data)
        return 0
    out = Path(args.out or f"{flow.name}.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"{out}: flow {flow.name}, {len(flow.nodes)} nodes", file=sys.stderr)
    return 0


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


def cmd_directory_import(args: argparse.Namespace) -> int:
    from acd.directory import import_rows, parse_csv
    from acd.store.db import Store, migrate
    cfg = _config(args)
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UserError("directory.read_error", f"{args.file}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UserError("directory.bad_csv", f"{args.file}: not UTF-8 text") from None
    rows = parse_csv(text, args.file)
    migrate(cfg.database_url)

    async def run() -> dict[str, int]:
        store = Store(cfg.database_url)
        try:
            return await import_rows(store, rows)
        finally:
            await store.close()
    counts = asyncio.run(run())
    print(f"{args.file}: {counts['added']} customers added, {counts['updated']} updated")
    return 0
