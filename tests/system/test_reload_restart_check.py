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
from edge_agent.device.presence import make_secret
from tests.system.test_daemon import free_port, start_daemon, wait_ready


def _config(tmp_path: Path, port: int, extra: str = "") -> str:
    return (
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nroom = "Room 4"\nbundle = "{tmp_path / "device.pem"}"\n'
        f'crl = "{tmp_path / "ca" / ca.CRL}"\nadvertise = false\n\n[outbox]\npath = "{tmp_path / "state"}"\n'
        f'\n[presence]\ncode_secret = "{tmp_path / "room-code.key"}"\n{extra}'
    )


def _wait_for(log: Path, text: str, since: int = 0, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")[since:]
        if text in content:
            return content
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the journal:\n{log.read_text(errors='replace')[-3000:]}")


def test_reload_to_a_config_a_restart_would_refuse_says_so_and_keeps_serving(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem", ips=("127.0.0.1",))
    make_secret(tmp_path / "room-code.key")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(_config(tmp_path, port))
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, notify_path, log)
    try:
        wait_ready(notify)
        config.write_text(_config(tmp_path, port, f'\n[asr]\nmodel = "{tmp_path / "no-such-model"}"\n'))
        daemon.send_signal(signal.SIGHUP)
        journal = _wait_for(log, "asr.model changed")
        journal = _wait_for(log, "do not restart yet")
        refusal = next(line for line in journal.splitlines() if "do not restart yet" in line)
        assert "ASR model directory not found" in refusal and "no-such-model" in refusal, refusal
        assert 'set asr.model = "tiny.en"' in refusal, refusal  # the fix is the setting, not reinstalling edge-agent
        # a reload whose restart-only change is sound (a renewed bundle in a new file) says nothing of the kind
        renewed = tmp_path / "renewed.pem"
        ca.issue_device(authority, "Room 4", renewed, ips=("127.0.0.1",))
        mark = len(log.read_text(errors="replace"))
        config.write_text(_config(tmp_path, port).replace(str(tmp_path / "device.pem"), str(renewed)))
        daemon.send_signal(signal.SIGHUP)
        later = _wait_for(log, "server.bundle changed", since=mark)
        time.sleep(2.0)
        assert "do not restart yet" not in log.read_text(errors="replace")[mark:], later
        assert daemon.poll() is None  # the running device kept serving throughout
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-2000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
        notify.close()
