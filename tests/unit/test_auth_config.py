"""The web section of the configuration: users, side panels, generated web passwords."""
import pytest
import yaml

from acd import config as configmod
from acd.config import ConfigError
from acd.web.auth import users_from_config


def _load(tmp_path, web, agents=None):
    data = {"agents": agents or [{"id": "1001", "name": "Alice"}], "web": web}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    return configmod.load(tmp_path / "config.yaml", environ={})


@pytest.mark.parametrize("web,key,words", [
    ({"users": [{"username": "boss", "role": "owner"}]}, "web.users[0].role", "not one of"),
    ({"users": [{"username": "1001", "role": "admin"}]}, "web.users[0].username", "agent id"),
    ({"users": [{"username": "a", "role": "admin"}, {"username": "a", "role": "supervisor"}]},
     "web.users[1].username", "twice"),
    ({"users": [{"username": "a b", "role": "admin"}]}, "web.users[0].username", "letters"),
    ({"users": [{"username": "a", "role": "admin", "password": "short"}]}, "web.users[0].password", "8"),
    ({"side_panels": [{"title": "Orders", "url": "javascript:alert(1)"}]}, "web.side_panels[0].url", "http"),
    ({"side_panels": [{"title": "Orders", "url": "https://erp/x?{secret}"}]}, "web.side_panels[0].url",
     "unknown value {secret}"),
    ({"side_panels": [{"title": "", "url": "https://erp/x"}]}, "web.side_panels[0].title", "title"),
    ({"timezone": "Mars/Base"}, "web.timezone", "unknown time zone"),
    ({"session_hours": 0}, "web.session_hours", "above 0"),
    ({"default_region": "china"}, "web.default_region", "two-letter"),
    ({"users": [{"username": "a", "role": "admin", "colour": "red"}]}, "web.users[0].colour", "unknown key"),
    ({"users": [{"username": "a", "phone": "1001"}]}, "web.users[0].phone", "agent's phone"),
    ({"users": [{"username": "a", "phone": "acd-trunk"}]}, "web.users[0].phone", "reserved"),
    ({"users": [{"username": "a", "phone": "9001"}, {"username": "b", "phone": "9001"}]},
     "web.users[1].phone", "another user's phone"),
    ({"users": [{"username": "a", "phone": "90 01"}]}, "web.users[0].phone", "letters"),
    ({"users": [{"username": "a", "phone": "9001", "phone_password": "short"}]},
     "web.users[0].phone_password", "8 characters"),
    ({"users": [{"username": "a", "phone": "9001", "phone_password": "long;enough"}]},
     "web.users[0].phone_password", "no spaces"),
    ({"users": [{"username": "a", "phone_password": "long-enough"}]},
     "web.users[0].phone_password", "without a phone"),
])
def test_bad_web_settings_name_the_key(tmp_path, web, key, words):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, web)
    assert e.value.key == key and words in e.value.message


def test_web_passwords_and_the_metrics_token_are_generated_once(tmp_path):
    cfg = _load(tmp_path, {"users": [{"username": "admin", "role": "admin"},
                                     {"username": "sup", "role": "supervisor"}]})
    done, path = configmod.with_secrets(cfg)
    stored = yaml.safe_load(path.read_text())
    assert (path.stat().st_mode & 0o777) == 0o600
    assert done.agents[0].web_password == stored["web_1001_password"]
    assert done.agents[0].web_password != done.agents[0].password
    assert [u.password for u in done.web.users] == [stored["web_admin_password"], stored["web_sup_password"]]
    assert done.web.metrics_token == stored["web_metrics_token"] and len(done.web.metrics_token) >= 16
    again, _ = configmod.with_secrets(cfg)
    assert again == done                                     # kept, not generated anew
    users = {u.username: (u.role, u.agent_id) for u in users_from_config(done)}
    assert users == {"1001": ("agent", "1001"), "admin": ("admin", None), "sup": ("supervisor", None)}


def test_a_user_without_a_password_gets_no_login(tmp_path):
    cfg = _load(tmp_path, {})                # not through with_secrets: no passwords
    assert users_from_config(cfg) == []


def test_the_shipped_config_has_a_web_section_that_loads():
    from tests.conftest import PROJECT
    cfg = configmod.load(PROJECT / "config.yaml", environ={})
    assert {u.role for u in cfg.web.users} >= {"admin", "supervisor"}
