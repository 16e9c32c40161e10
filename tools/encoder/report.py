"""Print the markdown tables of tools/encoder/README.md from tools/encoder/results/*.json.

    python tools/encoder/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
LABELS = ("open_question", "closed_question", "reflection", "information", "advice", "empathy")
SHORT = ("open", "closed", "refl", "info", "advice", "empathy")
ORDER = [
    "ngram",
    "static-128", "static-256", "static-384", "static-256-nosif",
    "minilm-l2-fp16", "minilm-l2-nb8", "minilm-l2-dyn8f",
    "minilm-l3-fp32", "minilm-l3-fp16", "minilm-l3-nb8", "minilm-l3-dyn8", "minilm-l3-dyn8f",
    "minilm-l4-nb8", "minilm-l4-dyn8f", "minilm-l6-nb8", "minilm-l6-fp32",
]


def main() -> None:
    bench = json.loads((RESULTS / "bench.json").read_text()) if (RESULTS / "bench.json").is_file() else {}
    names = [n for n in ORDER if (RESULTS / f"{n}.json").is_file()]
    names += [n + "+ngram" for n in ORDER if (RESULTS / f"{n}+ngram.json").is_file()]
    print("### Cost (onnxruntime, this 2-core AVX2 machine, shared; 400 PriMock57 sentences)\n")
    print("| candidate | size MB | load s | 1 thread p50 / p95 ms | 1 thread best-of-5 p50 / p95 ms | 1 thread CPU ms | 2 threads p50 / p95 ms | batch 32, ms/sentence (1 / 2 threads) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in ORDER:
        b = bench.get(n)
        if not b:
            continue
        t1, t2 = b["t1"], b["t2"]
        print(f"| {n} | {b['size_mb']:.1f} | {b['load_s_first']:.2f} | {t1['b1_p50_ms']:.2f} / {t1['b1_p95_ms']:.2f} | "
              f"{t1['b1_best_of_5_p50_ms']:.2f} / {t1['b1_best_of_5_p95_ms']:.2f} | {t1['b1_cpu_mean_ms']:.2f} | "
              f"{t2['b1_p50_ms']:.2f} / {t2['b1_p95_ms']:.2f} | {t1['batch32_ms_per_sentence']:.2f} / {t2['batch32_ms_per_sentence']:.2f} |")
    for part, title in (("in_domain_cv", "In-domain: PriMock57, 5-fold CV grouped by consultation"),
                        ("probe_mi", "Out-of-domain: train PriMock57 -> MI probe (322 sentences written by the encoder engineer)"),
                        ("written", "Out-of-domain: train PriMock57 -> annotator's written examples (265)")):
        print(f"\n### F1, {title}\n")
        print("| features | " + " | ".join(SHORT) + " | macro (6) |")
        print("| --- " * (len(SHORT) + 2) + "|")
        for n in names:
            r = json.loads((RESULTS / f"{n}.json").read_text())
            if part not in r:
                continue
            print(f"| {n} | " + " | ".join(f"{r[part][lab]['f1']:.2f}" for lab in LABELS) + f" | **{r[part]['macro']:.3f}** |")
        if part != "in_domain_cv":
            r = json.loads((RESULTS / f"{names[0]}.json").read_text())
            print("\nSupport: " + ", ".join(f"{s} {r[part][lab]['n']}" for s, lab in zip(SHORT, LABELS)))


if __name__ == "__main__":
    main()
