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

Self-healing: a damaged ``outbox.db`` (not a database, fails ``quick_check``)
or a 0-byte one is never left to keep the room down. It is renamed, with its
``-wal``/``-shm``, to ``outbox.db.corrupt-<n>`` (0600; the device never opens it
again), a fresh outbox (new ``outbox_id``) is started, and the move is reported
in :attr:`Outbox.quarantined` for the logs, the metrics and ``doctor``.

Format version: ``PRAGMA user_version`` is the outbox format, :data:`OUTBOX_FORMAT` (1). It is set when an
outbox is created; an existing outbox without one (0, from before versions were written) is today's format
and is stamped 1. Formats only go forward: an outbox written by a newer release (a higher number) is
refused at open with :class:`OutboxFormatError` (exit 78, which the unit does not restart on), and nothing
is written to it, not even the -wal/-shm files, so rolling forward again finds it intact
(docs/operations.md, "Updating and rolling back").

Space for acknowledgements: every write first checks that the filesystem
(plus the database's own free pages) keeps :data:`ACK_RESERVE_BYTES` free
after it, and the WAL is checkpointed after each commit so it is reused from
its start instead of growing. An ack (a delete) needs no reserve: on a full
disk, acknowledgements still go through and free space, and new reports wait.
"""

from __future__ import annotations

import errno
import math
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from edge_agent.crypto.seal import Envelope
from edge_agent.errors import EXIT_NOT_RESTARTABLE, EdgeAgentError

DAY_S = 86400.0
SQLITE_FULL = 13
# Kept free for acknowledgements (WAL frames of deletes, secure_delete overwrites): a
# report that would eat into it is refused as "disk full" and held in memory instead.
ACK_RESERVE_BYTES = 64 * 1024
QUARANTINE_PREFIX = "corrupt-"
OUTBOX_FORMAT = 1  # PRAGMA user_version this release writes and reads (forward-only; see the module docstring)
_SQLITE_MAGIC = b"SQLite format 3\x00"


class OutboxError(EdgeAgentError):
    """The outbox cannot be opened or written."""


class OutboxFullError(OutboxError):
    """The configured item or byte limit is reached."""


class OutboxDiskFullError(OutboxError):
    """The disk holding the outbox is full."""


class OutboxFormatError(OutboxError):
    """The outbox was written by a newer release: this one cannot read it, and a retry will not help."""

    exit_code = EXIT_NOT_RESTARTABLE


def format_problem(path: Path, found: int) -> tuple[str, str]:
    """(what is wrong, what to do) when the outbox at ``path`` has a newer format than this release reads."""
    return (f"the outbox at {path} was written by a newer edge-agent (format {found}); this release reads format {OUTBOX_FORMAT}",
            "roll forward to that release, or move the outbox aside after delivering its reports "
            "(docs/operations.md, \"Updating and rolling back\")")


def format_refusal(path: Path, found: int) -> str:
    """The one line the daemon exits with (doctor shows the same two halves as its message and fix)."""
    what, fix = format_problem(path, found)
    return f"{what}: {fix}"


def outbox_format(path: Path) -> int | None:
    """The format (``PRAGMA user_version``) of the outbox at ``path``, read without writing anything.

    None when there is no database to read (missing, 0 bytes, not an SQLite file, unreadable): opening decides
    what to do with those. Without a ``-wal`` next to it the file's own header is the whole truth and is read
    as bytes, so not even SQLite's -wal/-shm files are created; with one (a daemon running, or a crash) a
    read-only SQLite connection reads the version the WAL holds (it never checkpoints into the file).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        return None
    if not Path(str(path) + "-wal").exists():
        return int.from_bytes(header[60:64], "big", signed=True)
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        con.close()


def check_format(path: Path) -> int | None:
    """:func:`outbox_format`, refusing (:class:`OutboxFormatError`, nothing written) a format newer than this release's."""
    found = outbox_format(path)
    if found is not None and found > OUTBOX_FORMAT:
        raise OutboxFormatError(format_refusal(Path(path), found))
    return found


@dataclass(frozen=True)
class OutboxConfig:
    retention_s: float = 14 * DAY_S
    max_items: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_item_bytes: int = 1024 * 1024

    @property
    def lifetime_s(self) -> float:
        """How long after its stored ``created`` an item is kept. With a retention of a day or more ``created`` is
        the start of the UTC day (Outbox._times: no time of day on disk), so a day is added: an item lives at least
        the full retention from the real stop and at most a day more."""
        return self.retention_s + (DAY_S if self.retention_s >= DAY_S else 0.0)


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
    expires REAL NOT NULL,  -- as of queueing; expiry is decided from created + the current retention (Outbox._oldest)
    UNIQUE (recipient, visit_id, seq)
);
CREATE INDEX IF NOT EXISTS items_by_recipient ON items (recipient, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_NO_SPACE_BYTES = 1 << 20  # below this a filesystem is full for an I/O error's purposes (a WAL index alone is 32 KiB)


def _is_full(exc: sqlite3.Error, directory: Path | None = None) -> bool:
    """SQLITE_FULL, or an I/O error on a filesystem with no space left: SQLite cannot grow the WAL index
    (outbox.db-shm) on a full disk and says SQLITE_IOERR_SHMSIZE, which read as 'check the disk' (a failing disk)."""
    if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc).lower():
        return True
    if directory is None or not str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_IOERR"):
        return False
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _NO_SPACE_BYTES



