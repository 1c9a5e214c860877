"""systemd's notify protocol (acd.sdnotify): what the environment asks for."""
import os
import socket

from acd.sdnotify import Notifier


def test_nothing_without_notify_socket():
    n = Notifier({})
    assert n.addr is None and n.interval is None
    assert n.send("READY=1") is False


def test_the_watchdog_pings_at_half_the_interval_and_only_for_this_process():
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}).interval == 15.0
    mine = str(os.getpid())
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000",
                     "WATCHDOG_PID": mine}).interval == 1.0
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000",
                     "WATCHDOG_PID": "1"}).interval is None          # another process's
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "0"}).interval is None
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}).interval is None


def test_an_abstract_socket_and_a_message_of_several_fields(tmp_path):
    assert Notifier({"NOTIFY_SOCKET": "@acd-test"}).addr == "\0acd-test"
    where = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(where))
    try:
        n = Notifier({"NOTIFY_SOCKET": str(where)})
        assert n.send("READY=1", "STATUS=leading") is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=leading"
    finally:
        sock.close()


def test_systemd_away_is_no_error(tmp_path):
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-here")}).send("READY=1") is False
