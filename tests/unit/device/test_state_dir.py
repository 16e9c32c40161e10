"""A bad outbox directory (state dir) is one line naming outbox.path, exit 2, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.crypto import ca
from tests.cli_runner import run_cli


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_serve_with_unusable_outbox_path_is_one_line(tmp_path: Path, where: str) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem")
    taken = tmp_path / "outbox.db"  # IT pointed outbox.path at the database file, not its directory
    taken.write_bytes(b"")
    state = taken if where == "a file" else taken / "state"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nroom = "Room 4"\nbundle = "{tmp_path / "device.pem"}"\ncrl = "{tmp_path / "ca" / ca.CRL}"\n'
        f'advertise = false\nhost = "127.0.0.1"\nport = 0\n[presence]\ncode_secret = ""\n[gpio]\nbackend = "mock"\n'
        f'[outbox]\npath = "{state}"\n'
    )
    out = run_cli("serve", "--config", str(config), timeout=120)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert len(lines) == 1 and "outbox.path" in lines[0] and str(state) in lines[0], out.stderr
