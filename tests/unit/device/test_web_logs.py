"""The browser endpoint's web server logs through the device's redacting handler, never around it.

uvicorn, left to its defaults, installs its own stderr handler on the ``uvicorn`` loggers (and
stops them propagating), so its lines skipped the redaction and id scrubbing every other line
goes through (docs/security.md: logs carry no ids and no text), and reached the journal without
a syslog priority. A malformed HTTP request over real TLS makes uvicorn warn; the warning must
come out of the configured handler.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.delivery_fixtures import Pki
from tests.journal import device_journal
from tests.phone_web_fixtures import Device
from tests.unit.phone.test_phone_web_device import ORIGIN


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def test_uvicorn_lines_go_through_the_redacting_handler(pki: Pki, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with device_journal("info") as out:
        device = Device.start(pki, tmp_path / "data", ORIGIN)
        try:
            with device.raw_web_tls(pki.authority.cert_pem) as tls:
                tls.sendall(b"NOT HTTP AT ALL c-mfrggzdfmztwq2lk\r\n\r\n")
                assert tls.recv(4096).startswith(b"HTTP/1.1 400")
            deadline = time.monotonic() + 5
            while "Invalid HTTP request" not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            device.stop()
    _, err = capfd.readouterr()
    assert "Invalid HTTP request" not in err, "uvicorn wrote around the device's log handler: " + err
    assert "<4>uvicorn.error: Invalid HTTP request received." in out.getvalue(), out.getvalue()
