"""Asterisk's configuration, rendered from asterisk-conf/ and a config."""
from dataclasses import replace

import pytest

from acd import config as configmod
from acd.asterisk.render import Layout, fill, render
from tests.conftest import PROJECT


def _cfg(tmp_path, **asterisk):
    cfg = configmod.load(PROJECT / "config.yaml", environ={})
    cfg = replace(cfg, data_dir=str(tmp_path / "data"), asterisk=replace(cfg.asterisk, **asterisk))
    return configmod.with_secrets(cfg)[0]


def test_every_template_value_is_filled_and_secrets_are_written(tmp_path):
    cfg = _cfg(tmp_path)
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out"))
    text = {p.name: p.read_text() for p in files}
    for name, body in text.items():
        assert "{{" not in body, name
    assert f"secret = {cfg.ami.secret}" in text["manager.conf"]
    for agent in cfg.agents:
        assert f"[{agent.id}](agent-defaults)" in text["pjsip.conf"]
        assert f"password = {agent.password}" in text["pjsip.conf"]
    assert "bind = 127.0.0.1:5060" in text["pjsip.conf"]
    assert "media_address = 127.0.0.1" in text["pjsip.conf"]
    assert "acd-trunk" not in text["pjsip.conf"]  # the loopback trunk is off by default
    assert "exten => 7000,1," in text["extensions.conf"]
    # the supervisor's phone (config.yaml: 9001) is an endpoint as an agent's is
    [sup] = [u for u in cfg.web.users if u.phone]
    assert f"[{sup.phone}](agent-defaults)" in text["pjsip.conf"]
    assert len(sup.phone_password) >= 8
    assert f"password = {sup.phone_password}" in text["pjsip.conf"]


def test_loopback_trunk_only_when_asked(tmp_path):
    cfg = _cfg(tmp_path, loopback_trunk=True)
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out"))
    pjsip = next(p for p in files if p.name == "pjsip.conf").read_text()
    assert "[acd-trunk]" in pjsip and "match = 127.0.0.1" in pjsip


def test_unknown_template_value_is_an_error():
    with pytest.raises(KeyError, match="nope"):
        fill("x = {{nope}}", {}, "t.conf")


def test_value_that_would_break_asterisks_config_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    cfg = replace(cfg, agents=(replace(cfg.agents[0], name="Eve\n[evil]"),))
    with pytest.raises(ValueError, match="cannot be written"):
        render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out"))


def test_group_numbers_and_test_customers(tmp_path):
    cfg = _cfg(tmp_path)  # config.yaml has group "general" on 7001
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out"))
    ext = next(p for p in files if p.name == "extensions.conf").read_text()
    assert "exten => 7001,1,NoOp(direct call to skill group general" in ext
    assert "Set(ACD_GROUP=general)" in ext
    # agents' phones may call the group's number and the survey flow's (config.yaml: 7009)
    for number in ("7001", "7009"):
        assert f"[acd-agents]\nexten => {number},1,Goto(acd-hotline,${{EXTEN}},1)" in ext
    assert "acd-testcustomer" not in ext  # only with the loopback trunk
    cfg = _cfg(tmp_path, loopback_trunk=True)
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out2"))
    ext = next(p for p in files if p.name == "extensions.conf").read_text()
    assert "[acd-testcustomer]" in ext and "exten => _testcust.,1," in ext


def test_agent_endpoints_end_dead_calls():
    pjsip = (PROJECT / "asterisk-conf" / "pjsip.conf").read_text()
    assert "rtp_timeout = 60" in pjsip
