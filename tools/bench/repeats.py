"""Invented repeats at the end of finals, with and without the guard (docs/realvoice.md 5.8).

    PYTHONPATH=. python -m tools.bench.repeats [--voices DIR] [--extra FILE ...] [--limit N] [--jsonl OUT]
    PYTHONPATH=. python -m tools.bench.repeats --doubled 0.3 [--voices DIR] [--limit N]

Every FLAC under ``--voices`` (default ``$EDGE_AGENT_SHARED/data/librispeech-voices``,
sorted by path) and each ``--extra`` file is cut into segments by the pipeline's
VAD (``VadSegmenter`` with the default ``VadConfig``, so at most ``max_segment_s``
long), and each speech segment is decoded as ``SegmentDecoder.on_closed`` decodes
a closed segment's final (``WhisperCT2`` with the default ``AsrConfig``, beam 2,
the previous finals' last 64 tokens of the same recording as context), twice:

* **unguarded**: ``WhisperCT2._drop_unvoiced_repeat`` replaced by a no-op;
* **guarded**: the wrapper as the device runs it.

For the unguarded finals it reports every trailing repeat of >= 3 words (the
last words equal to the words just before them, case and punctuation aside)
with the mean aligned duration of the copy's words: under
``guards.UNVOICED_S_PER_WORD`` it is **invented**, else a **voiced** repeat.
For the guarded finals: repeats removed, words removed, and whether each
guarded final is its unguarded final minus exactly the invented copy (any
other difference is counted as ``other_changes``: the guard must not touch
anything else). It also counts every cut ``guards.truncate_repetition`` makes
in these finals (a decode's tokens, or a final's tokens with its continuation)
and prints what it cut.

``--doubled GAP_S`` measures real spoken repeats instead: every speech segment
short enough is decoded once alone and once said twice (its own audio, GAP_S
seconds of silence between), and the second copy must stay (neither guard may
take it; ``truncate_repetition`` cuts a second copy whose tokens are identical).

Deterministic: CTranslate2 on one thread, greedy VAD on file input; the same
command prints the same figures. Partials are not decoded (the guard is for
finals only), nor sentence commits inside long segments (their finals decode
shorter windows the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

import edge_agent  # noqa: F401  (first: pins BLAS to one thread before numpy loads, as the CLI does)
from edge_agent.asr import guards, whisper_ct2
from edge_agent.asr.backend import AsrConfig, Decoded
from edge_agent.asr.guards import UNVOICED_S_PER_WORD, trailing_repeat_lengths
from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio.featurize import StreamFeaturizer
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.vad import SegmentClosed, VadConfig, VadSegmenter
from tools.realvoice.tap import Tap

CONTEXT_TOKENS = 64  # DecoderConfig.context_tokens


def default_voices() -> Path:
    return Path(os.environ.get("EDGE_AGENT_SHARED", "../shared")) / "data" / "librispeech-voices"


def speech_segments(path: Path, cfg: VadConfig) -> list[tuple[float, np.ndarray]]:
    """(start s, audio copy) of each speech segment the pipeline's VAD closes on ``path``."""
    frames = BufferPool("frames", 256, cfg.frame_samples, np.int16)
    vad = VadSegmenter(cfg, StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity))
    tap = Tap()
    out: list[tuple[float, np.ndarray]] = []

    def take(events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, SegmentClosed) and ev.is_speech:
                out.append((ev.segment.t0, tap.audio(ev.segment)))

    for frame in tap.frames(FileSource(path).frames(frames)):
        take(vad.process(frame))
    take(vad.flush())
    return out


class Cuts:
    """Counts the cuts guards.truncate_repetition makes (wrapped where whisper_ct2 calls it)."""

    def __init__(self) -> None:
        self.log: list[tuple[list[int], list[int]]] = []
        self.active = False
        self._original = guards.truncate_repetition

    def __call__(self, tokens: list[int]) -> list[int]:
        out = self._original(tokens)
        if self.active and len(out) < len(tokens):
            self.log.append((list(tokens), list(out)))
        return out


def trailing_repeats(engine: WhisperCT2, decoded: Decoded) -> list[dict[str, Any]]:
    """Each trailing repeat of the decode's words, with its copy's mean aligned word duration."""
    if not decoded.text or not trailing_repeat_lengths(decoded.text.split()):
        return []
    words = engine.align_words(decoded)
    out = []
    for k in trailing_repeat_lengths([w.text for w in words]):
        copy = words[len(words) - k :]
        mean = sum(w.end - w.start for w in copy) / k
        out.append({"k": k, "copy": " ".join(w.text for w in copy), "mean_s_per_word": round(mean, 3),
                    "copy_start_s": round(copy[0].start, 2), "window_s": round(decoded.n_samples / 16000, 2),
                    "invented": mean < UNVOICED_S_PER_WORD})
    return out


