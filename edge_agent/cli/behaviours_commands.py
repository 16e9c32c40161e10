"""CLI bodies for `behaviours classify`, `analyze --textgrid` and `bench behaviours`.

Free of typer so the console script can wire them as it likes; they take
streams and return exit codes / dicts.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import IO, Any

from edge_agent.errors import EdgeAgentError

DEFAULT_BATCH = 256
MAX_TEXT_CHARS = 10_000  # one utterance; longer input is almost certainly not a sentence


def _parse_line(line: str) -> str:
    """The text of one JSON line, or ValueError with a reason a person can act on."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError('expected a JSON object like {"text": "..."}')
    if "text" not in obj:
        raise ValueError('missing "text" field')
    text = obj["text"]
    if not isinstance(text, str):
        raise ValueError(f'"text" must be a string, got {type(text).__name__}')
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f'"text" is longer than {MAX_TEXT_CHARS} characters')
    return text


def classify_stream(stdin: IO[str], stdout: IO[str], stderr: IO[str], batch_size: int = DEFAULT_BATCH, classifier: Any = None) -> int:
    """JSON lines in -> one JSON line per valid input line, in order.

    A malformed line gets one error line on stderr (line number and reason) and
    no output line; the rest of the stream is still processed. Returns 0 when
    every line was classified, 1 when some were rejected.
    """
    if batch_size < 1:
        raise EdgeAgentError("--batch-size must be at least 1")
    if classifier is None:
        from edge_agent.behaviours.classifier import BehaviourClassifier

        classifier = BehaviourClassifier(threads=2)
    pending: list[str] = []
    bad = 0

    def flush() -> None:
        for res in classifier.classify(pending):
            stdout.write(json.dumps(res.to_dict(), ensure_ascii=False) + "\n")
        pending.clear()

    for n, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            pending.append(_parse_line(line))
        except ValueError as exc:
            # Keep order: everything before the bad line is written first.
            flush()
            bad += 1
            stderr.write(f"line {n}: {exc}; skipped\n")
            stderr.flush()
            continue
        if len(pending) >= batch_size:
            flush()
    flush()
    stdout.flush()
    return 1 if bad else 0


def analyze_textgrid(doctor_path: Path, patient_path: Path, jsonl: bool, out: IO[str], classifier: Any = None) -> int:
    """Metrics and labelled clinician sentences of a PriMock57-style pair of TextGrids."""
    from edge_agent.behaviours.sources import utterances_from_textgrids
    from edge_agent.feedback.report import build_feedback, label_clinician_sentences

    for p in (doctor_path, patient_path):
        if not Path(p).is_file():
            raise EdgeAgentError(f"TextGrid {p} not found; give the doctor and the patient TextGrid of one consultation")
    utts = utterances_from_textgrids(Path(doctor_path), Path(patient_path))
    if not utts:
        raise EdgeAgentError(f"no utterances in {doctor_path} or {patient_path}")
    if classifier is None:
        from edge_agent.behaviours.classifier import BehaviourClassifier

        classifier = BehaviourClassifier(threads=2)
    fb = build_feedback(utts, classifier)
    if not jsonl:
        out.write(fb.render())
        return 0
    d = fb.to_dict()
    out.write(json.dumps({"type": "metrics", "visit_duration_s": d["visit_duration_s"], **d["timing"]}) + "\n")
    for s in label_clinician_sentences(utts, classifier):
        out.write(json.dumps({"type": "utterance", "speaker": "clinician", "t0": round(s.at_s, 2), "text": s.text, "labels": list(s.labels)}, ensure_ascii=False) + "\n")
    out.write(json.dumps({"type": "feedback", "label_counts": d["label_counts"], "observations": d["observations"]}, ensure_ascii=False) + "\n")
    return 0


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
    from edge_agent.models import models_dir

    doc = models_dir().parent / "docs" / "behaviours-eval.md"
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


