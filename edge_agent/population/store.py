"""Aggregator storage: one SQLite file (WAL, FULL sync, secure_delete, 0600).

Tables:

* ``contributions``: opened records (canonical JSON) keyed by their random
  record id (idempotent re-delivery). No arrival time, no sender, no IP.
* ``ledger``: privacy loss spent per (period, partition); partition is a
  service line (parallel composition, frozen periods) or ``*`` (whole period).
* ``releases``: every answer given, released or suppressed, with its cell,
  epsilon, data version and result, so repeated queries return the same
  answer at no extra cost and suppressions are on record.
* ``closed``: periods frozen for release (no contribution accepted after).
* ``roster``: per period, the pseudonyms of the site's real clinicians (made
  by IT from the CA's stable subject ids and the period key; no mapping to
  anyone). Only rostered pseudonyms count towards k, n and a cell's values, so
  a device cannot meet k with invented clinicians.
* ``quota``: records accepted per (period, contributor tag); the tag is an
  HMAC of the contributor certificate's serial and the period under a salt kept
  in ``meta`` - a count per period, never attached to a record.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.population.errors import PopulationError, QuotaExceeded

WHOLE_PERIOD = "*"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contributions (
    rid TEXT PRIMARY KEY,
    period TEXT NOT NULL,
    service_line TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contributions_by_period ON contributions (period);
CREATE TABLE IF NOT EXISTS ledger (
    period TEXT NOT NULL,
    part TEXT NOT NULL,
    spent REAL NOT NULL,
    PRIMARY KEY (period, part)
);
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    period TEXT NOT NULL,
    service_line TEXT NOT NULL,
    metric TEXT NOT NULL,
    epsilon REAL NOT NULL,
    data_version TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    UNIQUE (period, service_line, metric, epsilon, data_version)
);
CREATE TABLE IF NOT EXISTS closed (period TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS roster (period TEXT NOT NULL, pseudonym TEXT NOT NULL, PRIMARY KEY (period, pseudonym));
CREATE TABLE IF NOT EXISTS quota (period TEXT NOT NULL, sender TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (period, sender));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise PopulationError(f"cannot open aggregator database {self.path} ({exc}); check the path and permissions") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: budget check, release and ledger update are one atomic step."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- contributions ---------------------------------------------------------------------

    def add(self, rid: str, period: str, service_line: str, pseudonym: str, body: str,
            sender: str | None = None, quota: int | None = None) -> bool:
        """Insert one record; False if this record id was already stored (re-delivery).

        With ``sender`` and ``quota`` a new record counts against that sender's
        quota for the period (raises :class:`QuotaExceeded` when it is used up).
        """
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM closed WHERE period=?", (period,)).fetchone():
                raise PopulationError(f"period {period} is closed; late contribution dropped")
            if db.execute("SELECT 1 FROM contributions WHERE rid=?", (rid,)).fetchone():
                return False
            if sender is not None and quota is not None:
                row = db.execute("SELECT count FROM quota WHERE period=? AND sender=?", (period, sender)).fetchone()
                if row is not None and int(row[0]) >= quota:
                    raise QuotaExceeded(f"this contributor certificate sent its quota of {quota} records for {period}; record dropped")
                db.execute("INSERT INTO quota (period, sender, count) VALUES (?, ?, 1) "
                           "ON CONFLICT (period, sender) DO UPDATE SET count = count + 1", (period, sender))
            db.execute(
                "INSERT INTO contributions (rid, period, service_line, pseudonym, body) VALUES (?, ?, ?, ?, ?)",
                (rid, period, service_line, pseudonym, body),
            )
            return True

    def secret(self, name: str) -> bytes:
        """A random 32-byte value kept in the database (made on first use)."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (name,)).fetchone()
            if row is None:
                value = os.urandom(32).hex()
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value))
                return bytes.fromhex(value)
            return bytes.fromhex(row[0])

    # ---- roster -----------------------------------------------------------------------------

    def add_roster(self, period: str, pseudonyms: list[str]) -> int:
        with self.transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO roster (period, pseudonym) VALUES (?, ?)", [(period, p) for p in pseudonyms])
            return db.total_changes - before

    def roster(self, db: sqlite3.Connection, period: str) -> frozenset[str]:
        return frozenset(r[0] for r in db.execute("SELECT pseudonym FROM roster WHERE period=?", (period,)))

    def rows(self, db: sqlite3.Connection, period: str) -> list[tuple[str, str, str, dict[str, object]]]:
        out = db.execute("SELECT rid, service_line, pseudonym, body FROM contributions WHERE period=? ORDER BY rid", (period,))
        return [(rid, sl, p, json.loads(body)) for rid, sl, p, body in out.fetchall()]

    def purge_period(self, period: str) -> int:
        """Delete a released period's raw records (releases and ledger stay)."""
        with self.transaction() as db:
            return db.execute("DELETE FROM contributions WHERE period=?", (period,)).rowcount

    # ---- closing -------------------------------------------------------------------------

    def is_closed(self, db: sqlite3.Connection, period: str) -> bool:
        return db.execute("SELECT 1 FROM closed WHERE period=?", (period,)).fetchone() is not None

    def close_period(self, db: sqlite3.Connection, period: str) -> None:
        db.execute("INSERT OR IGNORE INTO closed (period) VALUES (?)", (period,))

    # ---- ledger --------------------------------------------------------------------------

    def spent(self, db: sqlite3.Connection, period: str) -> dict[str, float]:
        return {part: float(s) for part, s in db.execute("SELECT part, spent FROM ledger WHERE period=?", (period,))}

    def charge(self, db: sqlite3.Connection, period: str, part: str, epsilon: float) -> None:
        db.execute(
            "INSERT INTO ledger (period, part, spent) VALUES (?, ?, ?) "
            "ON CONFLICT (period, part) DO UPDATE SET spent = spent + excluded.spent",
            (period, part, epsilon),
        )

    # ---- releases ------------------------------------------------------------------------

    def cached(self, db: sqlite3.Connection, period: str, service_line: str, metric: str, epsilon: float, version: str) -> dict[str, object] | None:
        row = db.execute(
            "SELECT result FROM releases WHERE period=? AND service_line=? AND metric=? AND epsilon=? AND data_version=?",
            (period, service_line, metric, epsilon, version),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def record_release(self, db: sqlite3.Connection, period: str, service_line: str, metric: str, epsilon: float,
                       version: str, status: str, result: dict[str, object]) -> None:
        db.execute(
            "INSERT OR REPLACE INTO releases (period, service_line, metric, epsilon, data_version, status, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (period, service_line, metric, epsilon, version, status, json.dumps(result, sort_keys=True)),
        )

    def released(self) -> list[dict[str, object]]:
        """Every answer ever given (for trend plots: post-processing, no new privacy loss)."""
        with self._lock:
            rows = self._db.execute("SELECT result FROM releases ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def service_lines(self, period: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT service_line FROM contributions WHERE period=? ORDER BY 1", (period,))
            return [r[0] for r in rows.fetchall()]
