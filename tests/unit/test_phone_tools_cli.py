"""`acd phone` and `acd call` refuse what cannot work, with an error id, before any phone
starts; the caller endpoint is rendered for `acd call` without the loopback trunk."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from acd import cli
from acd import config as configmod
from acd.asterisk.render import Layout, render
from acd.tools.phone_session import event_text

PROJECT = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["-c", str(PROJECT / "config.yaml"), *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, error", [
    (("call", "7000", "--from", "1001"), "call.bad_caller"),         # an agent's number
    (("call", "7000", "--from", "12ab"), "call.bad_caller"),
    (("call", "7000", "--from", "1;x=y"), "call.bad_caller"),        # into baresip's account line
    (("phone", "1001", "--answer", "manual", "--answer-after", "2"), "cli.usage"),
    (("phone", "1001", "--answer-after", "-1"), "cli.usage"),
    (("phone", "9999"), "agent.unknown"),
])
def test_refused_with_an_error_id(capsys, argv, error):
    code, err = run(capsys, *argv)
    assert code == 2 and err.startswith(f"error: {error}: "), err


def test_a_call_needs_the_caller_endpoint(capsys, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text((PROJECT / "config.yaml").read_text().replace(
        "  local_callers: true", "  local_callers: false"))
    code = cli.main(["-c", str(cfg), "call", "7000"])
    assert code == 2 and "call.no_caller_endpoint" in capsys.readouterr().err


def _pjsip(cfg: configmod.Config, tmp_path: Path) -> str:
    written = render(cfg, Layout(inside=str(tmp_path), host=tmp_path))
    return next(p for p in written if p.name == "pjsip.conf").read_text()


def test_the_caller_endpoint_is_rendered_with_local_callers_alone(tmp_path):
    base = configmod.load(PROJECT / "config.yaml", environ={})
    base, _ = configmod.with_secrets(replace(base, data_dir=str(tmp_path / "data")))
    on = replace(base, asterisk=replace(base.asterisk, loopback_trunk=False, local_callers=True))
    text = _pjsip(on, tmp_path / "on")
    assert "[acd-caller]\ntype = endpoint" in text and "context = acd-hotline" in text
    assert "[acd-trunk]" not in text          # no trunk: the ACD's callbacks do not go out here
    off = replace(on, asterisk=replace(on.asterisk, local_callers=False))
    assert "[acd-caller]" not in _pjsip(off, tmp_path / "off")


def test_a_manual_phone_says_how_to_answer():
    ev = {"type": "CALL_INCOMING", "peeruri": "sip:13800138000@127.0.0.1"}
    assert event_text(ev, manual=True) == \
        "ringing: call from sip:13800138000@127.0.0.1 (press a to answer)"


def test_lines_for_an_answer_and_a_hangup_here_read_as_a_person_says_them():
    peer = "sip:13800138000@127.0.0.1"
    assert event_text({"type": "CALL_ESTABLISHED", "peeruri": peer, "param": peer}) == \
        f"call established: {peer}"
    assert event_text({"type": "CALL_CLOSED", "peeruri": peer, "param": "Connection reset by user"}) == \
        f"call closed: {peer} hung up here"
    assert event_text({"type": "CALL_DTMF_START", "peeruri": peer, "param": "5"}) == \
        "the other side keyed 5"
