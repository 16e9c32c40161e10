#!/usr/bin/env python3
"""Build tools/bench/data/bench_conversation.{flac,json}: a multi-minute, multi-utterance test recording.

Real human speech from the faster-whisper test clips (jfk.flac, both channels of
stereo_diarization.wav; MIT) is interleaved with PriMock57 consultation lines
(CC BY 4.0) spoken by espeak-ng, one voice per role. Utterances never overlap
and are separated by 0.8-2.0 s of silence, so a VAD should cut one segment per
utterance (jfk.flac has ~1 s pauses of its own and may split in three).

Deterministic: fixed line selection, a seeded pause generator, espeak-ng's
deterministic synthesis, soxr, and libsndfile's FLAC encoder. Rebuild with

    python -m tools.corpus.make_bench_recording            # writes tools/bench/data/
    python -m tools.corpus.make_bench_recording --check    # rebuild in memory, compare with the committed JSON
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from edge_agent.errors import EdgeAgentError
from tools.corpus.primock import load_consultation, shared_dir
from tools.corpus.synth import SAMPLE_RATE, speak, tidy_text

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tools" / "bench" / "data"

CONSULTATION = "day1_consultation01"  # not the demo's consultation, so the two test sets differ
VOICES = {"doctor": "en-us+m3", "patient": "en-gb+f3"}  # the pair whose tiny.en WER docs/architecture.md records
RATE = 165
TARGET_S = 255.0  # stop adding lines once the recording passes ~4 minutes
MAX_LINE_S = 12.0  # longer lines would hit the VAD's max-segment split and blur per-utterance WER
MIN_WORDS = 3  # "OK." / "Yeah." alone are too short for a stable VAD segment
# Natural pauses, but above ~0.65 s: the project VAD closes a segment after
# 450 ms of silence plus pre-roll, so 0.4-0.6 s gaps merged utterances when checked.
PAUSE_S = (0.8, 2.0)
SEED = 57
PEAK = 0.7  # per-utterance peak (-3 dBFS): real and synthetic speech at similar level, no clipping

JFK_TEXT = "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country."
LEFT_TEXT = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
RIGHT_TEXT = "The horizon seems extremely distant."

# (insert before this PriMock line index, clip key): real speech spread through the recording.
REAL_AT = ((2, "jfk"), (7, "fw_left"), (12, "fw_right"), (18, "jfk"), (23, "fw_right"), (27, "fw_left"))


@dataclass(frozen=True)
class Utterance:
    t0: float
    t1: float
    role: str  # "doctor" | "patient" (PriMock57 lines) | "other" (real recorded speakers)
    speaker: str  # espeak-ng voice or the real speaker's clip name
    source: str
    text: str


def _trim_real(audio: np.ndarray, margin_s: float = 0.15) -> np.ndarray:
    """Cut leading/trailing background of a real recording, keeping a small margin for soft onsets."""
    win = SAMPLE_RATE // 50  # 20 ms frames
    n = len(audio) // win
    rms = np.sqrt(np.mean(audio[: n * win].reshape(n, win) ** 2, axis=1)) + 1e-9
    db = 20 * np.log10(rms)
    # Above both "28 dB under the loudest frame" and "6 dB over the noise floor":
    # the first alone lets jfk's room noise through, the second alone clips quiet words.
    threshold = max(db.max() - 28.0, np.percentile(db, 10) + 6.0)
    loud = np.flatnonzero(db > threshold)
    if not len(loud):
        raise EdgeAgentError("a real clip has no speech above its noise floor")
    pad = int(margin_s * SAMPLE_RATE)
    return audio[max(0, loud[0] * win - pad) : min(len(audio), (loud[-1] + 1) * win + pad)]


def _load_16k(path: Path, channel: int | None) -> np.ndarray:
    if not path.is_file():
        raise EdgeAgentError(f"{path} not found; set EDGE_AGENT_SHARED to the shared folder")
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    # jfk is the same take on both channels: average to mono; stereo_diarization has one speaker per channel.
    mono = audio.mean(axis=1) if channel is None else audio[:, channel]
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def real_clips() -> dict[str, tuple[np.ndarray, str, str]]:
    audio_dir = shared_dir() / "audio"
    return {
        "jfk": (_trim_real(_load_16k(audio_dir / "jfk.flac", None)), "faster-whisper tests/data/jfk.flac", JFK_TEXT),
        "fw_left": (
            _trim_real(_load_16k(audio_dir / "stereo_diarization.wav", 0)),
            "faster-whisper tests/data/stereo_diarization.wav (left)",
            LEFT_TEXT,
        ),
        "fw_right": (
            _trim_real(_load_16k(audio_dir / "stereo_diarization.wav", 1)),
            "faster-whisper tests/data/stereo_diarization.wav (right)",
            RIGHT_TEXT,
        ),
    }


def primock_lines() -> list[tuple[str, str, np.ndarray]]:
    """(role, text, speech) for the consultation's lines in order, filtered to VAD-friendly ones."""
    lines = []
    for turn in load_consultation(CONSULTATION).turns:
        text = tidy_text(turn.text)
        if len(text.split()) < MIN_WORDS:
            continue
        clip = speak(text, VOICES[turn.role], RATE)
        if 0 < len(clip) <= MAX_LINE_S * SAMPLE_RATE:
            lines.append((turn.role, text, clip))
    return lines