def fsync_dir(directory: Path) -> None:
    """Make a file created (or renamed) in ``directory`` survive a power cut; best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Damaged(Exception):
    """The file at the outbox path is not a usable outbox (carries a short reason, no content)."""


def quarantined_files(path: Path) -> list[Path]:
    """Damaged outboxes moved aside next to ``path`` (``outbox.db.corrupt-<n>``, not their -wal/-shm)."""
    path = Path(path)
    prefix = path.name + "." + QUARANTINE_PREFIX
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]
    except OSError:
        return []
    return sorted(names, key=lambda p: int(p.name[len(prefix):]))


MAX_RECOVERY_MISSES = 100_000  # ids stepped over while recovering a damaged outbox (bounds the time: ~seconds)


def _intact(row: tuple, now: float, config: OutboxConfig) -> bool:
    """A recovered row has the outbox's column types and sizes and has not expired (else it is left behind)."""
    _, recipient, visit_id, seq, suite, key_id, sealed, created, expires = row
    return (isinstance(recipient, str) and isinstance(visit_id, str) and isinstance(seq, int) and isinstance(suite, str)
            and isinstance(key_id, bytes) and isinstance(sealed, bytes) and 0 < len(sealed) <= config.max_item_bytes
            and isinstance(created, float | int) and isinstance(expires, float | int) and created + config.lifetime_s > now)


