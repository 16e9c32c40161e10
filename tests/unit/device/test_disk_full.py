"""A full disk loses nothing: a stream of visits on a small real tmpfs, phones collecting as they go.

The outbox lives on a 1 MiB tmpfs mounted in a private mount namespace (``unshare -m``
as root, as in CI; ``unshare -rm`` otherwise), filled with a ballast file so it runs out
part-way through the stream. Every visit whose StopVisit answered OK or "held in
memory" (RESOURCE_EXHAUSTED) must reach the phone exactly once after the ballast is
removed; acks keep working while the disk is full; the device says so in its log and
metrics the first time and when it clears; and reports still held at exit are
counted and logged, never dropped silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT

# what both child scripts start with: the checkout on the path, the device's parts, the log lines kept
PRELUDE = r'''
import errno, json, logging, os, sys, time
from pathlib import Path
sys.path.insert(0, ROOT)
from tests.delivery_fixtures import Pki, RecordingRunner, server_config
from tests.doubles.scripted_runner import SpectralVoiceEnroller
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.metrics import Registry
from edge_agent.phone import client as phone

class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage(), record.created))

lines = Lines()
logging.getLogger("edge_agent").addHandler(lines)
logging.getLogger("edge_agent").setLevel(logging.INFO)
'''

SCRIPT = PRELUDE + r'''
import asyncio
from edge_agent.phone.keys import ClientError

work, mnt = Path(WORK), Path(MNT)
pki = Pki.make(work / "pki")
registry = Registry()

def fill(path):
    """Write zeros until the filesystem refuses (a real ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    block = bytes(4096)
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return path.stat().st_size

def free():
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize

class BigReports(RecordingRunner):
    """The scripted visit, with an 8 KiB summary: reports the size of a long real visit's."""
    def stop(self, quotes=False):
        fb = super().stop()
        fb.summary = "steady pace, open questions, " * 280
        return fb

# grace 0: one last try at exit, as before the grace existed (the grace has its own tests below)
server = EdgeAgentServer(server_config(pki, mnt / "state", shutdown_grace_s=0), BigReports(), SpectralVoiceEnroller(),
                         metrics=registry)
bg = BackgroundServer(server)
bg.start()
target = phone.Target("127.0.0.1", bg.port, server.fingerprint)
keys = pki.keys_a
out = {"confirmed": [], "ok": 0, "held": 0, "refused": [], "delivered": [], "ack_errors": 0}

# leave ~160 KiB: a few reports fit, then the 64 KiB ack reserve is reached
ballast = mnt / "ballast"
fill(ballast)
os.truncate(ballast, max(0, ballast.stat().st_size - 120 * 1024))
out["free_at_start"] = free()

def collect():
    try:
        got = phone.feedback(keys, target)
    except ClientError as exc:
        out["ack_errors"] += 1
        return
    out["delivered"] += [r.visit_id for r in got]

for n in range(VISITS):
    vid = phone.start(keys, target, room_code=pki.room_code())
    try:
        phone.stop(keys, target, visit_id=vid)
        out["ok"] += 1
        out["confirmed"].append(vid)
    except ClientError as exc:
        if exc.code == "RESOURCE_EXHAUSTED" and "held in memory" in str(exc):
            out["held"] += 1
            out["confirmed"].append(vid)
        else:
            out["refused"].append(str(exc))
    if n % 6 == 5:
        collect()  # the phone collects while the disk is full: its acks must go through
out["held_peak"] = server.visits.unqueued
out["metric_held_peak"] = registry.get("edge_agent_reports_held")
out["free_when_full"] = free()

# space returns
ballast.unlink()
deadline = time.monotonic() + 120
while time.monotonic() < deadline and (server.visits.unqueued or len(set(out["delivered"])) < len(out["confirmed"])):
    collect()
    time.sleep(0.5)
out["held_after"] = server.visits.unqueued
out["metric_held_after"] = registry.get("edge_agent_reports_held")

# a full disk again (ballast + the outbox's own free pages used up), reports held, then the
# daemon exits: a last write without the ack reserve, and whatever still does not fit is counted and logged
fill(ballast)
for _ in range(40):
    if server.visits.unqueued >= 12:
        break
    vid = phone.start(keys, target, room_code=pki.room_code())
    try:
        phone.stop(keys, target, visit_id=vid)
    except ClientError:
        pass
out["held_at_exit"] = server.visits.unqueued
bg.stop()
out["dropped_exit"] = registry.get("edge_agent_reports_dropped_total", reason="exit")
out["dropped_held_full"] = registry.get("edge_agent_reports_dropped_total", reason="held_full")
out["lines"] = lines.lines
print(json.dumps(out))
'''


def _namespace_prefix() -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare not installed")
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    pytest.skip("mount namespaces are not permitted here (needs root or unprivileged user namespaces)")


def test_visit_stream_on_a_full_tmpfs_delivers_every_confirmed_visit(tmp_path: Path) -> None:
    prefix = _namespace_prefix()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    visits = 18
    script = textwrap.dedent(SCRIPT).replace("ROOT", repr(str(ROOT)), 1).replace("WORK", repr(str(tmp_path)), 1)
    script = script.replace("Path(MNT)", f"Path({str(mnt)!r})").replace("range(VISITS)", f"range({visits})")
    # --make-private: the tmpfs must not propagate back to the host's mount table
    cmd = f"mount --make-rprivate / && mount -t tmpfs -o size=1m,mode=0700 tmpfs {mnt} && exec {sys.executable} -c \"$0\""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([*prefix, "sh", "-c", cmd, script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    msgs = [m for _, m, _ in out["lines"]]

    assert not out["refused"], out["refused"]
    assert out["ok"] >= 1 and out["held"] >= 8, out  # the disk really ran out part-way
    assert out["held_peak"] >= 1 and out["metric_held_peak"] == out["held_peak"]
    # every confirmed visit, and nothing else, delivered exactly once
    assert sorted(out["delivered"]) == sorted(out["confirmed"]), (len(out["delivered"]), len(out["confirmed"]))
    assert len(out["confirmed"]) == visits
    assert out["held_after"] == 0 and out["metric_held_after"] == 0
    assert out["ack_errors"] == 0  # acks went through on the full disk
    assert out["dropped_held_full"] == 0
    # one warning when it starts, one line when it clears (not one per report)
    assert sum("outbox refused a sealed report" in m for m in msgs) == 2  # this episode and the one at exit
    assert any("all held reports are now in the outbox" in m for m in msgs)
    # at exit the reports that still do not fit are counted and logged, in one LOST line
    assert out["held_at_exit"] >= 12 and 1 <= out["dropped_exit"] <= out["held_at_exit"]
    n = int(out["dropped_exit"])
    lost = [m for m in msgs if m.startswith("LOST:")]
    assert len(lost) == 1 and lost[0].startswith(f"LOST: {n} sealed report(s) could not be written to "), msgs


def test_memory_bound_refuses_new_visits_and_counts_what_it_cannot_keep(tmp_path: Path) -> None:
    """Past the byte bound nothing is silently dropped: the report that cannot be kept is counted and
    logged and StopVisit says so; while the hold is full, new visits are refused (nothing captured)."""
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.ops.metrics import Registry
    from edge_agent.device.outbox import OutboxConfig
    from edge_agent.phone import client as phone
    from edge_agent.phone.keys import ClientError
    from edge_agent.proto.edge_agent.v1 import agent_pb2
    from tests.delivery_fixtures import Pki, RecordingRunner, server_config
    from tests.doubles.scripted_runner import SpectralVoiceEnroller

    pki = Pki.make(tmp_path / "pki")
    registry = Registry()

    class LongReports(RecordingRunner):
        def stop(self, quotes=False):  # type: ignore[no-untyped-def]
            fb = super().stop()
            fb.summary = "open questions, " * 4500  # ~70 KiB: more than the hold has room for
            return fb

    def serve(max_held: int, runner: RecordingRunner) -> tuple[BackgroundServer, phone.Target]:
        cfg = server_config(pki, tmp_path / f"data{max_held}", outbox=OutboxConfig(max_items=1), max_held_bytes=max_held,
                            shutdown_grace_s=0)  # what is held at the end is not this test's subject
        server = EdgeAgentServer(cfg, runner, SpectralVoiceEnroller(), metrics=registry)
        bg = BackgroundServer(server)
        bg.start()
        return bg, phone.Target("127.0.0.1", bg.port, server.fingerprint)

    # room for the 64 KiB "one more report" margin only: a 70 KiB report does not fit
    bg, target = serve(64 * 1024 + 16, LongReports())
    try:
        phone.stop(pki.keys_a, target, visit_id=phone.start(pki.keys_a, target, room_code=pki.room_code()))  # fills the 1-item outbox
        vid = phone.start(pki.keys_a, target, room_code=pki.room_code())
        with pytest.raises(ClientError, match="could not be kept") as exc:
            phone.stop(pki.keys_a, target, visit_id=vid)
        assert exc.value.code == "RESOURCE_EXHAUSTED"
        assert registry.get("edge_agent_reports_dropped_total", reason="held_full") == 1
        # the clinician's phone is told no report will come for it (and why), so it stops waiting
        ended = phone.device_info(pki.keys_a, target).ended_without_report
        assert [(e.visit_id, e.reason) for e in ended] == [(vid, agent_pb2.NO_REPORT_STORAGE_FULL)], ended
        assert not phone.device_info(pki.keys_b, target).ended_without_report  # never another clinician's
    finally:
        bg.stop()

    # a hold with room for one small report: once it holds one, new visits are refused before capture starts
    bg, target = serve(64 * 1024 + 200, RecordingRunner())
    try:
        phone.stop(pki.keys_a, target, visit_id=phone.start(pki.keys_a, target, room_code=pki.room_code()))
        with pytest.raises(ClientError, match="held in memory"):
            phone.stop(pki.keys_a, target, visit_id=phone.start(pki.keys_a, target, room_code=pki.room_code()))
        with pytest.raises(ClientError, match="storage is full") as exc:
            phone.start(pki.keys_a, target, room_code=pki.room_code())
        assert exc.value.code == "RESOURCE_EXHAUSTED"
        assert not phone.device_info(pki.keys_a, target).visit_active
    finally:
        bg.stop()


# ---- at stop: the grace, then LOST -------------------------------------------------------------------------------------

SHUTDOWN_SCRIPT = PRELUDE + r'''
import sqlite3, threading
from edge_agent.phone.keys import load_key_file
from edge_agent.site.doctor import check_outbox
work, mnt = Path(WORK), Path(MNT)
pki = Pki.make(work / "pki")
registry = Registry()

class BigReports(RecordingRunner):
    """A 64 KiB report: far more than the space left, while the note (one line) fits."""
    def stop(self, quotes=False):
        fb = super().stop()
        fb.summary = "steady pace, open questions, " * 2300
        return fb

state = mnt / "state"
server = EdgeAgentServer(server_config(pki, state, shutdown_grace_s=GRACE), BigReports(), SpectralVoiceEnroller(), metrics=registry)
bg = BackgroundServer(server)
bg.start()
target = phone.Target("127.0.0.1", bg.port, server.fingerprint)
visit_id = phone.start(pki.keys_a, target, room_code=pki.room_code())  # the visit runs when the daemon is told to stop

def fill(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)

ballast = mnt / "ballast"
fill(ballast)
if REFILL:
    # another writer (a runaway log) takes back at once what closing the outbox frees (its WAL): not even the note fits
    from edge_agent.device.outbox import Outbox
    real_close = Outbox.close
    def close_then_refill(self):
        real_close(self)
        fill(mnt / "ballast2")
    Outbox.close = close_then_refill
os.truncate(ballast, max(0, ballast.stat().st_size - LEAVE_FREE))  # room for the note, not for the report
freed = []
if FREE_AFTER is not None:  # IT frees space while systemctl stop waits
    def free_space():
        ballast.unlink()
        freed.append(time.time())
    threading.Timer(FREE_AFTER, free_space).start()

started = time.time()
bg.stop(timeout=GRACE + 30)  # what SIGTERM runs: the visit is stopped, its report sealed, refused, retried
ended = time.time()
try:  # read-only; on a disk with nothing free SQLite cannot even make its -shm file
    con = sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True)
    items = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    con.close()
