#!/usr/bin/env python3
"""Voice a PriMock57 consultation (or a window of it) with espeak-ng: FLAC + reference JSON.

Example (the shipped demo, see edge_agent/data/CREDITS.md):

    python -m tools.corpus.make_conversation day2_consultation03 --start 31.3 --duration 63 \\
        --doctor-voice en-gb+f3 --patient-voice en-us+m3 \\
        --out edge_agent/data/demo_conversation.flac

The reference JSON goes beside the FLAC (same name, .json) unless --json is given.
The output is deterministic for a given espeak-ng version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import soundfile as sf

from edge_agent.errors import EdgeAgentError
from tools.corpus.synth import available_voices, synthesise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("consultation", help="PriMock57 id, e.g. day2_consultation03")
    ap.add_argument("--start", type=float, default=0.0, help="excerpt start on the consultation clock (s)")
    ap.add_argument("--duration", type=float, default=None, help="excerpt length (s); default: to the end")
    ap.add_argument("--doctor-voice", default=None, help="espeak-ng voice for the doctor, e.g. en-gb+f3")
    ap.add_argument("--patient-voice", default=None, help="espeak-ng voice for the patient, e.g. en-us+m3")
    ap.add_argument("--seed", default=None, help="picks the voice pair when voices are not given (default: the id)")
    ap.add_argument("--out", type=Path, required=False, help="output FLAC (16 kHz mono, 16-bit)")
    ap.add_argument("--json", type=Path, default=None, help="reference JSON (default: beside --out)")
    ap.add_argument("--list-voices", action="store_true", help="print the usable voices and exit")
    args = ap.parse_args(argv)

    try:
        if args.list_voices:
            print("\n".join(available_voices()))
            return 0
        if args.out is None:
            ap.error("--out is required")
        if (args.doctor_voice is None) != (args.patient_voice is None):
            ap.error("give both --doctor-voice and --patient-voice, or neither")
        voices = {"doctor": args.doctor_voice, "patient": args.patient_voice} if args.doctor_voice else None
        seed: int | str | None = args.seed
        if isinstance(seed, str) and seed.isdigit():
            seed = int(seed)
        conv = synthesise(args.consultation, args.start, args.duration, voices=voices, seed=seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # PCM_16 FLAC: the mix peaks at -1 dBFS, so 16 bits lose nothing audible and keep files small.
        sf.write(str(args.out), conv.audio, conv.sample_rate, format="FLAC", subtype="PCM_16")
        ref_path = args.json or args.out.with_suffix(".json")
        ref = conv.reference()
        ref["audio"] = args.out.name
        ref_path.write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except EdgeAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    roles = {r: sum(1 for t in conv.turns if t.role == r) for r in conv.voices}
    print(
        f"{args.out}: {conv.duration:.1f} s, {len(conv.turns)} turns {roles}, voices {conv.voices}; "
        f"reference {ref_path} ({args.out.stat().st_size / 1e3:.0f} kB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
