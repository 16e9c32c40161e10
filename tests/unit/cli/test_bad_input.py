"""Every bad input is one line on stderr, a non-zero exit, and never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.cli_runner import run_cli


def assert_one_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("transcribe", str(tmp_path / "nope.wav")), "audio file not found")


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is a text file, not audio\n" * 20)
    assert_one_line_error(run_cli("transcribe", str(path)), "cannot read", "as audio")


def test_truncated_wav_processes_what_exists_then_fails(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), jfk_16k, 16000, subtype="PCM_16")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    result = run_cli("transcribe", str(cut), "--jsonl")
    assert_one_line_error(result, "is truncated", "copy the file again")
    assert "fellow Americans" in result.stdout  # the readable half was still transcribed


def test_truncated_flac(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    whole = tmp_path / "whole.flac"
    sf.write(str(whole), jfk_16k, 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[:4000])
    assert_one_line_error(run_cli("transcribe", str(cut), "--jsonl"), str(cut))


def test_unsupported_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "phone4k.wav"
    sf.write(str(path), np.zeros(4000, np.float32), 4000)
    assert_one_line_error(run_cli("transcribe", str(path)), "4000 Hz", "at least 8000 Hz")


def test_empty_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, np.float32), 16000)
    assert_one_line_error(run_cli("transcribe", str(path)), "contains no audio")


def test_missing_model_directory(tmp_path: Path, jfk_path: Path) -> None:
    assert_one_line_error(
        run_cli("transcribe", str(jfk_path), "--model", str(tmp_path / "gone")), "ASR model directory not found"
    )


def test_corrupt_model(tmp_path: Path, jfk_path: Path) -> None:
    import hashlib

    from edge_agent.asr.whisper_ct2 import resolve_model_path

    bundled = Path(resolve_model_path("tiny.en"))
    broken = tmp_path / "broken-model"
    shutil.copytree(bundled, broken, ignore=shutil.ignore_patterns("model.bin"))
    original = hashlib.sha256((bundled / "model.bin").read_bytes()).hexdigest()
    (broken / "model.bin").write_bytes(np.random.default_rng(1).bytes(50_000))
    # a folder with no checksums is refused before anything is loaded
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--model", str(broken)), "has no SHA256SUMS", "sha256sum")
    # checksums of the good model: the changed bytes are caught, never transcribed
    (broken / "SHA256SUMS").write_text(f"{original}  model.bin\n")
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--model", str(broken)), "is corrupt", "sha256")
    # checksums that match garbage (someone re-summed a broken file): CTranslate2 refuses it, one line
    garbage = hashlib.sha256((broken / "model.bin").read_bytes()).hexdigest()
    (broken / "SHA256SUMS").write_text(f"{garbage}  model.bin\n")
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--model", str(broken)), "cannot load the ASR model")


def test_bundled_whisper_weights_are_checked_against_the_package_record(tmp_path: Path) -> None:
    """Random bytes in model.bin used to load and transcribe jfk as "Hercules": now a one-line error."""
    from edge_agent.asr.whisper_ct2 import _verify_against_package, resolve_model_path
    from edge_agent.errors import ModelError

    bundled = Path(resolve_model_path("tiny.en"))
    copy = tmp_path / bundled.name  # the same folder name, so the package record applies
    shutil.copytree(bundled, copy)
    _verify_against_package(copy)  # intact: accepted
    with (copy / "model.bin").open("r+b") as fh:
        fh.seek(1_000_000)
        fh.write(np.random.default_rng(2).bytes(4096))
    with pytest.raises(ModelError, match="corrupt"):
        _verify_against_package(copy)


def test_cuda_requested_without_gpu(jfk_path: Path) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("a CUDA device is present: this test covers machines without one")
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--device", "cuda"), "no CUDA device", 'asr.device = "cpu"')


def test_bad_option_value(jfk_path: Path) -> None:
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--compute-type", "int3"), "--compute-type is 'int3'", "allowed values")


def test_no_input_given() -> None:
    assert_one_line_error(run_cli("transcribe"), "give an audio FILE")


def test_enroll_bad_files_are_one_line_with_what_to_do(tmp_path: Path) -> None:
    """enroll reads files like transcribe: missing, a directory, too short to hold one VAD frame."""
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), np.full(200, 0.3, np.float32), 16000)  # 12.5 ms: less than one 30 ms frame
    assert_one_line_error(run_cli("enroll", str(tiny)), "record 10")
    assert_one_line_error(run_cli("enroll", str(tmp_path / "nope.wav")), "audio file not found")
    assert_one_line_error(run_cli("enroll", str(tmp_path)), "is a directory, not an audio file")


def test_voiceprint_not_text_is_one_line(tmp_path: Path, jfk_path: Path) -> None:
    bad = tmp_path / "clinician.json"
    bad.write_bytes(b"\xff\xfe{\x00}\x00")  # UTF-16, or any damaged bytes
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--voiceprint", str(bad)), "is not a voiceprint", "edge-agent enroll")


def test_ctrl_c_is_one_line_and_exit_130(jfk_path: Path) -> None:
    """Ctrl-C mid-run: 'edge-agent: interrupted' on stderr, exit 130 (typer used to swallow it silently)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.cli_runner import ctrl_c_reachable

    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "transcribe", str(jfk_path), "--realtime", "--jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            preexec_fn=ctrl_c_reachable)
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # running: the first partial is out
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and lines == ["edge-agent: interrupted"], (proc.returncode, err)


