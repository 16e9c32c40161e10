"""Acceptance paths of issues 3-5 as a user runs them: the real console entry point, real models, real files.

Each test here failed before its fix (see the commit that added it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.cli_runner import run_cli
from tests.unit.cli.test_bad_input import assert_one_line_error
from tools.corpus.primock import primock_dir

REPO = Path(__file__).resolve().parents[3]


def _json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]  # every line must be JSON, or this raises


def _truncated_wav(tmp_path: Path, audio: np.ndarray) -> Path:
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), audio, 16000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    return cut


def test_transcribe_jsonl_of_a_truncated_file_still_ends_with_its_summary(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    """A program reading --jsonl learns what the run did (its summary) even when the input was cut short."""
    result = run_cli("transcribe", str(_truncated_wav(tmp_path, jfk_16k)), "--jsonl", "--no-speakers")
    assert_one_line_error(result, "is truncated")
    rows = _json_lines(result.stdout)
    assert any(r["type"] == "final" and "fellow Americans" in str(r["text"]) for r in rows)
    assert rows[-1]["type"] == "summary" and rows[-1]["audio_s"] > 0  # type: ignore[operator]


def test_analyze_of_a_truncated_recording_reports_on_the_part_that_was_read(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    """The error says "that part was processed": the clinician's report of that part is not thrown away."""
    result = run_cli("analyze", str(_truncated_wav(tmp_path, jfk_16k)), "--json")
    assert_one_line_error(result, "is truncated")
    report = json.loads(result.stdout)
    assert report["visit_duration_s"] > 0
    assert report["quality"]["audio_s"] > 0


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_analyze_textgrid_pair_in_the_form_the_issue_gives() -> None:
    """Issue 5: `edge-agent analyze --textgrid DOCTOR.TextGrid PATIENT.TextGrid --jsonl`."""
    d = primock_dir() / "day1_consultation03_doctor.TextGrid"
    p = primock_dir() / "day1_consultation03_patient.TextGrid"
    result = run_cli("analyze", "--textgrid", str(d), str(p), "--jsonl")
    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert rows[0]["type"] == "metrics" and rows[-1]["type"] == "feedback"



@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_analyze_textgrid_json_is_one_report_object() -> None:
    """`analyze --help`: --json is 'the coaching report as one JSON object'. From TextGrids it printed the --jsonl lines
    (metrics, one line per utterance, feedback), which json.loads refuses ('Extra data'), unlike `analyze FILE --json`."""
    d = primock_dir() / "day1_consultation03_doctor.TextGrid"
    p = primock_dir() / "day1_consultation03_patient.TextGrid"
    result = run_cli("analyze", "--textgrid", str(d), str(p), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"visit_duration_s", "timing", "label_counts", "observations"} <= set(report), sorted(report)
    assert all(o["at_s"] >= 0 for o in report["observations"])

def test_corrupt_jargon_lexicon_is_one_line(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    (models / "jargon_lexicon.tsv").write_bytes(np.random.default_rng(3).bytes(3000))
    result = run_cli("behaviours", "classify", env={"EDGE_AGENT_MODELS_DIR": str(models)})
    assert_one_line_error(result, "jargon_lexicon.tsv", "restore")


def test_voiceprint_with_an_impossible_number_is_one_line(tmp_path: Path, jfk_path: Path) -> None:
    bad = tmp_path / "vp.json"
    bad.write_text(json.dumps({"embedding": [0.1] * 256, "speech_seconds": 12.0, "consistency": 0.9})[:-1] + ', "n_segments": 1e400}')
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--voiceprint", str(bad)), "voiceprint", "enrol again")


def test_voiceprint_names_its_speaker_model_and_another_models_is_refused(tmp_path: Path, jfk_path: Path) -> None:
    """A voiceprint is only comparable with embeddings of the encoder that made it: after a model update, an old
    voiceprint would score every voice wrongly (and confidently). It says which model made it; another's is refused."""
    from edge_agent.models import manifest_entry

    made = run_cli("enroll", str(jfk_path))
    assert made.returncode == 0, made.stderr
    voiceprint = json.loads(made.stdout)
    assert voiceprint["model"] == "speaker_ge2e.onnx@" + manifest_entry("speaker_ge2e.onnx").sha256[:16]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(voiceprint))
    assert run_cli("transcribe", str(jfk_path), "--jsonl", "--voiceprint", str(good)).returncode == 0
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**voiceprint, "model": "speaker_ge2e.onnx@0123456789abcdef"}))
    assert_one_line_error(run_cli("transcribe", str(jfk_path), "--voiceprint", str(other)),
                          "another speaker model", "edge-agent enroll")
    assert_one_line_error(run_cli("analyze", str(jfk_path), "--voiceprint", str(other)), "another speaker model")


