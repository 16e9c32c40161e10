"""The unit file: required directives, and `systemd-analyze security` exposure <= 1.5 when available."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
UNITS = sorted((ROOT / "systemd").glob("*.service"))
MAX_EXPOSURE = 1.5


def _directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_main_unit_has_the_required_hardening() -> None:
    d = _directives(ROOT / "systemd" / "edge-agent.service")
    expect = {
        "Type": "notify",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "LimitCORE": "0",
        "MemorySwapMax": "0",
        "StateDirectory": "edge-agent",
        "DevicePolicy": "closed",
    }
    for key, value in expect.items():
        assert d.get(key) == [value], key
    assert int(d["WatchdogSec"][0]) > 0
    assert d["User"] == ["edge-agent"] or d.get("DynamicUser") == ["yes"]
    assert set(d["RestrictAddressFamilies"][0].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert "@system-service" in d["SystemCallFilter"]
    assert sorted(d["DeviceAllow"]) == ["char-alsa rw", "char-gpiochip rw"]
    assert "ORT_DISABLE_TELEMETRY=1" in d["Environment"][0].split()
    # Python's small objects through glibc malloc, whose freed blocks the daemon has overwritten (hardening.scrub_freed_heap)
    assert "PYTHONMALLOC=malloc" in d["Environment"][0].split()
    assert d["LimitMEMLOCK"] == ["64M"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # CTranslate2 needs W+X pages (oneDNN JIT): the choice is explicit and documented
    assert d["MemoryDenyWriteExecute"] == ["no"]
    assert "MemoryDenyWriteExecute" in (ROOT / "docs" / "operations.md").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_exposure_score(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_period_key_the_daemon_must_rewrite_is_writable_under_the_unit() -> None:
    """The ratchet erases a finished period's key by rewriting its file; the unit mounted /etc/edge-agent read-only
    (ReadOnlyPaths) with the default population.period_key inside it, so every rewrite failed in production and
    the finished period's key stayed on disk. Only that one folder is writable again (the rest of /etc stays read-only)."""
    from edge_agent.device.config import PopulationSettings

    d = _directives(ROOT / "systemd" / "edge-agent.service")
    folder = str(PopulationSettings().period_key.parent)
    writable = [p.lstrip("-") for line in d.get("ReadWritePaths", []) for p in line.split()]
    assert folder in writable
    assert d["ReadOnlyPaths"] == ["/etc/edge-agent"]
    assert folder in (ROOT / "docs" / "operations.md").read_text()


def test_the_stop_timeout_outlasts_the_longest_shutdown_grace() -> None:
    """At stop, refused reports are retried for outbox.shutdown_grace_s and then reported LOST (exit 74). systemd
    must not SIGKILL the daemon first: then the loss would be silent. The timeout also covers finishing the
    running visit's report and the gRPC drain, so the longest grace the config accepts leaves a margin."""
    from edge_agent.device.config import keys
    from edge_agent.device.grpc.server import ServerConfig

    d = _directives(ROOT / "systemd" / "edge-agent.service")
    stop_s = int(d["TimeoutStopSec"][0])
    grace = next(k for k in keys("outbox") if k.name == "shutdown_grace_s")
    finishing_the_visit_s = 30  # Whisper's last segment + behaviours + sealing, with room for a slow device
    assert grace.max is not None and grace.max + ServerConfig.grace_s + finishing_the_visit_s <= stop_s
    assert f"TimeoutStopSec={stop_s}" in (ROOT / "docs" / "operations.md").read_text()