def test_analyze_textgrid_folder_is_not_called_missing(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("analyze", "--textgrid", str(tmp_path), "--textgrid", str(tmp_path)), "is a directory", "TextGrid file")


@pytest.mark.parametrize(
    "args",
    [
        ("transcribe", "{jfk}", "--seconds", "3"),
        ("transcribe", "{jfk}", "--mic-device", "USB"),
        ("enroll", "{jfk}", "--seconds", "5"),
        ("enroll", "{jfk}", "--mic-device", "USB"),
    ],
)
def test_microphone_options_without_mic_are_refused_not_ignored(jfk_path: Path, args: tuple[str, ...]) -> None:
    """--seconds / --mic-device only mean something with --mic: with a FILE they were silently ignored."""
    argv = [a.replace("{jfk}", str(jfk_path)) for a in args]
    assert_one_line_error(run_cli(*argv), args[-2], "--mic")


@pytest.mark.parametrize("command", ["transcribe", "enroll"])
def test_mic_seconds_must_be_positive(command: str) -> None:
    assert_one_line_error(run_cli(command, "--mic", "--seconds", "-1"), "--seconds", "more than 0")


def test_listen_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    """--port 99999 on the site's servers: one line naming the port, not 'internal error (OverflowError)'."""
    from edge_agent.crypto import ca
    from edge_agent.population.commands import aggregator_keygen

    authority = ca.init_ca(tmp_path / "ca")
    crl = str(tmp_path / "ca" / ca.CRL)
    ca.issue_web(authority, tmp_path / "web.pem", dns_names=("localhost",))
    ca.issue_aggregator(authority, tmp_path / "agg.pem", dns_names=("localhost",))
    aggregator_keygen(tmp_path / "agg.key", tmp_path / "agg.pub")
    assert_one_line_error(
        run_cli("phone-web", "serve", "--bundle", str(tmp_path / "web.pem"), "--crl", crl, "--host", "127.0.0.1", "--port", "99999"),
        "99999",
    )
    assert_one_line_error(
        run_cli("aggregator", "serve", "--db", str(tmp_path / "agg.db"), "--key", str(tmp_path / "agg.key"), "--bundle",
                str(tmp_path / "agg.pem"), "--crl", crl, "--host", "127.0.0.1", "--port", "99999"),
        "99999",
    )


