"""Outbox: ordered per recipient, monotonic cursor, ack, expiry, limits, disk full."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge_agent.crypto import seal
from edge_agent.device.outbox import DAY_S, Outbox, OutboxConfig, OutboxDiskFullError, OutboxError, OutboxFullError
from tests.paths import REPO_ROOT

_, PUB = seal.generate_keypair()
ROOT = REPO_ROOT


def _env(visit: str, seq: int = 1, size: int = 0) -> seal.Envelope:
    return seal.seal(b"r" * size or b"report", PUB, visit, seq)


def test_order_cursor_ack_and_isolation(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    assert stat.S_IMODE((tmp_path / "outbox.db").stat().st_mode) == 0o600
    a1 = box.put("c-alice", _env("v1"))
    b1 = box.put("c-bob", _env("v2"))
    a2 = box.put("c-alice", _env("v3"))
    assert a1 < b1 < a2
    assert [i.id for i in box.fetch("c-alice")] == [a1, a2]
    assert [i.id for i in box.fetch("c-alice", after=a1)] == [a2]
    assert [i.envelope.visit_id for i in box.fetch("c-bob")] == ["v2"]
    # Bob cannot delete Alice's items.
    assert box.ack("c-bob", [a1, a2]) == 0
    assert box.ack("c-alice", [a1, 999]) == 1
    assert [i.id for i in box.fetch("c-alice")] == [a2]
    # Ids are never reused after a delete.
    box.ack("c-alice", [a2])
    assert box.put("c-alice", _env("v4")) > a2
    # Re-queuing the same (recipient, visit, seq) is idempotent.
    again = box.put("c-alice", _env("v4"))
    assert [i.id for i in box.fetch("c-alice")] == [again]
    box.close()


def test_persists_across_reopen_and_holds_no_plaintext(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    secret = b"At 0:14 you interrupted the patient"
    env = seal.seal(secret, PUB, "v1", 1)
    item_id = box.put("c-alice", env)
    box.close()
    box = Outbox(tmp_path / "o.db")
    (item,) = box.fetch("c-alice")
    assert item.id == item_id and item.envelope.sealed == env.sealed
    box.close()
    for f in tmp_path.iterdir():
        assert b"interrupted" not in f.read_bytes()


def test_expiry_after_retention(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", OutboxConfig(retention_s=14 * DAY_S))
    box.put("c-alice", _env("v1"), now=1000.0)
    assert len(box.fetch("c-alice", now=1000.0 + 14 * DAY_S - 1)) == 1
    # expiry is kept at the day's grain (test_outbox_no_schedule.py): gone by the end of the day the retention ends
    assert box.fetch("c-alice", now=1000.0 + 15 * DAY_S) == []
    assert box.purge_expired(now=1000.0 + 15 * DAY_S) == 1
    assert box.stats(now=1000.0) == (0, 0)


def test_limits_give_clear_error(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", OutboxConfig(max_items=2, max_bytes=10_000, max_item_bytes=5000))
    box.put("c-a", _env("v1"))
    box.put("c-a", _env("v2"))
    with pytest.raises(OutboxFullError, match="outbox full"):
        box.put("c-a", _env("v3"))
    with pytest.raises(OutboxFullError, match="item limit"):
        box.put("c-a", _env("v4", size=6000))
    assert len(box.fetch("c-a")) == 2


def test_sqlite_full_loses_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box._db.execute("PRAGMA max_page_count = 12")  # a real SQLITE_FULL without filling the disk
    queued = []
    with pytest.raises(OutboxDiskFullError, match="disk full"):
        for n in range(1000):
            queued.append(box.put("c-a", _env(f"v{n}", size=2000)))
    assert [i.id for i in box.fetch("c-a", limit=10_000)] == queued
    box.close()


def test_real_enospc_on_tiny_tmpfs(tmp_path: Path) -> None:
    """Fill a 256 KiB tmpfs mounted in a private mount namespace; nothing queued is lost."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user/mount namespaces not permitted here: {probe.stderr.decode().strip()}")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from edge_agent.crypto import seal
        from edge_agent.device.outbox import Outbox, OutboxDiskFullError, OutboxError
        _, pub = seal.generate_keypair()
        queued, error = [], ""
        try:
            box = Outbox({str(mnt / "o.db")!r})
            for n in range(10000):
                queued.append(box.put("c-a", seal.seal(b"x" * 3000, pub, f"v{{n}}", 1)))
        except OutboxError as exc:
            error = type(exc).__name__ + ": " + str(exc)
        box.close()
        again = Outbox({str(mnt / "o.db")!r})
        got = [i.id for i in again.fetch("c-a", limit=100000)]
        print(json.dumps({{"queued": len(queued), "same": got == queued, "error": error}}))
        """
    )
    cmd = f"mount -t tmpfs -o size=256k tmpfs {mnt} && {sys.executable} -c \"$0\""
    result = subprocess.run(["unshare", "-rm", "sh", "-c", cmd, script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["error"].startswith("OutboxDiskFullError"), out
    assert out["queued"] > 5 and out["same"], out


# ---- self-healing: a damaged or empty outbox never keeps the room down -------------------------


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b"this is not a database, it was overwritten" * 100), "not a database"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: _flip_page(p, 2), "integrity check failed|malformed database"),
    ],
    ids=["garbage", "zero-bytes", "corrupt-page"],
)
def test_damaged_outbox_is_quarantined_and_a_fresh_one_started(tmp_path: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    from edge_agent.device.outbox import quarantined_files

    path = tmp_path / "outbox.db"
    box = Outbox(path)
    for n in range(40):
        box.put("c-a", _env(f"v{n}", size=3000))
    old_id = box.outbox_id
    box.close()
    for side in ("-wal", "-shm"):
        Path(str(path) + side).unlink(missing_ok=True)
    damage(path)
    original = path.read_bytes()

    healed = Outbox(path)
    assert healed.quarantined is not None and healed.quarantined.reason in reason.split("|")
    moved = healed.quarantined.moved_to
    assert moved == tmp_path / "outbox.db.corrupt-1" and moved.read_bytes() == original
    assert moved.stat().st_mode & 0o777 == 0o600
    assert healed.outbox_id != old_id  # phones key cursors by it: none skips an item of the new outbox
    assert healed.stats() == (0, 0)
    healed.put("c-a", _env("v-new"))
    healed.close()
    # the next start is clean and never touches the quarantined file again
    again = Outbox(path)
    assert again.quarantined is None and again.stats()[0] == 1
    again.close()
    assert quarantined_files(path) == [moved] and moved.read_bytes() == original
    # a second damage gets the next number
    path.write_bytes(b"x" * 5000)
    third = Outbox(path)
    assert third.quarantined is not None and third.quarantined.moved_to.name == "outbox.db.corrupt-2"
    third.close()


def test_without_heal_a_damaged_outbox_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(OutboxError, match="damaged .*move it aside"):
        Outbox(path, heal=False)
    assert path.read_bytes() == b"garbage" * 1000


def test_fresh_outbox_reopens_without_quarantine(tmp_path: Path) -> None:
    Outbox(tmp_path / "outbox.db").close()
    box = Outbox(tmp_path / "outbox.db")
    assert box.quarantined is None
    box.close()


def _flip_page(path: Path, page: int) -> None:
    """Overwrite one b-tree page in the middle of the file (a real torn/bit-rotted page)."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big") or 65536
    start = size * (page - 1)
    data[start : start + size] = bytes([0xA5]) * size
    path.write_bytes(bytes(data))


