"""JsSIP, as the agent page gets it: the version package-lock.json pins (with its integrity
hash), joined for the browser from the CommonJS files npm installed, without a build step."""
import json

import pytest

from acd.errors import UserError
from acd.web import jssip
from tests.conftest import PROJECT


def test_the_pinned_jssip_is_joined_from_node_modules():
    lock = json.loads((PROJECT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/jssip"]
    assert pinned["integrity"].startswith("sha512-")
    assert json.loads((PROJECT / "package.json").read_text())["dependencies"]["jssip"] == pinned["version"]
    script = jssip.build()
    assert script.startswith(f"/* JsSIP {pinned['version']} ")
    # every module JsSIP needs is in, its browser build where it has one
    for module in ("jssip/lib/JsSIP.js", "jssip/lib/UA.js", "jssip/lib/RTCSession.js",
                   "jssip/package.json", "sdp-transform/lib/index.js", "events/events.js",
                   "debug/src/browser.js", "ms/index.js"):
        assert f'defs["{module}"]' in script, module
    assert 'defs["debug/src/node.js"]' not in script        # node's build needs tty, util
    assert script.rstrip().endswith('window.JsSIP = load("jssip/lib/JsSIP.js");\n})();')


def test_without_node_modules_the_error_says_what_to_run(tmp_path):
    with pytest.raises(UserError) as e:
        jssip.build(tmp_path)
    assert e.value.id == "web.jssip_missing" and "make setup" in e.value.message


def test_a_require_that_is_not_installed_is_named(tmp_path):
    lib = tmp_path / "jssip" / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "jssip" / "package.json").write_text('{"version": "0"}')
    (lib / "JsSIP.js").write_text("module.exports = require('missing-one');")
    with pytest.raises(UserError) as e:
        jssip.build(tmp_path)
    assert "missing-one" in e.value.message
