"""How often the VAD's max-length split hands the ASR a window its log-mel scratch cannot hold.

``VadConfig.segment_capacity`` is ``max_segment_s * 16000 + one frame``
(240 480 samples) while ``WhisperEngine`` sizes its log-mel scratch for
``max_segment_s * 16000 + pad`` (288 000). A segment closed at full capacity
(the split's quietest frame is the last one, or a live source with no free
buffer closes at the limit) needs 288 480 and raises ``ValueError`` inside
the ASR worker, which logs it and zeroes the segment: its words are lost and
``dropped_segments`` stays 0.

This script starts a real long turn at 84 different points (its first
0..2.5 s cut off in 30 ms steps, plus a sub-frame offset) so that the buffer
fills at every phase of the speech, runs the pipeline's own VadSegmenter, and
counts the splits closed at full capacity.

    python -m tools.realvoice.overflow --ref tests/data/realvoice/visit01_same_1998_3331_close.json [--write-crash DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

import edge_agent  # noqa: F401  (pins BLAS before numpy)
from edge_agent.audio.vad import VadConfig
from tools.realvoice import diagnose
from tools.realvoice.diagnose import vad_segments


def longest_turn(ref: dict, audio: np.ndarray) -> np.ndarray:
    turn = max(ref["turns"], key=lambda t: t["stop_s"] - t["start_s"])
    return audio[int(turn["start_s"] * 16000) : int(turn["stop_s"] * 16000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", type=Path, required=True)
    parser.add_argument("--write-crash", type=Path, default=None, help="write the first crashing shift as FLAC here")
    args = parser.parse_args()
    ref = json.loads(args.ref.read_text())
    audio, _ = sf.read(str(args.ref.parent / ref["audio"]), dtype="int16")
    speech = longest_turn(ref, audio)
    cfg = VadConfig()
    splits = full = 0
    crashing: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        lead = np.zeros(8000, np.int16)
        for k in range(84):
            cut = k * cfg.frame_samples + (k * 7) % cfg.frame_samples
            path = Path(tmp) / "shifted.flac"
            clip = np.concatenate([lead, speech[cut:], np.zeros(16000, np.int16)])
            sf.write(str(path), clip, 16000, subtype="PCM_16")
            segs = vad_segments(path, cfg)
            s = [x for x in segs if x.reason == "max_length"]
            f = [x for x in s if len(x.audio) == cfg.segment_capacity]
            splits += len(s)
            full += len(f)
            if f:
                crashing.append(round(cut / 16000, 3))
                if args.write_crash is not None and len(crashing) == 1:
                    args.write_crash.mkdir(parents=True, exist_ok=True)
                    sf.write(str(args.write_crash / "overflow.flac"), clip, 16000, subtype="PCM_16")
    print(json.dumps({"turn_s": round(len(speech) / 16000, 2), "shifts": 84, "max_length_splits": splits,
                      "closed_at_full_capacity": full, "partial_windows_overflowing": len(diagnose.overflowing_updates), "share": round(full / max(1, splits), 4), "crashing_cuts_s": crashing}))


if __name__ == "__main__":
    main()
