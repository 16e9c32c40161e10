"""The newcomer's path (demo) and the clinician-owned voiceprint through the pipeline."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np

from edge_agent.asr.events import FinalTranscript
from edge_agent.audio.file_source import FileSource
from edge_agent.data import bundled as demo_audio_path
from tests.cli_runner import run_cli


def test_demo_runs_the_whole_story_over_mutual_tls() -> None:
    """CA -> device on loopback -> phone enrols and starts -> real pipeline -> stop -> decrypted report."""
    result = run_cli("demo", "--fast", "--jsonl")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    finals = [r for r in records if r["type"] == "final"]
    assert len(finals) >= 5
    assert {"clinician", "patient"} <= {r["speaker"] for r in finals}
    assert "how can I help you" in " ".join(r["text"] for r in finals)
    report = records[-1]
    assert report["type"] == "report"
    assert "Timing:" in report["text"] and "What you did" in report["text"]
    # the clinician sees exactly what the visit added to the population signal
    assert "population signal (de-identified)" in report["text"] and "service line : general-practice" in report["text"]
    # quotes are off by default: the report is phrased without the clinician's words, not written with
    # them and blanked by the sealing backstop (which leaves a bare “…” where a quote stood)
    assert "\u201c\u2026\u201d" not in report["text"], report["text"]
    clinician_words = " ".join(r["text"] for r in finals if r["speaker"] == "clinician")
    for line in report["text"].splitlines():
        if "You said:" in line:
            quote = line.split('"')[1].rstrip(" …")
            assert quote.split()[0] in clinician_words


def test_enroll_prints_voiceprint_and_writes_nothing(tmp_path: Path) -> None:
    before = set(tmp_path.rglob("*"))
    result = run_cli("enroll", str(demo_audio_path("demo_enrol.flac")), env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    voiceprint = json.loads(result.stdout)
    assert len(voiceprint["embedding"]) == 256 and voiceprint["speech_seconds"] >= 10
    assert set(tmp_path.rglob("*")) == before, "enrolment must not write files"


def test_enroll_too_short_is_one_line(shared: Path, tmp_path: Path) -> None:
    import soundfile as sf

    audio, rate = sf.read(str(shared / "audio" / "stereo_diarization.wav"), dtype="float32")
    left = tmp_path / "left.wav"
    sf.write(str(left), audio[:, 0], rate)
    result = run_cli("enroll", str(left))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "of speech (need at least" in result.stderr.strip().splitlines()[-1]


def test_pipeline_holds_no_voiceprint_after_the_run() -> None:
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession
    from edge_agent.speakers.enrol import voiceprint_from

    voiceprint = voiceprint_from(path=demo_audio_path("demo_enrol.flac"))
    fingerprint = voiceprint.embedding.copy()
    session = TranscriptionSession.load(PipelineConfig(), speakers=True)
    events: list = []
    _, clean = session.run(FileSource(demo_audio_path()), events.append, voiceprint)
    assert clean
    assert any(isinstance(e, FinalTranscript) and e.utterance.speaker == "clinician" for e in events)
    del events
    gc.collect()
    mine = {id(voiceprint.embedding), id(fingerprint)}
    leftovers = [a for a in live_arrays() if id(a) not in mine and matches(a, fingerprint)]
    assert not leftovers, "a copy of the clinician's voiceprint outlived the run"


def live_arrays() -> list[np.ndarray]:
    """Every numpy array reachable from a GC-tracked container (arrays themselves are not tracked)."""
    found: dict[int, np.ndarray] = {}
    for obj in gc.get_objects():
        for ref in gc.get_referents(obj):
            while isinstance(ref, np.ndarray) and id(ref) not in found:
                found[id(ref)] = ref
                ref = ref.base
    return list(found.values())


def matches(array: np.ndarray, fingerprint: np.ndarray) -> bool:
    flat = array.reshape(-1) if array.size == fingerprint.size else None
    return flat is not None and array.dtype.kind == "f" and np.allclose(flat, fingerprint, atol=1e-6)


def test_leak_detector_finds_a_kept_copy() -> None:
    fingerprint = np.linspace(0.1, 0.9, 256, dtype=np.float32)

    class Holder:
        pass

    holder = Holder()
    holder.kept = fingerprint.copy()  # type: ignore[attr-defined]
    assert any(id(a) != id(fingerprint) and matches(a, fingerprint) for a in live_arrays())
    del holder
