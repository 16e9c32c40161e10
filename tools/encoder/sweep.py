"""Choose the head's C (dense) and the embedding scale (stacked with n-grams) by in-domain grouped CV only.

    python tools/encoder/sweep.py ENCODER_DIR [--combo]

Uses PriMock57 alone (5-fold grouped CV, threshold 0.5 for speed); the
out-of-domain sources are not looked at, so the choice does not flatter their figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tools.encoder import evaluate as ev

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("encoder", type=Path)
    ap.add_argument("--combo", action="store_true")
    ap.add_argument("--values", type=float, nargs="*")
    args = ap.parse_args()
    primock = ev.load(ev.DATA / "primock57.jsonl")
    x = ev.embed_cached(args.encoder, [r["text"] for r in primock])
    emb = {r["id"]: v for r, v in zip(primock, x)}
    if args.combo:
        for s in args.values or [0.5, 1.0, 2.0, 4.0]:
            ev.DENSE_SCALE = s
            res = ev.evaluate(ev.FeatureSet("combo", emb, True), primock, {}, cv=True, tune=False)
            print(f"scale {s}: in-domain macro {res['in_domain_cv']['macro']:.3f}", json.dumps({k: v['f1'] for k, v in res['in_domain_cv'].items() if k != 'macro'}), flush=True)
    else:
        for c in args.values or [0.01, 0.03, 0.1, 0.3, 1.0]:
            ev.C_DENSE = c
            res = ev.evaluate(ev.FeatureSet("dense", emb, False), primock, {}, cv=True, tune=False)
            print(f"C {c}: in-domain macro {res['in_domain_cv']['macro']:.3f}", json.dumps({k: v['f1'] for k, v in res['in_domain_cv'].items() if k != 'macro'}), flush=True)


if __name__ == "__main__":
    main()
