"""Durable, ciphertext-only outbox of sealed feedback envelopes.

SQLite in WAL mode with ``synchronous=FULL``: a committed ``put`` survives a
crash or power cut (the WAL is fsynced at every commit), and a failed commit
(disk full, page limit) rolls back whole, so nothing already queued is lost.
Measured against atomic files + fsync in docs/delivery.md.

What is stored: the recipient's pseudonym (to route and authorise), the visit
id, sequence number, recipient key id and the HPKE ciphertext. Never a
plaintext report; the device has no key that opens one.

Ordering: ``id`` is an AUTOINCREMENT key, so it only grows and is never reused
(even after deletes); it is the resume cursor. Items are fetched per recipient
in ``id`` order.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.crypto.seal import Envelope
from edge_agent.errors import EdgeAgentError

DAY_S = 86400.0
SQLITE_FULL = 13


class OutboxError(EdgeAgentError):
    """The outbox cannot be opened or written."""


class OutboxFullError(OutboxError):
    """The configured item or byte limit is reached."""


class OutboxDiskFullError(OutboxError):
    """The disk holding the outbox is full."""


@dataclass(frozen=True)
class OutboxConfig:
    retention_s: float = 14 * DAY_S
    max_items: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_item_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class OutboxItem:
    id: int
    recipient: str
    envelope: Envelope
    expires_unix_s: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    suite TEXT NOT NULL,
    key_id BLOB NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    UNIQUE (recipient, visit_id, seq)
);
CREATE INDEX IF NOT EXISTS items_by_recipient ON items (recipient, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc).lower()


class Outbox:
    """Thread-safe: one connection guarded by a lock (the server calls it from worker threads)."""

    def __init__(self, path: Path, config: OutboxConfig | None = None) -> None:
        self.path = Path(path)
        self.config = config or OutboxConfig()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Only the daemon's user may read even the ciphertext (metadata is still metadata).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")  # acked rows are overwritten, not left in free pages
            self._db.executescript(_SCHEMA)
            # A random id per database: if the outbox is ever recreated, ids restart, and
            # phones must not resume from a cursor of the old one (they key cursors by it).
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox_id', ?)", (secrets.token_hex(8),))
            self.outbox_id = str(self._db.execute("SELECT value FROM meta WHERE key='outbox_id'").fetchone()[0])
        except OSError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc.strerror}; check the path and free space") from None
        except sqlite3.DatabaseError as exc:
            if _is_full(exc):
                raise OutboxDiskFullError(f"disk full opening outbox {self.path}; free space on {self.path.parent}") from None
            raise OutboxError(f"outbox {self.path} is damaged ({exc}); move it aside and restart") from None

    # ---- writes ------------------------------------------------------------------------

    def put(self, recipient: str, env: Envelope, now: float | None = None) -> int:
        """Queue one envelope durably; returns its id (the cursor after it)."""
        now = time.time() if now is None else now
        size = len(env.sealed)
        if size > self.config.max_item_bytes:
            raise OutboxFullError(f"sealed report of {size} bytes exceeds the {self.config.max_item_bytes}-byte item limit")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    existing = self._db.execute(
                        "SELECT id FROM items WHERE recipient=? AND visit_id=? AND seq=?", (recipient, env.visit_id, env.seq)
                    ).fetchone()
                    if existing:  # idempotent: a retried stop does not queue twice
                        self._db.execute("COMMIT")
                        return int(existing[0])
                    count, total = self._db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(LENGTH(sealed)), 0) FROM items WHERE expires > ?", (now,)
                    ).fetchone()
                    if count + 1 > self.config.max_items or total + size > self.config.max_bytes:
                        raise OutboxFullError(
                            f"outbox full ({count} items, {total} bytes); phones must collect their feedback, "
                            "or raise the outbox limits in the config"
                        )
                    cur = self._db.execute(
                        "INSERT INTO items (recipient, visit_id, seq, suite, key_id, sealed, created, expires) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (recipient, env.visit_id, env.seq, env.suite, env.recipient_key_id, env.sealed, now,
                         now + self.config.retention_s),
                    )
                    self._db.execute("COMMIT")
                    return int(cur.lastrowid or 0)
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise OutboxDiskFullError(f"disk full writing outbox {self.path}; free space, nothing queued was lost") from None
                raise OutboxError(f"cannot write outbox {self.path}: {exc.strerror}") from None

    def ack(self, recipient: str, ids: list[int]) -> int:
        """Delete delivered items; only the recipient's own ids are touched."""
        if not ids:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    deleted = 0
                    for item_id in ids:
                        deleted += self._db.execute("DELETE FROM items WHERE id=? AND recipient=?", (item_id, recipient)).rowcount
                    self._db.execute("COMMIT")
                    if deleted:
                        self._forget_wal()
                    return deleted
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None

    def purge_expired(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            try:
                purged = self._db.execute("DELETE FROM items WHERE expires <= ?", (now,)).rowcount
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None
            if purged:
                self._forget_wal()
            return purged

    # ---- reads -------------------------------------------------------------------------

    def fetch(self, recipient: str, after: int = 0, limit: int = 64, now: float | None = None) -> list[OutboxItem]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, recipient, suite, visit_id, seq, key_id, sealed, created, expires FROM items "
                "WHERE recipient=? AND id>? AND expires>? ORDER BY id LIMIT ?",
                (recipient, after, now, limit),
            ).fetchall()
        return [
            OutboxItem(r[0], r[1], Envelope(r[2], r[3], r[4], bytes(r[5]), bytes(r[6]), int(r[7])), r[8]) for r in rows
        ]

    def stats(self, now: float | None = None) -> tuple[int, int]:
        """(items, ciphertext bytes) not yet expired."""
        now = time.time() if now is None else now
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(sealed)), 0) FROM items WHERE expires > ?", (now,)
            ).fetchone()
        return int(count), int(total)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- internals -----------------------------------------------------------------------

    def _forget_wal(self) -> None:
        """Copy the WAL into the (secure-deleted) database and empty it: the WAL still held the acked
        rows' routing metadata (pseudonym, visit id) in earlier frames, which a checkpoint alone leaves on disk."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a reader holds the WAL: the next ack or purge truncates it

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite may already have rolled back (e.g. after SQLITE_FULL)

    def _write_error(self, exc: sqlite3.DatabaseError) -> OutboxError:
        if _is_full(exc):
            return OutboxDiskFullError(
                f"disk full writing outbox {self.path}; free space on {self.path.parent} (queued reports are intact)"
            )
        return OutboxError(f"outbox write failed ({exc}); check {self.path}")
