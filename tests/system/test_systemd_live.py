"""The unit under a real systemd: boot Debian with systemd as PID 1 in a container, install the
package and systemd/edge-agent.service, and drive the live unit (opt-in: ``pytest -m system``).

What it checks (tests/systemd_driver.py does the work inside the container):

* ``Type=notify``: ``systemctl start`` returns only after READY=1 and the unit is active/running;
* the watchdog: a test-only hook hangs the daemon's event loop (SIGUSR2 with
  ``EDGE_AGENT_FAULT_INJECTION=hang-on-sigusr2`` in a test drop-in); systemd kills and restarts it;
* ``systemd-analyze security`` exposure of the live unit <= 1.5;
* hardening in effect: writes outside the StateDirectory fail inside the unit's own sandbox
  (an ``ExecStartPre=`` probe), no capabilities, NoNewPrivs, seccomp on;
* ``LimitNOFILE`` applied to the running process;
* a real visit (phone start/stop/feedback) through the sandboxed daemon, and journald lines
  that carry no visit id or clinician pseudonym.

Needs root, ``systemd-nspawn`` (Debian: systemd-container) and ``debootstrap``. The Debian
rootfs is cached at ``$EDGE_AGENT_SYSTEMD_ROOTFS`` (default
``/var/cache/edge-agent-systemd-test/rootfs-bookworm-v1``; built on first run, ~2-4 min) and
booted with ``--volatile=overlay``, so runs never change it. Python dependencies are the host's
site-packages, bind-mounted read-only; the project itself is installed from a wheel built here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.phone.keys import init_key_file
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.system

ROOT = REPO_ROOT
DEFAULT_ROOTFS = Path("/var/cache/edge-agent-systemd-test/rootfs-bookworm-v1")
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,libportaudio2,libsndfile1,procps"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rootfs() -> Path:
    rootfs = Path(os.environ.get("EDGE_AGENT_SYSTEMD_ROOTFS", DEFAULT_ROOTFS))
    if (rootfs / "usr/lib/systemd/systemd").exists():
        return rootfs
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("EDGE_AGENT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    result = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(partial), mirror],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.skip(f"debootstrap failed, no rootfs to boot: {result.stderr.strip().splitlines()[-1:]}")
    partial.rename(rootfs)
    return rootfs


def _wheel(out: Path) -> Path:
    src = out / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "*.egg-info", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    shutil.rmtree(src)
    return next(out.glob("edge_agent-*.whl"))


def _requirements() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (systemd-nspawn)")
    for tool in ("systemd-nspawn", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install systemd-container debootstrap)")


@pytest.fixture(scope="module")
def live() -> dict:
    _requirements()
    rootfs = _rootfs()
    work = Path(tempfile.mkdtemp(prefix="edge-agent-systemd-"))
    try:
        inputs, results = work / "in", work / "out"
        inputs.mkdir()
        results.mkdir()
        _wheel(inputs)
        authority = ca.init_ca(work / "ca", site="Systemd Test")
        ca.issue_device(authority, "Room 4", inputs / "device.pem", ips=("127.0.0.1",))
        ca.issue_clinician(authority, work / "clin.pem")
        init_key_file(work / "clin.pem", inputs / "phone.json")
        shutil.copy(work / "ca" / ca.CRL, inputs / "crl.pem")
        shutil.copy(ROOT / "systemd" / "edge-agent.service", inputs / "edge-agent.service")
        shutil.copy(ROOT / "tests" / "systemd_driver.py", inputs / "driver.py")
        (inputs / "params.json").write_text(json.dumps({"port": _free_port(), "metrics_port": _free_port()}))
        driver_unit = (
            "[Unit]\nDescription=edge-agent system test driver\nAfter=multi-user.target\n"
            "[Service]\nType=oneshot\nExecStart=/usr/bin/python3 /systemtest/driver.py\nTimeoutStartSec=900\n"
            "StandardOutput=journal+console\n[Install]\nWantedBy=multi-user.target\n"
        )
        (inputs / "driver.service").write_text(driver_unit)
        site_packages = sysconfig.get_paths()["purelib"]
        cmd = [
            "systemd-nspawn", "--quiet", "--directory", str(rootfs), "--volatile=overlay", "--register=no", "--keep-unit",
            "--boot", f"--bind-ro={inputs}:/systemtest", f"--bind={results}:/results",
            f"--bind-ro={site_packages}:/opt/host-site-packages",
            f"--bind-ro={inputs / 'driver.service'}:/etc/systemd/system/edge-agent-systemtest.service",
            "systemd.wants=edge-agent-systemtest.service",  # PID 1's own command line: pull the driver in at boot
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
        out = results / "results.json"
        if not out.exists():
            pytest.fail(f"the container produced no results (nspawn rc={proc.returncode}): {proc.stderr[-2000:]} {proc.stdout[-2000:]}")
        data = json.loads(out.read_text())
        data["_console"] = proc.stdout[-4000:]
        (Path(tempfile.gettempdir()) / "edge-agent-systemd-results.json").write_text(json.dumps(data, indent=1))
        return data
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_driver_completed(live: dict) -> None:
    assert live["ok"], live.get("error", "") + "\n" + live.get("traceback", "") + "\n" + live.get("journal", "")[-3000:]


def test_type_notify_ready_means_listening(live: dict) -> None:
    st = live["after_start"]
    assert st["Type"] == "notify" and st["ActiveState"] == "active" and st["SubState"] == "running", st
    assert st["StatusText"].startswith("listening on port"), st
    assert st["WatchdogUSec"] == "30s", st
    # READY came after the models loaded: activation took measurable time past the process start
    assert int(st["ActiveEnterTimestampMonotonic"]) - int(st["ExecMainStartTimestampMonotonic"]) > 1_000_000
    assert "device ready" in live["journal"]


def test_watchdog_restarts_a_hung_daemon(live: dict) -> None:
    wd = live["watchdog"]
    assert wd["after"], wd
    assert int(wd["after"]["NRestarts"]) == int(wd["before"]["NRestarts"]) + 1
    assert wd["after"]["MainPID"] != wd["before"]["MainPID"]
    assert "fault injection: event loop hung" in live["journal"]
    assert "Watchdog timeout" in live["journal_system"] or "watchdog" in live["journal_system"].lower()


def test_live_exposure_score(live: dict) -> None:
    assert live["exposure"] is not None, live["exposure_text"]
    assert live["exposure"] <= 1.5, live["exposure_text"]


def test_hardening_in_effect(live: dict) -> None:
    probe = [line for line in live["journal"].splitlines() if line.startswith("PROBE")]
    writes = {line.split()[2]: line.split()[3] for line in probe if line.startswith("PROBE write")}
    assert writes.pop("state") == "allowed", probe
    assert writes and all(v == "denied" for v in writes.values()), probe
    limits = [line for line in probe if line.startswith("PROBE nofile")]
    assert limits and limits[0].split()[2] == "4096" and limits[0].split()[4] == "0" and "edge-agent" in limits[0], limits
    assert any("4096" in line for line in live["proc_limits_nofile"]), live["proc_limits_nofile"]
    status = live["proc_status"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, status
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status


def test_visit_through_the_sandboxed_daemon_and_clean_journal(live: dict) -> None:
    assert "Timing" in live["phone_feedback"] or "report" in live["phone_feedback"].lower(), live["phone_feedback"]
    visit_ids = [w for w in live["phone_start"].split() if w.startswith("v-")]
    journal = live["journal"]
    for ident in [*live["ids"], *visit_ids]:
        assert ident not in journal
    assert live["after_stop"]["Result"] == "success", live["after_stop"]


def test_doctor_against_the_live_service(live: dict) -> None:
    checks = {c["name"]: c for c in live["doctor"]["checks"]}
    assert checks["port"]["ok"], checks["port"]  # serves this device's certificate over TLS
    # the running daemon holding its own ports (gRPC, metrics) is not a conflict
    assert checks["ports"]["ok"] and "held by this device's edge-agent" in checks["ports"]["message"], checks["ports"]
    assert checks["outbox"]["ok"], checks["outbox"]  # and it read the daemon's metrics: nothing held