def test_a_damaged_page_loses_only_the_items_on_it(tmp_path: Path) -> None:
    """Quarantine used to start the fresh outbox empty: one bit-rotted page of a 200-report queue lost all 200
    reports (logged, but never delivered). The intact items are now carried over, in order, routing and expiry kept."""
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    ids = [box.put("c-a" if n % 2 else "c-b", _env(f"v{n}", size=3000)) for n in range(200)]
    acked = ids[10:20]
    box.ack("c-b", acked)  # some already delivered: they stay delivered
    box.close()
    pages = path.stat().st_size // (int.from_bytes(path.read_bytes()[16:18], "big") or 65536)
    _flip_page(path, pages // 2)  # one page in the middle of the table

    healed = Outbox(path)
    assert healed.quarantined is not None and healed.quarantined.reason in ("integrity check failed", "malformed database")
    got = healed.fetch("c-a", limit=1000) + healed.fetch("c-b", limit=1000)
    visits = sorted(int(i.envelope.visit_id[1:]) for i in got)
    assert healed.quarantined.recovered == len(got) >= 190 - 10, len(got)  # at most a few items lived on that page
    assert not {int(v) for v in visits} & {n for n in range(200) if ids[n] in acked and n % 2 == 0}
    a = [int(i.envelope.visit_id[1:]) for i in healed.fetch("c-a", limit=1000)]
    assert a == sorted(a) and all(n % 2 for n in a)  # order and routing kept
    assert all(i.expires_unix_s > time.time() for i in got)
    healed.close()


def test_a_changed_retention_applies_to_reports_already_queued(tmp_path: Path) -> None:
    """outbox.retention_days is a live key: after a reload (or a restart) the new limit counts from each queued
    report's creation. The expiry used to be fixed when the report was queued, so lowering the retention left
    the queue's reports for the old 14 days, and raising it (a clinician on leave) still deleted them at 14."""
    box = Outbox(tmp_path / "o.db", OutboxConfig(retention_s=14 * DAY_S))
    box.put("c-alice", _env("v1"), now=1000.0)
    box.config = OutboxConfig(retention_s=30 * DAY_S)  # what LiveTargets.apply does on SIGHUP
    assert len(box.fetch("c-alice", now=1000.0 + 20 * DAY_S)) == 1
    assert box.purge_expired(now=1000.0 + 20 * DAY_S) == 0
    box.config = OutboxConfig(retention_s=2 * DAY_S)
    assert box.stats(now=1000.0 + 3 * DAY_S) == (0, 0)
    assert box.fetch("c-alice", now=1000.0 + 3 * DAY_S) == []
    assert box.purge_expired(now=1000.0 + 3 * DAY_S) == 1
    box.put("c-bob", _env("v2"), now=1000.0)
    box.close()
    box = Outbox(tmp_path / "o.db", OutboxConfig(retention_s=1 * DAY_S))  # a restart with a shorter limit
    # stored at the day's grain (test_outbox_no_schedule.py): kept the full day of retention, gone within a day more
    assert box.purge_expired(now=1000.0 + 0.5 * DAY_S) == 0
    assert box.purge_expired(now=1000.0 + 2 * DAY_S) == 1
    box.close()
