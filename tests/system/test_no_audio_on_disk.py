"""The transcription process writes no file and opens no socket (strace proves it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
ALLOWED_WRITE_PATHS = {"/dev/null", "/dev/tty"}
NETWORK_CALLS = {"socket", "connect", "sendto", "sendmsg", "bind"}
NAMESPACE_CALLS = {"rename", "renameat", "renameat2", "link", "linkat", "mkdir", "mkdirat", "memfd_create"}
SYSCALL = re.compile(r"^\d+\s+(\w+)\(")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (apt-get install strace)")
def test_transcription_writes_no_file_and_opens_no_socket(tmp_path: Path, jfk_path: Path) -> None:
    trace = tmp_path / "strace.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [
            "strace", "-f", "-qq", "-o", str(trace),
            "-e", "trace=openat,open,creat,rename,renameat,renameat2,link,linkat,mkdir,mkdirat,socket,connect,sendto,sendmsg,bind,memfd_create",
            sys.executable, "-m", "edge_agent.cli", "transcribe", str(jfk_path), "--jsonl",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )
    if result.returncode != 0 and "PTRACE" in result.stderr.upper():
        pytest.skip(f"ptrace not permitted here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    assert "fellow Americans" in result.stdout  # the traced run really transcribed
    offending = []
    for line in trace.read_text().splitlines():
        call = SYSCALL.match(line)
        if call is None:
            continue
        name = call.group(1)
        failed = "= -1" in line
        if name in NETWORK_CALLS or name in NAMESPACE_CALLS:
            if not failed:
                offending.append(line)
        elif name in ("openat", "open", "creat") and (name == "creat" or WRITE_FLAGS.search(line)):
            path = re.search(r'"([^"]*)"', line)
            if not failed and not (path and path.group(1) in ALLOWED_WRITE_PATHS):
                offending.append(line)
    assert not offending, "files or sockets touched:\n" + "\n".join(offending[:20])
