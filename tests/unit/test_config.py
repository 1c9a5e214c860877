"""acd.config: every error names the key and where it came from (file and line, or the
environment variable); env beats the file beats the defaults; secrets are generated once.

No I/O beyond files in tmp_path, except the CLI test, which runs ``python -m acd`` once per
command in a subprocess.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from acd import config as configmod
from acd.config import Config, ConfigError

PROJECT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        configmod.load(path, environ={} if environ is None else environ)
    return info.value


def assert_names(err: ConfigError, key: str, where: str, *words: str) -> None:
    """The message is "config.invalid: <where>: <key>: <what>"; ``words`` are in <what>."""
    assert err.id == "config.invalid"
    assert err.key == key
    assert err.where == where
    prefix = f"config.invalid: {where}: {key}: "
    assert str(err).startswith(prefix), str(err)
    what = str(err)[len(prefix):]
    for w in words:
        assert w in what, str(err)


# --- errors in the file: key, file and line -------------------------------------------------

@pytest.mark.parametrize("text, key, line, words", [
    pytest.param("http:\n  port: 8081\ncolour: red\n", "colour", 3, ["unknown key", "http"],
                 id="unknown-top-level-key"),
    pytest.param("ami:\n  port: 5038\n  prot: 1\n", "ami.prot", 3, ["unknown key", "port"],
                 id="unknown-nested-key"),
    pytest.param("agents:\n  - id: '1001'\n    nmae: Alice\n", "agents[0].nmae", 3,
                 ["unknown key", "name"], id="unknown-key-in-list-item"),
    pytest.param("http:\n  port: eighty\n", "http.port", 2, ["whole number", "eighty"],
                 id="text-for-int"),
    pytest.param("ami:\n  action_timeout: fast\n", "ami.action_timeout", 2, ["number", "fast"],
                 id="text-for-float"),
    pytest.param("http:\n  port: 8080.5\n", "http.port", 2, ["whole number"],
                 id="float-for-int"),
    pytest.param("ami:\n  - port\n  - 5038\n", "ami", 2, ["mapping", "list"],
                 id="list-for-mapping"),
    pytest.param("http: 8080\n", "http", 1, ["mapping", "int"], id="scalar-for-mapping"),
    pytest.param("agi:\n  allow: 127.0.0.1\n", "agi.allow", 2, ["list"], id="scalar-for-list"),
    pytest.param("http:\n  port: true\n", "http.port", 2, ["whole number", "True"],
                 id="bool-for-int"),
    pytest.param("asterisk:\n  loopback_trunk: 1\n", "asterisk.loopback_trunk", 2,
                 ["true or false", "1"], id="int-for-bool"),
    pytest.param("ami:\n  username: [a, b]\n", "ami.username", 2, ["text"], id="list-for-text"),
    pytest.param("http:\n  port: 70000\n", "http.port", 2, ["70000", "port number"],
                 id="port-too-high"),
    pytest.param("ami:\n  host: 127.0.0.1\n  port: 0\n", "ami.port", 3, ["0", "port number"],
                 id="port-zero"),
    pytest.param("agi:\n  host: localhost\n", "agi.host", 2, ["localhost", "IP address"],
                 id="hostname-for-ip"),
    pytest.param("http:\n  host: 300.1.1.1\n", "http.host", 2, ["300.1.1.1", "IP address"],
                 id="bad-ip"),
    pytest.param("agi:\n  allow:\n    - 127.0.0.1\n    - not-a-net\n", "agi.allow[1]", 4,
                 ["not-a-net"], id="bad-network-in-list"),
    pytest.param("asterisk:\n  mode: docker\n", "asterisk.mode", 2,
                 ["docker", "auto, system, managed"], id="bad-asterisk-mode"),
    pytest.param("logging:\n  format: xml\n", "logging.format", 2, ["xml", "console, json"],
                 id="bad-logging-format"),
    pytest.param("logging:\n  level: loud\n", "logging.level", 2, ["loud"],
                 id="bad-logging-level"),
    pytest.param("agents:\n  - id: '1001'\n    name: Alice\n  - id: '1001'\n    name: Bob\n",
                 "agents[1].id", 4, ["1001", "twice"], id="duplicate-agent-id"),
    pytest.param("http:\n  port: 8080\n  port: 8081\n", "http.port", 3, ["twice"],
                 id="duplicate-key"),
    pytest.param("http:\n  port: 8080\nami:\n  port: 5038\nhttp:\n  host: 127.0.0.1\n", "http", 5,
                 ["twice"], id="duplicate-section"),
    pytest.param("hotline:\n  agi_retry_seconds: 0\n", "hotline.agi_retry_seconds", 2,
                 ["above 0"], id="zero-retry"),
])
def test_file_errors_name_key_file_and_line(tmp_path, text, key, line, words):
    path = write(tmp_path, text)
    err = load_error(path)
    assert_names(err, key, f"{path}, line {line}", *words)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, "http:\n  port: 8080\nami:\n  port: 5038\n   host: x\n")
    err = load_error(path)
    assert_names(err, ".", f"{path}, line 5", "not valid YAML")


def test_unclosed_flow_list_gives_a_line(tmp_path):
    path = write(tmp_path, "http:\n  port: 8080\nagi:\n  allow: [127.0.0.1, ::1\nami:\n  port: 1\n")
    err = load_error(path)
    assert err.where.startswith(f"{path}, line ")
    assert int(err.where.rsplit(" ", 1)[1]) >= 4      # at or after the unclosed '['
    assert "not valid YAML" in err.message


def test_file_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- http\n- ami\n")
    assert_names(load_error(path), ".", str(path), "mapping")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert_names(load_error(path), ".", str(path), "cannot read", "No such file")


def test_unreadable_file(tmp_path):
    # A folder in place of the file: unreadable for root as well (chmod 000 is not).
    path = tmp_path / "config.yaml"
    path.mkdir()
    assert_names(load_error(path), ".", str(path), "cannot read")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes("agents:\n  - id: '1001'\n    name: Ren\xe9\n".encode("latin-1"))
    assert_names(load_error(path), ".", str(path), "UTF-8")


# --- environment variables ------------------------------------------------------------------

def test_env_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path, "http:\n  port: 8081\nlogging:\n  format: console\n  level: info\n")
    cfg = configmod.load(path, environ={"ACD_HTTP__PORT": "9090", "ACD_LOGGING__FORMAT": "json",
                                        "ACD_AMI__PING_TIMEOUT": "1.5", "UNRELATED": "x"})
    assert cfg.http.port == 9090
    assert cfg.logging.format == "json"
    assert cfg.logging.level == "info"          # from the file: not overridden
    assert cfg.ami.ping_timeout == 1.5          # not in the file: env over the default
    assert cfg.source == str(path)


def test_env_config_names_the_file(tmp_path):
    path = write(tmp_path, "http:\n  port: 8082\n")
    cfg = configmod.load(None, environ={"ACD_CONFIG": str(path)})
    assert cfg.http.port == 8082 and cfg.source == str(path)


@pytest.mark.parametrize("name, value, key, words", [
    ("ACD_HTTP__PORT", "eighty", "http.port", ["whole number"]),
    ("ACD_HTTP__PORT", "70000", "http.port", ["port number"]),
    ("ACD_HTTP__PROT", "1", "http.prot", ["unknown key"]),
    ("ACD_AMI__HOST", "ami.example", "ami.host", ["IP address"]),
    ("ACD_ASTERISK__MODE", "docker", "asterisk.mode", ["docker"]),
    ("ACD_ASTERISK__LOOPBACK_TRUNK", "1", "asterisk.loopback_trunk", ["true or false"]),
])
def test_env_errors_name_the_variable(tmp_path, name, value, key, words):
    path = write(tmp_path, "http:\n  port: 8081\nasterisk:\n  mode: auto\n")
    err = load_error(path, environ={name: value})
    assert_names(err, key, f"environment variable {name}", *words)


# --- defaults ---------------------------------------------------------------------------------

def test_defaults_when_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # no ./config.yaml here
    cfg = configmod.load(None, environ={})
    assert cfg.source == "defaults"
    assert cfg.http.port == 8080 and cfg.ami.port == 5038 and cfg.agi.port == 4573
    assert cfg.asterisk.mode == "auto" and cfg.logging.format == "console"
    assert cfg.agents == () and cfg.ami.secret == ""
    assert cfg == Config(base_dir=cfg.base_dir)


def test_empty_file_gives_defaults(tmp_path):
    path = write(tmp_path, "# nothing set\n")
    cfg = configmod.load(path, environ={})
    assert cfg.http == Config().http and cfg.source == str(path)


# --- secrets ------------------------------------------------------------------------------------

def _secrets_config(tmp_path: Path, extra: str = "") -> Config:
    path = write(tmp_path, "data_dir: data\nagents:\n  - id: '1001'\n  - id: '1002'\n" + extra)
    return configmod.load(path, environ={})


def test_secrets_generated_once_mode_0600(tmp_path):
    cfg = _secrets_config(tmp_path)
    full, spath = configmod.with_secrets(cfg)
    assert spath == tmp_path / "data" / "secrets.yaml"
    assert stat.S_IMODE(os.stat(spath).st_mode) == 0o600
    stored = yaml.safe_load(spath.read_text())
    assert full.ami.secret == stored["ami_secret"] and len(full.ami.secret) >= 16
    assert [a.password for a in full.agents] == [stored["agent_1001_password"],
                                                  stored["agent_1002_password"]]
    assert len({full.ami.secret, *(a.password for a in full.agents)}) == 3
    # The secrets pass the same checks as configured ones.
    configmod._check_values(full, {})

    before = spath.read_bytes()
    again, _ = configmod.with_secrets(_secrets_config(tmp_path))
    assert again.ami.secret == full.ami.secret
    assert again.agents == full.agents
    assert spath.read_bytes() == before
    assert stat.S_IMODE(os.stat(spath).st_mode) == 0o600


def test_new_agent_gets_a_password_others_kept(tmp_path):
    first, spath = configmod.with_secrets(_secrets_config(tmp_path))
    more, _ = configmod.with_secrets(_secrets_config(tmp_path, "  - id: '1003'\n"))
    assert more.ami.secret == first.ami.secret
    assert more.agents[:2] == first.agents
    assert more.agents[2].password and more.agents[2].password not in (
        first.ami.secret, *(a.password for a in first.agents))
    assert yaml.safe_load(spath.read_text())["agent_1003_password"] == more.agents[2].password


def test_given_secrets_are_kept(tmp_path):
    cfg = configmod.load(write(tmp_path, "data_dir: data\nami:\n  secret: given-secret-1\n"
                               "agents:\n  - id: '1001'\n    password: agent-pass-1001\n"
                               "  - id: '1002'\n"), environ={})
    full, spath = configmod.with_secrets(cfg)
    assert full.ami.secret == "given-secret-1"
    assert full.agents[0].password == "agent-pass-1001"
    stored = yaml.safe_load(spath.read_text())
    assert full.agents[1].password == stored["agent_1002_password"]
    assert "given-secret-1" not in spath.read_text()          # never copied into the file
    assert "agent-pass-1001" not in spath.read_text()


def test_broken_secrets_file_names_it(tmp_path):
    cfg = _secrets_config(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secrets.yaml").write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigError) as info:
        configmod.with_secrets(cfg)
    assert info.value.where == str(tmp_path / "data" / "secrets.yaml")


# --- the CLI: one line, exit code 2 ------------------------------------------------------------

@pytest.mark.parametrize("argv", [["config", "check"], ["run", "--no-asterisk"]],
                         ids=["config-check", "run"])
def test_cli_bad_config_exits_2_with_one_line(tmp_path, argv):
    bad = write(tmp_path, "# ports\nhttp:\n  host: 127.0.0.1\n  port: 70000\n", "bad.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACD_")}
    env["PYTHONPATH"] = str(PROJECT)
    r = subprocess.run([sys.executable, "-m", "acd", "-c", str(bad), *argv], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines == [f"error: config.invalid: {bad}, line 4: http.port: "
                     "70000 is not a port number (1-65535)"], r.stderr
    # Nothing was started or written next to the bad file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_text_settings_keep_what_was_written_not_a_number(tmp_path):
    from acd import config as configmod
    f = tmp_path / "c.yaml"
    f.write_text("hotline:\n  number: 0123\nami:\n  secret: 0x1234567\nagents:\n  - id: 0012\n")
    cfg = configmod.load(f, environ={"ACD_AGI__HOST": "127.0.0.1"})
    assert cfg.hotline.number == "0123"
    assert cfg.ami.secret == "0x1234567"
    assert cfg.agents[0].id == "0012"
    cfg = configmod.load(f, environ={"ACD_HOTLINE__NUMBER": "+4930123"})
    assert cfg.hotline.number == "+4930123"


def test_unknown_section_from_environment_names_the_variable():
    from acd import config as configmod
    import pytest as _pytest
    with _pytest.raises(configmod.ConfigError) as e:
        configmod.load(None, environ={"ACD_FOO__BAR": "1"})
    assert "environment variable ACD_FOO__BAR" in str(e.value)


def test_callbacks_need_a_way_to_reach_customers(tmp_path):
    from acd import config as configmod
    import pytest as _pytest
    f = tmp_path / "c.yaml"
    f.write_text("agents: [{id: '1'}]\ngroups:\n  - name: g\n    members: {'1': 1}\n    callback: {}\n")
    with _pytest.raises(configmod.ConfigError, match="groups\\[0\\].callback: callbacks need outbound.dial"):
        configmod.load(f, environ={})
    assert configmod.load(f, environ={"ACD_OUTBOUND__DIAL": "PJSIP/{number}@provider"}).groups[0].callback
    with _pytest.raises(configmod.ConfigError, match="outbound.dial"):
        configmod.load(f, environ={"ACD_OUTBOUND__DIAL": "PJSIP/provider"})
