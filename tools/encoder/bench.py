"""Size, load time and latency of encoder candidates as the device would run them (onnxruntime only).

    python tools/encoder/bench.py /tmp/enc/minilm-l3-nb8 /tmp/enc/static-256 ... [--ngram] [--n 400]

Sentences: a fixed random sample of PriMock57 clinician sentences (real length
distribution). Batch 1 = tokenise + run, one sentence per call (what the
device does as each sentence arrives); p50/p95 wall time, and CPU time per call
(process CPU, which a busy shared machine inflates less than wall time).
Each sentence is timed 5 times (interleaved rounds); p50/p95 are over all calls, and
"best of 5" takes each sentence's fastest run first (an estimate free of the other
users' load on this shared machine). Batched = all sentences in batches of 32 of
similar length, ms per sentence, best of 3 passes.
Threads: onnxruntime intra_op_num_threads 1 and 2. ``--ngram`` also times the
shipped n-gram classifier (Python featuriser + models/behaviours.onnx).
Writes tools/encoder/results/bench.json (merged with earlier runs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from tools.encoder.runtime import Encoder

ROOT = Path(__file__).resolve().parents[2]

RESULTS = ROOT / "tools" / "encoder" / "results"


def sample_sentences(n: int) -> list[str]:
    rows = [json.loads(x) for x in (ROOT / "models/data/behaviours/primock57.jsonl").read_text().splitlines() if x.strip()]
    rng = random.Random(7)
    return [r["text"] for r in rng.sample(rows, n)]


REPEATS = 5


def timed_calls(fn, items) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(items, REPEATS) wall and CPU milliseconds; repeats are interleaved rounds over all items."""
    wall = np.zeros((len(items), REPEATS))
    cpu = np.zeros((len(items), REPEATS))
    for k in range(REPEATS):
        for i, it in enumerate(items):
            w0, c0 = time.perf_counter(), time.process_time()
            fn(it)
            cpu[i, k] = time.process_time() - c0
            wall[i, k] = time.perf_counter() - w0
    return wall * 1e3, cpu * 1e3


def stats(wall: np.ndarray, cpu: np.ndarray, batched: float) -> dict:
    best = wall.min(1)  # per sentence, the least-disturbed of the repeats
    return {
        "b1_p50_ms": round(float(np.percentile(wall, 50)), 3),
        "b1_p95_ms": round(float(np.percentile(wall, 95)), 3),
        "b1_max_ms": round(float(wall.max()), 3),
        "b1_best_of_5_p50_ms": round(float(np.percentile(best, 50)), 3),
        "b1_best_of_5_p95_ms": round(float(np.percentile(best, 95)), 3),
        "b1_cpu_mean_ms": round(float(cpu.mean()), 3),
        "batch32_ms_per_sentence": round(batched, 3),
    }


def bench_encoder(folder: Path, texts: list[str]) -> dict:
    files = [p for p in folder.iterdir() if p.is_file()]
    res: dict = {"size_mb": round(sum(p.stat().st_size for p in files) / 1e6, 2)}
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        enc = Encoder(folder, threads=1)
        loads.append(time.perf_counter() - t0)
    res["load_s_first"] = round(loads[0], 3)
    res["load_s_median"] = round(float(np.median(loads)), 3)
    ntok = [len(x) for x in enc.token_ids(texts)]
    res["tokens_p50_p95_max"] = [int(np.percentile(ntok, 50)), int(np.percentile(ntok, 95)), int(max(ntok))]
    for threads in (1, 2):
        enc = Encoder(folder, threads=threads, verify=False)
        for t in texts[:20]:
            enc.embed([t])
        wall, cpu = timed_calls(lambda t, e=enc: e.embed([t]), texts)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            enc.embed(texts, batch_size=32)
            runs.append((time.perf_counter() - t0) * 1e3 / len(texts))
        batched = min(runs)
        res[f"t{threads}"] = stats(wall, cpu, batched)
    return res


def bench_ngram(texts: list[str]) -> dict:
    from edge_agent.behaviours.classifier import BehaviourClassifier

    models = ROOT / "models"
    res: dict = {"size_mb": round(sum((models / f).stat().st_size for f in ("behaviours.onnx", "behaviours_features.json")) / 1e6, 2)}
    t0 = time.perf_counter()
    clf = BehaviourClassifier(threads=1)
    res["load_s_first"] = round(time.perf_counter() - t0, 3)
    for threads in (1, 2):
        clf = BehaviourClassifier(threads=threads)
        for t in texts[:20]:
            clf.probabilities([t])
        wall, cpu = timed_calls(lambda t, c=clf: c.probabilities([t]), texts)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            for s in range(0, len(texts), 32):
                clf.probabilities(texts[s : s + 32])
            runs.append((time.perf_counter() - t0) * 1e3 / len(texts))
        batched = min(runs)
        res[f"t{threads}"] = stats(wall, cpu, batched)
    res["note"] = "whole shipped classifier (featuriser + heads + jargon lexicon), not an encoder alone"
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("encoders", nargs="*", type=Path)
    ap.add_argument("--ngram", action="store_true")
    ap.add_argument("--n", type=int, default=400)
    args = ap.parse_args()
    texts = sample_sentences(args.n)
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / "bench.json"
    allres = json.loads(out_path.read_text()) if out_path.is_file() else {}
    todo = [("ngram", None)] if args.ngram else []
    todo += [(json.loads((f / "encoder.json").read_text())["name"], f) for f in args.encoders]
    for name, folder in todo:
        load0 = os.getloadavg()[0]
        res = bench_ngram(texts) if folder is None else bench_encoder(folder, texts)
        res["loadavg_1min_before"] = round(load0, 2)
        res["cpu"] = "2-core AVX2 build machine (shared)"
        allres[name] = res
        out_path.write_text(json.dumps(allres, indent=1, sort_keys=True) + "\n")
        t1, t2 = res["t1"], res["t2"]
        print(f"{name:18s} {res['size_mb']:6.2f} MB load {res['load_s_first']:.2f}s | t1 p50 {t1['b1_p50_ms']:.2f} p95 {t1['b1_p95_ms']:.2f} "
              f"best5 {t1['b1_best_of_5_p50_ms']:.2f}/{t1['b1_best_of_5_p95_ms']:.2f} cpu {t1['b1_cpu_mean_ms']:.2f} b32 {t1['batch32_ms_per_sentence']:.2f} "
              f"| t2 p50 {t2['b1_p50_ms']:.2f} p95 {t2['b1_p95_ms']:.2f} best5 {t2['b1_best_of_5_p50_ms']:.2f}/{t2['b1_best_of_5_p95_ms']:.2f} "
              f"b32 {t2['batch32_ms_per_sentence']:.2f} | load {load0:.1f}", flush=True)


if __name__ == "__main__":
    main()
