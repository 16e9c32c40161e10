"""Bad input found in a review of every command as a newcomer and as hospital IT: one line, what is wrong and what
to do, the right exit status, never an internal error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.cli_runner import run_cli


def one_line(result: subprocess.CompletedProcess[str], *fragments: str, status: int = 2) -> str:
    assert result.returncode == status, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user without the file's permission: as root, inside a user namespace where root's files are
    another user's and no capability overrides their mode (root reads a 0000 file otherwise)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("needs unshare (util-linux) to drop root's file access")
        prefix = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    return subprocess.run([*prefix, sys.executable, "-m", "edge_agent.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=dict(os.environ))


def test_unreadable_recording_says_permission_not_format(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    """libsndfile calls a file it may not open 'System error', and the line then advised another format."""
    path = tmp_path / "visit.wav"
    sf.write(str(path), jfk_16k, 16000, subtype="PCM_16")
    path.chmod(0)
    result = run_unprivileged("transcribe", path.name, "--jsonl", cwd=tmp_path)
    if result.returncode == 0:
        pytest.skip("this user can read a 0000 file")
    line = one_line(result, "cannot open visit.wav", "Permission denied", "read access")
    assert "WAV, FLAC or OGG" not in line


def test_a_header_without_samples_says_what_to_do(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), jfk_16k, 16000, subtype="PCM_16")
    header = tmp_path / "header.wav"
    header.write_bytes(whole.read_bytes()[:44])
    one_line(run_cli("analyze", str(header)), "contains no audio samples", "copy it again")


@pytest.mark.parametrize("missing", ["config.json", "tokenizer.json"])
def test_whisper_folder_missing_a_file_is_refused_at_load(tmp_path: Path, jfk_path: Path, missing: str) -> None:
    """Without config.json the model loaded and every decode failed: warnings, no text, exit 0 (all speech lost).
    Without tokenizer.json the line blamed 'the Hub' on a device that never downloads."""
    from edge_agent.asr.whisper_ct2 import resolve_model_path

    folder = tmp_path / "whisper"
    shutil.copytree(resolve_model_path("tiny.en"), folder, ignore=shutil.ignore_patterns(missing))
    subprocess.run("sha256sum * > SHA256SUMS", shell=True, cwd=folder, check=True)
    line = one_line(run_cli("transcribe", str(jfk_path), "--jsonl", "--model", str(folder)), f"has no {missing}", "copy")
    assert "Hub" not in line


def test_ca_passphrase_missing_wrong_or_unexpected_says_which_and_names_the_variable(tmp_path: Path) -> None:
    """Was 'cannot read the CA key in ca: wrong or missing passphrase' for all of them: the passphrase comes from the
    environment, which a newcomer cannot guess from the command line."""
    secret = {"EDGE_AGENT_CA_PASSPHRASE": "correct horse"}
    assert run_cli("ca", "init", "--ca-dir", str(tmp_path / "locked"), env=secret).returncode == 0
    issue = ("ca", "issue-admin", "--out", str(tmp_path / "admin.pem"), "--ca-dir")
    one_line(run_cli(*issue, str(tmp_path / "locked"), env={"EDGE_AGENT_CA_PASSPHRASE": ""}),
             "protected by a passphrase", "set EDGE_AGENT_CA_PASSPHRASE")
    one_line(run_cli(*issue, str(tmp_path / "locked"), env={"EDGE_AGENT_CA_PASSPHRASE": "wrong"}),
             "wrong passphrase", "EDGE_AGENT_CA_PASSPHRASE", "ca init")
    assert run_cli("ca", "init", "--ca-dir", str(tmp_path / "open"), env={"EDGE_AGENT_CA_PASSPHRASE": ""}).returncode == 0
    one_line(run_cli(*issue, str(tmp_path / "open"), env=secret), "has no passphrase", "unset EDGE_AGENT_CA_PASSPHRASE")
    assert run_cli(*issue, str(tmp_path / "locked"), env=secret).returncode == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("bench", "delivery", "--visits", "0"), ("--visits",)),  # was: internal error (StatisticsError)
        (("bench", "soak", "--minutes", "-1"), ("--minutes", "more than 0")),  # was: exit 0 with null figures
        (("bench", "soak", "--every", "0"), ("--every", "more than 0")),
        (("bench", "speakers", "--seconds", "-5"), ("--seconds", "more than 0")),  # was: 'max_duration_s must be positive'
        (("bench", "speakers", "--conversations", "0"), ("--conversations",)),  # was: exit 0 with null figures
        (("bench", "realvoice", "--out", "{tmp}/out", "--jobs", "0"), ("--jobs",)),
        (("bench", "realvoice", "--out", "{tmp}/file"), ("--out", "is a file")),  # was: 'cannot use ...: File exists'
        (("bench", "realvoice", "--out", "{tmp}/out", "--data", "{tmp}"), ("no visit references", "tools.realvoice.generate")),  # was: bare, exit 1
        (("bench", "asr", "--audio", "{tmp}"), ("is a directory",)),  # was: 'not found; run ... make_bench_recording'
        (("bench", "asr", "--audio", "{tmp}/visit.wav"), ("reference transcript", "visit.json", "--audio")),
    ],
)
def test_bench_bad_values_are_one_line_exit_2(tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    (tmp_path / "file").write_text("not a folder\n")
    sf.write(str(tmp_path / "visit.wav"), np.zeros(16000, np.float32), 16000)
    one_line(run_cli(*(arg.format(tmp=tmp_path) for arg in args), timeout=120), *fragments)


def test_phone_install_of_the_wrong_file_names_what_the_file_is(tmp_path: Path) -> None:
    """IT's answer to another phone's request was 'the key in X does not match its certificate; issue a new bundle'
    (the certificate was sound); a whole bundle from 'ca issue-clinician' was 'not an edge-agent bundle'."""
    open_ca = {"EDGE_AGENT_CA_PASSPHRASE": ""}
    ca_dir = tmp_path / "ca"
    assert run_cli("ca", "init", "--ca-dir", str(ca_dir), env=open_ca).returncode == 0
    site_ca = str(ca_dir / "ca.cert.pem")
    for phone in ("mine", "theirs"):
        made = run_cli("phone", "request", "--keys", str(tmp_path / f"{phone}.json"), "--out", str(tmp_path / f"{phone}.csr"), "--ca", site_ca)
        assert made.returncode == 0, made.stderr
    assert run_cli("ca", "sign-clinician", str(tmp_path / "theirs.csr"), "--ca-dir", str(ca_dir), "--out",
                   str(tmp_path / "theirs.pem"), env=open_ca).returncode == 0
    assert run_cli("ca", "issue-clinician", "--ca-dir", str(ca_dir), "--out", str(tmp_path / "bundle.pem"), env=open_ca).returncode == 0
    install = ("phone", "install", "--keys", str(tmp_path / "mine.json"))
    line = one_line(run_cli(*install, str(tmp_path / "theirs.pem")), "signed for another request", "mine.json")
    assert "issue a new bundle" not in line
    one_line(run_cli(*install, str(tmp_path / "bundle.pem")), "whole bundle", "phone init --bundle")
    one_line(run_cli(*install, str(tmp_path / "mine.csr")), "is a certificate request", "ca sign-clinician")
    one_line(run_cli("phone", "install", "--keys", str(tmp_path / "typo.json"), str(tmp_path / "theirs.pem")),
             "typo.json not found", "phone request")
    one_line(run_cli("phone", "request", "--keys", str(tmp_path / "mine.json"), "--out", str(tmp_path / "again.csr")), "--overwrite")
    # the right answer still installs
    assert run_cli("ca", "sign-clinician", str(tmp_path / "mine.csr"), "--ca-dir", str(ca_dir), "--out",
                   str(tmp_path / "mine.pem"), env=open_ca).returncode == 0
    assert run_cli(*install, str(tmp_path / "mine.pem")).returncode == 0
