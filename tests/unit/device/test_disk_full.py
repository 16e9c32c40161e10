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
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT

SCRIPT = r'''
import asyncio, errno, json, logging, os, sys, time
from pathlib import Path
sys.path.insert(0, ROOT)
from tests.delivery_fixtures import Pki, RecordingRunner, server_config
from tests.doubles.scripted_runner import SpectralVoiceEnroller
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.metrics import Registry
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError

class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))

lines = Lines()
logging.getLogger("edge_agent").addHandler(lines)
logging.getLogger("edge_agent").setLevel(logging.INFO)

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

server = EdgeAgentServer(server_config(pki, mnt / "state"), BigReports(), SpectralVoiceEnroller(), metrics=registry)
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
    msgs = [m for _, m in out["lines"]]

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
    # at exit the reports that still do not fit are counted and logged
    assert out["held_at_exit"] >= 12 and 1 <= out["dropped_exit"] <= out["held_at_exit"]
    n = int(out["dropped_exit"])
    assert any(m.startswith(f"{n} sealed reports") and "lost" in m for m in msgs), msgs


def test_memory_bound_refuses_new_visits_and_counts_what_it_cannot_keep(tmp_path: Path) -> None:
    """Past the byte bound nothing is silently dropped: the report that cannot be kept is counted and
    logged and StopVisit says so; while the hold is full, new visits are refused (nothing captured)."""
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.ops.metrics import Registry
    from edge_agent.device.outbox import OutboxConfig
    from edge_agent.phone import client as phone
    from edge_agent.phone.keys import ClientError
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
        cfg = server_config(pki, tmp_path / f"data{max_held}", outbox=OutboxConfig(max_items=1), max_held_bytes=max_held)
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
