"""`acd phone`'s lines for call events: an ordinary hangup does not read as an error."""
from __future__ import annotations

from acd.cli import phone_event_text


def test_a_hangup_by_the_other_side_reads_as_one_not_as_a_socket_error():
    ev = {"type": "CALL_CLOSED", "peeruri": "sip:7000@127.0.0.1:5060",
          "param": "Connection reset by peer"}
    assert phone_event_text(ev) == "call closed: sip:7000@127.0.0.1:5060 hung up by the other side"


def test_other_events_and_reasons_are_shown_as_they_come():
    assert phone_event_text({"type": "CALL_INCOMING", "peeruri": "sip:x@h"}) == \
        "ringing: call from sip:x@h"
    assert phone_event_text({"type": "CALL_CLOSED", "peeruri": "sip:x@h",
                             "param": "486 Busy Here"}) == "call closed: sip:x@h 486 Busy Here"


def test_the_banner_and_the_readme_give_the_same_first_call():
    """They disagreed (the banner keyed a phone number into what is a menu)."""
    from pathlib import Path

    from acd import config as configmod
    from acd.cli import banner
    project = Path(__file__).resolve().parents[2]
    cfg = configmod.load(project / "config.yaml", environ={})
    text = banner(cfg, Path("data/secrets.yaml"), cfg.http.port, "")
    lines = [line.strip() for line in text.splitlines() if "acd phone" in line or "acd call" in line]
    commands = [line.split("  ")[0] for line in lines]
    assert len(commands) == 2
    for command in commands:
        assert command in (project / "README.md").read_text()
    assert any(c.endswith("acd call 7000 --dtmf 1 --dtmf-delay 6") for c in commands)
    assert any(c.endswith("acd phone 1002 --answer manual") for c in commands)
