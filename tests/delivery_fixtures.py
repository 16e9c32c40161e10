"""Helpers for the delivery tests: a real site PKI in a temp dir and a real server on 127.0.0.1.

Imported by the gRPC, delivery and mDNS tests (tests/unit/device, tests/system) (no conftest on purpose).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge_agent.crypto import ca
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer, ServerConfig
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.presence import RoomCodes, make_secret
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClinicianKeys, init_key_file
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
ROOM_CODE_STEP_S = 28 * 86400


@dataclass
class Pki:
    root: Path
    authority: ca.CertificateAuthority
    device: Path
    clinician_a: Path
    clinician_b: Path
    admin: Path
    keys_a: Path
    keys_b: Path

    @property
    def crl(self) -> Path:
        return self.root / "ca" / ca.CRL

    @property
    def room_code_secret(self) -> Path:
        """The room device's presence secret (made once per PKI, like a provisioned device's)."""
        path = self.root / "room-code.key"
        make_secret(path)
        return path

    def room_code(self, step_s: int = ROOM_CODE_STEP_S) -> str:
        """The code a clinician standing in Room 4 reads off the device."""
        return RoomCodes.load(self.room_code_secret, step_s).window().code

    @classmethod
    def make(cls, root: Path) -> Pki:
        authority = ca.init_ca(root / "ca", site="Test Clinic")
        ca.issue_device(authority, "Room 4", root / "device.pem", ips=("127.0.0.1",))
        ca.issue_clinician(authority, root / "clin_a.pem")
        ca.issue_clinician(authority, root / "clin_b.pem")
        ca.issue_admin(authority, root / "admin.pem")
        init_key_file(root / "clin_a.pem", root / "phone_a.json")
        init_key_file(root / "clin_b.pem", root / "phone_b.json")
        return cls(root, authority, root / "device.pem", root / "clin_a.pem", root / "clin_b.pem", root / "admin.pem",
                   root / "phone_a.json", root / "phone_b.json")

    def issue_clinician_keys(self, name: str, valid_from: dt.datetime | None = None, days: int = 365) -> Path:
        ca.issue_clinician(self.authority, self.root / f"{name}.pem", days=days, valid_from=valid_from)
        init_key_file(self.root / f"{name}.pem", self.root / f"{name}.json")
        return self.root / f"{name}.json"


class RecordingRunner(ScriptedVisitRunner):
    """The scripted runner, also keeping each visit context so tests can check the wipe."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[VisitContext] = []

    def start(self, ctx: VisitContext) -> None:
        super().start(ctx)
        self.contexts.append(ctx)


@dataclass
class ServerThread:
    """An EdgeAgentServer on its own event loop in a thread (the tests' clients are sync)."""

    config: ServerConfig
    runner: RecordingRunner = field(default_factory=RecordingRunner)
    metrics: Any = None  # an edge_agent.device.ops.metrics.Registry to count into, if the test reads counters
    server: EdgeAgentServer | None = None
    _background: BackgroundServer | None = None

    @property
    def port(self) -> int:
        return self._background.port if self._background is not None else 0

    def start(self) -> ServerThread:
        self.server = EdgeAgentServer(self.config, self.runner, SpectralVoiceEnroller(), metrics=self.metrics)
        self._background = BackgroundServer(self.server)
        self._background.start()
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        assert self._background is not None
        return self._background.call(coro, timeout)

    def stop(self) -> None:
        if self._background is not None:
            self._background.stop()

    @property
    def target(self) -> phone.Target:
        assert self.server is not None
        return phone.Target("127.0.0.1", self.port, self.server.fingerprint)

    def room_code(self) -> str:
        """What a clinician in the room reads off the device (the presence proof a phone start needs)."""
        assert self.config.room_code_secret is not None
        return RoomCodes.load(self.config.room_code_secret, self.config.room_code_step_s).window().code


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One site PKI per test module (issuing certificates is the slow part)."""
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def srv(pki: Pki, tmp_path: Path) -> Iterator[ServerThread]:
    s = ServerThread(server_config(pki, tmp_path / "data")).start()
    yield s
    s.stop()


def server_config(pki: Pki, data_dir: Path, **kw: Any) -> ServerConfig:
    kw.setdefault("room_code_secret", pki.room_code_secret)
    return ServerConfig(bundle=pki.device, data_dir=data_dir, room="Room 4", crl=pki.crl, host="127.0.0.1", port=0, **kw)


def raw_channel(bundle: Path | ClinicianKeys, port: int) -> grpc.Channel:
    """A plain grpc channel authenticated with a bundle (for tests that bypass the phone client)."""
    if isinstance(bundle, ClinicianKeys):
        ca_pem, key_pem, cert_pem = bundle.ca_pem.encode(), bundle.key_pem.encode(), bundle.cert_pem.encode()
    else:
        b = ca.load_bundle(bundle)
        ca_pem, key_pem, cert_pem = b.ca_pem, b.key_pem, b.cert_pem
    creds = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=phone.channel_options())


class ServerProcess:
    """``python -m tests.doubles.scripted_server`` in a child process (for kill -9 tests)."""

    def __init__(self, pki: Pki, data_dir: Path) -> None:
        self.pki = pki
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, port: int = 0) -> ServerProcess:
        port_file = self.data_dir / "port"
        port_file.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.doubles.scripted_server", "--bundle", str(self.pki.device), "--data-dir", str(self.data_dir),
             "--crl", str(self.pki.crl), "--room", "Room 4", "--port", str(port), "--port-file", str(port_file),
             "--room-code-secret", str(self.pki.room_code_secret)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup, no flush beyond what was committed
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def target(self, fingerprint: str) -> phone.Target:
        return phone.Target("127.0.0.1", self.port, fingerprint)


def silent_connection(port: int, source: str) -> socket.socket:
    """A TCP connection from ``source`` that never says anything (a slowloris client)."""
    s = socket.socket()
    s.bind((source, 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def closed_within(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes ``sock`` (inf if it does not within ``limit_s``)."""
    sock.setblocking(True)
    sock.settimeout(limit_s)
    t0 = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return float("inf")
    except OSError:
        pass  # reset: closed too
    return time.monotonic() - t0