def bench_behaviours(out: IO[str] | None = None, n_batch: int = 4000, n_single: int = 500) -> dict[str, Any]:
    """Measure the behaviour targets and print them (to ``out`` if given)."""
    import numpy as np

    from edge_agent.behaviours.classifier import MODEL_NAME, BehaviourClassifier
    from edge_agent.behaviours.sources import utterances_from_consultation
    from edge_agent.behaviours.text import is_filler, split_sentences
    from edge_agent.behaviours.timing import compute_timing
    from edge_agent.models import verify_model
    from tools.corpus.primock import iter_consultations

    clf = BehaviourClassifier(threads=2)
    model_mb = (verify_model(MODEL_NAME).stat().st_size + verify_model("behaviours_features.json").stat().st_size) / 1e6
    consultations = list(iter_consultations())
    sentences = [s for c in consultations for t in c.of("doctor") for s in split_sentences(t.text) if not is_filler(s)]
    batch = (sentences * (n_batch // max(1, len(sentences)) + 1))[:n_batch]
    clf.classify(batch[:64])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(batch), 256):
        clf.classify(batch[i : i + 256])
    throughput = len(batch) / (time.perf_counter() - t0)
    lat = []
    for s in sentences[:n_single]:
        t1 = time.perf_counter()
        clf.classify([s])
        lat.append((time.perf_counter() - t1) * 1000)
    p95 = float(np.percentile(lat, 95))

    import sys

    tests_dir = Path(__file__).resolve().parents[2] / "tests"
    agree = None
    if (tests_dir / "reference_timing.py").is_file():
        sys.path.insert(0, str(tests_dir))
        try:
            from reference_timing import reference_metrics  # type: ignore[import-not-found]

            ok = 0
            for c in consultations:
                utts = utterances_from_consultation(c)
                m, r = compute_timing(utts), reference_metrics(utts)
                same = (
                    m.interruptions == r["interruptions"]
                    and m.opening_interrupted == r["opening_interrupted"]
                    and (m.opening_uninterrupted_s is None) == (r["opening_uninterrupted_s"] is None)
                    and abs((m.opening_uninterrupted_s or 0) - (r["opening_uninterrupted_s"] or 0)) < 1e-6
                    and abs(m.longest_monologue_s - r["longest_monologue_s"]) < 1e-6
                    and abs((m.talk_share or 0) - (r["talk_share"] or 0)) < 2e-3
                    and len(m.wait_after_question_s) == len(r["wait_after_question_s"])
                )
                ok += same
            agree = f"{ok}/{len(consultations)}"
        finally:
            sys.path.remove(str(tests_dir))

    f1 = _eval_f1()
    result: dict[str, Any] = {
        **f1,
        "model_mb": round(model_mb, 2),
        "p95_ms_per_utterance": round(p95, 3),
        "median_ms_per_utterance": round(statistics.median(lat), 3),
        "batched_utterances_per_s": round(throughput),
        "timing_agreement_with_reference": agree,
        "targets": TARGETS,
    }
    if out is not None:
        def row(name: str, value: Any, target: str, ok: bool | None) -> None:
            mark = "" if ok is None else ("ok" if ok else "BELOW TARGET")
            out.write(f"  {name:<34} {str(value):>10}   target {target:<10} {mark}\n")

        out.write("behaviours bench (2 threads)\n")
        for key in ("macro_f1", "open_question_f1", "closed_question_f1"):
            v = f1.get(key)
            row(key, v, f">= {TARGETS[key]}", None if v is None else v >= TARGETS[key])
        row("model size (MB)", result["model_mb"], "<= 30", model_mb <= 30)
        row("p95 latency per utterance (ms)", result["p95_ms_per_utterance"], "<= 5", p95 <= 5)
        row("batched throughput (utt/s)", result["batched_utterances_per_s"], ">= 2000", throughput >= 2000)
        row("timing == reference (visits)", agree, "57/57", None if agree is None else agree == "57/57")
    return result
