"""The outbox format version (PRAGMA user_version): set at creation, stamped on today's unversioned outboxes, and an
outbox written by a newer release is refused (exit 78, which the unit does not restart on) without a byte written."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.crypto.seal import Envelope
from edge_agent.device.outbox import OUTBOX_FORMAT, Outbox, OutboxFormatError, outbox_format
from edge_agent.errors import EXIT_NOT_RESTARTABLE
from edge_agent.site import doctor
from tests.cli_runner import run_cli
from tests.paths import REPO_ROOT


def _env(n: int) -> Envelope:
    return Envelope("suite", f"visit-{n}", 1, b"k" * 8, os.urandom(200), 0)


def _user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def _set_user_version(path: Path, version: int) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute(f"PRAGMA user_version = {version}")
    finally:
        con.close()


def _outbox_with_one_report(path: Path) -> None:
    box = Outbox(path)
    box.put("c-one", _env(1))
    box.close()


def _snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file in the folder: its sha256 and mtime (ns)."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_a_new_outbox_is_format_1(tmp_path: Path) -> None:
    _outbox_with_one_report(tmp_path / "outbox.db")
    assert OUTBOX_FORMAT == 1
    assert _user_version(tmp_path / "outbox.db") == 1 and outbox_format(tmp_path / "outbox.db") == 1


def test_an_unversioned_outbox_of_todays_format_is_read_and_stamped(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    _outbox_with_one_report(db)
    _set_user_version(db, 0)  # as written by the releases before formats were numbered
    assert outbox_format(db) == 0
    box = Outbox(db)
    try:
        assert [i.envelope.visit_id for i in box.fetch("c-one")] == ["visit-1"]  # nothing lost, nothing quarantined
        assert box.quarantined is None
    finally:
        box.close()
    assert _user_version(db) == 1


def test_an_outbox_of_a_newer_release_is_refused_and_left_byte_for_byte(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    _outbox_with_one_report(db)
    _set_user_version(db, 2)  # a later release wrote it; then the device was rolled back
    before = _snapshot(tmp_path)
    with pytest.raises(OutboxFormatError) as err:
        Outbox(db)  # heal=True, as the daemon opens it: a newer outbox is not "damaged", it is not moved aside
    line = str(err.value)
    assert f"the outbox at {db} was written by a newer edge-agent (format 2); this release reads format 1" in line, line
    assert "roll forward" in line and "move the outbox aside after delivering its reports" in line and "\n" not in line
    assert err.value.exit_code == EXIT_NOT_RESTARTABLE == 78
    assert _snapshot(tmp_path) == before  # no byte, no mtime, no -wal/-shm, no quarantine file


def test_a_newer_format_still_in_the_wal_after_a_crash_is_refused_without_a_checkpoint(tmp_path: Path) -> None:
    """The newer release was killed with the format change only in its WAL: the version is read from the WAL
    (read-only, no checkpoint into the database file) and refused; the database and its WAL keep every byte."""
    live, db = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()
    db.mkdir()
    _outbox_with_one_report(live / "outbox.db")
    con = sqlite3.connect(live / "outbox.db", isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("PRAGMA user_version = 3")
    for suffix in ("", "-wal"):  # the files as kill -9 leaves them: the change is in the WAL, not the database
        shutil.copy2(str(live / "outbox.db") + suffix, str(db / "outbox.db") + suffix)
    con.close()
    header = (db / "outbox.db").read_bytes()[:100]
    assert int.from_bytes(header[60:64], "big") == 1  # the database file alone still says format 1
    db_file, wal = db / "outbox.db", db / "outbox.db-wal"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (db_file, wal)}
    with pytest.raises(OutboxFormatError, match=r"\(format 3\); this release reads format 1"):
        Outbox(db_file)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (db_file, wal)} == before


def test_doctor_shows_the_format_and_fails_on_a_newer_one(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    _outbox_with_one_report(db)
    ok = doctor.check_outbox(tmp_path, 1)
    assert ok.ok and "1 queued, format 1," in ok.message, ok.message
    _set_user_version(db, 0)
    old = doctor.check_outbox(tmp_path, 1)
    assert old.ok and "format 0 (stamped 1 at the next start)" in old.message, old.message
    _set_user_version(db, 2)
    before = _snapshot(tmp_path)
    newer = doctor.check_outbox(tmp_path, 1)
    assert not newer.ok and "written by a newer edge-agent (format 2); this release reads format 1" in newer.message
    assert "roll forward" in newer.fix and "after delivering its reports" in newer.fix, newer
    assert _snapshot(tmp_path) == before


def test_serve_refuses_a_newer_outbox_in_one_line_with_exit_78_and_leaves_it(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    _outbox_with_one_report(state / "outbox.db")
    _set_user_version(state / "outbox.db", 2)
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""
        [server]
        room = "Room 4"
        bundle = "{tmp_path / 'device.pem'}"
        crl = "{tmp_path / 'ca' / ca.CRL}"
        advertise = false
        host = "127.0.0.1"
        port = 0
        [gpio]
        backend = "mock"
        [outbox]
        path = "{state}"
        [presence]
        code_secret = ""
    """))
    before = _snapshot(state)
    res = run_cli("serve", "--config", str(config), timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("<")]
    assert res.returncode == 78, res.stderr
    assert len(lines) == 1 and "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    assert "was written by a newer edge-agent (format 2); this release reads format 1" in lines[0], lines[0]
    assert "roll forward" in lines[0]
    assert _snapshot(state) == before


def test_the_unit_does_not_restart_on_the_refusal_exit_status() -> None:
    lines = (REPO_ROOT / "systemd" / "edge-agent.service").read_text().splitlines()
    prevent = [ln.partition("=")[2].split() for ln in lines if ln.startswith("RestartPreventExitStatus=")]
    assert prevent and str(EXIT_NOT_RESTARTABLE) in prevent[0]
    assert "Restart=on-failure" in lines  # other failures (a busy port, a missing microphone) are still restarted