def build() -> tuple[np.ndarray, list[Utterance]]:
    rng = random.Random(SEED)
    real = real_clips()
    inserts = dict(REAL_AT)
    parts: list[np.ndarray] = [np.zeros(SAMPLE_RATE // 2, np.float32)]  # 0.5 s lead-in before the first word
    pos = len(parts[0])
    utts: list[Utterance] = []

    def add(clip: np.ndarray, role: str, speaker: str, source: str, text: str) -> None:
        nonlocal pos
        peak = float(np.max(np.abs(clip))) or 1.0
        parts.append((clip * (PEAK / peak)).astype(np.float32))
        utts.append(Utterance(round(pos / SAMPLE_RATE, 3), round((pos + len(clip)) / SAMPLE_RATE, 3), role, speaker, source, text))
        pos += len(clip)
        gap = np.zeros(int(round(rng.uniform(*PAUSE_S) * SAMPLE_RATE)), np.float32)
        parts.append(gap)
        pos += len(gap)

    for i, (role, text, clip) in enumerate(primock_lines()):
        if pos / SAMPLE_RATE >= TARGET_S:
            break
        if i in inserts:
            key = inserts.pop(i)
            audio, source, ref = real[key]
            add(audio, "other", key, source, ref)
        add(clip, role, VOICES[role], f"PriMock57 {CONSULTATION} (espeak-ng)", text)
    return np.concatenate(parts), utts


def reference(audio: np.ndarray, utts: list[Utterance]) -> dict[str, object]:
    return {
        "description": "Real speech (faster-whisper test clips, MIT) interleaved with PriMock57 lines voiced by espeak-ng; "
        "no overlaps, 0.8-2.0 s pauses. Roles: doctor/patient = PriMock57 roles, other = real recorded speakers.",
        "sample_rate": SAMPLE_RATE,
        "duration_s": round(len(audio) / SAMPLE_RATE, 3),
        "voices": VOICES,
        "made_by": "python -m tools.corpus.make_bench_recording",
        "utterances": [asdict(u) for u in utts],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the benchmark recording in tools/bench/data/.")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="rebuild in memory and compare with the committed reference JSON")
    args = ap.parse_args(argv)
    try:
        audio, utts = build()
    except EdgeAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    ref = reference(audio, utts)
    json_path = args.out_dir / "bench_conversation.json"
    if args.check:
        same = json.loads(json_path.read_text(encoding="utf-8")) == json.loads(json.dumps(ref))
        print("reference matches" if same else f"reference differs from {json_path}")
        return 0 if same else 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    flac = args.out_dir / "bench_conversation.flac"
    sf.write(str(flac), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    json_path.write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    roles = {r: sum(1 for u in utts if u.role == r) for r in ("doctor", "patient", "other")}
    print(f"{flac}: {len(audio) / SAMPLE_RATE:.1f} s, {len(utts)} utterances {roles}, {flac.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
