"""The flows a server runs, loaded at start and again on change, never replaced by a broken file.

:meth:`FlowRegistry.load` reads every ``*.yaml`` in the flows folder and checks it. A file
that passes replaces its working version; a file that does not keeps the working version
serving (if it ever had one), and its errors are kept for the log and the admin API. Checks
across files (a ``goto`` to a flow that is gone, two files with one flow name) are run on the
set that would serve; a new version that breaks them is refused the same way, and a deleted
file that another flow still goes to stays loaded. Prompts (recordings, synthesized text)
are prepared before a version is taken.

:meth:`FlowRegistry.watch` polls the folder (names, sizes, modification times) and reloads on
a change; :meth:`FlowRegistry.reload` does it at once (``POST /api/flows/reload``).
Loading runs in a worker thread: synthesis and file reads never hold up calls.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from acd import log as acdlog
from agi.flows.loader import check_set, load_file
from agi.flows.model import Flow, FlowError
from agi.flows.prompts import PromptLibrary, SoundIndex

PATTERNS = ("*.yaml", "*.yml")


def _log(**bound: Any):
    return acdlog.get_logger(component="flows", **bound)


class FlowRegistry:
    def __init__(self, directory: Path, *, numbers: Mapping[str, str] | None = None,
                 groups: Iterable[str] | None = None, library: PromptLibrary | None = None,
                 sounds: SoundIndex | None = None, config_source: str = "config",
                 wall: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.numbers = dict(numbers or {})
        self.groups = set(groups) if groups is not None else None
        self.library = library
        self.sounds = sounds
        self.config_source = config_source
        self.wall = wall
        self._files: dict[Path, Flow] = {}          # file -> its working version
        self._flows: dict[str, Flow] = {}           # the serving set, by flow name
        self._digits: dict[str, dict[str, str]] = {}
        self.errors: list[FlowError] = []
        self.loaded_at: float | None = None
        self.attempted_at: float | None = None
        self._signature: tuple = ()
        self._lock = asyncio.Lock()
        self.generation = 0                        # reloads done (a test or a page waits on it)
        self._reloaded = asyncio.Condition()

    # ---- what the runner asks

    def snapshot(self) -> dict[str, Flow]:
        """The serving flows; the dict is replaced, never changed, on a reload."""
        return self._flows

    def flow_for(self, number: str) -> str | None:
        return self.numbers.get(number)

    def digits_for(self, flow: Flow) -> dict[str, str] | None:
        return self._digits.get(flow.name)

    def status(self) -> dict[str, Any]:
        current = {str(p): f.version for p, f in self._files.items()}
        return {
            "status": "errors" if self.errors else "ok",
            "directory": str(self.directory),
            "loaded_at": self.loaded_at, "checked_at": self.attempted_at,
            "flows": [{"name": f.name, "file": f.file, "version": f.version, "start": f.start,
                       "nodes": len(f.nodes), "language": f.language,
                       "numbers": sorted(n for n, name in self.numbers.items() if name == f.name)}
                      for f in sorted(self._flows.values(), key=lambda f: f.name)],
            "numbers": dict(sorted(self.numbers.items())),
            "errors": [e.as_dict() for e in self.errors],
            "files": current,
        }

    # ---- loading

    def _scan(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted({p for pat in PATTERNS for p in self.directory.glob(pat) if p.is_file()})

    def signature(self) -> tuple:
        out = []
        for p in self._scan():
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _display(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def load(self) -> dict[str, Any]:
        """Read and check every file; take what passes. Blocking: see :meth:`reload`."""
        self._signature = self.signature()
        files = self._scan()
        errors: list[FlowError] = []
        fresh: dict[Path, Flow] = {}
        sound_known = self.sounds.known if self.sounds is not None else None
        for path in files:
            old = self._files.get(path)
            flow, errs = load_file(path, groups=self.groups, sound_known=sound_known,
                                   display=self._display(path))
            if flow is not None and old is not None and flow.version == old.version:
                fresh[path] = old                  # unchanged: prompts are ready already
                continue
            if flow is not None and not errs and self.library is not None:
                errs = self.library.prepare(flow)
            if flow is not None and not errs:
                fresh[path] = flow
            errors.extend(errs)
        # The set that would serve: new versions that passed, else the working ones.
        candidate: dict[Path, Flow] = {}
        for path in files:
            if path in fresh:
                candidate[path] = fresh[path]
            elif path in self._files:
                candidate[path] = self._files[path]
        deleted = {p: f for p, f in self._files.items() if p not in files}
        for _ in range(len(files) + len(deleted) + 1):
            problems = check_set(candidate.values())
            if not problems:
                break
            changed = False
            for e in problems:
                path = next((p for p, f in candidate.items() if f.file == e.file), None)
                if e.id == "flow.unknown_flow":
                    gone = next((p for p, f in deleted.items()
                                 if f"flow {f.name!r}" in e.message and p not in candidate), None)
                    if gone is not None:
                        candidate[gone] = deleted[gone]
                        errors.append(FlowError("flow.still_used", deleted[gone].file, 0,
                                                f"flow {deleted[gone].name!r} was deleted but "
                                                f"{e.file} still goes to it; it stays loaded"))
                        changed = True
                        continue
                if path is None:
                    continue
                errors.append(e)
                old = self._files.get(path)
                if old is not None and candidate[path] is not old:
                    candidate[path] = old
                else:
                    del candidate[path]
                changed = True
            if not changed:
                break
        taken = [p for p in candidate if candidate[p] is not self._files.get(p)]
        dropped = [p for p in self._files if p not in candidate]
        self._files = candidate
        self._flows = {f.name: f for f in candidate.values()}
        for number, name in sorted(self.numbers.items()):
            if name not in self._flows:
                errors.append(FlowError("flow.unknown_flow", self.config_source, 0,
                                        f"flows.numbers: {number} maps to flow {name!r}, which "
                                        "is not loaded (calls to it get the built-in hotline)"))
        self._prepare_digits(errors)
        self.errors = _unique(errors)
        now = self.wall()
        self.attempted_at = now
        if taken or dropped or self.loaded_at is None:
            self.loaded_at = now
        return {"taken": [str(p) for p in taken], "dropped": [str(p) for p in dropped],
                "errors": self.errors}

    def _prepare_digits(self, errors: list[FlowError]) -> None:
        """Digits for ``say`` in flows whose language Asterisk has no sounds for."""
        digits = {}
        have = set(self.sounds.languages()) if self.sounds is not None else set()
        for f in self._flows.values():
            if f.voice and self.library is not None and have and f.language not in have:
                table, errs = self.library.digit_prompts(f.voice, f.file)
                if not errs:
                    digits[f.name] = table
                errors.extend(errs)
        self._digits = digits

    async def reload(self, reason: str = "request") -> dict[str, Any]:
        async with self._lock:
            before = {f.name: f.version for f in self._flows.values()}
            result = await asyncio.to_thread(self.load)
        log = _log(reason=reason)
        serving = {f.name: f.version for f in self._flows.values()}
        if result["errors"]:
            log.warning("flows.reload_errors", serving=serving,
                        errors=[str(e) for e in result["errors"]],
                        kept_working_versions=True)
        if before != serving:
            log.info("flows.loaded", serving=serving, taken=result["taken"], dropped=result["dropped"])
        elif not result["errors"]:
            log.debug("flows.unchanged")
        async with self._reloaded:
            self.generation += 1
            self._reloaded.notify_all()
        return result

    async def wait_reload(self, after: int, timeout: float) -> int:
        """Wait until a reload after generation ``after`` is done; the new generation."""
        async with asyncio.timeout(timeout):
            async with self._reloaded:
                await self._reloaded.wait_for(lambda: self.generation > after)
        return self.generation

    async def watch(self, interval: float) -> None:
        """Reload whenever the folder's files change. Runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.signature() != self._signature:
                    await self.reload("changed")
            except asyncio.CancelledError:
                raise
            except Exception:
                _log().exception("flows.watch_failed")


def _unique(errors: list[FlowError]) -> list[FlowError]:
    seen, out = set(), []
    for e in errors:
        key = (e.id, e.file, e.line, e.message)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
