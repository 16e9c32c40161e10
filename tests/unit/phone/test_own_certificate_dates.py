"""A phone whose own certificate is out of its dates is told so, in one line, not 'lost the device'.

The device refuses such a client after the TLS handshake (TLS 1.3 checks the client certificate last), so the
phone's first look at the device succeeded and the refused gRPC call then read as the device having changed:
'lost the device or it changed since its certificate was checked (... Socket closed); retry'.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki, ServerThread, pki, srv  # noqa: F401 (pytest fixtures)


@pytest.mark.parametrize(
    ("name", "shift_days", "days", "fragments"),
    [
        ("expired", -400, 365, ("this phone's certificate expired on", "phone request", "ask IT")),
        ("early", 3, 30, ("this phone's certificate is not valid until", "clock")),
    ],
)
def test_phone_with_its_own_certificate_out_of_date_says_so(
    pki: Pki, srv: ServerThread, name: str, shift_days: int, days: int, fragments: tuple[str, ...]
) -> None:
    keys = pki.issue_clinician_keys(name, valid_from=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=shift_days), days=days)
    for verb in (("feedback",), ("start", "--room", "Room 4", "--room-code", pki.room_code())):
        result = run_cli("phone", *verb, "--keys", str(keys), "--device", f"127.0.0.1:{srv.port}")
        assert result.returncode == 2, result
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        for fragment in fragments:
            assert fragment in lines[0], lines[0]
        assert "lost the device" not in lines[0]
