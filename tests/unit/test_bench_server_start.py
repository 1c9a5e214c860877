"""The bench's server starts (bench/instance.py ServerProcess): a measure begins once the web
passwords hashed behind the start are done, and later starts begin from the first start's
hashed web users, nothing else."""
from __future__ import annotations

import json
import sqlite3

from bench.instance import ServerProcess


def _line(event: str, **kw) -> str:
    return json.dumps({"event": event, **kw}) + "\n"


def test_passwords_done_reads_only_this_starts_lines(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(_line("app.users_ready", users=3, pending=0))       # an earlier start
    srv = ServerProcess(tmp_path / "c.yaml", log, tmp_path / "bench.db")
    srv.log_offset = log.stat().st_size
    assert srv.passwords_done() is False
    with log.open("a") as f:
        f.write(_line("app.users_ready", users=300, pending=300))
    assert srv.passwords_done() is False                               # hashing behind
    with log.open("a") as f:
        f.write(_line("app.passwords_hashed", hashed=300, took=48.0))
    assert srv.passwords_done() is True
    log.write_text(_line("app.users_ready", pending=0, users=300))
    srv.log_offset = 0
    assert srv.passwords_done() is True                                # none were pending


def test_keep_users_copies_the_web_users_and_empties_the_rest(tmp_path):
    db = tmp_path / "bench.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE web_users (username TEXT, password_hash TEXT)")
    con.execute("CREATE TABLE calls (uniqueid TEXT)")
    con.execute("INSERT INTO web_users VALUES ('1001', '$argon2id$x')")
    con.execute("INSERT INTO calls VALUES ('c1')")
    con.commit()
    con.close()
    srv = ServerProcess(tmp_path / "c.yaml", tmp_path / "server.log", db)
    srv.keep_users()
    kept = sqlite3.connect(srv.users_template)
    assert kept.execute("SELECT * FROM web_users").fetchall() == [("1001", "$argon2id$x")]
    assert kept.execute("SELECT count(*) FROM calls").fetchone() == (0,)
    kept.close()
