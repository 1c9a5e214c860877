"""Secrets at rest: a config file that holds secrets must not be readable by every user, and
the data folder (generated secrets, the database with password hashes) is private."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from acd import config as configmod
from tests.conftest import PROJECT

SECRET_FILE = ("ami:\n  secret: s3cret-ami-1\nagents:\n  - id: '1001'\n    password: pw-sip-1001\n"
               "web:\n  users:\n    - username: admin\n      role: admin\n      password: adminpw123\n")


def _write(tmp_path, text: str, mode: int):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_secrets_given_in_the_file_are_named(tmp_path):
    cfg = configmod.load(_write(tmp_path, SECRET_FILE, 0o600), environ={})
    assert configmod.secrets_in_file(cfg) == ["ami.secret", "agents[0].password",
                                              "web.users[0].password"]


@pytest.mark.parametrize("mode", [0o644, 0o604])
def test_world_readable_file_with_secrets_is_refused(tmp_path, mode):
    cfg = configmod.load(_write(tmp_path, SECRET_FILE, mode), environ={})
    with pytest.raises(configmod.ConfigError) as info:
        configmod.check_secret_file_mode(cfg)
    msg = str(info.value)
    assert "ami.secret" in msg and "agents[0].password" in msg and "chmod 600" in msg
    assert info.value.where == cfg.source


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_private_file_with_secrets_is_accepted(tmp_path, mode):
    cfg = configmod.load(_write(tmp_path, SECRET_FILE, mode), environ={})
    configmod.check_secret_file_mode(cfg)            # no error


def test_readable_file_without_secrets_is_accepted(tmp_path):
    cfg = configmod.load(_write(tmp_path, "http:\n  port: 8089\n", 0o644), environ={})
    assert configmod.secrets_in_file(cfg) == []
    configmod.check_secret_file_mode(cfg)
    # Secrets from the environment are not in the file.
    cfg = configmod.load(cfg.source, environ={"ACD_AMI__SECRET": "from-env-123"})
    assert cfg.ami.secret == "from-env-123"
    configmod.check_secret_file_mode(cfg)


def test_generated_data_folder_and_secrets_are_private(tmp_path):
    cfg = configmod.load(_write(tmp_path, "data_dir: data\n", 0o644), environ={})
    cfg, spath = configmod.with_secrets(cfg)
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(spath).st_mode) == 0o600
    assert cfg.ami.secret and cfg.web.users[0].password


@pytest.mark.parametrize("argv", [["config", "check"], ["run", "--no-asterisk"]],
                         ids=["config-check", "run"])
def test_cli_refuses_a_world_readable_secret_file_before_starting(tmp_path, argv):
    path = _write(tmp_path, SECRET_FILE, 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACD_")}
    env["PYTHONPATH"] = str(PROJECT)
    r = subprocess.run([sys.executable, "-m", "acd", "-c", str(path), *argv], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(f"error: config.invalid: {path}: ") and "chmod 600" in r.stderr
    assert "s3cret" not in r.stderr and "pw-sip" not in r.stderr      # never the secret itself
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]   # nothing started


def test_an_existing_data_folder_is_closed_to_other_users(tmp_path):
    (tmp_path / "data").mkdir(mode=0o755)
    (tmp_path / "data").chmod(0o755)
    cfg = configmod.load(_write(tmp_path, "data_dir: data\n", 0o644), environ={})
    configmod.with_secrets(cfg)
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o750
