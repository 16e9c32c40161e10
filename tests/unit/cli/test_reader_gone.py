"""`edge-agent <command> | head -1`: a reader that goes away ends the command quietly, with status 0.

The real console script in a subprocess whose stdout is a pipe the test closes: after one line
(the output is far larger than the 64 KiB pipe buffer, so the command is certainly still writing)
or before anything was written. Before cli/output.py handled it centrally, typer and rich turned
the BrokenPipeError into a silent exit 1, and a command whose output was still buffered at exit
got "Exception ignored ... BrokenPipeError" on stderr and status 120.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

PIPE_BUFFER = 64 * 1024


def _run(args: list[str], stdin: bytes | None = None, read_first_line: bool = True,
         stderr_to_stdout: bool = False) -> tuple[int, bytes, bytes]:
    """(status, first line read, stderr) of `edge-agent ARGS` whose reader closes the pipe early."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_to_stdout else subprocess.PIPE,
        env=dict(os.environ, EDGE_AGENT_DEBUG=""),
    )
    assert proc.stdout is not None

    def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin or b"")
            proc.stdin.close()
        except BrokenPipeError:  # the command ended before reading all of it: fine
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    if stdin is not None:
        feeder.start()
    first = proc.stdout.readline() if read_first_line else b""
    proc.stdout.close()  # `head -1` has its line and exits
    err = proc.stderr.read() if proc.stderr is not None else b""
    status = proc.wait(120)
    return status, first, err


def _utterances(n: int) -> bytes:
    return b"".join(json.dumps({"text": f"How are you feeling today, any pain at all? ({i})"}).encode() + b"\n" for i in range(n))


def test_classify_stops_quietly_when_the_reader_has_its_line() -> None:
    lines = _utterances(3000)  # ~170 bytes out per line: far more than the pipe holds
    status, first, err = _run(["behaviours", "classify"], stdin=lines)
    assert first.startswith(b'{"text": "How are you feeling today'), first
    assert err == b"", err.decode(errors="replace")
    assert status == 0


def test_stderr_on_the_same_closed_pipe_is_quiet_too() -> None:
    """`2>&1 | head -1`: nothing may try to explain the closed pipe on that same pipe."""
    status, first, _ = _run(["behaviours", "classify"], stdin=_utterances(3000), stderr_to_stdout=True)
    assert first.startswith(b'{"text"')
    assert status == 0


def test_analyze_jsonl_to_a_reader_already_gone(shared: Path) -> None:
    """Closed before the first write: every write fails, including the last flush of buffered output."""
    grids = shared / "data" / "primock57" / "transcripts"
    doctor, patient = grids / "day1_consultation01_doctor.TextGrid", grids / "day1_consultation01_patient.TextGrid"
    if not doctor.is_file():
        pytest.fail(f"PriMock57 transcripts not found at {grids}")
    args = ["analyze", "--textgrid", str(doctor), "--textgrid", str(patient), "--jsonl"]
    status, _, err = _run(args, read_first_line=False)
    assert err == b"", err.decode(errors="replace")
    assert status == 0


@pytest.mark.parametrize("args", [["--help"], ["ca", "--help"]], ids=["help", "ca-help"])
def test_help_to_a_reader_already_gone(args: list[str]) -> None:
    """rich draws the help and handles the broken pipe itself (exit 1): the entry point makes it 0."""
    status, _, err = _run(args, read_first_line=False)
    assert err == b"", err.decode(errors="replace")
    assert status == 0



def test_doctor_still_fails_when_its_reader_has_gone(tmp_path: Path) -> None:
    """`doctor | head -1` in a fleet script: a reader leaving is not a failure, but it is not a pass either."""
    config = tmp_path / "config.toml"
    config.write_text('[server]\nroom = "Room 4"\nbundle = "/nonexistent/device.pem"\n', encoding="utf-8")
    status, _, err = _run(["doctor", "--config", str(config), "--skip", "audio"], read_first_line=False)
    assert status == 1 and b"Traceback" not in err and b"BrokenPipe" not in err, (status, err)