def test_enrolling_from_a_long_recording_is_refused_before_it_is_read(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    """`enroll` read the whole file into memory (an hour: 0.5 GB; a long 48 kHz stereo recording: gigabytes, on a
    2-core room PC) although it uses at most 60 s of speech; and a whole-visit recording holds the patient's voice
    too, so its voiceprint would not be the clinician's. A recording far longer than an enrolment is refused."""
    long = tmp_path / "whole_visit.wav"
    sf.write(str(long), np.tile(jfk_16k, 20), 16000, subtype="PCM_16")  # 220 s of speech
    assert_one_line_error(run_cli("enroll", str(long)), "220 s long", "10–30 s")


def test_doctor_models_check_names_asr_device_cuda_without_a_gpu() -> None:
    """IT set asr.device = "cuda" on a box without CUDA: serve refuses it, so doctor's models line must not say ok
    (it did, while the cpu line said "fix the models check first")."""
    import ctranslate2

    from edge_agent.site import doctor

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has CUDA")
    check = doctor.check_models(asr_device="cuda")
    assert not check.ok and "asr.device" in check.message and "no CUDA device" in check.message
    assert "asr.device" in check.fix and "reinstall" not in check.fix
    assert doctor.check_models(asr_device="cpu").ok


def _corrupt_flac(tmp_path: Path, audio: np.ndarray) -> Path:
    whole = tmp_path / "whole.flac"
    sf.write(str(whole), audio, 16000)
    data = bytearray(whole.read_bytes())
    for i in range(len(data) // 2, len(data), 400):  # damage the second half: the first still decodes
        data[i] ^= 0xFF
    bad = tmp_path / "damaged.flac"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("command", [("transcribe", "--jsonl", "--no-speakers"), ("enroll",)])
def test_corrupt_flac_says_what_to_do(tmp_path: Path, jfk_16k: np.ndarray, command: tuple[str, ...]) -> None:
    """It said only "is corrupt after 5.1 s (Error : flac decoder lost sync.)": what is wrong, not what to do."""
    bad = _corrupt_flac(tmp_path, np.tile(jfk_16k, 2))
    result = run_cli(command[0], str(bad), *command[1:])
    assert_one_line_error(result, str(bad), "again")


def test_empty_file_is_called_empty(tmp_path: Path) -> None:
    empty = tmp_path / "visit.wav"
    empty.write_bytes(b"")
    assert_one_line_error(run_cli("transcribe", str(empty)), "is empty (0 bytes)")


@pytest.mark.parametrize("ack", ["Right?", "Okay?", "OK?", "Yeah?", "Alright?", "Mm-hm?"])
def test_an_acknowledgement_with_a_question_mark_does_not_start_a_stack(ack: str) -> None:
    """Whisper writes the clinician's "Right?" after an answer with a question mark. On the bundled demo visit
    it made two of three "stacks" and the coaching line 'Try: Ask "Right?" on its own and wait for the whole answer'.
    It is an acknowledgement (labelling guide 4.1: not a question); real questions around it still stack."""
    from edge_agent.behaviours.events import detect_events
    from edge_agent.transcript import Utterance

    utts = [
        Utterance(0.0, 3.0, "How long has this been going on for?", speaker="clinician"),
        Utterance(3.5, 8.0, "About two weeks now, maybe a bit more.", speaker="patient"),
        Utterance(8.5, 13.0, f"{ack} And where exactly is the pain?", speaker="clinician"),
        Utterance(13.5, 15.0, "Just here on the left.", speaker="patient"),
        Utterance(15.5, 20.0, f"{ack} Does it spread anywhere? Is it worse at night?", speaker="clinician"),
        Utterance(20.5, 22.0, "No, not really.", speaker="patient"),
    ]
    stacks = detect_events(utts).stacked_questions
    assert [s.questions for s in stacks] == [["Does it spread anywhere?", "Is it worse at night?"]]


def test_a_file_name_that_is_not_utf8_is_read(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    """A recording copied from a Latin-1 USB stick ("visit_é.wav" as the byte e9): transcribe, enroll and analyze
    ended in "internal error (UnicodeEncodeError ...)" before the file was even opened."""
    import os
    import subprocess
    import sys

    name = os.fsdecode(b"visit_\xe9.wav")
    sf.write(str(tmp_path / "plain.wav"), jfk_16k, 16000, subtype="PCM_16")
    (tmp_path / "plain.wav").rename(tmp_path / name)
    result = subprocess.run([sys.executable, "-m", "edge_agent.cli", "transcribe", "--jsonl", "--no-speakers", name],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "fellow Americans" in result.stdout


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_textgrid_saved_by_praat_as_utf16_is_read(tmp_path: Path) -> None:
    """Praat saves a TextGrid as UTF-16 as soon as its text has one non-ASCII character; it was refused as
    'not a Praat TextGrid'."""
    from edge_agent.behaviours.textgrid import read_textgrid

    d = primock_dir() / "day1_consultation03_doctor.TextGrid"
    wide = tmp_path / "doctor.TextGrid"
    wide.write_text(d.read_text(encoding="utf-8"), encoding="utf-16")
    assert read_textgrid(wide) == read_textgrid(d)


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_truncated_textgrid_is_refused_not_measured(tmp_path: Path) -> None:
    """A TextGrid cut short (a failed copy) was read silently: the metrics of a third of the visit, exit 0."""
    d = primock_dir() / "day1_consultation03_doctor.TextGrid"
    p = primock_dir() / "day1_consultation03_patient.TextGrid"
    cut = tmp_path / "doctor.TextGrid"
    cut.write_bytes(d.read_bytes()[: len(d.read_bytes()) // 3])
    result = run_cli("analyze", "--textgrid", str(cut), "--textgrid", str(p), "--jsonl")
    assert_one_line_error(result, str(cut), "truncated")
    assert result.stdout == ""


@pytest.mark.parametrize("args", [("transcribe", "{jfk}", "--jsonl", "--no-speakers"), ("enroll", "{jfk}"),
                                  ("behaviours", "classify")])
def test_output_to_a_full_disk_is_one_line_not_an_internal_error(jfk_path: Path, args: tuple[str, ...]) -> None:
    """`> result.jsonl` on a full disk: 'internal error (OSError: [Errno 28] ...)' (transcribe: a pipeline-worker
    failure and two lines). Nothing was written, so the exit is non-zero and the line says why."""
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "edge_agent.cli", *(a.format(jfk=jfk_path) for a in args)],
                                stdout=full, stderr=subprocess.PIPE, input='{"text": "How are you?"}\n', text=True, timeout=300)
    assert result.returncode != 0
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "output" in lines[0], result.stderr


@pytest.mark.parametrize("placeholder", [0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF])
def test_a_wav_written_to_a_pipe_is_not_called_truncated(tmp_path: Path, jfk_16k: np.ndarray, placeholder: int) -> None:
    """`sox ... -t wav - | ...` or `arecord | ...` cannot seek back to write the length, so the header keeps a
    placeholder (sox 0x7ffff000, arecord 0x7fffffff, others 0xffffffff). The complete file was called 'truncated:
    its header promises 67108.7 s ... copy the file again', exit 2."""
    import struct

    whole = tmp_path / "whole.wav"
    sf.write(str(whole), jfk_16k, 16000, subtype="PCM_16")
    data = bytearray(whole.read_bytes())
    at = data.find(b"data")
    struct.pack_into("<I", data, at + 4, placeholder)
    struct.pack_into("<I", data, 4, placeholder if placeholder == 0xFFFFFFFF else placeholder + 36)
    piped = tmp_path / "piped.wav"
    piped.write_bytes(bytes(data))
    result = run_cli("transcribe", str(piped), "--jsonl", "--no-speakers")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = _json_lines(result.stdout)
    assert any("fellow Americans" in str(r.get("text")) for r in rows if r["type"] == "final")


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_classify_skips_a_line_that_is_not_utf8_and_goes_on(locale: str) -> None:
    """One line of Latin-1 text (or a JSON lone surrogate) in `behaviours classify` ended the whole stream with
    'internal error (TypeError: TextInputSequence must be str)' (or a UnicodeDecodeError under a UTF-8 locale):
    every other line was lost. Issue 5: a clear per-line error, the rest of the stream still processed."""
    import subprocess
    import sys

    stream = b'{"text": "caf\xe9 ok?"}\n{"text": "How are you \\ud800 today?"}\n{"text": "How are you feeling today?"}\n'
    result = subprocess.run([sys.executable, "-m", "edge_agent.cli", "behaviours", "classify"], input=stream,
                            capture_output=True, timeout=300, env={**__import__("os").environ, "LC_ALL": locale, "LANG": locale})
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1 and "internal error" not in err, err
    rows = [json.loads(x) for x in result.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["How are you feeling today?"]
    assert [ln.split(":")[0] for ln in err.splitlines()] == ["line 1", "line 2"]


def test_jsonl_of_a_recording_with_one_short_utterance_ends_with_its_summary(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    """One short utterance gives the speaker model one voice: its 'uncertain' flag came back as numpy's bool, and
    the summary line failed with 'internal error (TypeError: Object of type bool is not JSON serializable)', exit 70."""
    clip = tmp_path / "one_line.wav"
    sf.write(str(clip), jfk_16k[int(7.9 * 16000):], 16000, subtype="PCM_16")  # "Ask what you can do for your country."
    result = run_cli("transcribe", str(clip), "--jsonl")
    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert rows[-1]["type"] == "summary" and rows[-1]["speakers_uncertain"] is False


def test_bench_coaching_without_the_shared_data_says_where_it_looks(tmp_path: Path) -> None:
    """`edge-agent bench coaching` on a clone without ../shared said 'cannot read TextGrid ...: No such file or
    directory; check the path'; the other benches name EDGE_AGENT_SHARED."""
    result = run_cli("bench", "coaching", env={"EDGE_AGENT_SHARED": str(tmp_path / "no-shared")})
    assert_one_line_error(result, "PriMock57 transcripts not found", "EDGE_AGENT_SHARED")


def test_analyze_audio_jsonl_gives_the_same_lines_as_the_textgrid_path() -> None:
    """`analyze --help` says --jsonl gives 'metrics and labelled utterances as JSON lines'; for an audio FILE it gave
    the report object of --json instead, so a program could not read live-pipeline output the way it reads the
    TextGrid path (issue 5: the same code on both)."""
    demo = REPO / "edge_agent" / "data" / "demo_conversation.flac"
    result = run_cli("analyze", str(demo), "--jsonl", "--voiceprint", str(REPO / "edge_agent" / "data" / "demo_enrol.flac"))
    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert rows[0]["type"] == "metrics" and 0 < rows[0]["talk_share"] < 1  # type: ignore[operator]
    assert rows[-1]["type"] == "feedback" and rows[-1]["observations"]
    utts = [r for r in rows if r["type"] == "utterance"]
    assert utts and all(r["speaker"] == "clinician" and r["text"] for r in utts)


def test_enroll_takes_the_microphone_the_way_transcribe_does(tmp_path: Path) -> None:
    """`transcribe --mic DEVICE` works; `enroll --mic DEVICE` said 'give either an audio FILE or --mic to enrol'."""
    result = run_cli("enroll", "--mic", "no-such-mic", "--seconds", "1", env={"HOME": str(tmp_path)})
    assert_one_line_error(result, "microphone 'no-such-mic' not found")
