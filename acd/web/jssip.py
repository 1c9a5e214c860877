"""JsSIP for the agent page's browser phone, served as one plain script (``GET /vendor/jssip.js``).

JsSIP is installed by ``make setup`` (``npm ci``: the version and integrity hash pinned in
package-lock.json) into ``node_modules/``, which is never committed. Its npm package holds
CommonJS files only (``require``/``module.exports``; no browser bundle since 3.x), and the
pages have no build step, so this server joins them when first asked: each file of JsSIP and of
its dependencies (debug, ms, events, sdp-transform), found by following ``require()`` from
``jssip/lib/JsSIP.js``, is wrapped in a function of ``(module, exports, require)``, and a small
loader at the end sets ``window.JsSIP``. The files are served as npm delivered them (nothing is
rewritten); a package's ``browser`` field is honoured as bundlers do (debug's browser build).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from acd.errors import UserError

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
ENTRY = "jssip/lib/JsSIP.js"
_REQUIRE = re.compile(r"""\brequire\(\s*['"]([^'"]+)['"]\s*\)""")

LOADER = """
  var cache = {};
  function load(id) {
    if (cache[id]) return cache[id].exports;
    var m = cache[id] = { exports: {} };
    var def = defs[id];
    def[0].call(m.exports, m, m.exports, function (name) {
      if (!(name in def[1])) throw new Error("jssip.js: " + id + " requires " + name + ", not served");
      return load(def[1][name]);
    });
    return m.exports;
  }
  window.JsSIP = load(%s);
"""


def _file(path: Path) -> Path | None:
    for p in (path, path.with_name(path.name + ".js"), path.with_name(path.name + ".json"),
              path / "index.js"):
        if p.is_file():
            return p
    return None


def _package_main(root: Path, name: str) -> Path | None:
    meta = json.loads((root / name / "package.json").read_text())
    main = meta.get("browser") if isinstance(meta.get("browser"), str) else None
    return _file(root / name / (main or meta.get("main") or "index.js"))


def _resolve(root: Path, importer: Path, name: str) -> Path:
    if name.startswith("./") or name.startswith("../"):
        found = _file((importer.parent / name).resolve())
    elif (root / name / "package.json").is_file():
        found = _package_main(root, name)
    else:
        found = None
    if found is None or root not in found.parents:
        raise UserError("web.jssip_missing", f"{importer.relative_to(root)} requires {name!r}, "
                                             "which is not in node_modules: run make setup")
    return found


def build(root: Path = NODE_MODULES) -> str:
    """The browser script: every module JsSIP needs, wrapped, and the loader."""
    entry = root / ENTRY
    if not entry.is_file():
        raise UserError("web.jssip_missing", "JsSIP is not installed (node_modules/jssip): "
                                             "run make setup (npm ci)")
    root = root.resolve()
    todo, seen, parts = [entry.resolve()], set(), []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        key = str(path.relative_to(root))
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            body, deps = "module.exports = " + text + ";", {}
        else:
            deps = {}
            for name in dict.fromkeys(_REQUIRE.findall(text)):
                dep = _resolve(root, path, name)
                deps[name] = str(dep.relative_to(root))
                todo.append(dep)
            body = text
        parts.append(f"defs[{json.dumps(key)}] = [function (module, exports, require) {{\n"
                     f"{body}\n}}, {json.dumps(deps)}];\n")
    version = json.loads((root / "jssip" / "package.json").read_text())["version"]
    return (f"/* JsSIP {version} and its dependencies, as npm installed them (MIT licences: "
            f"the LICENSE file of each package in node_modules), joined for the browser by acd/web/jssip.py. */\n"
            "(function () {\nvar defs = {};\n" + "".join(sorted(parts))
            + LOADER % json.dumps(ENTRY) + "})();\n")
