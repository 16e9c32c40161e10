"""``edge-agent bench behaviours``: label F1 (as recorded by training), model size, latency, throughput,
agreement of the mechanical timing metrics (talk share, speech rate) with the independent reference in
tests/reference_timing.py. The conversation-aware timing events are measured against the adjudicated gold by
``edge-agent bench coaching``."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import IO, Any

TARGETS = {
    "macro_f1": 0.80,
    "open_question_f1": 0.90,
    "closed_question_f1": 0.90,
    "model_mb": 30.0,
    "p95_ms_per_utterance": 5.0,
    "batched_utterances_per_s": 2000.0,
}


def _eval_f1() -> dict[str, float]:
    """Held-out F1 as recorded by the training script in docs/behaviours-eval.md."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "behaviours-eval.md"
    out: dict[str, float] = {}
    if not doc.is_file():
        return out
    for line in doc.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # The first table is the full held-out split; later tables are subsets.
        if len(cells) >= 4 and cells[0] in ("open_question", "closed_question") and f"{cells[0]}_f1" not in out:
            out[f"{cells[0]}_f1"] = float(cells[3])
        if line.startswith("**Macro-F1"):
            out["macro_f1"] = float(line.split("shipped =")[1].split(";")[0])
    return out


def bench_behaviours(out: IO[str] | None = None, n_batch: int = 4000, n_single: int = 500, n_reps: int = 3) -> dict[str, Any]:
    """Measure the behaviour targets and print them (to ``out`` if given)."""
    import numpy as np

    from edge_agent.behaviours.classifier import MODEL_NAME, BehaviourClassifier
    from edge_agent.behaviours.timing import compute_timing
    from edge_agent.models import verify_model
    from tools.bench.behaviours_ab import doctor_sentences, doctor_sentences_in_context, per_sentence_latency
    from tools.corpus.primock import iter_consultations, utterances_from_consultation

    clf = BehaviourClassifier(threads=1)  # as the device runs it (edge_agent.device.main); the encoder is slower on 2 threads at batch 1
    files = [MODEL_NAME, "behaviours_features.json"]
    if clf.encoder is not None:  # the sentence encoder and its tokenizer are part of the classifier
        files += ["behaviours_encoder.onnx", "behaviours_tokenizer.json"]
    model_mb = sum(verify_model(f).stat().st_size for f in files) / 1e6
    consultations = list(iter_consultations())
    sentences = doctor_sentences(consultations)
    batch = (sentences * (n_batch // max(1, len(sentences)) + 1))[:n_batch]
    clf.classify(batch[:64])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(batch), 256):
        clf.classify(batch[i : i + 256])
    throughput = len(batch) / (time.perf_counter() - t0)
    # ``lat``: the first pass (the target figure); ``best``: each sentence's fastest of ``n_reps`` passes
    # each sentence with its dialogue context, as the report classifies a visit (models of featuriser v5 read it)
    lat, best = per_sentence_latency({"shipped": clf}, doctor_sentences_in_context(consultations)[:n_single], n_reps)["shipped"]
    p95 = float(np.percentile(lat, 95))


    # the checkout's independent re-implementation (bench runs from a checkout, like the tests)
    from tests.reference_timing import reference_metrics

    ok = 0
    for c in consultations:
        utts = utterances_from_consultation(c)
        m, r = compute_timing(utts), reference_metrics(utts)
        same = (
            abs((m.talk_share or 0) - (r["talk_share"] or 0)) < 2e-3
            and abs((m.speech_rate_wpm or 0) - (r["speech_rate_wpm"] or 0)) < 0.5
        )
        ok += same
    agree = f"{ok}/{len(consultations)}"

    f1 = _eval_f1()
    result: dict[str, Any] = {
        **f1,
        "model_mb": round(model_mb, 2),
        "p95_ms_per_utterance": round(p95, 3),
        "median_ms_per_utterance": round(statistics.median(lat), 3),
        f"p95_ms_per_utterance_fastest_of_{n_reps}": round(float(np.percentile(best, 95)), 3),
        "batched_utterances_per_s": round(throughput),
        "timing_agreement_with_reference": agree,
        "targets": TARGETS,
    }
    if out is not None:
        def row(name: str, value: Any, target: str, ok: bool | None) -> None:
            mark = "" if ok is None else ("ok" if ok else "BELOW TARGET")
            out.write(f"  {name:<34} {str(value):>10}   target {target:<10} {mark}\n")

        out.write("behaviours bench (1 thread, as on the device)\n")
        for key in ("macro_f1", "open_question_f1", "closed_question_f1"):
            v = f1.get(key)
            row(key, v, f">= {TARGETS[key]}", None if v is None else v >= TARGETS[key])
        row("model size (MB)", result["model_mb"], "<= 30", model_mb <= 30)
        row("p95 latency per utterance (ms)", result["p95_ms_per_utterance"], "<= 5", p95 <= 5)
        row(f"  same, fastest of {n_reps} passes", result[f"p95_ms_per_utterance_fastest_of_{n_reps}"], "", None)
        row("batched throughput (utt/s)", result["batched_utterances_per_s"], ">= 2000", throughput >= 2000)
        row("talk share, rate == reference", agree, "57/57", None if agree is None else agree == "57/57")
    return result