def test_help_texts_survive_rich_markup() -> None:
    """A '[web]' in a help string is eaten as rich markup ('(config  port)'): no option help may contain one."""
    import re

    import typer.main

    from edge_agent.cli import app

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        for param in cmd.params:
            yield path, getattr(param, "help", None) or ""
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    swallowed = [(path, text) for path, text in walk(typer.main.get_command(app), "edge-agent") if re.search(r"\[[a-z_]+\]", text)]
    assert not swallowed, swallowed


def test_compute_type_the_cpu_cannot_run_names_the_key_not_a_reinstall(jfk_path: Path) -> None:
    """float16 on a CPU: the fix is asr.compute_type, not 'reinstall the model'."""
    result = run_cli("transcribe", str(jfk_path), "--compute-type", "float16")
    assert_one_line_error(result, "float16", "asr.compute_type")
    assert "reinstall" not in result.stderr


def test_analyze_textgrids_with_a_voiceprint_is_refused_not_ignored(tmp_path: Path) -> None:
    """TextGrids already name who spoke: a --voiceprint there was silently ignored."""
    vp = tmp_path / "clinician.json"
    vp.write_text("{}")
    result = run_cli("analyze", "--textgrid", str(tmp_path / "d.TextGrid"), "--textgrid", str(tmp_path / "p.TextGrid"),
                     "--voiceprint", str(vp))
    assert_one_line_error(result, "--voiceprint", "audio FILE")


def test_no_speakers_with_a_voiceprint_is_refused_not_ignored(tmp_path: Path, jfk_path: Path) -> None:
    """--no-speakers was overridden without a word when a --voiceprint was given (speakers were attributed anyway)."""
    vp = tmp_path / "clinician.json"
    vp.write_text("{}")
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--no-speakers", "--voiceprint", str(vp)), "--no-speakers", "--voiceprint")


def test_jsonl_into_a_closed_pipe_ends_quietly(jfk_path: Path) -> None:
    """`transcribe --jsonl | head -1`: the reader going away is not 'speech pipeline stopped by an internal error'."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "transcribe", str(jfk_path), "--jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err.decode().strip() == "", (proc.returncode, err.decode())


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_is_heard_not_silence(tmp_path: Path, jfk_16k: np.ndarray, subtype: str) -> None:
    """A 32-bit float WAV (Audacity, DAWs): read as int16 without scaling it became all zeros - 0 utterances, no error."""
    path = tmp_path / "float.wav"
    sf.write(str(path), jfk_16k, 16000, subtype=subtype)
    result = run_cli("transcribe", str(path), "--jsonl", "--no-speakers")
    assert result.returncode == 0, result.stderr
    assert "fellow Americans" in result.stdout, result.stdout[-500:]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("transcribe", "--foo"), ("edge-agent: no such option: --foo", "(see edge-agent transcribe --help)")),
        (("ca", "issue-device"), ("edge-agent: missing option '--ca-dir' (see edge-agent ca issue-device --help)",)),
        (("phone", "start", "--max-minutes", "lots"), ("edge-agent: invalid value for '--max-minutes'", "(see edge-agent phone start --help)")),
        (("phone", "enroll"), ("edge-agent: missing argument", "(see edge-agent phone enroll --help)")),
        (("frobnicate",), ("edge-agent: no such command 'frobnicate'", "(see edge-agent --help)")),
        (("aggregator", "report", "--period"), ("edge-agent: option '--period' requires an argument", "(see edge-agent aggregator report --help)")),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    """typer/click drew usage errors as a multi-line rich box ('Usage: ...', 'Try ...', a framed 'Error')."""
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, *fragments)
    assert "╭" not in result.stderr and "Usage:" not in result.stderr


def test_help_still_renders() -> None:
    result = run_cli("transcribe", "--help")
    assert result.returncode == 0 and "Usage: edge-agent transcribe" in result.stdout and "--voiceprint" in result.stdout
    bare = run_cli("ca")  # a group without a command still shows its help
    assert "issue-device" in bare.stdout + bare.stderr and "Traceback" not in bare.stderr
