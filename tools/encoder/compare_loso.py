"""Compare the LOSO figures of behaviour-classifier runs (tools/training/results/latency_candidates.json).

    PYTHONPATH=. python tools/encoder/compare_loso.py [RUN ...]     # default: every run

Per run: pooled LOSO F1 of the five target labels (7 folds), the macro over the six common folds (without
miti_forms), and the PriMock57 fold alone, as in docs/behaviours-eval.md's latency section.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tools.training import behaviour_heads as bh

FILE = Path(__file__).resolve().parents[2] / "tools" / "training" / "results" / "latency_candidates.json"
TARGET = ("open_question", "closed_question", "reflection", "information", "advice")
COMMON = ("consultations_other", "health_coaching", "mi_counselling", "primock57", "probe_mi", "written")


def row(res: dict) -> dict:
    pooled = bh.pooled([res["loso"][s] for s in res["loso"]])
    common = bh.pooled([res["loso"][s] for s in COMMON])
    pm = res["loso"]["primock57"]
    return {
        "loso": {k: pooled[k]["f1"] for k in TARGET},
        "macro7": bh.summary(pooled)["macro5_f1"],
        "macro_common6": bh.summary(common)["macro5_f1"],
        "in_domain_macro5": res["in_domain_summary"]["macro5_f1"],
        "primock57": {k: pm[k]["f1"] for k in TARGET},
    }


def main() -> None:
    runs = json.loads(FILE.read_text(encoding="utf-8"))["runs"]
    names = sys.argv[1:] or list(runs)
    print(f"{'run':22s} macro7 common6 in-dom | LOSO open closed refl info advice | PriMock57 open closed refl info advice")
    for n in names:
        r = row(runs[n])
        lo = " ".join(f"{r['loso'][k]:.3f}" for k in TARGET)
        pm = " ".join(f"{r['primock57'][k]:.3f}" for k in TARGET)
        print(f"{n:22s} {r['macro7']:.3f}  {r['macro_common6']:.3f}  {r['in_domain_macro5']:.3f} | {lo} | {pm}")


if __name__ == "__main__":
    main()
