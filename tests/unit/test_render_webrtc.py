"""Asterisk's side of the browser phone, as rendered: its web server on the SIP address only,
the WebSocket SIP transport, and an agent's endpoint turned WebRTC (with the password issued
to their web session) while their page is their phone."""
from dataclasses import replace

import pytest

from acd import config as configmod
from acd.asterisk import ice
from acd.asterisk.render import Layout, render
from acd.errors import UserError
from tests.conftest import PROJECT


def _render(tmp_path, browser=None, **asterisk):
    cfg = configmod.load(PROJECT / "config.yaml", environ={})
    cfg = replace(cfg, data_dir=str(tmp_path / "data"), asterisk=replace(cfg.asterisk, **asterisk))
    cfg = configmod.with_secrets(cfg)[0]
    files = render(cfg, Layout(inside="/srv/acd/x", host=tmp_path / "out"), browser=browser)
    return cfg, {p.name: p.read_text() for p in files}


def _section(text: str, header: str) -> str:
    start = text.index(header)
    end = text.find("\n[", start + 1)
    return text[start:end if end > 0 else None]


def test_http_server_on_the_sip_address_and_port_from_config(tmp_path):
    _cfg, text = _render(tmp_path, sip_host="127.0.0.1", http_port=18555)
    http = text["http.conf"]
    assert "enabled = yes" in http and "bindaddr = 127.0.0.1" in http and "bindport = 18555" in http
    assert "enablestatic = no" in http
    ws = _section(text["pjsip.conf"], "[transport-ws]")
    assert "protocol = ws" in ws
    # the WebSocket modules are loaded; ARI (the web server's other user) is not
    assert "res_pjsip_transport_websocket.so" not in text["modules.conf"]
    assert "res_http_websocket.so" not in text["modules.conf"]
    assert "noload = res_ari.so" in text["modules.conf"]
    rtp = text["rtp.conf"]
    assert "icesupport = yes" in rtp and "stunaddr =\n" in rtp
    # every other address of this machine is advertised as the media address (RTP's)
    others = [a for a in ice.local_ipv4() if a != "127.0.0.1"]
    for a in others:
        assert f"\n{a} => 127.0.0.1\n" in rtp, rtp
    assert ("[ice_host_candidates]" in rtp) == bool(others)


def test_ice_host_candidates_name_the_media_address_only():
    assert "127.0.0.1" in ice.local_ipv4()
    assert ice.host_candidates("127.0.0.1", ["127.0.0.1", "192.0.2.7", "10.9.8.7"]) == (
        "[ice_host_candidates]\n192.0.2.7 => 127.0.0.1\n10.9.8.7 => 127.0.0.1\n")
    assert ice.host_candidates("10.9.8.7", ["10.9.8.7"]) == ""     # nothing to map
    assert ice.host_candidates("0.0.0.0", ["10.9.8.7"]) == ""      # RTP on every address
    assert ice.host_candidates("::1", ["10.9.8.7"]) == ""


def test_a_browser_phone_is_the_agents_own_endpoint_made_webrtc(tmp_path):
    cfg, plain = _render(tmp_path)
    first, second = cfg.agents[0], cfg.agents[1]
    cfg, text = _render(tmp_path, browser={first.id: "issued-to-the-session"})
    pjsip = text["pjsip.conf"]
    assert f"[{first.id}](browser-defaults)" in pjsip           # same name: the ACD rings it
    assert _section(pjsip, f"[{first.id}]\ntype = auth").count("password = issued-to-the-session") == 1
    assert f"password = {first.password}" not in pjsip          # the SIP phone's is not in force
    assert f"[{second.id}](agent-defaults)" in pjsip and f"password = {second.password}" in pjsip
    browser = _section(pjsip, "[browser-defaults](!)")
    for line in ("webrtc = yes", "transport = transport-ws", "allow = opus,ulaw,alaw",
                 "media_address = 127.0.0.1", "bind_rtp_to_media_address = yes",
                 "context = acd-agents"):
        assert line in browser, line
    # and without it, the agent's endpoint is the SIP phone's again
    assert f"[{first.id}](agent-defaults)" in plain["pjsip.conf"]
    assert "webrtc" not in _section(plain["pjsip.conf"], "[agent-defaults](!)")


