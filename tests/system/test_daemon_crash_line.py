"""An unexpected error that ends the daemon, or a thread of it, reaches the journal without its message.

Exception messages may quote data (a ValueError naming a word it could not handle, a KeyError of a
transcript token, a library quoting its input). The daemon's logs keep a foreign exception's type and
frames only (device/ops/logs.py); but the last-resort line of `edge-agent serve` printed
``internal error (ValueError: <message>)`` to stderr (the journal), and an exception escaping a thread
went to Python's default hook, which prints the whole message and traceback. Here the daemon's own
``run_daemon`` is replaced by one that configures logging as the daemon does, lets a thread fail, then
fails itself, both with patient words and a clinician pseudonym in the message: the real console
entry point and logging decide what reaches stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SECRET = "chest pain since Tuesday, said Mrs Example"
PSEUDONYM = "c-mfrggzdfmztwq2lk"

PROBE = f"""
import sys, threading
import edge_agent.device.main as main
from edge_agent.device.ops.logs import configure_logging

async def failing(cfg, replay=None, restart_check=None):
    configure_logging(cfg.logging.level, cfg.logging.json)
    t = threading.Thread(target=lambda: (_ for _ in ()).throw(KeyError({SECRET!r} + " {PSEUDONYM}")), name="worker")
    t.start(); t.join()
    raise ValueError({SECRET!r} + " {PSEUDONYM}")

main.run_daemon = failing
sys.argv = ["edge-agent", "serve"]
from edge_agent.cli import main as cli
cli()
"""


def test_a_crash_of_the_daemon_or_its_thread_keeps_the_message_out_of_the_journal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_AGENT_") or k == "EDGE_AGENT_SHARED"}
    env["EDGE_AGENT_LOGGING_LEVEL"] = "debug"
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    err = result.stderr
    assert result.returncode == 70, err
    assert "ValueError" in err and "KeyError" in err, err  # both failures are reported, by type
    assert "chest pain" not in err and "Mrs Example" not in err and PSEUDONYM not in err, err
    assert "Traceback (most recent call last)" not in err, err


AGGREGATOR_PROBE = f"""
import sys
import edge_agent.population.commands as commands

class Failing:
    def __init__(self, *a, **k):
        raise ValueError({SECRET!r} + " {PSEUDONYM}")

commands.Aggregator = Failing
commands.load_private_key = lambda path: None
open("crl.pem", "w").close()
sys.argv = ["edge-agent", "aggregator", "serve", "--crl", "crl.pem"]
from edge_agent.cli import main as cli
cli()
"""


def test_a_crash_of_the_aggregator_keeps_the_message_out_of_the_journal(tmp_path: Path) -> None:
    """`edge-agent aggregator serve` is a service too (systemd/edge-agent-aggregator.service): its last line printed
    ``internal error (ValueError: <message>)``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_AGENT_") or k == "EDGE_AGENT_SHARED"}
    result = subprocess.run([sys.executable, "-c", AGGREGATOR_PROBE], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    err = result.stderr
    assert result.returncode == 70, err
    assert "internal error (ValueError)" in err and "aggregator stopped" in err, err
    assert "chest pain" not in err and "Mrs Example" not in err and PSEUDONYM not in err, err
    assert "Traceback (most recent call last)" not in err, err