def cut_timing(engine: WhisperCT2, decoded: Decoded, full: list[int], kept: list[int]) -> dict[str, Any]:
    """Where the alignment of the uncut tokens over the whole window puts the words that were cut
    (a cut inside a continuation decode is aligned over the whole window too: approximate)."""
    if decoded.encoder_output is None:
        return {}
    words = engine.align_words(Decoded(engine.text_of(full), full, 0.0, 0.0, decoded.n_samples, decoded.encoder_output))
    used, cut = 0, []
    for w in words:  # a word that straddles the cut counts as cut
        used += len(w.tokens)
        if used > len(kept):
            cut.append(w)
    if not cut:
        return {}
    return {"cut_mean_s_per_word": round(sum(w.end - w.start for w in cut) / len(cut), 3),
            "cut_from_s": round(cut[0].start, 2), "cut_to_s": round(cut[-1].end, 2)}


def run(paths: list[Path], jsonl: Path | None) -> dict[str, Any]:
    cfg = VadConfig()
    engine = WhisperCT2(AsrConfig(), cfg.segment_capacity)
    cuts = Cuts()
    whisper_ct2.truncate_repetition = cuts  # type: ignore[assignment]  # measurement only
    guarded_drop = engine._drop_unvoiced_repeat
    totals = {"recordings": 0, "segments": 0, "audio_s": 0.0, "repeats_found": 0, "invented_found": 0,
              "voiced_repeats_kept": 0, "invented_removed": 0, "words_removed": 0, "words_removed_not_invented_copy": 0,
              "other_changes": 0, "changed_by_context": 0,
              "truncate_repetition_cuts": 0}
    out = jsonl.open("w") if jsonl else None
    for path in paths:
        totals["recordings"] += 1
        contexts: dict[str, deque[int]] = {"unguarded": deque(maxlen=CONTEXT_TOKENS), "guarded": deque(maxlen=CONTEXT_TOKENS)}
        for start, audio in speech_segments(path, cfg):
            totals["segments"] += 1
            totals["audio_s"] += len(audio) / 16000
            decodes: dict[str, Decoded] = {}
            same_context = list(contexts["unguarded"]) == list(contexts["guarded"])
            for mode in ("unguarded", "guarded"):
                engine._drop_unvoiced_repeat = guarded_drop if mode == "guarded" else (lambda decoded: None)  # type: ignore[method-assign]
                cuts.active = mode == "guarded"
                before = len(cuts.log)
                decoded = engine.decode_audio(audio, final=True, context=list(contexts[mode]) or None)
                decodes[mode] = decoded
                contexts[mode].extend(decoded.tokens)
                for full, kept in cuts.log[before:]:
                    totals["truncate_repetition_cuts"] += 1
                    row = {"kind": "truncate_repetition", "recording": path.name, "start_s": round(start, 2),
                           "seconds": round(len(audio) / 16000, 2), "kept": engine.text_of(kept),
                           "cut": engine.text_of(full[len(kept):]), **cut_timing(engine, decoded, full, kept)}
                    print(json.dumps(row), flush=True)
            raw, kept = decodes["unguarded"], decodes["guarded"]
            repeats = trailing_repeats(engine, raw)
            invented = [r for r in repeats if r["invented"]]
            totals["repeats_found"] += bool(repeats)
            totals["invented_found"] += bool(invented)
            totals["voiced_repeats_kept"] += bool(repeats) and not invented
            raw_words, kept_words = raw.text.split(), kept.text.split()
            dropped = kept.repeat_dropped
            if dropped:
                totals["invented_removed"] += 1
                totals["words_removed"] += dropped
                # the words removed are exactly a trailing copy that the unguarded alignment calls invented
                if not any(r["k"] <= dropped and dropped % r["k"] == 0 for r in invented):
                    totals["words_removed_not_invented_copy"] += dropped
            if raw.text != kept.text and not (dropped and _same_words(kept_words, raw_words[: len(raw_words) - dropped])):
                # a different context (an earlier final of the recording lost its copy) may change a decode
                totals["other_changes" if same_context else "changed_by_context"] += 1
            row = {"recording": path.name, "start_s": round(start, 2), "seconds": round(len(audio) / 16000, 2),
                   "unguarded": raw.text, "guarded": kept.text, "repeats": repeats, "words_removed": dropped}
            if repeats or dropped or raw.text != kept.text:
                print(json.dumps(row), flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
    if out:
        out.close()
    totals["audio_s"] = round(totals["audio_s"], 1)
    return totals


def run_doubled(paths: list[Path], gap_s: float) -> dict[str, Any]:
    """Real spoken repeats: each speech segment short enough, said twice (its own audio, ``gap_s`` of
    silence between), decoded as a final with the guard as the device runs it, no context. Counts
    the decodes that keep the second copy (at least 1.6 times the words of the segment decoded
    alone) and, for those that lose it, what cut it. Then the same with the recording's next
    segment after the two copies (a repeat and then more words): kept when the final holds at
    least 1.6 times the first segment's words plus 0.6 times the next one's."""
    cfg = VadConfig()
    engine = WhisperCT2(AsrConfig(), cfg.segment_capacity)
    cuts = Cuts()
    cuts.active = True
    whisper_ct2.truncate_repetition = cuts  # type: ignore[assignment]  # measurement only
    gap = np.zeros(int(gap_s * 16000), np.float32)
    totals = {"doubled": 0, "second_copy_kept": 0, "lost_to_truncate_repetition": 0, "lost_to_unvoiced_repeat_guard": 0,
              "lost_otherwise": 0, "unvoiced_repeat_guard_dropped": 0,
              "then_more": 0, "then_more_kept": 0, "then_more_lost_to_truncate_repetition": 0, "then_more_lost_otherwise": 0}
    for path in paths:
        segments = speech_segments(path, cfg)
        singles = [engine.decode_audio(audio, final=True).text for _, audio in segments]
        for i, (start, audio) in enumerate(segments):
            single = singles[i]
            twice = np.concatenate([audio, gap, audio])
            if len(twice) > cfg.segment_capacity or len(single.split()) < 3:
                continue
            totals["doubled"] += 1
            before = len(cuts.log)
            decoded = engine.decode_audio(twice, final=True)
            cut = cuts.log[before:]
            totals["unvoiced_repeat_guard_dropped"] += bool(decoded.repeat_dropped)
            if decoded.repeat_dropped:
                _print_loss(engine, path, start, "unvoiced_repeat_guard_dropped", single, decoded, cut)
            if len(decoded.text.split()) >= 1.6 * len(single.split()):
                totals["second_copy_kept"] += 1
            else:
                why = ("lost_to_unvoiced_repeat_guard" if decoded.repeat_dropped else
                       "lost_to_truncate_repetition" if cut else "lost_otherwise")
                totals[why] += 1
                _print_loss(engine, path, start, why, single, decoded, cut)
            if i + 1 == len(segments) or len(singles[i + 1].split()) < 2:
                continue
            more = np.concatenate([twice, gap, segments[i + 1][1]])
            if len(more) > cfg.segment_capacity:
                continue
            totals["then_more"] += 1
            before = len(cuts.log)
            decoded = engine.decode_audio(more, final=True)
            cut = cuts.log[before:]
            if len(decoded.text.split()) >= 1.6 * len(single.split()) + 0.6 * len(singles[i + 1].split()):
                totals["then_more_kept"] += 1
            else:
                why = "then_more_lost_to_truncate_repetition" if cut else "then_more_lost_otherwise"
                totals[why] += 1
                _print_loss(engine, path, start, why, f"{single} | {singles[i + 1]}", decoded, cut)
    return totals


def _print_loss(engine: WhisperCT2, path: Path, start: float, why: str, single: str, decoded: Decoded,
                cut: list[tuple[list[int], list[int]]]) -> None:
    row: dict[str, Any] = {"kind": "doubled", "recording": path.name, "start_s": round(start, 2), "lost": why,
                           "single": single, "final": decoded.text}
    if cut:
        full, kept = cut[-1]
        row.update(cut=engine.text_of(full[len(kept):]), **cut_timing(engine, decoded, full, kept))
    print(json.dumps(row), flush=True)


def _same_words(a: list[str], b: list[str]) -> bool:
    """Equal but for the punctuation a cut can leave on the last word."""
    strip = str.maketrans("", "", ".,!?;:")
    return len(a) == len(b) and [w.translate(strip).lower() for w in a] == [w.translate(strip).lower() for w in b]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=Path, default=default_voices(), help="folder searched for *.flac (recursively)")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more recordings (any audio file)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N recordings of --voices")
    parser.add_argument("--jsonl", type=Path, help="write one line per segment here")
    parser.add_argument("--doubled", type=float, metavar="GAP_S",
                        help="instead: real spoken repeats, each short segment said twice GAP_S seconds apart")
    args = parser.parse_args(argv)
    paths = sorted(args.voices.rglob("*.flac"))
    if not paths and not args.extra:
        print(f"no recordings under {args.voices}; set EDGE_AGENT_SHARED or --voices", file=sys.stderr)
        return 2
    if args.limit:
        paths = paths[: args.limit]
    if args.doubled is not None:
        totals = run_doubled(paths + list(args.extra), args.doubled)
    else:
        totals = run(paths + list(args.extra), args.jsonl)
    print(json.dumps({"kind": "totals", **totals}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
