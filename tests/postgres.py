"""A real PostgreSQL server for the tests: initdb and pg_ctl in a temporary folder, as an
unprivileged user (PostgreSQL refuses to run as root), listening on 127.0.0.1 on a free port
with its unix socket in that folder. One server per test session; each test gets a database
of its own, copied from a migrated template (CREATE DATABASE ... TEMPLATE: a file copy).

Debian keeps the server programs in /usr/lib/postgresql/<version>/bin, off the PATH; `make
test` installs the ``postgresql`` package when they are missing."""
from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: The user the server runs as when the tests run as root.
USER = "nobody"
SUPERUSER = "acd"
TEMPLATE = "acd_migrated"
OWNER = "owner.pid"          # the test run's process id, in the server's folder


def bin_dir() -> Path:
    """The newest installed server's programs (Debian's layout, then the PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
                       "`make test` installs Debian's postgresql package")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One server in its own folder. ``url(db)`` gives a SQLAlchemy asyncpg URL."""

    def __init__(self, root: Path | None = None) -> None:
        """A new folder; or ``root``, the folder of a server already there (to stop it)."""
        self.bin = bin_dir()
        self.root = root or Path(tempfile.mkdtemp(prefix="acd-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._names = itertools.count(1)
        self._version = 0
        self._as_user = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
        if root is not None:
            return
        (self.root / OWNER).write_text(str(os.getpid()))    # see reap_orphans
        if os.geteuid() == 0:                     # the server refuses root: run as USER
            pw = pwd.getpwnam(USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        else:
            os.chmod(self.root, 0o700)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as_user, *args], capture_output=True, text=True,
                              timeout=timeout, check=True, cwd=self.root)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
                  timeout=120)

    def start(self) -> None:
        """Start (or start again, on the same port once it has one)."""
        for attempt in range(5):
            port = self.port or free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} "
                    f"-c unix_socket_directories={self.root} -c fsync=off "
                    f"-c full_page_writes=off -c max_connections=200")
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.root / "server.log"), "-o", opts, "-w", "-t", "60", "start")
            except subprocess.CalledProcessError:
                if self.port or attempt == 4:     # the same port again: no other choice
                    raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}") from None
                continue                          # the free port was taken meanwhile
            self.port = port
            return

    def start_if_stopped(self) -> None:
        status = subprocess.run([*self._as_user, str(self.bin / "pg_ctl"), "-D", str(self.data),
                                 "status"], capture_output=True, cwd=self.root)
        if status.returncode != 0:          # 3: not running
            self.start()

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """One statement through psql over TCP (CREATE DATABASE cannot run in a transaction)."""
        return self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                         "-U", SUPERUSER, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc",
                         sql).stdout

    def new_database(self, template: str | None = None) -> str:
        """A fresh, empty database (or a copy of ``template``); its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        # FILE_COPY (PostgreSQL 15+): a copy of the files, about 6 times faster here than
        # the default WAL_LOG, which writes the whole template to the WAL.
        strategy = " STRATEGY FILE_COPY" if self.version() >= 150000 else ""
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"{strategy}')
        return name

    def version(self) -> int:
        if not self._version:
            self._version = int(self.psql("SHOW server_version_num").strip())
        return self._version

    def drop_database(self, name: str) -> None:
        """Drop a test's database, ending its connections (a store left open included)."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def reap_orphans() -> None:
    """Stop and remove the servers of test runs that died without stopping theirs (their
    process gone: pg_ctl's server outlives it); those of runs still going are left alone."""
    for owner in Path(tempfile.gettempdir()).glob(f"acd-pg-*/{OWNER}"):
        try:
            os.kill(int(owner.read_text()), 0)
            continue                              # its test run is still going
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        PgServer(owner.parent).close()


def started() -> PgServer:
    reap_orphans()
    server = PgServer()
    try:
        server.init()
        server.start()
    except BaseException:
        server.close()
        raise
    return server