def test_wss_with_the_admins_certificate_copied_where_asterisk_reads_it(tmp_path):
    from acd.asterisk import tls
    _cfg, plain = _render(tmp_path / "a")
    assert "tlsenable" not in plain["http.conf"] and "transport-wss" not in plain["pjsip.conf"]
    crt, key = tls.selfsigned("127.0.0.1", tmp_path / "tls")
    assert crt.read_text().startswith("-----BEGIN CERTIFICATE-----")
    _cfg, text = _render(tmp_path / "b", wss_port=18555, tls_cert=str(crt), tls_key=str(key))
    http = text["http.conf"]
    for line in ("tlsenable = yes", "tlsbindaddr = 127.0.0.1:18555",
                 "tlscertfile = /srv/acd/x/etc/http-tls.crt",
                 "tlsprivatekey = /srv/acd/x/etc/http-tls.key"):
        assert line in http, line
    assert (tmp_path / "b" / "out" / "etc" / "http-tls.crt").read_bytes() == crt.read_bytes()
    assert "protocol = wss" in _section(text["pjsip.conf"], "[transport-wss]")
    with pytest.raises(UserError) as e:
        _render(tmp_path / "c", wss_port=18555, tls_cert=str(tmp_path / "none.crt"),
                tls_key=str(key))
    assert e.value.id == "asterisk.tls_missing"


def test_wss_port_needs_a_certificate_and_a_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("asterisk: {wss_port: 8089}\n")
    with pytest.raises(configmod.ConfigError) as e:
        configmod.load(path, environ={})
    assert "asterisk.tls_cert" in str(e.value)


async def test_a_phone_issued_while_the_ami_link_is_down_is_reloaded_when_it_is_up(tmp_path):
    """Right after a restart the page may take the phone before the AMI link is up: the file
    is written then, and Asterisk reloads it as soon as the link is (catch_up)."""
    import structlog

    from acd.asterisk.live import PJSIP_RELOAD, LiveConf

    class Ami:
        connected = False
        sent: list = []

        async def action(self, name, **kw):
            self.sent.append((name, kw.get("Command")))
            return {"Response": "Success"}

    cfg, _text = _render(tmp_path)
    layout = Layout(inside="/srv/acd/x", host=tmp_path / "out")
    ami = Ami()
    conf = LiveConf(layout, ami, structlog.get_logger())
    assert await conf.catch_up(cfg) is None                 # nothing waiting
    assert await conf.set_browser(cfg, "1001", "issued-pw-1234567890") == "asterisk_down"
    assert "issued-pw-1234567890" in (layout.host_dir("etc") / "pjsip.conf").read_text()
    assert ami.sent == [] and conf.stale
    ami.connected = True
    assert await conf.catch_up(cfg) == "reloaded"
    assert ("Command", PJSIP_RELOAD) in ami.sent and not conf.stale
    assert await conf.catch_up(cfg) is None


def test_browser_codecs_are_the_browser_endpoints_allow_line_in_order(tmp_path):
    """asterisk.browser_codecs: G.711 alone (to spare Asterisk's CPU) or G.711 before Opus
    is what the WebRTC endpoint allows; the SIP phones' endpoints keep their own."""
    _cfg, text = _render(tmp_path, browser_codecs=("ulaw",))
    assert "allow = ulaw\n" in _section(text["pjsip.conf"], "[browser-defaults](!)")
    _cfg, text = _render(tmp_path, browser_codecs=("alaw", "opus", "g722"))
    assert "allow = alaw,opus,g722\n" in _section(text["pjsip.conf"], "[browser-defaults](!)")
    assert "allow = ulaw,alaw,gsm\n" in _section(text["pjsip.conf"], "[agent-defaults](!)")


@pytest.mark.parametrize("codecs", ["[]", "[gsm]", "[opus, opus]", "[vp8]"])
def test_browser_codecs_refuses_what_a_browser_and_asterisk_do_not_share(tmp_path, codecs):
    path = tmp_path / "config.yaml"
    path.write_text(f"asterisk:\n  browser_codecs: {codecs}\n")
    with pytest.raises(configmod.ConfigError) as e:
        configmod.load(path, environ={})
    assert e.value.id == "config.invalid"
    assert "asterisk.browser_codecs" in str(e.value) and "line 2" in str(e.value)
    assert "opus, g722, ulaw, alaw" in str(e.value)
