"""`serve` with a bad path in its config: one line naming the key or file, exit 2, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.device.presence import load_allow_list
from edge_agent.population.pseudonym import PeriodKeyRing
from tests.cli_runner import run_cli


def serve_config(tmp_path: Path, state: Path, extra: str = "", gpio: str = "mock") -> Path:
    """A device CA, bundle and config for Room 4 with this outbox directory (``extra``: more TOML sections)."""
    authority = ca.init_ca(tmp_path / "ca")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nroom = "Room 4"\nbundle = "{tmp_path / "device.pem"}"\ncrl = "{tmp_path / "ca" / ca.CRL}"\n'
        f'advertise = false\nhost = "127.0.0.1"\nport = 0\n[gpio]\nbackend = "{gpio}"\n'
        f'[outbox]\npath = "{state}"\n[presence]\ncode_secret = ""\n{extra}'
    )
    return config


def _serve(tmp_path: Path, state: Path, extra: str = "", *args: str) -> str:
    """Run the real daemon with this outbox directory; it must refuse to start. Returns its one stderr line."""
    out = run_cli("serve", "--config", str(serve_config(tmp_path, state, extra)), *args, timeout=120)
    # the daemon's own journal lines (<N>prefix, e.g. "listening on") are logs; the error is the one other line
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith("<")]
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_serve_with_unusable_outbox_path_is_one_line(tmp_path: Path, where: str) -> None:
    taken = tmp_path / "outbox.db"  # IT pointed outbox.path at the database file, not its directory
    taken.write_bytes(b"")
    state = taken if where == "a file" else taken / "state"
    line = _serve(tmp_path, state)
    assert "outbox.path" in line and str(state) in line, line


def test_allow_list_not_utf8_is_one_line_and_utf8_bom_is_read(tmp_path: Path) -> None:
    """An allow-list saved by a Windows editor: UTF-16 is refused in one line; UTF-8 with a BOM is plain text."""
    allow = tmp_path / "room.allow"
    allow.write_text("s-aaaaaaaaaaaaaaaa\n", encoding="utf-16")
    line = _serve(tmp_path, tmp_path / "state", f'allowed_clinicians = "{allow}"\n')
    assert str(allow) in line and "UTF-8" in line, line
    allow.write_text("s-aaaaaaaaaaaaaaaa\n", encoding="utf-8-sig")
    assert load_allow_list(allow) == frozenset({"s-aaaaaaaaaaaaaaaa"})


@pytest.mark.parametrize("damage", ["missing", "directory", "not a key"])
def test_population_aggregator_key_is_checked_at_start(tmp_path: Path, damage: str) -> None:
    """population.enabled with a missing, folder or junk aggregator key: refused at start in one line.

    A junk key used to start fine and then skip every visit's contribution (a warning per visit).
    """
    period = tmp_path / "period.key"
    PeriodKeyRing.create(period)
    pub = tmp_path / "aggregator.pub"
    if damage == "directory":
        pub.mkdir()
    elif damage == "not a key":
        pub.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot the raw key\n")
    line = _serve(tmp_path, tmp_path / "state", (
        f'[population]\nenabled = true\nperiod_key = "{period}"\naggregator_public_key = "{pub}"\n'
    ))
    assert "population.aggregator_public_key" in line and str(pub) in line, line


def test_serve_replay_of_a_missing_recording_is_refused_at_start(tmp_path: Path) -> None:
    """--replay names the room microphone's stand-in: a missing file is refused now, not at the first visit."""
    line = _serve(tmp_path, tmp_path / "state", "", "--replay", str(tmp_path / "visit.flac"))
    assert "audio file not found" in line and str(tmp_path / "visit.flac") in line, line


def test_a_failure_after_the_grpc_server_started_is_still_one_line(tmp_path: Path) -> None:
    """metrics.port taken (or a bad web origin): the server already listening is shut down, no 'Exception ignored' traceback."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        line = _serve(tmp_path / "a", tmp_path / "a" / "state", f"[metrics]\nenabled = true\nport = {port}\n")
        assert "metrics.port" in line, line
    finally:
        taken.close()
    line = _serve(tmp_path / "b", tmp_path / "b" / "state", '[web]\nenabled = true\nallowed_origin = "http://phones.example"\n')
    assert "allowed origin" in line, line


@pytest.mark.parametrize("key", ["web.port", "metrics.port", "server.port"])
def test_a_busy_port_is_refused_before_anything_loads_or_listens(tmp_path: Path, key: str) -> None:
    """Every port serve listens on is checked first: a busy web or metrics port was found only after the models had
    loaded and the gRPC port was accepting phones (a half-started daemon). The Whisper model is missing here, so a
    daemon that loads models before checking its ports says that instead of the port."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        section, name = key.split(".")
        config = serve_config(tmp_path, tmp_path / "state", f'[asr]\nmodel = "{tmp_path / "no-such-model"}"\n')
        text = config.read_text().replace("port = 0\n", "port = 0\n" if key != "server.port" else f"port = {port}\n")
        if key != "server.port":
            text += (f'[web]\nenabled = true\nport = {port}\nallowed_origin = "https://phones.example"\n' if section == "web"
                     else f"[metrics]\nenabled = true\nport = {port}\n")
        config.write_text(text)
        out = run_cli("serve", "--config", str(config), timeout=120)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith("<")]
        assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"port {port} ({key}) is already in use" in lines[0] and f"set {key} in {config}" in lines[0], lines[0]
        assert not any("listening" in ln for ln in out.stderr.splitlines()), out.stderr
    finally:
        taken.close()


@pytest.mark.parametrize("damage", ["other service line", "missing", "not a contributor"])
def test_population_delivery_bundle_is_checked_at_start(tmp_path: Path, damage: str) -> None:
    """population.service_line other than the line the contributor certificate is bound to: the aggregator refused
    every record for good and the forwarder deleted them (all of the room's population records lost, one warning a
    day); a missing bundle only showed at the first delivery. Refused at start in one line instead."""
    from edge_agent.crypto import seal
    from edge_agent.population.certs import issue_contributor

    period = tmp_path / "period.key"
    PeriodKeyRing.create(period)
    pub = tmp_path / "aggregator.pub"
    pub.write_bytes(seal.generate_keypair()[1])
    site = ca.init_ca(tmp_path / "site-ca")
    bundle = tmp_path / "contributor.pem"
    if damage == "other service line":
        issue_contributor(site, bundle, "cardiology")
    elif damage == "not a contributor":
        ca.issue_admin(site, bundle)
    line = _serve(tmp_path, tmp_path / "state", (
        f'[population]\nenabled = true\nservice_line = "oncology"\nperiod_key = "{period}"\naggregator_public_key = "{pub}"\n'
        f'aggregator_address = "127.0.0.1:9"\nclient_bundle = "{bundle}"\n'
    ))
    assert "population.client_bundle" in line and str(bundle) in line, line
    if damage == "other service line":
        assert "cardiology" in line and "oncology" in line, line
