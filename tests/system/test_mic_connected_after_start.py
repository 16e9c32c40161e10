"""A microphone connected after the daemon started is found at the next visit, without a restart.

PortAudio lists devices once, at initialisation: a USB microphone plugged in (or back in) after the service started
was never found, and every visit was refused with 'microphone ... not found' until IT restarted the service. The ALSA
file device (NOTES.md) stands in for the microphone: its .asoundrc appears only after the daemon is ready.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_agent.crypto import ca
from edge_agent.device.presence import RoomCodes, make_secret
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, init_key_file
from tests.system.test_daemon import free_port, wait_ready


def test_a_microphone_connected_after_start_is_used_by_the_next_visit(
    tmp_path: Path, jfk_16k: np.ndarray, alsa_file_mic: Callable[[np.ndarray], Path]
) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem", ips=("127.0.0.1",))
    ca.issue_clinician(authority, tmp_path / "clin.pem")
    keys = tmp_path / "phone.json"
    init_key_file(tmp_path / "clin.pem", keys)
    make_secret(tmp_path / "room-code.key")
    code = RoomCodes.load(tmp_path / "room-code.key", 86400).window().code
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[audio]\ndevice = "micin"\n\n[server]\nhost = "127.0.0.1"\nport = {port}\nroom = "Room 4"\n'
        f'bundle = "{tmp_path / "device.pem"}"\ncrl = "{tmp_path / "ca" / ca.CRL}"\nadvertise = false\n\n'
        f'[outbox]\npath = "{tmp_path / "state"}"\n\n[presence]\ncode_secret = "{tmp_path / "room-code.key"}"\ncode_step_s = 86400\n'
    )
    home = tmp_path  # alsa_file_mic writes its .asoundrc here: not yet
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=dict(os.environ, NOTIFY_SOCKET=str(notify_path), HOME=str(home)),
    )
    target = phone.Target("127.0.0.1", port, None)
    try:
        wait_ready(notify)
        with pytest.raises(ClientError, match="microphone 'micin' not found"):
            phone.start(keys, target, room_code=code)
        assert alsa_file_mic(jfk_16k) == home  # the microphone is connected now
        visit_id = phone.start(keys, target, room_code=code)
        time.sleep(3)
        phone.stop(keys, target)
        reports = phone.feedback(keys, target, follow=False)
        assert [r.visit_id for r in reports] == [visit_id]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-2000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
        notify.close()
