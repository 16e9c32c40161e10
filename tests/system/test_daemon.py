"""The daemon as systemd runs it: config file, READY=1 over a real notify socket,
a visit through the real pipeline, SIGTERM finishing that visit, a restart that
still delivers the sealed report, logs that carry none of the visit's words, and
metrics that show the visit only from the next publication boundary (no schedule)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.crypto import ca
from edge_agent.data import bundled as demo_audio_path
from edge_agent.device.presence import RoomCodes, make_secret
from edge_agent.phone import client as phone
from edge_agent.phone.keys import init_key_file

PUBLISH_S = 20  # metrics.publish_s: a test rig's value (production publishes daily)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_daemon(config: Path, notify: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NOTIFY_SOCKET=str(notify))
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "serve", "--config", str(config), "--replay", str(demo_audio_path())],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=env,
    )


def wait_ready(sock: socket.socket, timeout: float = 120.0) -> list[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            seen.extend(sock.recv(4096).decode().splitlines())
        except socket.timeout:
            break
        if "READY=1" in seen:
            return seen
    raise AssertionError(f"no READY=1 from the daemon; got {seen}")


def test_daemon_ready_sigterm_finishes_visit_and_restart_delivers(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem", ips=("127.0.0.1",))
    ca.issue_clinician(authority, tmp_path / "clin.pem")
    keys = tmp_path / "phone.json"
    init_key_file(tmp_path / "clin.pem", keys)
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "config.toml"
    make_secret(tmp_path / "room-code.key")
    code = RoomCodes.load(tmp_path / "room-code.key", 86400).window().code
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nroom = "Room 4"\nbundle = "{tmp_path / "device.pem"}"\n'
        f'crl = "{tmp_path / "ca" / ca.CRL}"\nadvertise = false\n\n[outbox]\npath = "{tmp_path / "state"}"\n\n[logging]\njson = true\n'
        f'\n[presence]\ncode_secret = "{tmp_path / "room-code.key"}"\ncode_step_s = 86400\n'
        f'\n[metrics]\nenabled = true\nport = {metrics_port}\npublish_s = {PUBLISH_S}\n'
    )
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, notify_path, log)
    try:
        wait_ready(notify)
        target = phone.Target("127.0.0.1", port, None)
        time.sleep(PUBLISH_S - time.time() % PUBLISH_S + 0.2)  # just after a boundary: the visit fits in one period
        before, t_before = _metrics(metrics_port), time.time()
        visit_id = phone.start(keys, target, room_code=code)
        time.sleep(12)  # the replayed consultation plays in real time through the pipeline
        during, t_during = _metrics(metrics_port), time.time()  # the production endpoint while the real visit runs
        assert t_before // PUBLISH_S == t_during // PUBLISH_S, "test timing: the visit crossed a publication boundary"
        published = _next_publication(metrics_port, _value(during, "edge_agent_published_unix_seconds"))
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-2000:]
        notes = notify.recv(4096).decode()
        assert "STOPPING=1" in notes
    finally:
        if daemon.poll() is None:
            daemon.kill()
    # a new daemon on the same state folder: the report sealed at SIGTERM is still there
    daemon = start_daemon(config, notify_path, log)
    try:
        wait_ready(notify)
        after_restart = _metrics(metrics_port)  # before this daemon's first boundary: zeros
        restart_published = _next_publication(metrics_port, 0)
        reports = phone.feedback(keys, phone.Target("127.0.0.1", port, None), follow=False)
        after_ack = _metrics(metrics_port)
        ack_published = _next_publication(metrics_port, _value(after_ack, "edge_agent_published_unix_seconds"))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        notify.close()
    assert len(reports) == 1 and reports[0].visit_id == visit_id
    # no schedule: while the visit ran the endpoint served exactly what it served before it, and no "active" gauge
    assert during == before and "visit_active" not in during
    # the production registry, fed by the real visit, shows it from the boundary that followed
    assert _value(published, 'edge_agent_visits_total{trigger="phone"}') == 1
    assert _value(published, "edge_agent_segments_total") >= 1 and _value(published, "edge_agent_utterances_total") >= 1
    assert _value(published, "edge_agent_residency_seconds_count") >= 1
    assert _value(published, "edge_agent_published_unix_seconds") % PUBLISH_S == 0
    assert _value(after_restart, "edge_agent_outbox_items") == 0 and _value(after_restart, "edge_agent_published_unix_seconds") == 0
    assert _value(restart_published, "edge_agent_outbox_items") == 1  # the report sealed at SIGTERM, waiting for the phone
    assert _value(after_ack, "edge_agent_outbox_items") == 1  # acknowledged, but not published before the next boundary
    assert _value(ack_published, "edge_agent_outbox_items") == 0  # delivered and acknowledged
    for text in (during, published, restart_published):  # numbers only: no visit id, no key, no room name
        assert visit_id not in text and "Room 4" not in text and "clin" not in text.lower()
    text = reports[0].render()
    assert "Timing:" in text
    # nothing of the visit in the logs: no transcript words, no ids
    log_text = log.read_text()
    records = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "device ready" for r in records)
    assert visit_id not in log_text
    spoken = json.loads(demo_audio_path("demo_conversation.json").read_text())["turns"]
    words = {w.strip(".,?!").lower() for t in spoken for w in t["text"].split() if len(w) > 6}
    assert words and not [w for w in words if w in log_text.lower()]


def _metrics(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:  # noqa: S310 - loopback
        return str(reply.read().decode())


def _next_publication(port: int, after: float, timeout: float = 3 * PUBLISH_S) -> str:
    """The endpoint's text once it serves a publication later than ``after`` (polled, read-only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _metrics(port)
        if _value(text, "edge_agent_published_unix_seconds") > after:
            return text
        time.sleep(0.25)
    raise AssertionError(f"no publication after {after} within {timeout} s")


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the metrics:\n{text[:3000]}")


def test_population_settings_refuse_a_person_like_service_line() -> None:
    import pytest

    from edge_agent.device.config import parse_config
    from edge_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="population.service_line"):
        parse_config({"population": {"enabled": True, "service_line": "Dr Smith"}})
    for slug in ("dr-smith", "nurse-kim", "prof-okafor"):  # the slug form passes the character rule: still a person
        with pytest.raises(ConfigError, match="person"):
            parse_config({"population": {"enabled": True, "service_line": slug}})
    assert parse_config({"population": {"service_line": "cardiology"}}).population.service_line == "cardiology"
