"""Helpers shared by the benchmarks: child-process runs, CPU and memory figures."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import EdgeAgentError

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CpuClock:
    """Process CPU time (all threads) and wall time between start() and stop()."""

    cpu0: float = 0.0
    wall0: float = 0.0

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> "CpuClock":
        self.cpu0 = self._cpu()
        self.wall0 = time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        return {"cpu_s": round(self._cpu() - self.cpu0, 3), "wall_s": round(time.perf_counter() - self.wall0, 3)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def run_child(module: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON it prints last.

    Each measured pass runs in its own process so that peak RSS and CPU time
    belong to that pass alone.
    """
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgeAgentError(f"benchmark pass {module} {' '.join(args)} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
