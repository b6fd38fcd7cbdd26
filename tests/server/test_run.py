"""Running the server: TLS pass-through, and the structured log lines (never the key, never image data)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging

import httpx
import pytest

from napari_nninteractive.server import BackgroundServer, ServerConfig

from .conftest import AUTH, KEY, Lease, serving, volume


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key (files), or a skip without the cryptography package."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certfile), str(keyfile)


def test_tls_is_passed_to_uvicorn(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    config = ServerConfig(api_key=KEY, ssl_certfile=certfile, ssl_keyfile=keyfile)
    with BackgroundServer(config) as server:
        assert server.url.startswith("https://127.0.0.1:")
        with httpx.Client(base_url=server.url, verify=False, timeout=10) as http:
            assert http.get("/healthz").json() == {"ok": True}
            assert http.post("/claim", headers=AUTH).status_code == 200
    with pytest.raises(httpx.TransportError):  # stopped
        httpx.get(f"{server.url}/healthz", verify=False, timeout=2)


def test_log_lines_are_json_without_secrets(caplog):
    caplog.set_level(logging.INFO, logger="napari_nninteractive.server.events")
    with serving() as (_, client):
        lease = Lease(client, AUTH)
        lease.start(volume())
        lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
        lease.post("/release")
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "napari_nninteractive.server.events"]
    kinds = [e["event"] for e in events]
    assert kinds.count("claimed") == 1 and kinds.count("released") == 1
    requests = [e for e in events if e["event"] == "request"]
    point = next(e for e in requests if e["path"] == "/add_point_interaction")
    assert point["status"] == 200 and point["ms"] >= 0 and point["lease"] == lease.token[:8]
    text = caplog.text
    assert KEY not in text and lease.token not in text
