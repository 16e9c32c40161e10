"""`edge-agent device qr` reads the device config (the file serve reads): a changed web.port is in the QR code, and the
code's address is one the device certificate names, so a browser can connect to it."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import textwrap
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from edge_agent.crypto import ca
from edge_agent.device.config import load_config, parse_config
from edge_agent.device.web.qr_config import certificate_hosts, qr_parameters
from edge_agent.errors import ConfigError
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki

ORIGIN = "https://phones.clinic.test:8443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def _config(tmp_path: Path, bundle: Path, web_port: int, host: str = "0.0.0.0", room: str = "Room 4", web: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(f"""
        [server]
        host = "{host}"
        room = "{room}"
        bundle = "{bundle}"
        [web]
    """) + (web or f'enabled = true\nport = {web_port}\nallowed_origin = "{ORIGIN}"\n'))
    return path


def _join(link: str) -> dict[str, str]:
    parts = urlsplit(link)
    assert parts.fragment.startswith("join?"), link
    return {k: v[0] for k, v in parse_qs(parts.fragment[len("join?"):]).items()} | {"site": f"{parts.scheme}://{parts.netloc}"}


def test_the_qr_code_carries_the_configured_web_port(pki: Pki, tmp_path: Path) -> None:
    conf = _config(tmp_path, pki.device, 51444)
    res = run_cli("device", "qr", "--config", str(conf), "--json", timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["device"] == "https://127.0.0.1:51444" and out["room"] == "Room 4"  # 127.0.0.1: the name the certificate carries
    join = _join(out["link"])
    assert join == {"site": ORIGIN, "d": "https://127.0.0.1:51444", "fp": ca.load_bundle(pki.device).fingerprint, "room": "Room 4"}
    # EDGE_AGENT_* overrides apply as for serve
    res = run_cli("device", "qr", "--config", str(conf), "--json", env={"EDGE_AGENT_WEB__PORT": "52444"}, timeout=120)
    assert json.loads(res.stdout)["device"] == "https://127.0.0.1:52444", res.stderr


def test_a_browser_can_reach_the_device_at_the_qr_codes_address(pki: Pki, tmp_path: Path) -> None:
    """The code from the config points at the running browser endpoint: TLS to it verifies, for the host in the
    link, under the site CA (as the phone's browser checks it), and presents the certificate the code pins."""
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.main import _start_web
    from tests.delivery_fixtures import server_config
    from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = _config(tmp_path, pki.device, port, host="127.0.0.1")
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), ScriptedVisitRunner(), SpectralVoiceEnroller())
    bg = BackgroundServer(server)
    bg.start()
    try:
        web = bg.call(_start_web(load_config(conf, env={}), server))
        res = run_cli("device", "qr", "--config", str(conf), "--json", timeout=120)
        assert res.returncode == 0, res.stderr
        join = _join(json.loads(res.stdout)["link"])
        device = urlsplit(join["d"])
        ctx = ssl.create_default_context(cafile=str(pki.root / "ca" / "ca.cert.pem"))  # hostname checked, as a browser does
        with socket.create_connection((device.hostname, device.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=device.hostname) as tls:
            der = tls.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == join["fp"]
        bg.call(web.stop())
    finally:
        bg.stop()


def test_the_address_is_a_name_the_device_certificate_carries(pki: Pki, tmp_path: Path) -> None:
    ca.issue_device(pki.authority, "Room 4", tmp_path / "named.pem", dns_names=("room4.clinic.test",), ips=("10.0.0.7",))
    cert = ca.load_bundle(tmp_path / "named.pem").cert
    assert certificate_hosts(cert) == ["room4.clinic.test", "10.0.0.7"]  # not the fixed gRPC name "edge-agent"
    cfg = load_config(_config(tmp_path, tmp_path / "named.pem", 50555), env={})
    assert qr_parameters(cfg).address == "https://room4.clinic.test:50555"  # listening on every address: the first name
    assert qr_parameters(cfg, host="10.0.0.7").address == "https://10.0.0.7:50555"
    listen_one = load_config(_config(tmp_path, tmp_path / "named.pem", 50555, host="10.0.0.7"), env={})
    assert qr_parameters(listen_one).address == "https://10.0.0.7:50555"  # the one address it listens on, certified
    with pytest.raises(ConfigError, match=r"--host 10\.9\.9\.9 is not a name in the device certificate \(it names: room4.clinic.test, 10.0.0.7\)"):
        qr_parameters(cfg, host="10.9.9.9")
    ca.issue_device(pki.authority, "Room 4", tmp_path / "bare.pem")
    bare = load_config(_config(tmp_path, tmp_path / "bare.pem", 50555), env={})
    with pytest.raises(ConfigError, match="names no address phones can use.*issue the device a certificate with --dns HOST or --ip"):
        qr_parameters(bare)
    with pytest.raises(ConfigError, match=r"it names: none"):  # a name it does not carry would fail in the browser
        qr_parameters(bare, host="room4.clinic.test")


def test_missing_parts_are_refused_in_one_line_naming_the_key(pki: Pki, tmp_path: Path) -> None:
    off = _config(tmp_path, pki.device, 0, web='enabled = false\nallowed_origin = "https://phones.clinic.test"\n')
    res = run_cli("device", "qr", "--config", str(off), timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"web.enabled is false in {off}" in lines[0] and "--address" in lines[0], lines[0]
    no_origin = load_config(_config(tmp_path, pki.device, 0, web="enabled = true\n"), env={})
    with pytest.raises(ConfigError, match="web.allowed_origin is not set in .*give --site"):
        qr_parameters(no_origin)
    other_room = load_config(_config(tmp_path, pki.device, 50555, room="Room 5"), env={})
    with pytest.raises(ConfigError, match="server.room is 'Room 5' but the device certificate was issued for 'Room 4'"):
        qr_parameters(other_room)
    # every part on the command line: as before, no config needed
    full = qr_parameters(parse_config({}), site=ORIGIN, address="https://10.0.0.7:50444", room="Room 4", fingerprint="ab" * 32)
    assert full.address == "https://10.0.0.7:50444" and full.bundle is None
