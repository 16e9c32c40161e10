"""The device that cannot record the CRL number it accepted says where and what to do, in its journal.

The line was 'cannot record the CRL number (OSError); a restart would accept an older CRL': no folder, no reason,
no step, on a state folder that was full, read-only or in the way.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.crypto import ca
from edge_agent.mtls.auth import PeerAuthorizer
from tests.journal import device_journal


def test_an_unwritable_state_folder_is_named_with_the_reason_and_the_fix(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    in_the_way = tmp_path / "state"
    in_the_way.write_text("a file where the state folder should be\n")
    with device_journal() as journal:
        PeerAuthorizer(authority.cert, tmp_path / "ca" / ca.CRL, state_dir=in_the_way)
    lines = [line for line in journal.getvalue().splitlines() if "CRL number" in line]
    assert len(lines) == 1, journal.getvalue()
    assert str(in_the_way) in lines[0] and "File exists" in lines[0] and "writable" in lines[0], lines[0]
