"""A room device's site for tests that run the daemon as a process: CA, device and clinician certificates, the
phone's key file, the room code, a config, and the daemon started with a notify socket and stopped after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_agent.crypto import ca
from edge_agent.device.presence import RoomCodes, make_secret
from edge_agent.phone.keys import init_key_file
from tests.system.test_daemon import wait_ready

ROOM = "Room 4"


@dataclass(frozen=True)
class Room:
    authority: ca.CertificateAuthority
    keys: Path  # the clinician phone's key file
    code: str  # the room code a clinician standing in the room reads (a day's step)


def make_room(tmp_path: Path) -> Room:
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    ca.issue_device(authority, ROOM, tmp_path / "device.pem", ips=("127.0.0.1",))
    ca.issue_clinician(authority, tmp_path / "clin.pem")
    init_key_file(tmp_path / "clin.pem", tmp_path / "phone.json")
    make_secret(tmp_path / "room-code.key")
    return Room(authority, tmp_path / "phone.json", RoomCodes.load(tmp_path / "room-code.key", 86400).window().code)


def device_config(tmp_path: Path, port: int, extra: str = "") -> str:
    """The config of make_room's device on loopback, its outbox in tmp_path/state; ``extra``: more sections."""
    return (
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nroom = "{ROOM}"\nbundle = "{tmp_path / "device.pem"}"\n'
        f'crl = "{tmp_path / "ca" / ca.CRL}"\nadvertise = false\n\n[outbox]\npath = "{tmp_path / "state"}"\n\n'
        f'[presence]\ncode_secret = "{tmp_path / "room-code.key"}"\ncode_step_s = 86400\n{extra}'
    )


@contextmanager
def running_daemon(tmp_path: Path, config: Path, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``serve --config`` until READY=1; yields the process and its journal file; SIGTERM at the end must exit 0."""
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=dict(os.environ, NOTIFY_SOCKET=str(notify_path), **(env or {})),
    )
    try:
        wait_ready(notify)
        yield daemon, log
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-2000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
        notify.close()
