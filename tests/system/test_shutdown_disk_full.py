"""The real daemon stopped with its outbox disk full: the report is declared LOST, never silently dropped.

`edge-agent serve` (real models, the bundled visit replayed as the microphone) runs with its outbox
on a 4 MiB tmpfs in a private mount namespace held open by a `sleep` (so the note outlives the
daemon and `doctor` can read it there). A phone starts a visit; the test fills the tmpfs, leaving one
page (room for the note, not for a report); SIGTERM. The daemon seals the visit's report, the outbox
refuses it, it is retried for outbox.shutdown_grace_s (3 s here) and then given up: exit status 74,
one LOST line on stderr (the journal under systemd), no traceback, a `reports-lost` note next to the
outbox, and `edge-agent doctor` fails its outbox check naming the note.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.data import bundled as demo_audio_path
from edge_agent.phone import client as phone
from edge_agent.phone.keys import load_key_file
from tests.daemon_site import make_room
from tests.paths import REPO_ROOT
from tests.system.test_daemon import free_port, wait_ready

GRACE_S = 3


def _namespace_holder(mnt: Path) -> subprocess.Popen[bytes]:
    """A `sleep` in a new mount namespace with a 4 MiB tmpfs on ``mnt``; others join it with nsenter."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("unshare/nsenter (util-linux) not installed")
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root for a private mount namespace joined with nsenter (unshare -m)")
    holder = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", f"mount --make-rprivate / && mount -t tmpfs -o size=4m,mode=0700 tmpfs {mnt} && exec sleep 600"],
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if f" {mnt} tmpfs " in Path(f"/proc/{holder.pid}/mounts").read_text():
            return holder
        time.sleep(0.05)
    holder.kill()
    raise AssertionError("the tmpfs did not appear in the namespace")


def _in_namespace(holder: subprocess.Popen[bytes], *args: str) -> list[str]:
    return ["nsenter", "-t", str(holder.pid), "-m", "--", *args]


def _fill_leaving_one_page(holder: subprocess.Popen[bytes], mnt: Path) -> None:
    """Through /proc/PID/root (the namespace's view), write zeros until ENOSPC, then give back one page."""
    ballast = Path(f"/proc/{holder.pid}/root{mnt}/ballast")
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    os.truncate(ballast, ballast.stat().st_size - 4096)


def test_sigterm_with_a_full_outbox_disk_exits_74_with_one_lost_line_and_doctor_fails(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    holder = _namespace_holder(mnt)
    daemon: subprocess.Popen[bytes] | None = None
    try:
        room = make_room(tmp_path)
        keys, code = room.keys, room.code
        port = free_port()
        state = mnt / "state"
        config = tmp_path / "config.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\nroom = "Room 4"\nbundle = "{tmp_path / "device.pem"}"\n'
            f'crl = "{tmp_path / "ca" / ca.CRL}"\nadvertise = false\n\n'
            f'[outbox]\npath = "{state}"\nshutdown_grace_s = {GRACE_S}\n\n'
            f'[presence]\ncode_secret = "{tmp_path / "room-code.key"}"\ncode_step_s = 86400\n'
        )
        notify_path = tmp_path / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        log = tmp_path / "daemon.log"
        env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), PYTHONPATH=str(REPO_ROOT))
        env.pop("EDGE_AGENT_DEBUG", None)
        cmd = [sys.executable, "-m", "edge_agent.cli", "serve", "--config", str(config), "--replay", str(demo_audio_path())]
        with log.open("wb") as err:
            daemon = subprocess.Popen(_in_namespace(holder, *cmd), stdout=subprocess.DEVNULL, stderr=err, env=env)
        wait_ready(notify)
        visit_id = phone.start(keys, phone.Target("127.0.0.1", port, None), room_code=code)
        time.sleep(5)  # some of the replayed consultation goes through the pipeline: a real report
        _fill_leaving_one_page(holder, mnt)
        stopped_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(60)
        took = time.monotonic() - stopped_at
        notify.setblocking(False)
        told: list[str] = []
        while True:
            try:
                told += notify.recv(4096).decode().splitlines()
            except BlockingIOError:
                break
        notify.close()
        text = log.read_text()

        assert status == 74, text[-3000:]
        assert GRACE_S <= took < GRACE_S + 30, took
        assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]
        lost = [line for line in text.splitlines() if "LOST" in line]
        assert len(lost) == 1, text[-3000:]
        assert f"LOST: 1 sealed report(s) could not be written to {state}: disk full; free space on {mnt}" in lost[0]
        assert "the visit feedback is gone" in lost[0] and "noted in reports-lost" in lost[0]
        pseudonym = load_key_file(keys).pseudonym
        assert visit_id not in text and pseudonym not in text  # the journal never names the visit or the clinician
        waiting = [line for line in text.splitlines() if "retrying every 1 s" in line]
        assert len(waiting) == 1, text[-3000:]  # said once when the wait began, so `systemctl stop` hanging is explained
        # and `systemctl status` shows it while systemd waits
        assert any(m.startswith("STATUS=stopping: 1 sealed report(s) cannot be written (disk full)") and str(mnt) in m
                   for m in told), told

        note_text = Path(f"/proc/{holder.pid}/root{state}/reports-lost").read_text()
        entries = [json.loads(line) for line in note_text.splitlines()]
        assert [(e["count"], e["reason"], e["at"]) for e in entries] == [(1, "disk full", "exit")]

        skip = [a for name in ("audio", "models", "port", "mdns", "cpu") for a in ("--skip", name)]
        doctor = subprocess.run(_in_namespace(holder, sys.executable, "-m", "edge_agent.cli", "doctor", "--config", str(config), *skip),
                                capture_output=True, text=True, env=env, timeout=120)
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        outbox_line = next(line for line in doctor.stdout.splitlines() if line.split()[1:2] == ["outbox"])
        assert outbox_line.startswith("FAIL") and "1 sealed report(s) could not be written and are gone (disk full" in outbox_line
        assert f"rm {state}/reports-lost" in outbox_line
        assert doctor.stderr == ""
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        holder.kill()
        holder.wait(10)
