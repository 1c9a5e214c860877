"""The flows and directory sections of the configuration, and the rendered flow numbers."""
from __future__ import annotations

import pytest
import yaml

from acd import config as configmod
from acd.asterisk.render import Layout, render


def _load(tmp_path, data):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return configmod.load(path, environ={})


def test_defaults_and_the_shipped_config(tmp_path):
    cfg = _load(tmp_path, {})
    assert cfg.flows.numbers is None and cfg.flows.dir == "ivr_flows"
    assert cfg.directory.backend == "database" and cfg.directory.timeout == 3.0
    from tests.conftest import PROJECT
    shipped = configmod.load(PROJECT / "config.yaml", environ={})
    assert shipped.flows.numbers == {"7000": "hotline", "7009": "survey"}
    assert {"general", "orders", "payments"} <= {g.name for g in shipped.groups}


@pytest.mark.parametrize("data, key, message", [
    ({"flows": {"numbers": {"70a0": "x"}}}, "flows.numbers.70a0", "is not a dialable number"),
    ({"flows": {"numbers": {"7000": "bad-name"}}}, "flows.numbers.7000", "is not a flow name"),
    ({"groups": [{"name": "g", "number": "7100"}], "flows": {"numbers": {"7100": "x"}}},
     "flows.numbers.7100", "already the number of groups g"),
    ({"flows": {"prompts_dir": "/x"}}, "flows.prompts_dir", "together"),
    ({"directory": {"backend": "ldap"}}, "directory.backend", "not one of database, http"),
    ({"directory": {"backend": "http"}}, "directory.url", "needs an http:// or https:// URL"),
    ({"directory": {"timeout": 0}}, "directory.timeout", "above 0"),
])
def test_bad_values_name_the_key(tmp_path, data, key, message):
    with pytest.raises(configmod.ConfigError) as e:
        _load(tmp_path, data)
    assert e.value.key == key and message in e.value.message


def test_flow_numbers_are_rendered_into_the_dialplan(tmp_path):
    cfg = _load(tmp_path, {"ami": {"secret": "s3cretsecret"},
                           "flows": {"numbers": {"7000": "hotline", "7009": "survey"}}})
    render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "inst"))
    ext = (tmp_path / "inst" / "etc" / "extensions.conf").read_text()
    assert "exten => 7009,1,NoOp(IVR flow call" in ext
    assert ext.count("exten => 7000,1,NoOp") == 1         # the hotline's own, once
    assert "[acd-transfer]" in ext and "Dial(${ACD_TRANSFER_DIAL},60)" in ext
