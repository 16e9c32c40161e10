"""The outbox on disk does not date the visits it holds (docs/design.md §3.5: no room schedule).

Each row carries its clinician's routing id in clear (the device must route it); its times were the
second the visit was stopped (``created``) and that second plus the retention (``expires``): whoever
reads the state directory (IT, a backup, a stolen disk) read off when each clinician saw patients,
for every report a phone had not collected yet. Times are now kept at the retention's own grain: the
UTC day, expiry rounded up to the end of a day (never earlier than the retention)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_agent.crypto import seal
from edge_agent.device.outbox import DAY_S, Outbox, OutboxConfig

_, PUB = seal.generate_keypair()
STOPPED = 1_796_083_200 + 9 * 3600 + 17 * 60 + 3.25  # 09:17:03 on a clinic day (UTC)


def test_outbox_rows_hold_no_time_of_day(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", OutboxConfig(retention_s=14 * DAY_S))
    box.put("s-mfrggzdfmztwq2lk", seal.seal(b"report", PUB, "v-one", 1), now=STOPPED)
    item, = box.fetch("s-mfrggzdfmztwq2lk", now=STOPPED)
    box.close()
    rows = sqlite3.connect(tmp_path / "outbox.db").execute("SELECT created, expires FROM items").fetchall()
    (created, expires), = rows
    assert created % DAY_S == 0 and expires % DAY_S == 0, (created, expires)
    assert STOPPED + 14 * DAY_S <= expires < STOPPED + 15 * DAY_S  # never sooner than the retention promises
    assert item.envelope.created_unix_s % DAY_S == 0 and item.expires_unix_s == expires
    disk = (tmp_path / "outbox.db").read_bytes()
    for t in (STOPPED, int(STOPPED), STOPPED + 14 * DAY_S):
        assert str(int(t)).encode() not in disk


def test_a_report_lives_the_full_retention_then_goes_within_a_day(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", OutboxConfig(retention_s=14 * DAY_S))
    box.put("s-mfrggzdfmztwq2lk", seal.seal(b"report", PUB, "v-one", 1), now=STOPPED)
    assert len(box.fetch("s-mfrggzdfmztwq2lk", now=STOPPED + 14 * DAY_S - 1)) == 1
    assert box.purge_expired(now=STOPPED + 15 * DAY_S) == 1
    box.close()
