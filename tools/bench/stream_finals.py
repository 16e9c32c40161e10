"""The streaming decoder's finals on recordings, driven synchronously (deterministic, for A/B runs).

    PYTHONPATH=CHECKOUT python -m tools.bench.stream_finals FILE ... > finals.jsonl

Each file goes through the pipeline's VAD (``VadSegmenter``, default ``VadConfig``)
and every event straight into a ``SegmentDecoder`` (``PipelineConfig().decoder_config()``,
``WhisperCT2`` with the default ``AsrConfig``): every update the decoder wants is
decoded (partials, look-aheads, sentence commits), then each closed segment's
final, in the order the VAD gives them. The device's worker skips updates while it
is busy, so its schedule depends on the CPU; this one does not, and the same code
prints the same lines. It uses only interfaces the decoder has had since partial
tails (``on_update``/``on_closed``), so the same command run with ``PYTHONPATH``
at two checkouts compares their finals (``diff`` the outputs).

One JSON line per committed piece or final: recording, kind, start (s), text;
then a totals line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import edge_agent  # noqa: F401  (first: pins BLAS to one thread before numpy loads, as the CLI does)
from edge_agent.asr.decoder import SegmentDecoder
from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.featurize import RowsView, StreamFeaturizer
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.vad import SegmentClosed, SegmentUpdate, VadSegmenter
from edge_agent.device.pipeline import PipelineConfig


def stream(path: Path, engine: WhisperCT2, config: PipelineConfig) -> list[dict[str, Any]]:
    cfg = config.vad
    decoder = SegmentDecoder(engine, config.decoder_config())
    frames = BufferPool("frames", 256, cfg.frame_samples, np.int16)
    featurizer = StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity, engine.mel_filters)
    vad = VadSegmenter(cfg, featurizer)
    bins, n_frames = engine.feature_shape(cfg.segment_capacity)
    scratch = np.zeros((n_frames, bins), np.float32)
    out: list[dict[str, Any]] = []

    def take(events: list[Any]) -> None:
        for ev in events:
            seg = ev.segment
            view = RowsView(featurizer.rows, seg.start_sample, engine.window_pad, scratch)
            if isinstance(ev, SegmentUpdate):
                if not decoder.wants_update(seg.id, ev.length, ev.final_candidate):
                    continue
                pieces, _ = decoder.on_update(seg.id, seg.t0, ev.length, ev.final_candidate, view,
                                              seg.start_sample + ev.length, None)
                for piece in pieces:
                    out.append({"recording": path.name, "kind": "committed", "start_s": round(seg.t0 + piece.start / SAMPLE_RATE, 2),
                                "text": piece.decoded.text})
                continue
            assert isinstance(ev, SegmentClosed)
            if ev.is_speech:
                # the closed segment's features as the pipeline's store holds them (its frames, then silence)
                feats = view.features(0, seg.length, True)
                final = decoder.on_closed(seg.id, feats, seg.length, seg.start_sample)
                if final.decoded.text:
                    out.append({"recording": path.name, "kind": "final", "start_s": round(seg.t0 + final.start / SAMPLE_RATE, 2),
                                "text": final.decoded.text})
            else:
                decoder.on_closed_without_text(seg.id)

    for frame in FileSource(path).frames(frames):
        take(vad.process(frame))
    take(vad.flush())
    decoder.forget()
    featurizer.wipe()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    config = PipelineConfig()
    engine = WhisperCT2(config.asr, config.vad.segment_capacity)
    pieces = words = 0
    for path in args.files:
        for row in stream(path, engine, config):
            pieces += 1
            words += len(row["text"].split())
            print(json.dumps(row), flush=True)
    print(json.dumps({"kind": "totals", "recordings": len(args.files), "pieces": pieces, "words": words}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
