"""Prompts a flow plays: Asterisk's sounds by name, the project's own recordings, and text
spoken by a synthesizer (espeak-ng) for languages Asterisk has no sound pack for.

Recordings and synthesized text are prepared once, when a flow is loaded: converted to what
Asterisk plays best (8 kHz, mono, 16-bit WAV; with sox when a file is in another shape),
cached under the data folder by a digest of what went in, and published into a folder that
Asterisk can read (its instance's ``sounds`` folder; Asterisk may run in a chroot, so the
path it sees differs from ours). The runner then plays them by that path.

Which sounds Asterisk has is read from its sounds folder (:func:`asterisk_sounds`), so the
checker can refuse a sound name Asterisk would not find.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import wave
from collections.abc import Iterable
from pathlib import Path

from agi.flows.model import Flow, FlowError, Prompt

SYNTH_TIMEOUT = 20.0
PUBLISH_FOLDER = "acd-flows"


class PromptLibrary:
    """Prepares a flow's file and text prompts. ``publish_host``/``publish_inside``: the one
    folder as we see it and as Asterisk sees it; None checks and caches without publishing
    (``acd flows check``)."""

    def __init__(self, cache_dir: Path, publish_host: Path | None = None,
                 publish_inside: str | None = None, *, synth: str = "espeak-ng",
                 sox: str = "sox") -> None:
        self.cache_dir = Path(cache_dir)
        self.publish_host = Path(publish_host) if publish_host else None
        self.publish_inside = publish_inside.rstrip("/") if publish_inside else None
        self.synth = synth
        self.sox = sox

    def prepare(self, flow: Flow) -> list[FlowError]:
        errors: list[FlowError] = []
        for p in flow.prompts():
            if p.kind == "sound":
                continue
            try:
                ready = self._text(p) if p.kind == "text" else self._file(p)
                p.play = self._publish(ready)
            except PromptError as e:
                errors.append(FlowError(e.id, flow.file, p.line, e.message))
        return errors

    def digit_prompts(self, voice: str, file: str) -> tuple[dict[str, str], list[FlowError]]:
        """The digits 0-9 spoken in ``voice``: for ``say`` in a language without sounds."""
        out, errors = {}, []
        for d in "0123456789":
            p = Prompt("text", d, 0, voice=voice)
            try:
                out[d] = self._publish(self._text(p)) or ""
            except PromptError as e:
                errors.append(FlowError(e.id, file, 0, e.message))
        return out, errors

    # ---- the steps

    def _text(self, p: Prompt) -> Path:
        digest = hashlib.sha256(f"{p.voice}\0{p.value}".encode()).hexdigest()[:20]
        out = self.cache_dir / f"tts-{digest}.wav"
        if out.exists():
            return out
        if shutil.which(self.synth) is None:
            raise PromptError("flow.prompt_synthesis",
                              f"text prompt: {self.synth} is not installed (apt-get install espeak-ng)")
        if str(p.voice).lower() not in self._voices():
            # espeak-ng speaks an unknown voice in its default one, exit status 0: ask first.
            raise PromptError("flow.prompt_synthesis",
                              f"text prompt: {self.synth} has no voice {p.voice!r} "
                              f"(see {self.synth} --voices; Mandarin is cmn)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        raw = out.with_suffix(".raw.wav")
        try:
            r = subprocess.run([self.synth, "-v", str(p.voice), "-w", str(raw), "--", p.value],
                               capture_output=True, text=True, timeout=SYNTH_TIMEOUT,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PromptError("flow.prompt_synthesis", f"text prompt: {self.synth} took too long") from None
        if r.returncode != 0 or not raw.exists() or "not found" in r.stderr.lower():
            raw.unlink(missing_ok=True)
            raise PromptError("flow.prompt_synthesis",
                              f"text prompt: {self.synth} -v {p.voice} failed: "
                              f"{(r.stderr or r.stdout).strip()[:200] or 'exit ' + str(r.returncode)}")
        try:
            self._convert(raw, out)
        finally:
            raw.unlink(missing_ok=True)
        return out

    def _voices(self) -> set[str]:
        """Voice and language names ``-v`` takes, from ``espeak-ng --voices`` (once)."""
        if getattr(self, "_voice_names", None) is None:
            names: set[str] = set()
            try:
                r = subprocess.run([self.synth, "--voices"], capture_output=True, text=True,
                                   timeout=SYNTH_TIMEOUT, stdin=subprocess.DEVNULL)
                for line in r.stdout.splitlines()[1:]:
                    cols = line.split()
                    if len(cols) >= 5:
                        names |= {cols[1].lower(), cols[3].lower(), cols[4].lower(),
                                  cols[4].rsplit("/", 1)[-1].lower()}
                        names |= {c.strip("()").lower() for c in cols[5:] if c.startswith("(")}
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._voice_names = names
        return self._voice_names

    def _file(self, p: Prompt) -> Path:
        src = Path(p.value)
        if src.suffix.lower() != ".wav":
            return src                       # gsm, ulaw, alaw, sln: Asterisk's own formats
        try:
            with wave.open(str(src), "rb") as w:
                shape = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype())
        except (wave.Error, EOFError, OSError) as e:
            raise PromptError("flow.prompt_bad_file", f"prompt file {src.name}: not a WAV file ({e})") from None
        if shape == (8000, 1, 2, "NONE"):
            return src
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:20]
        out = self.cache_dir / f"file-{digest}.wav"
        if not out.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self._convert(src, out)
        return out

    def _convert(self, src: Path, out: Path) -> None:
        if shutil.which(self.sox) is None:
            raise PromptError("flow.prompt_bad_file",
                              f"{src.name} is not 8 kHz mono 16-bit and sox is not installed to convert it")
        tmp = out.with_suffix(".tmp.wav")
        r = subprocess.run([self.sox, str(src), "-r", "8000", "-c", "1", "-b", "16", str(tmp)],
                           capture_output=True, text=True, timeout=SYNTH_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise PromptError("flow.prompt_bad_file",
                              f"{src.name}: sox could not convert it: {r.stderr.strip()[:200]}")
        os.replace(tmp, out)

    def _publish(self, path: Path) -> str | None:
        """Copy into Asterisk's folder under a name from the content; the name to play."""
        if self.publish_host is None or self.publish_inside is None:
            return None
        data = path.read_bytes()
        name = hashlib.sha256(data).hexdigest()[:24]
        folder = self.publish_host / PUBLISH_FOLDER
        target = folder / f"{name}{path.suffix.lower()}"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        return f"{self.publish_inside}/{PUBLISH_FOLDER}/{name}"


