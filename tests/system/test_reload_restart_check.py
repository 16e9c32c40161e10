"""A SIGHUP reload that changes a restart-only key to something serve would refuse says so now, not at the restart.

Before, the journal said only 'asr.model changed; it takes effect after systemctl restart edge-agent': IT restarted,
the service refused to start, and the room had no device until someone read the new error.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from edge_agent.crypto import ca
from tests.daemon_site import device_config, make_room, running_daemon
from tests.system.test_daemon import free_port


def _wait_for(log: Path, text: str, since: int = 0, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")[since:]
        if text in content:
            return content
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the journal:\n{log.read_text(errors='replace')[-3000:]}")


def test_reload_to_a_config_a_restart_would_refuse_says_so_and_keeps_serving(tmp_path: Path) -> None:
    room = make_room(tmp_path)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(device_config(tmp_path, port))
    with running_daemon(tmp_path, config) as (daemon, log):
        config.write_text(device_config(tmp_path, port, f'\n[asr]\nmodel = "{tmp_path / "no-such-model"}"\n'))
        daemon.send_signal(signal.SIGHUP)
        _wait_for(log, "asr.model changed")
        journal = _wait_for(log, "do not restart yet")
        refusal = next(line for line in journal.splitlines() if "do not restart yet" in line)
        assert "ASR model directory not found" in refusal and "no-such-model" in refusal, refusal
        assert 'set asr.model = "tiny.en"' in refusal, refusal  # the fix is the setting, not reinstalling edge-agent
        # a reload whose restart-only change is sound (a renewed bundle in a new file) says nothing of the kind
        renewed = tmp_path / "renewed.pem"
        ca.issue_device(room.authority, "Room 4", renewed, ips=("127.0.0.1",))
        mark = len(log.read_text(errors="replace"))
        config.write_text(device_config(tmp_path, port).replace(str(tmp_path / "device.pem"), str(renewed)))
        daemon.send_signal(signal.SIGHUP)
        later = _wait_for(log, "server.bundle changed", since=mark)
        time.sleep(2.0)
        assert "do not restart yet" not in log.read_text(errors="replace")[mark:], later
        assert daemon.poll() is None  # the running device kept serving throughout
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
