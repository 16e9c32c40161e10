"""doctor's ports check with real sockets on loopback: free, held by this device's edge-agent (gRPC and browser
ports over real TLS, the metrics endpoint over HTTP), held by another program (named), or not usable at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.device.config import load_config, parse_config
from edge_agent.device.ops.metrics import MetricsServer, Registry
from edge_agent.site import doctor
from edge_agent.site.ports import FREE, OTHER, OURS, UNUSABLE, check_ports
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki
from tests.phone_web_fixtures import Device

ORIGIN = "https://phones.test:8443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(pki: Pki, server_port: int, web_port: int | None = None, metrics_port: int | None = None, host: str = "127.0.0.1",
            bundle: Path | None = None):  # type: ignore[no-untyped-def]
    raw: dict = {"server": {"host": host, "port": server_port, "bundle": str(bundle or pki.device), "room": "Room 4"}}
    if web_port is not None:
        raw["web"] = {"enabled": True, "port": web_port, "allowed_origin": ORIGIN}
    if metrics_port is not None:
        raw["metrics"] = {"enabled": True, "port": metrics_port}
    return parse_config(raw, source=Path("/etc/edge-agent/config.toml"))


@pytest.fixture
def stranger() -> Iterator[tuple[int, int]]:
    """Another program (not edge-agent) listening on a loopback port: (port, pid)."""
    code = textwrap.dedent("""
        import socket, sys, time
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 0)); s.listen()
        print(s.getsockname()[1], flush=True)
        while True:
            c, _ = s.accept(); c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nhello\\n"); c.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline()), proc.pid
    finally:
        proc.kill()
        proc.wait(10)


def test_free_ports_are_free_and_left_free(pki: Pki) -> None:
    grpc_port, web_port, metrics_port = _free_port(), _free_port(), _free_port()
    found = check_ports(_config(pki, grpc_port, web_port, metrics_port))
    assert [(f.use.key, f.state) for f in found] == [("server.port", FREE), ("web.port", FREE), ("metrics.port", FREE)]
    check = doctor.check_ports(_config(pki, grpc_port, web_port, metrics_port))
    assert check.ok and f"server.port {grpc_port} free" in check.message, check
    with socket.socket() as s:  # the probe left nothing listening
        s.bind(("127.0.0.1", grpc_port))


def test_ports_held_by_this_devices_running_edge_agent_pass(pki: Pki, tmp_path: Path) -> None:
    """The daemon itself holding its ports is the normal state: no false failure, for a wildcard host too."""
    device = Device.start(pki, tmp_path / "data", ORIGIN)
    metrics = MetricsServer(Registry(), _free_port())
    metrics.start()
    try:
        for host in ("127.0.0.1", "0.0.0.0"):
            cfg = _config(pki, device.grpc_port, device.both.web.port, metrics.port, host=host)
            found = {f.use.key: f for f in check_ports(cfg)}
            assert {k: f.state for k, f in found.items()} == {"server.port": OURS, "web.port": OURS, "metrics.port": OURS}, found
            assert f"held by this device's edge-agent (pid {os.getpid()})" in found["server.port"].message
            check = doctor.check_ports(cfg)
            assert check.ok, check
    finally:
        metrics.stop()
        device.stop()


def test_a_port_held_by_another_program_fails_naming_port_key_program_and_fix(pki: Pki, stranger: tuple[int, int]) -> None:
    port, pid = stranger
    for cfg, key in ((_config(pki, port), "server.port"), (_config(pki, _free_port(), web_port=port), "web.port"),
                     (_config(pki, _free_port(), metrics_port=port), "metrics.port")):
        bad = next(f for f in check_ports(cfg) if f.use.key == key)
        assert bad.state == OTHER and not bad.ok, bad
        assert f"port {port} ({key}) is held by another program: python" in bad.message and f"(pid {pid})" in bad.message, bad.message
        assert f"set {key} in /etc/edge-agent/config.toml to a free port" in bad.fix and "systemctl restart edge-agent" in bad.fix
    check = doctor.check_ports(_config(pki, port))
    assert not check.ok and "\n" not in check.message and check.line().startswith("FAIL ports"), check
    assert "does not answer with this device's certificate" in check.message


def test_another_rooms_device_certificate_on_the_port_is_not_ours(pki: Pki, tmp_path: Path) -> None:
    """Same site CA, another device's certificate: not this device's edge-agent (its fingerprint decides)."""
    from edge_agent.crypto import ca

    ca.issue_device(pki.authority, "Room 5", tmp_path / "room5.pem", ips=("127.0.0.1",))
    device = Device.start(pki, tmp_path / "data", ORIGIN, bundle=tmp_path / "room5.pem", room="Room 5")
    try:
        found = check_ports(_config(pki, device.grpc_port))
        assert found[0].state == OTHER and "does not answer with this device's certificate" in found[0].message, found
    finally:
        device.stop()


def test_ports_the_daemon_could_never_listen_on_fail(pki: Pki) -> None:
    same = _free_port()
    clash = {f.use.key: f for f in check_ports(_config(pki, same, web_port=same))}
    assert clash["server.port"].state == FREE and clash["web.port"].state == UNUSABLE
    assert f"server.port and web.port are both {same}" in clash["web.port"].message and "set web.port" in clash["web.port"].fix
    foreign = check_ports(_config(pki, _free_port(), host="192.0.2.1"))[0]  # TEST-NET-1: not an address of this machine
    assert foreign.state == UNUSABLE and "192.0.2.1 is not an address of this device" in foreign.message, foreign
    assert "set server.host" in foreign.fix
    low = check_ports(_config(pki, 7))[0]
    assert low.state == UNUSABLE and "port 7 (server.port) is below" in low.message and "set server.port" in low.fix, low


def test_doctor_cli_prints_one_ports_line_for_a_taken_port(pki: Pki, stranger: tuple[int, int], tmp_path: Path) -> None:
    port, pid = stranger
    conf = tmp_path / "edge.toml"
    conf.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\nbundle = "{pki.device}"\nroom = "Room 4"\nadvertise = false\n')
    assert load_config(conf, env={}).server.port == port
    skip = [a for n in doctor.CHECK_NAMES if n != "ports" for a in ("--skip", n)]
    res = run_cli("doctor", "--config", str(conf), *skip, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stdout + res.stderr
    (line,) = res.stdout.splitlines()
    assert line.startswith("FAIL ports") and f"port {port} (server.port)" in line and f"pid {pid}" in line, line
    assert f"set server.port in {conf} to a free port" in line, line
