"""The period key must be erased at the period's end even where its file cannot be rewritten at that moment.

The room unit mounts /etc/edge-agent read-only (``ReadOnlyPaths``), and the default ``population.period_key``
lives there; a full disk does the same to any path. ``PeriodKeyRing.advance`` moved the key forward in memory,
then failed to replace the file with an ``OSError`` that the hourly rotation did not catch: the rotation task
died silently, the in-memory key stayed advanced (so later advances were no-ops that never wrote), and the file
kept the finished period's state - from which every key of that period can be derived - until a restart.

Real files on a real read-only bind mount in a private mount namespace (root or unprivileged user namespaces).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

_PROBE = r'''
import asyncio, datetime as dt, json, logging, subprocess, sys
from pathlib import Path
from edge_agent.device.population import PopulationContributor, rotate_period_key
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.crypto import seal

keydir = Path(sys.argv[1])
lines = []
class H(logging.Handler):
    def emit(self, r): lines.append(r.getMessage())
logging.getLogger().addHandler(H()); logging.getLogger().setLevel(logging.INFO)

ring = PeriodKeyRing.load(keydir / "period.key")
contributor = PopulationContributor(ring, seal.generate_keypair()[1], "cardiology")
first = (keydir / "period.key").read_text()
days = iter([dt.date(2026, 10, 5), dt.date(2026, 10, 12), dt.date(2026, 10, 12)])
out = {}

async def main():
    task = asyncio.create_task(rotate_period_key(contributor, interval_s=0.2, today=lambda: next(days, dt.date(2026, 10, 12))))
    await asyncio.sleep(0.1)  # first tick (same week): nothing to write
    subprocess.run(["mount", "-o", "remount,bind,ro", str(keydir)], check=True)
    await asyncio.sleep(0.2)  # second tick: a new week, the file cannot be replaced
    out["alive_while_read_only"] = not task.done()
    out["file_unchanged_while_read_only"] = (keydir / "period.key").read_text() == first
    subprocess.run(["mount", "-o", "remount,bind,rw", str(keydir)], check=True)
    await asyncio.sleep(0.5)  # later ticks, same week: the pending write must happen now
    out["alive"] = not task.done()
    task.cancel()
    doc = json.loads((keydir / "period.key").read_text())
    out["period_on_disk"] = doc["period"]
    out["old_state_gone"] = json.loads(first)["state"] not in (keydir / "period.key").read_text()
    out["lines"] = lines

asyncio.run(main())
print(json.dumps(out))
'''


def _namespace_prefix() -> list[str]:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("unshare/mount not installed")
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    pytest.skip("mount namespaces are not permitted here (needs root or unprivileged user namespaces)")


def test_a_finished_periods_key_is_erased_once_its_file_can_be_written_again(tmp_path: Path) -> None:
    prefix = _namespace_prefix()
    keydir = tmp_path / "population"
    keydir.mkdir()
    PeriodKeyRing_create = __import__("edge_agent.population.pseudonym", fromlist=["PeriodKeyRing"]).PeriodKeyRing.create
    import datetime as dt

    PeriodKeyRing_create(keydir / "period.key", "week", today=dt.date(2026, 10, 5))
    script = f"mount --make-rprivate / && mount --bind {keydir} {keydir} && exec {sys.executable} -c \"$0\" {keydir}"
    proc = subprocess.run([*prefix, "sh", "-c", script, _PROBE], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["alive_while_read_only"], "the hourly rotation died on the unwritable key file"
    assert out["file_unchanged_while_read_only"]
    assert any("period key" in line and "cannot" in line for line in out["lines"]), out["lines"]
    assert out["alive"]
    assert out["period_on_disk"] == "2026-W42" and out["old_state_gone"], "the finished week's state is still on disk"
