"""Sealed reports that could not be kept: the one LOST line, the ``reports-lost`` note, and reading it back.

A report is lost only when the outbox refuses it (disk full, outbox full, a write
error) and the daemon can hold it no longer: at exit after ``outbox.shutdown_grace_s``
of retries, or while running when the memory hold is full. The journal gets one
line, and a small note is appended next to the outbox so ``edge-agent doctor``
fails until IT acknowledges it by deleting the note: the journal rotates, metrics
reset at a restart, and the daemon that knew about the loss has exited.

Neither the line nor the note holds a clinician id, a visit id or any report text:
a count, a reason from a closed vocabulary, and the UTC day. Only the day: the note
lies in the state directory, which keeps no time of day (a stop often follows a visit,
and times on disk would add up to the room's schedule; see the outbox's ``created``).
The journal's LOST line has the minute for IT.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.device.ops.logs import Safe
from edge_agent.device.outbox import OutboxDiskFullError, OutboxFullError, fsync_dir

log = logging.getLogger(__name__)

NOTE_NAME = "reports-lost"
EX_IOERR = 74  # sysexits.h: the daemon exits with this when it lost reports at stop (systemd shows the unit failed)

# Closed vocabulary of reasons (the note and the LOST line); the fix for each.
DISK_FULL, OUTBOX_FULL, WRITE_ERROR = "disk full", "outbox full", "write error"


def reason_of(exc: BaseException | None) -> str:
    """The reason word for the error that refused the last write."""
    if isinstance(exc, OutboxDiskFullError) or exc is None:
        return DISK_FULL
    if isinstance(exc, OutboxFullError):
        return OUTBOX_FULL
    return WRITE_ERROR


def mount_point(path: Path) -> Path:
    """The mount holding ``path``: what IT frees space on (``df -h`` names it too)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _fix(reason: str, directory: Path) -> str:
    if reason == OUTBOX_FULL:
        return "the outbox reached outbox.max_mb or its item limit: phones must collect, or raise outbox.max_mb"
    if reason == WRITE_ERROR:
        return f"check the disk under {mount_point(directory)} (journal: I/O errors)"
    return f"free space on {mount_point(directory)}"


def append_note(directory: Path, count: int, reason: str, at: str, now: float | None = None) -> str | None:
    """Append one JSON line to ``<directory>/reports-lost``; None when written, else why not (OS error text).

    The file may be left empty when the disk has room for its inode but not its data: doctor still
    fails on an empty note (count unknown), which is better than no note.
    """
    day = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc).strftime("%Y-%m-%d")
    line = json.dumps({"time": day, "count": count, "reason": reason, "at": at}) + "\n"
    path = Path(directory) / NOTE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            data = memoryview(line.encode())
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)  # a new note must survive a power cut as the LOST line would not
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def report_lost(directory: Path, count: int, exc: BaseException | None, at: str) -> None:
    """Exactly one LOST line for ``count`` reports the daemon could not keep, and the note for doctor.

    ``at``: "exit" (the shutdown grace ran out) or "running" (the memory hold for refused reports was full).
    """
    reason = reason_of(exc)
    failed = append_note(directory, count, reason, at)
    why = reason if at == "exit" else f"{reason}, and the memory for waiting reports is full"
    if failed is None:
        noted = Safe(f"noted in {NOTE_NAME} there; edge-agent doctor fails until IT deletes it")
    else:
        noted = Safe(f"the note {NOTE_NAME} could not be written there either ({failed}): record this loss by hand")
    log.error("LOST: %d sealed report(s) could not be written to %s: %s; %s — the visit feedback is gone; %s",
              count, Path(directory), Safe(why), Safe(_fix(reason, directory)), noted)


@dataclass(frozen=True)
class LostNote:
    """What ``reports-lost`` says: how many reports, why, the last time; ``count`` None when unreadable."""

    path: Path
    count: int | None
    reasons: tuple[str, ...]
    last: str  # UTC day (YYYY-MM-DD) of the latest entry, "" if none could be read

    def describe(self) -> str:
        how_many = "sealed reports (count unreadable)" if self.count is None else f"{self.count} sealed report(s)"
        why = ", ".join(self.reasons) or "reason unreadable"
        when = f", last on {self.last} UTC" if self.last else ""
        return f"{how_many} could not be written and are gone ({why}{when}): the clinicians never get that visit feedback"


def read_note(directory: Path) -> LostNote | None:
    """The note next to the outbox, or None when there is none."""
    path = Path(directory) / NOTE_NAME
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return LostNote(path, None, (), "")
    total: int | None = 0
    reasons: list[str] = []
    last = ""
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
            count, reason, stamp = int(entry["count"]), str(entry["reason"]), str(entry["time"])
        except (ValueError, KeyError, TypeError):
            total = None  # a torn or edited line: the total is no longer known
            continue
        if total is not None:
            total += count
        if reason in (DISK_FULL, OUTBOX_FULL, WRITE_ERROR) and reason not in reasons:
            reasons.append(reason)
        last = max(last, stamp)
    if not text.strip():
        total = None  # created, but the disk had no room for the line
    return LostNote(path, total, tuple(reasons), last[:10])
