#!/usr/bin/env python3
"""Build edge_agent/data/demo_enrol.flac: the demo clinician's enrolment clip.

Doctor lines from later in the same PriMock57 consultation as the demo
(day2_consultation03, after 120 s, so none of them is in the demo audio),
spoken with the demo's doctor voice, 22 s. Deterministic with espeak-ng 1.51.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from tools.corpus.primock import load_consultation
from tools.corpus.synth import speak

OUT = Path(__file__).resolve().parents[2] / "edge_agent" / "data" / "demo_enrol.flac"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    consultation = load_consultation("day2_consultation03")
    lines = [t.text for t in consultation.turns if t.role == "doctor" and t.start > 120 and len(t.text.split()) > 6][:8]
    pause = np.zeros(8000, np.float32)
    audio = np.concatenate([part for line in lines for part in (speak(line, "en-gb+f3"), pause)])[: 16000 * 22]
    sf.write(str(args.out), audio, 16000)
    print(f"wrote {args.out} ({len(audio) / 16000:.1f} s from {len(lines)} doctor lines)")


if __name__ == "__main__":
    main()
