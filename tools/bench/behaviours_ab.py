"""Interleaved per-sentence latency of behaviour classifiers built into different model folders.

    python -m tools.bench.behaviours_ab current=models candidate=/path/to/other/models

Every classifier classifies the same PriMock57 doctor sentences one per call (as the device does and as
``edge-agent bench behaviours`` measures), in a random order per sentence, so the load of a shared
machine falls on all of them alike. Reports the first pass (median, p95: the bench's target figure)
and each sentence's fastest of ``--reps`` passes. Each folder needs its own MANIFEST.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def doctor_sentences(consultations: list | None = None) -> list[str]:  # type: ignore[type-arg]
    """Every PriMock57 doctor sentence that is not a filler, in corpus order (what the device classifies)."""
    from edge_agent.behaviours.text import is_filler, split_sentences
    from tools.corpus.primock import iter_consultations

    cons = consultations if consultations is not None else iter_consultations()
    return [s for c in cons for t in c.of("doctor") for s in split_sentences(t.text) if not is_filler(s)]


def doctor_sentences_in_context(consultations: list | None = None) -> list[tuple[str, Any]]:  # type: ignore[type-arg]
    """``doctor_sentences`` with each sentence's dialogue context (features.Context), as the report classifies them."""
    from edge_agent.behaviours.conversation import build_turns, sentence_contexts
    from edge_agent.behaviours.text import is_filler
    from tools.corpus.primock import iter_consultations, utterances_from_consultation

    out = []
    for c in consultations if consultations is not None else iter_consultations():
        turns = build_turns(utterances_from_consultation(c))
        ctx = sentence_contexts(turns)
        out += [(s.text, ctx[s.id]) for t in turns if t.clinician for s in t.sentences if not is_filler(s.text)]
    return out


def per_sentence_latency(clfs: dict[str, Any], sentences: list, reps: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per classifier: ms of each sentence's first pass (the target figure) and its fastest of ``reps``
    passes (the model's own cost with most of a shared machine's scheduling noise removed). One sentence
    per call, as the device classifies; the classifiers take turns in a random order per sentence. A sentence given as
    (text, context) is classified with its dialogue context (the cost of the context cues is part of the figure)."""
    names = list(clfs)
    first: dict[str, list[float]] = {n: [] for n in names}
    best = {n: [float("inf")] * len(sentences) for n in names}
    rng = np.random.default_rng(1)
    for rep in range(reps):
        for k, s in enumerate(sentences):
            for n in rng.permutation(names):
                t0 = time.perf_counter()
                if isinstance(s, tuple):
                    clfs[n].classify([s[0]], [s[1]])
                else:
                    clfs[n].classify([s])
                ms = (time.perf_counter() - t0) * 1000
                if rep == 0:
                    first[n].append(ms)
                best[n][k] = min(best[n][k], ms)
    return {n: (first[n], best[n]) for n in names}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="name=folder")
    ap.add_argument("--sentences", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)

    from edge_agent.behaviours.classifier import BehaviourClassifier

    dirs = dict(a.split("=", 1) for a in args.models)
    clfs = {n: BehaviourClassifier(threads=1, models_dir=Path(d)) for n, d in dirs.items()}
    sents = doctor_sentences_in_context()[: args.sentences]
    for clf in clfs.values():
        clf.classify([s for s, _ in sents[:64]], [c for _, c in sents[:64]])  # warm-up, as the bench
    for n, (first, best) in per_sentence_latency(clfs, sents, args.reps).items():
        print(f"{n:12s} median {statistics.median(first):.3f}  p95 {np.percentile(first, 95):.3f}  "
              f"fastest of {args.reps}: median {np.median(best):.3f}  p95 {np.percentile(best, 95):.3f} ms")


if __name__ == "__main__":
    main()
