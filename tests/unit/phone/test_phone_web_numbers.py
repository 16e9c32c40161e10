"""The web app prints a report's moments and figures as the Python phone does (`render_report`): Python's format and
round() break exact ties to even, JavaScript's toFixed and Math.round upward, so before this a moment at 14.5 s read
"At 0:14" in one and "At 0:15" in the other. The cases are printed here by Python and checked in Node."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_agent.phone.client import _clock
from tests.paths import REPO_ROOT


def test_the_web_apps_numbers_are_the_python_phones(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node missing (apt-get install nodejs)")
    rng = random.Random(7)
    # exact ties (x.5 s, quarter seconds, shares on 1/8), near ties (0.35 is 0.3499…), and ordinary values
    xs = [n / 2 for n in range(0, 400)] + [n / 4 for n in range(0, 200)] + [0.35, 0.05, 1.45, 0.15, 99.95, 2.675]
    xs += [round(rng.uniform(0, 3600), rng.choice((1, 2, 3))) for _ in range(2000)]
    shares = [n / 8 / 100 for n in range(0, 801)] + [0.625, 0.285, 0.005, 0.145, 0.575] + [rng.random() for _ in range(2000)]
    cases = [{"x": x, "clock": _clock(x), "f0": f"{x:.0f}", "f1": f"{x:.1f}", "share": s, "pct": f"{s:.0%}"}
             for x, s in zip(xs * 2, shares, strict=False)]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    res = subprocess.run([node, "--test", str(REPO_ROOT / "tools" / "phone-web" / "test" / "numbers.test.mjs")],
                         env={**os.environ, "EDGE_AGENT_NUMBER_CASES": str(tmp_path / "cases.json")},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "# pass 1" in res.stdout, res.stdout[-3000:] + res.stderr[-1000:]