class PromptError(Exception):
    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.id = error_id
        self.message = message


# --------------------------------------------------------------------------- Asterisk's sounds

def _inside(root: Path | None, path: Path) -> Path:
    """Follow symlinks the way Asterisk sees them: absolute targets are inside ``root``."""
    for _ in range(20):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        if target.is_absolute():
            path = (root / target.relative_to("/")) if root is not None else target
        else:
            path = path.parent / target
    return path


def asterisk_sounds(sounds_dir: Path, root: Path | None = None) -> dict[str, set[str]]:
    """language -> sound names (without extension, with sub folders: ``digits/1``) found in
    Asterisk's sounds folder. ``root``: the managed root, whose absolute links point inside."""
    out: dict[str, set[str]] = {}
    if not sounds_dir.is_dir():
        return out
    for entry in sorted(sounds_dir.iterdir()):
        folder = _inside(root, entry)
        if not folder.is_dir():
            continue
        names: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            rel = Path(dirpath).relative_to(folder)
            for f in filenames:
                stem = f.rsplit(".", 1)[0]
                names.add(stem if str(rel) == "." else f"{rel.as_posix()}/{stem}")
        if names:
            out[entry.name] = names
    return out


class SoundIndex:
    """``known(name, language)`` for the checker: True/False, or None when Asterisk's sounds
    are not known at all."""

    def __init__(self, by_language: dict[str, set[str]]) -> None:
        self.by_language = by_language

    @classmethod
    def for_root(cls, sounds_dir: Path, root: Path | None = None) -> "SoundIndex":
        return cls(asterisk_sounds(sounds_dir, root))

    def languages(self) -> Iterable[str]:
        return self.by_language.keys()

    def known(self, name: str, language: str) -> bool | None:
        if not self.by_language:
            return None
        # Asterisk looks in the channel's language, then falls back to English.
        return name in self.by_language.get(language, set()) | self.by_language.get("en", set())
