"""`edge-agent device status|force-stop|purge-expired`: IT's admin certificate in use, over real mutual TLS.

`ca issue-admin` made admin bundles and every device served the admin service, but nothing shipped called
it: IT held a certificate with no command to use it, and a stuck visit could only be ended by a restart.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.phone import client as phone
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki, ServerThread, pki, srv  # noqa: F401 (pytest fixtures)


def test_admin_status_force_stop_and_purge_from_the_cli(pki: Pki, srv: ServerThread) -> None:  # noqa: F811
    where = ["--admin-bundle", str(pki.admin), "--device", f"127.0.0.1:{srv.port}", "--fingerprint", srv.target.fingerprint or ""]
    phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
    res = run_cli("device", "status", *where, "--json", timeout=120)
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert status["room"] == "Room 4" and status["visit_active"] is True and status["certificate_valid_until"]
    res = run_cli("device", "force-stop", *where, "--json", timeout=120)
    assert res.returncode == 0 and json.loads(res.stdout) == {"stopped": True}, res.stdout + res.stderr
    assert len(phone.feedback(pki.keys_a, srv.target)) == 1  # the stopped visit's report still reached its clinician
    res = run_cli("device", "purge-expired", *where, "--json", timeout=120)
    assert res.returncode == 0 and json.loads(res.stdout) == {"purged": 0}, res.stdout + res.stderr


def test_admin_cli_refusals_are_one_line(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:  # noqa: F811
    device = ["--device", f"127.0.0.1:{srv.port}"]
    for bundle, extra, problem in (
        (pki.device, [], "not an admin's"),  # a device bundle is not IT's
        (pki.admin, ["--fingerprint", "00" * 32], "not the expected"),  # another machine answering
    ):
        res = run_cli("device", "status", "--admin-bundle", str(bundle), *device, *extra, timeout=120)
        assert res.returncode != 0 and problem in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "Traceback" not in res.stderr
    res = run_cli("device", "status", "--admin-bundle", str(pki.clinician_a), *device, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_fault_on_the_device_is_not_read_to_it_as_a_refusal(pki: Pki, srv: ServerThread) -> None:  # noqa: F811
    """The admin client worded every failed call "the device refused: ...", a device that broke included: IT
    would look for a rule that said no instead of the device's journal."""
    where = ["--admin-bundle", str(pki.admin), "--device", f"127.0.0.1:{srv.port}", "--fingerprint", srv.target.fingerprint or ""]
    visits = srv.server.visits
    assert visits is not None

    def broken() -> int:
        raise OSError("injected: the outbox directory could not be listed")

    visits.purge_expired = broken  # type: ignore[method-assign]  # the device's own store fails, not the client
    res = run_cli("device", "purge-expired", *where, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "refused" not in res.stderr and "fault on the device" in res.stderr and "journal" in res.stderr, res.stderr
