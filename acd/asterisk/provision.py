"""Getting an Asterisk to run: the one on the PATH (20 or newer), or a managed root filesystem.

The managed root is Debian unstable's Asterisk 22, built once with debootstrap under an ignored
cache folder of the project and reused. The mirror is the one apt on this machine already uses.
Nothing in here starts Asterisk; see ``runner.py``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from acd.errors import UserError

#: What the managed root holds: Asterisk with its English prompts and music on hold, and
#: baresip, a real softphone used as the agents' phones in tests and demos.
ROOT_PACKAGES = (
    "asterisk",
    "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-gsm",
    "baresip",
)
MARKER = ".acd-root-complete"
# debootstrap prints a line per package and step; progress shows a line per phase, a dot per 10.
PHASES = {"Retrieving": "downloading", "Validating": "downloading", "Extracting": "extracting",
          "Unpacking": "installing", "Configuring": "installing", "Installing": "installing"}
MIN_MAJOR = 20


@dataclass(frozen=True)
class Install:
    """Where Asterisk lives: ``root`` is None for one on the PATH, else the chroot folder."""

    binary: str
    root: Path | None
    version: str

    def host_path(self, inside: str) -> Path:
        """A path as seen from the host, for a path as seen by Asterisk."""
        if self.root is None:
            return Path(inside)
        return self.root / inside.lstrip("/")

    def command(self, *args: str) -> list[str]:
        if self.root is None:
            return [self.binary, *args]
        return ["chroot", str(self.root), self.binary, *args]


def _say(msg: str) -> None:
    print(f"[asterisk] {msg}", file=sys.stderr, flush=True)


def parse_version(text: str) -> tuple[int, str] | None:
    """'Asterisk 22.10.1+dfsg+~cs6.17.60671434-1' -> (22, '22.10.1+dfsg...')."""
    m = re.search(r"Asterisk\s+(?:certified/)?(\d+)\.(\S+)", text)
    if not m:
        return None
    return int(m.group(1)), f"{m.group(1)}.{m.group(2)}"


def system_asterisk() -> Install | None:
    """An Asterisk 20+ on the PATH, or None."""
    binary = shutil.which("asterisk")
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    parsed = parse_version(out)
    if not parsed or parsed[0] < MIN_MAJOR:
        _say(f"ignoring {binary}: version {out.strip() or 'unknown'} is older than {MIN_MAJOR}")
        return None
    return Install(binary=binary, root=None, version=parsed[1])


def apt_mirror() -> str:
    """The Debian mirror apt already uses here (deb822 or one-line sources)."""
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        candidates += sorted(d.glob("*.sources")) + sorted(d.glob("*.list"))
    for f in candidates:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            m = re.match(r"URIs:\s*(\S+)", line) or re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and "security" not in m.group(1) and m.group(1).startswith(("http", "file")):
                return m.group(1).rstrip("/")
    raise UserError("asterisk.no_mirror",
                    "no Debian mirror found in apt's sources; set ACD_ASTERISK_MIRROR")


def _ensure_debootstrap() -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise UserError("asterisk.no_debootstrap",
                        "debootstrap is needed to build the Asterisk root: apt-get install debootstrap")
    _say("installing debootstrap with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("debootstrap") or "debootstrap"


def managed_install(root: Path) -> Install:
    return Install(binary="/usr/sbin/asterisk", root=root, version=_root_version(root))


def _root_version(root: Path) -> str:
    marker = root / MARKER
    return marker.read_text().strip() if marker.exists() else ""


def build_root(root: Path, mirror: str | None = None) -> Install:
    """Build the managed root once; later calls return at once. Shows progress."""
    root = root.resolve()
    if (root / MARKER).exists():
        return managed_install(root)
    if os.geteuid() != 0:
        raise UserError("asterisk.not_root",
                        "building the Asterisk root filesystem needs root (debootstrap, chroot); "
                        "or put Asterisk 20+ on the PATH")
    debootstrap = _ensure_debootstrap()
    mirror = mirror or os.environ.get("ACD_ASTERISK_MIRROR") or apt_mirror()
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        _say(f"removing an unfinished build at {tmp}")
        _unmount_below(tmp)
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp)], check=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _say(f"building the Asterisk 22 root filesystem in {root} (Debian unstable; "
         f"about a minute and 500 MB; done once)")
    started = time.monotonic()
    cmd = [debootstrap, "--variant=minbase", f"--include={','.join(ROOT_PACKAGES)}",
           "sid", str(tmp), mirror]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    step, count = "", 0
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-30:]
        m = re.match(r"I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing)", line)
        if m:
            phase = PHASES[m.group(1)]
            if phase != step:
                step, count = phase, 0
                print(f"\n[asterisk] {phase} ", end="", file=sys.stderr, flush=True)
            count += 1
            if count % 10 == 0:
                print(".", end="", file=sys.stderr, flush=True)
        elif line.startswith(("I: ", "W: ", "E: ")):
            print(f"\n[asterisk] {line}", end="", file=sys.stderr, flush=True)
    rc = proc.wait()
    print(file=sys.stderr)
    if rc != 0:
        _unmount_below(tmp)
        raise UserError("asterisk.root_build_failed",
                        f"debootstrap exited {rc}; last lines:\n" + "\n".join(tail))
    out = subprocess.run(["chroot", str(tmp), "/usr/sbin/asterisk", "-V"],
                         capture_output=True, text=True)
    parsed = parse_version(out.stdout)
    if not parsed or parsed[0] < MIN_MAJOR:
        raise UserError("asterisk.root_bad_version",
                        f"the root's Asterisk reports {out.stdout.strip()!r} {out.stderr.strip()!r}")
    (tmp / MARKER).write_text(parsed[1] + "\n")
    if root.exists():
        _unmount_below(root)
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)
    tmp.rename(root)
    _say(f"Asterisk {parsed[1]} ready in {time.monotonic() - started:.0f} s")
    return managed_install(root)


def resolve(mode: str, root: Path, build: bool = True) -> Install:
    """Pick the Asterisk to run. mode: auto (PATH first, else managed), system, managed."""
    if mode in ("auto", "system"):
        found = system_asterisk()
        if found:
            return found
        if mode == "system":
            raise UserError("asterisk.not_found", "asterisk.mode is 'system' but no Asterisk "
                            f"{MIN_MAJOR}+ is on the PATH")
    if (root / MARKER).exists():
        return managed_install(root.resolve())
    if not build:
        raise UserError("asterisk.not_provisioned",
                        f"no Asterisk on the PATH and no managed root at {root}: run 'acd asterisk provision'")
    return build_root(root)


def _mounts() -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    return [ln.split()[1].replace("\\040", " ") for ln in lines if len(ln.split()) > 1]


def _unmount_below(folder: Path) -> None:
    prefix = str(folder.resolve())
    for mnt in sorted((m for m in _mounts() if m == prefix or m.startswith(prefix + "/")),
                      key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)


def ensure_proc(root: Path) -> None:
    """Asterisk in the chroot reads /proc; mount it once."""
    target = (root / "proc").resolve()
    if str(target) not in _mounts():
        target.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)


def release_mounts(root: Path) -> None:
    _unmount_below(root)
