"""The built wheel is the product: installed in a fresh virtual environment it runs the demo
with no environment variable set (models and the bundled recording come from the package).

The venv sees the already-installed dependencies (``--system-site-packages``, so the test
needs no network), but edge-agent itself comes only from the wheel: the test checks which
copy answered and where its models were found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO_ROOT


def test_wheel_in_a_fresh_venv_runs_the_demo_with_no_environment(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO_ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("edge_agent-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # without the caller's PYTHONPATH: a checkout on it (with the egg-info the wheel build leaves there) makes
    # pip think edge-agent is already installed, and the venv would silently answer with the checkout's copy
    outer = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True, timeout=600,
                   env=outer)
    bare = {"HOME": str(tmp_path / "home"), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}  # no EDGE_AGENT_*, no PYTHONPATH
    where = subprocess.run(
        [str(py), "-c", "import edge_agent, edge_agent.models as m; print(edge_agent.__file__); print(m.models_dir())"],
        capture_output=True, text=True, env=bare, cwd=tmp_path, timeout=120, check=True,
    ).stdout.split()
    assert where[0].startswith(str(venv)), where  # the wheel's copy, not the checkout's
    assert where[1].startswith(str(venv)) and Path(where[1], "MANIFEST").is_file(), where
    demo = subprocess.run([str(venv / "bin" / "edge-agent"), "demo", "--fast", "--jsonl"],
                          capture_output=True, text=True, env=bare, cwd=tmp_path, timeout=900)
    assert demo.returncode == 0, demo.stderr[-2000:]
    lines = [json.loads(line) for line in demo.stdout.splitlines() if line.startswith("{")]
    assert any(r.get("type") == "final" for r in lines)
    report = next(r for r in lines if r.get("type") == "report")
    assert "What this visit added to the population signal" in report["text"]
