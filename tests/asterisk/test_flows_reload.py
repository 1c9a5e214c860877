"""Hot reload under a running server on real calls: a broken edit never replaces the working
flow (the old one keeps serving calls, the admin API shows the error with file and line), and
a fixed edit is taken, by the file watcher or by an explicit reload."""
from __future__ import annotations

import aiohttp

from tests.web_login import login, password_of

from tests.asterisk.acd_fixtures import (Caller, acd_config, mark, stored)  # noqa: F401
from tests.asterisk.flow_fixtures import (agi_command, flow_servers, flows_config)  # noqa: F401
from tests.asterisk.calls import field

V1 = """
    name: reload
    nodes:
      hello:
        kind: hangup
        prompt: digits/1
"""
BROKEN = """
    name: reload
    nodes:
      hello:
        kind: play
        prompt: digits/2
        next: nowhere
"""
V3 = """
    name: reload
    nodes:
      hello:
        kind: hangup
        prompt: digits/3
"""


async def _call_plays(ami, srv) -> tuple[str, dict]:
    """One call to the flow: the prompt it played, and its record."""
    m = mark(ami)
    caller = await Caller(ami, "7306", "13800000006").dial()
    ev = await agi_command(ami, m, caller.channel, "STREAM FILE", "the prompt")
    await caller.gone(m)
    return field(ev, "Command").split()[2], await stored(srv, caller.uniqueid)


async def test_a_broken_edit_leaves_the_old_flow_serving_until_fixed(flow_servers, ami):
    path = flow_servers.write("reload", V1)
    srv = await flow_servers.start(watch=0.2)
    reg = srv.flows.registry
    api = f"http://127.0.0.1:{srv.http_port}/api/flows"
    played, call = await _call_plays(ami, srv)
    assert played == "digits/1" and call["end_reason"] == "ivr_hangup"
    v1 = [e["detail"]["version"] for e in call["events"] if e["kind"] == "ivr"]

    gen = reg.generation
    flow_servers.write("reload", BROKEN)             # the watcher sees it
    await reg.wait_reload(gen, timeout=20)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as raw:
        http = await login(raw, "admin", password_of(srv.cfg, "admin"), base=api.split("/api/")[0])
        async with http.get(api) as r:
            status = await r.json()
    assert status["status"] == "errors"
    assert status["errors"] == [{"id": "flow.unknown_node", "file": str(path), "line": 6,
                                 "message": "node 'hello': next -> 'nowhere': no node of that "
                                            "name in this flow"}]
    assert [f["version"] for f in status["flows"]] == v1        # still the old one
    played, call = await _call_plays(ami, srv)
    assert played == "digits/1"                                  # served by the old version
    assert [e["detail"]["version"] for e in call["events"] if e["kind"] == "ivr"] == v1

    # Fixed, and taken at once by an explicit reload (the watcher may or may not be first).
    flow_servers.write("reload", V3)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as raw:
        http = await login(raw, "admin", password_of(srv.cfg, "admin"), base=api.split("/api/")[0])
        async with http.post(f"{api}/reload") as r:
            assert r.status == 200
            status = await r.json()
    assert status["status"] == "ok" and status["errors"] == []
    assert [f["version"] for f in status["flows"]] != v1
    played, _ = await _call_plays(ami, srv)
    assert played == "digits/3"