except sqlite3.Error:
    items = None
note = state / "reports-lost"
print(json.dumps({
    "lines": lines.lines, "started": started, "ended": ended, "freed": freed, "items": items,
    "reports_lost": server.reports_lost,
    "dropped_exit": registry.get("edge_agent_reports_dropped_total", reason="exit"),
    "note": note.read_text() if note.exists() else None,
    "note_mode": oct(note.stat().st_mode & 0o777) if note.exists() else None,
    "doctor": check_outbox(state, 1).__dict__,
    "state": str(state),
    "visit_id": visit_id,
    "clinician": load_key_file(pki.keys_a).pseudonym,
}))
'''


def _stop_on_a_full_tmpfs(tmp_path: Path, grace_s: float, free_after_s: float | None, leave_free: int,
                          refill: bool = False) -> dict:
    """Stop a server with a visit running and its outbox on a full 2 MiB tmpfs, in a private mount namespace."""
    prefix = _namespace_prefix()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = textwrap.dedent(SHUTDOWN_SCRIPT).replace("ROOT", repr(str(ROOT)), 1).replace("WORK", repr(str(tmp_path)), 1)
    script = script.replace("Path(MNT)", f"Path({str(mnt)!r})").replace("GRACE", repr(grace_s))
    script = script.replace("FREE_AFTER", repr(free_after_s)).replace("LEAVE_FREE", str(leave_free))
    script = script.replace("REFILL", repr(refill))
    cmd = f"mount --make-rprivate / && mount -t tmpfs -o size=2m,mode=0700 tmpfs {mnt} && exec {sys.executable} -c \"$0\""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([*prefix, "sh", "-c", cmd, script], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_space_freed_within_the_grace_keeps_the_report(tmp_path: Path) -> None:
    """IT frees space 2 s into a 6 s grace: the retry (every second) writes the report; nothing is lost."""
    out = _stop_on_a_full_tmpfs(tmp_path, grace_s=6.0, free_after_s=2.0, leave_free=16 * 1024)
    msgs = [m for _, m, _ in out["lines"]]
    assert out["freed"], "the timer did not free the space"
    assert out["items"] == 1, msgs  # the running visit's report is in the outbox
    assert out["reports_lost"] == 0 and out["dropped_exit"] == 0
    assert not [m for m in msgs if m.startswith("LOST")] and out["note"] is None
    waiting = [m for m in msgs if m.startswith("stopping: 1 sealed report(s) cannot be written")]
    assert len(waiting) == 1 and "disk full" in waiting[0] and "free space on" in waiting[0], msgs
    assert any("all held reports are now in the outbox" in m for m in msgs)
    # it was written within about a second of the space coming back, not at the end of the grace
    assert out["ended"] - out["freed"][0] < 4.0, (out["ended"] - out["freed"][0])
    assert out["doctor"]["ok"], out["doctor"]


def test_grace_runs_out_one_lost_line_a_note_and_doctor_fails(tmp_path: Path) -> None:
    out = _stop_on_a_full_tmpfs(tmp_path, grace_s=3.0, free_after_s=None, leave_free=16 * 1024)
    msgs = [m for _, m, _ in out["lines"]]
    state = out["state"]
    assert out["items"] == 0
    assert out["reports_lost"] == 1 and out["dropped_exit"] == 1  # serve exits 74 on this (tests/system)
    lost = [(level, m, at) for level, m, at in out["lines"] if "LOST" in m]
    assert len(lost) == 1, msgs  # exactly one line, however many retries
    level, line, at = lost[0]
    assert level == "ERROR"
    assert line.startswith(f"LOST: 1 sealed report(s) could not be written to {state}: disk full; free space on ")
    assert "the visit feedback is gone" in line and "noted in reports-lost" in line
    assert at - out["started"] >= 3.0  # after the grace, not at the first refusal
    # the line names nobody: no clinician pseudonym, no visit id (nor does the note)
    assert out["clinician"] and out["visit_id"]
    for text in (line, out["note"] or ""):
        assert out["clinician"] not in text and out["visit_id"] not in text
    # the note: one JSON line with the count and the reason, private to the service user
    assert out["note"] is not None and out["note_mode"] == "0o600"
    entries = [json.loads(raw) for raw in out["note"].splitlines()]
    assert len(entries) == 1 and entries[0]["count"] == 1 and entries[0]["reason"] == "disk full" and entries[0]["at"] == "exit"
    assert set(entries[0]) == {"time", "count", "reason", "at"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entries[0]["time"])  # the UTC day: no time of day next to the outbox
    # doctor fails on it, says what was lost and how to clear it
    doctor = out["doctor"]
    assert not doctor["ok"] and doctor["name"] == "outbox"
    assert "1 sealed report(s) could not be written and are gone (disk full" in doctor["message"]
    assert f"rm {state}/reports-lost" in doctor["fix"] and "free space on" in doctor["fix"]


def test_no_room_even_for_the_note_says_so_in_the_lost_line(tmp_path: Path) -> None:
    """A disk with nothing left: the note cannot be written either, and the one LOST line says so."""
    out = _stop_on_a_full_tmpfs(tmp_path, grace_s=0.0, free_after_s=None, leave_free=0, refill=True)
    lost = [m for _, m, _ in out["lines"] if "LOST" in m]
    assert out["reports_lost"] == 1 and len(lost) == 1
    assert "could not be written there either (No space left on device): record this loss by hand" in lost[0], lost
    # an empty note may be left (an inode but no data block): doctor still fails on it, count unknown
    if out["note"] is not None:
        assert out["note"] == "" and not out["doctor"]["ok"] and "count unreadable" in out["doctor"]["message"]
