"""The real console entry point in a subprocess, as a user or a unit file runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def ctrl_c_reachable() -> None:
    """A ``preexec_fn``: the child takes SIGINT as a terminal's Ctrl-C does.

    A test run started in the background of a non-interactive shell (``nohup pytest &``, some CI runners) has
    SIGINT ignored, children inherit that, and Python then never raises KeyboardInterrupt: a Ctrl-C test would
    see the command run to its end and exit 0.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
