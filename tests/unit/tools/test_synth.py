"""Synthetic conversations (espeak-ng at PriMock57 times) and the shipped demo/bench audio.

Real espeak-ng, real PriMock57 transcripts, real files: no mocks. The excerpt
is synthesised once per module (~0.3 s) and shared by the checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.errors import EdgeAgentError
from tests.paths import REPO_ROOT
from tools.corpus.primock import load_consultation
from tools.corpus.synth import (
    MIX_PEAK,
    SAMPLE_RATE,
    SynthConversation,
    available_voices,
    choose_voices,
    speak,
    synthesise,
    tidy_text,
)

REPO = REPO_ROOT
DEMO = REPO / "edge_agent" / "data" / "demo_conversation"
BENCH = REPO / "tools" / "bench" / "data" / "bench_conversation"

CID = "day2_consultation03"
START, LENGTH = 27.0, 25.0  # "are you in a private place" .. into the patient's opening statement

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def excerpt(shared: Path) -> SynthConversation:
    return synthesise(CID, start_s=START, max_duration_s=LENGTH, voices={"doctor": "en-gb+f3", "patient": "en-us+m3"})


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0


def test_speak_returns_trimmed_16k_float32() -> None:
    clip = speak("How can I help you today?", "en-us+m3")
    assert clip.dtype == np.float32 and clip.ndim == 1
    assert 0.8 < len(clip) / SAMPLE_RATE < 3.0
    # Trimmed: speech right at both ends, no espeak lead-in/tail silence.
    assert np.abs(clip[:160]).max() > 1e-3 and np.abs(clip[-160:]).max() > 1e-3
    faster = speak("How can I help you today?", "en-us+m3", rate=260)
    assert len(faster) < 0.8 * len(clip)


def test_speak_text_with_leading_dash_is_spoken_not_parsed_as_option() -> None:
    assert len(speak("-v is not an option here", "en-gb+f3")) > SAMPLE_RATE // 2


def test_unknown_voice_is_a_clear_error() -> None:
    with pytest.raises(EdgeAgentError, match="no-such-voice"):
        speak("hello", "no-such-voice")


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EdgeAgentError, match="apt-get install espeak-ng"):
        speak("hello", "en-us+m3")


def test_voices_exist_and_pairs_differ_across_conversations() -> None:
    voices = available_voices()
    assert {"en-us+m3", "en-gb+f3"} <= set(voices)
    pairs = {tuple(choose_voices(cid).values()) for cid in ("day1_consultation01", "day2_consultation03", "day3_consultation05", "day4_consultation07")}
    assert len(pairs) >= 2
    for doctor, patient in pairs:
        assert doctor != patient
    assert choose_voices("day2_consultation03") == choose_voices("day2_consultation03")


def test_tidy_text_closes_stripped_tag_gaps() -> None:
    assert tidy_text("Hi. . Nice to meet you, .") == "Hi. Nice to meet you"
    assert tidy_text("um...yeah, my , face") == "um. yeah, my, face"


def test_excerpt_duration_format_and_level(excerpt: SynthConversation) -> None:
    assert excerpt.sample_rate == SAMPLE_RATE
    assert excerpt.audio.dtype == np.float32 and excerpt.audio.ndim == 1
    assert len(excerpt.audio) == int(LENGTH * SAMPLE_RATE)
    peak = float(np.abs(excerpt.audio).max())
    assert 0.5 < peak <= MIX_PEAK + 1e-6  # normalised, never clipped


def test_excerpt_has_both_roles_at_recorded_starts(excerpt: SynthConversation) -> None:
    assert {t.role for t in excerpt.turns} == {"doctor", "patient"}
    assert excerpt.voices == {"doctor": "en-gb+f3", "patient": "en-us+m3"}
    source = [t for t in load_consultation(CID).turns if START <= t.start and t.end <= START + LENGTH - 1.0]
    placed = {(t.role, round(t.source_start, 3)): t for t in excerpt.turns}
    for turn in source:  # every recorded turn well inside the window is present ...
        got = placed[(turn.role, round(turn.start, 3))]
        # ... starting at its recorded time (up to rounding to one sample) ...
        assert abs(got.t0 - (turn.start - START)) < 0.01 + got.shift_s
        assert got.shift_s < 0.5
        # ... and lasting roughly its recorded length (rate fitting).
        assert got.t1 - got.t0 < (turn.end - turn.start) * 1.1 + 0.3
    for t in excerpt.turns:
        assert 0 <= t.t0 < t.t1 <= LENGTH


def test_a_role_never_overlaps_itself(excerpt: SynthConversation) -> None:
    for role in ("doctor", "patient"):
        own = [t for t in excerpt.turns if t.role == role]
        for a, b in zip(own, own[1:]):
            assert b.t0 >= a.t1


def test_speech_inside_turns_and_silence_in_gaps(excerpt: SynthConversation) -> None:
    audio, sr = excerpt.audio, excerpt.sample_rate
    for t in excerpt.turns:
        assert _rms(audio[int(t.t0 * sr) : int(t.t1 * sr)]) > 0.02, t.text
    covered = np.zeros(len(audio), bool)
    for t in excerpt.turns:
        covered[int(t.t0 * sr) : int(t.t1 * sr) + 1] = True
    gaps = audio[~covered]
    assert len(gaps) > sr  # the excerpt has real pauses
    assert float(np.abs(gaps).max()) < 1e-3


def test_whole_consultation_keeps_order_and_no_self_overlap() -> None:
    conv = synthesise("day3_consultation06")  # the shortest consultation (~4 min)
    assert conv.duration > 200
    assert [t.t0 for t in conv.turns] == sorted(t.t0 for t in conv.turns)
    for role in ("doctor", "patient"):
        own = [t for t in conv.turns if t.role == role]
        assert all(b.t0 >= a.t1 for a, b in zip(own, own[1:]))


def test_empty_window_is_a_clear_error() -> None:
    with pytest.raises(EdgeAgentError, match="widen the window"):
        synthesise(CID, start_s=10_000, max_duration_s=5)


def _check_shipped(stem: Path, key: str, roles: set[str], min_s: float, max_s: float, max_bytes: int) -> tuple[np.ndarray, list[dict[str, object]]]:
    flac, ref_path = stem.with_suffix(".flac"), stem.with_suffix(".json")
    assert flac.is_file() and ref_path.is_file()
    assert flac.stat().st_size < max_bytes
    info = sf.info(str(flac))
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    audio, _ = sf.read(str(flac), dtype="float32")
    duration = len(audio) / 16000
    assert min_s <= duration <= max_s
    ref = json.loads(ref_path.read_text(encoding="utf-8"))
    assert ref["sample_rate"] == 16000 and abs(ref["duration_s"] - duration) < 0.01
    items = ref[key]
    assert items
    for item in items:
        assert item["role"] in roles and str(item["text"]).strip()
        assert 0 <= item["t0"] < item["t1"] <= duration
        seg = audio[int(item["t0"] * 16000) : int(item["t1"] * 16000)]
        assert _rms(seg) > 0.01, item
    return audio, items


def test_shipped_demo_decodes_and_matches_reference() -> None:
    _, turns = _check_shipped(DEMO, "turns", {"doctor", "patient"}, 45, 75, 1_500_000)
    assert {t["role"] for t in turns} == {"doctor", "patient"}
    assert turns[0]["role"] == "doctor" and "help you" in str(turns[0]["text"])
    assert any("anything else" in str(t["text"]) for t in turns if t["role"] == "doctor")
    assert (DEMO.parent / "CREDITS.md").read_text(encoding="utf-8").count("CC BY 4.0") >= 1


def test_shipped_bench_decodes_and_matches_reference() -> None:
    audio, utts = _check_shipped(BENCH, "utterances", {"doctor", "patient", "other"}, 180, 300, 5_000_000)
    assert {u["role"] for u in utts} == {"doctor", "patient", "other"}
    assert any("fellow Americans" in str(u["text"]) for u in utts)
    # Utterances are sequential with VAD-friendly pauses of near-silence between them.
    for a, b in zip(utts, utts[1:]):
        gap = float(b["t0"]) - float(a["t1"])  # type: ignore[arg-type]
        assert 0.79 <= gap <= 2.01
        # 10 ms in from each edge: the JSON times are rounded to 1 ms.
        mid = audio[int(float(a["t1"]) * 16000) + 160 : int(float(b["t0"]) * 16000) - 160]  # type: ignore[arg-type]
        assert float(np.abs(mid).max(initial=0.0)) < 1e-3
