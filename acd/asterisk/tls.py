"""wss and https for the browser phone: Asterisk's web server with the admin's certificate.

A page served over https may only open ``wss://`` (browsers block ``ws://`` from a secure
page that is not on this machine), so agents on other machines need Asterisk's web server
with TLS: ``asterisk.wss_port`` (0: off), ``asterisk.tls_cert`` and ``asterisk.tls_key``
(PEM files; paths relative to the configuration's folder). Rendering copies both into the
instance's etc folder, which Asterisk reads (the managed Asterisk runs in its own root and
sees no other host path), and adds a ``wss`` PJSIP transport.

For a lab, ``acd asterisk tls-selfsigned`` makes a self-signed pair for ``asterisk.sip_host``
(openssl); browsers must be told to trust it (or open ``https://<sip_host>:<wss_port>/ws``
once and accept it).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from acd.errors import UserError

CERT_NAME, KEY_NAME = "http-tls.crt", "http-tls.key"


def http_block(cfg, layout) -> tuple[str, str]:
    """(http.conf's TLS lines, pjsip.conf's wss transport), both empty with wss off. The
    certificate and key are copied into the instance's etc folder."""
    a = cfg.asterisk
    if not a.wss_port:
        return "", ""
    etc = layout.host_dir("etc")
    etc.mkdir(parents=True, exist_ok=True)
    for src, name in ((a.tls_cert, CERT_NAME), (a.tls_key, KEY_NAME)):
        path = cfg.path(src)
        if not path.is_file():
            raise UserError("asterisk.tls_missing", f"{path}: no such file (asterisk.tls_cert "
                                                    "and tls_key; acd asterisk tls-selfsigned "
                                                    "makes a pair for a lab)")
        shutil.copyfile(path, etc / name)
        os.chmod(etc / name, 0o600)
    inside = layout.inside_dir("etc")
    http = (f"tlsenable = yes\ntlsbindaddr = {a.sip_host}:{a.wss_port}\n"
            f"tlscertfile = {inside}/{CERT_NAME}\ntlsprivatekey = {inside}/{KEY_NAME}\n")
    wss = (f"[transport-wss]\ntype = transport\nprotocol = wss\nbind = {a.sip_host}\n")
    return http, wss


def selfsigned(host: str, out: Path, days: int = 365) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``host`` (an address or a name) in ``out``."""
    if shutil.which("openssl") is None:
        raise UserError("asterisk.no_openssl", "openssl is needed (apt-get install openssl)")
    out.mkdir(parents=True, exist_ok=True)
    crt, key = out / "asterisk-selfsigned.crt", out / "asterisk-selfsigned.key"
    try:
        ipaddress.ip_address(host)
        san = f"IP:{host}"
    except ValueError:
        san = f"DNS:{host}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", str(days), "-subj", f"/CN={host}", "-addext",
                    f"subjectAltName={san}", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return crt, key