def _quarantine(path: Path) -> Path:
    """Rename ``path`` (and its -wal/-shm) to the next free ``<name>.corrupt-<n>``, 0600."""
    existing = quarantined_files(path)
    n = int(existing[-1].name.rsplit("-", 1)[1]) + 1 if existing else 1
    target = path.with_name(f"{path.name}.{QUARANTINE_PREFIX}{n}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if not src.exists():
            continue
        dst = Path(str(target) + suffix)
        os.chmod(src, 0o600)
        os.replace(src, dst)
    fsync_dir(path.parent)
    return target


@dataclass(frozen=True)
class Quarantined:
    """A damaged outbox file moved aside at open (no content, no identifiers: a reason and a file name)."""

    reason: str  # "empty file" | "not a database" | "integrity check failed" | ...
    moved_to: Path
    recovered: int = 0  # intact, unexpired items copied from it into the fresh outbox (still delivered)


class Outbox:
    """Thread-safe: one connection guarded by a lock (the server calls it from worker threads).

    ``heal=True`` (the device): a damaged or 0-byte file is quarantined and a fresh outbox
    started (see :attr:`quarantined`). ``heal=False`` raises :class:`OutboxError` instead.
    """

    def __init__(self, path: Path, config: OutboxConfig | None = None, heal: bool = True,
                 reserve_bytes: int = ACK_RESERVE_BYTES) -> None:
        self.path = Path(path)
        self.config = config or OutboxConfig()
        self.reserve_bytes = reserve_bytes
        self.quarantined: Quarantined | None = None
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except _Damaged as damaged:
                if not heal:
                    raise OutboxError(f"outbox {self.path} is damaged ({damaged}); move it aside and restart") from None
                moved = _quarantine(self.path)
                try:
                    self._db = self._open()
                except _Damaged as again:
                    raise OutboxError(f"a fresh outbox at {self.path} could not be created ({again}); check the disk") from None
                self.quarantined = Quarantined(str(damaged), moved, self._recover(moved))
        except OSError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc.strerror}; check the path and free space") from None
        except sqlite3.DatabaseError as exc:
            if _is_full(exc, self.path.parent):
                raise OutboxDiskFullError(f"disk full opening outbox {self.path}; free space on {self.path.parent}") from None
            raise OutboxError(f"outbox {self.path} cannot be opened ({exc}); check the disk") from None

    def _open(self) -> sqlite3.Connection:
        """Open (or create) the database; raise :class:`_Damaged` if the file is not a sound outbox."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = None
        if size == 0:
            # SQLite would silently turn a 0-byte file into a new database: say so instead
            # (the old file may have been truncated: its reports are gone, the phones keep their cursors).
            raise _Damaged("empty file")
        if size is not None:
            check_format(self.path)  # a newer release's outbox: refused before anything here writes to it
        # Only the daemon's user may read even the ciphertext (metadata is still metadata).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=ON")  # acked rows are overwritten, not left in free pages
            if size is not None:
                result = db.execute("PRAGMA quick_check").fetchone()
                if not result or result[0] != "ok":
                    raise _Damaged("integrity check failed")
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and not {"items", "meta"} <= tables:
                    raise _Damaged("not an outbox database")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > OUTBOX_FORMAT:  # written since the check above (another process): still refused, unchanged
                raise OutboxFormatError(format_refusal(self.path, version))
            db.executescript(_SCHEMA)
            if version < OUTBOX_FORMAT:  # new, or today's format from before versions were written: stamp it
                db.execute(f"PRAGMA user_version = {OUTBOX_FORMAT}")
            # A random id per database: if the outbox is ever recreated, ids restart, and
            # phones must not resume from a cursor of the old one (they key cursors by it).
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox_id', ?)", (secrets.token_hex(8),))
            self.outbox_id = str(db.execute("SELECT value FROM meta WHERE key='outbox_id'").fetchone()[0])
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return db
        except (_Damaged, OutboxFormatError):
            db.close()
            raise
        except sqlite3.DatabaseError as exc:
            db.close()
            if _is_full(exc, self.path.parent):
                raise
            code = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
            if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in str(exc) or "malformed" in str(exc):
                raise _Damaged("not a database" if "NOTADB" in code or "not a database" in str(exc) else "malformed database") from None
            raise

    def _recover(self, damaged: Path) -> int:
        """Copy every intact, unexpired item of a quarantined outbox into this fresh one; how many.

        A damaged page loses the items on it, not the whole queue: a scan stops at the first bad page, so the
        scan is resumed past it one id at a time. Items keep their order, routing and expiry (new ids: phones
        key their cursors by the new outbox id). The quarantined file itself is only ever read.
        """
        cols = "id, recipient, visit_id, seq, suite, key_id, sealed, created, expires"
        rows: dict[int, tuple] = {}
        try:
            src = sqlite3.connect(f"file:{damaged}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error:
            return 0
        try:
            try:
                top = src.execute("SELECT seq FROM sqlite_sequence WHERE name='items'").fetchone()
                top = int(top[0]) if top else 0
            except (sqlite3.Error, TypeError, ValueError):
                top = 0
            after, misses = 0, 0
            while misses < MAX_RECOVERY_MISSES:
                try:
                    for row in src.execute(f"SELECT {cols} FROM items WHERE id > ? ORDER BY id", (after,)):
                        rows[int(row[0])] = row
                        after = int(row[0])
                    break
                except sqlite3.Error:
                    after += 1  # the item after the last good one is on a damaged page: step over its id
                    misses += 1
                    if top and after > top:
                        break
        except sqlite3.Error:
            pass
        finally:
            src.close()
        now = time.time()
        good = [r for _, r in sorted(rows.items()) if _intact(r, now, self.config)]
        if not good:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                n = 0
                for r in good:
                    n += self._db.execute(
                        "INSERT OR IGNORE INTO items (recipient, visit_id, seq, suite, key_id, sealed, created, expires) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", r[1:]).rowcount
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError:
                self._rollback()
                return 0
        self._checkpoint()
        return n

    # ---- writes ------------------------------------------------------------------------

    def put(self, recipient: str, env: Envelope, now: float | None = None, reserve: int | None = None) -> int:
        """Queue one envelope durably; returns its id (the cursor after it).

        Refused with :class:`OutboxDiskFullError` if, after it, less than ``reserve`` bytes
        (default :attr:`reserve_bytes`; 0 at exit, when no ack can come any more) would be free.
        """
        now = time.time() if now is None else now
        reserve = self.reserve_bytes if reserve is None else reserve
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
                        "SELECT COUNT(*), COALESCE(SUM(LENGTH(sealed)), 0) FROM items WHERE created > ?", (self._oldest(now),)
                    ).fetchone()
                    if count + 1 > self.config.max_items or total + size > self.config.max_bytes:
                        raise OutboxFullError(
                            f"outbox full ({count} items, {total} bytes); phones must collect their feedback, "
                            "or raise the outbox limits in the config"
                        )
                    if reserve and self._free_bytes() < 2 * size + 4 * self._page_size + reserve:
                        raise OutboxDiskFullError(
                            f"disk almost full under outbox {self.path}; the last {reserve // 1024} KiB are kept for "
                            f"acknowledgements; free space on {self.path.parent} (queued reports are intact)"
                        )
                    created, expires = self._times(now)
                    cur = self._db.execute(
                        "INSERT INTO items (recipient, visit_id, seq, suite, key_id, sealed, created, expires) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (recipient, env.visit_id, env.seq, env.suite, env.recipient_key_id, bytes(env.sealed), created,
                         expires),
                    )
                    self._db.execute("COMMIT")
                    self._checkpoint()
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

    def _times(self, now: float) -> tuple[float, float]:
        """(created, expires) as stored. Each row names its clinician (the routing id), so exact times would be
        when each clinician saw patients, on disk: with a retention of a day or more both are whole UTC days
        (expiry rounded up: never sooner than the retention). Shorter retentions (test rigs) keep exact times."""
        retention = self.config.retention_s
        if retention < DAY_S:
            return now, now + retention
        return math.floor(now / DAY_S) * DAY_S, math.ceil((now + retention) / DAY_S) * DAY_S

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
                        self._forget_wal()  # also empties the WAL, as a checkpoint would
                    else:
                        self._checkpoint()
                    return deleted
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None

    def purge_expired(self, now: float | None = None) -> int:
        return sum(self.purge_expired_by_recipient(now).values())

    def purge_expired_by_recipient(self, now: float | None = None) -> dict[str, int]:
        """Delete items past retention; how many per recipient (the caller counts and reports the loss)."""
        oldest = self._oldest(time.time() if now is None else now)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    counts = {str(r): int(n) for r, n in self._db.execute(
                        "SELECT recipient, COUNT(*) FROM items WHERE created <= ? GROUP BY recipient", (oldest,))}
                    if counts:
                        self._db.execute("DELETE FROM items WHERE created <= ?", (oldest,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None
            if counts:
                self._forget_wal()
            return counts

    # ---- reads -------------------------------------------------------------------------

    def fetch(self, recipient: str, after: int = 0, limit: int = 64, now: float | None = None) -> list[OutboxItem]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, recipient, suite, visit_id, seq, key_id, sealed, created, expires FROM items "
                "WHERE recipient=? AND id>? AND created>? ORDER BY id LIMIT ?",
                (recipient, after, self._oldest(now), limit),
            ).fetchall()
        return [
            OutboxItem(r[0], r[1], Envelope(r[2], r[3], r[4], bytes(r[5]), bytes(r[6]), int(r[7])), r[7] + self.config.lifetime_s)
            for r in rows
        ]

    def stats(self, now: float | None = None) -> tuple[int, int]:
        """(items, ciphertext bytes) not yet expired."""
        now = time.time() if now is None else now
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(sealed)), 0) FROM items WHERE created > ?", (self._oldest(now),)
            ).fetchone()
        return int(count), int(total)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- internals -----------------------------------------------------------------------

    def _oldest(self, now: float) -> float:
        """Items created at or before this have expired. The limit is the *current* ``config.retention_s``
        counted from each item's creation (not the ``expires`` column written at queueing time):
        outbox.retention_days is a live key, and a reload or restart must apply it to the queue too."""
        return now - self.config.lifetime_s

    @property
    def _page_size(self) -> int:
        return int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def _free_bytes(self) -> int:
        """Free space a write can use: the filesystem's plus the database's own free pages."""
        try:
            st = os.statvfs(self.path.parent)
            fs_free = st.f_bavail * st.f_frsize
        except OSError:
            return 1 << 62  # cannot tell: let SQLite find out
        freelist = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return fs_free + freelist * self._page_size

    def _checkpoint(self) -> None:
        """Copy the WAL into the database so the next write reuses the WAL from its start.

        Without it a small, busy outbox's WAL only grows (auto-checkpoint waits for 1000
        pages) and on a full disk even a delete has nowhere to write. Failure is harmless:
        the WAL stays valid and is checkpointed later.
        """
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.DatabaseError:
            pass

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
        if _is_full(exc, self.path.parent):
            return OutboxDiskFullError(
                f"disk full writing outbox {self.path}; free space on {self.path.parent} (queued reports are intact)"
            )
        return OutboxError(f"outbox write failed ({exc}); check {self.path}")
