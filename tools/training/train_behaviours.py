"""Train the language-behaviour classifier and export it to ONNX.

    python -m tools.training.train_behaviours            # ~1 min on 2 cores

Reads tools/training/data/behaviours/{primock57,written}.jsonl, writes
models/behaviours.onnx + models/behaviours_features.json (vocabulary, idf,
thresholds), records both in models/MANIFEST, and regenerates
docs/behaviours-eval.md with per-label precision/recall/F1 on held-out
consultations.

Model: one L2-regularised logistic regression per label over the sparse
n-gram features of edge_agent.behaviours.features, exported as
Gather(W, idx) * val -> sum -> + b -> sigmoid. Build-time deps: scikit-learn,
onnx (the device needs only onnxruntime + numpy).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import precision_recall_fscore_support  # noqa: E402

from edge_agent.behaviours.features import Vocabulary, extract, weights  # noqa: E402
from edge_agent.behaviours.jargon import JargonDetector  # noqa: E402
from edge_agent.behaviours.labels import LABELS  # noqa: E402

SEED = 20240613
DATA = ROOT / "tools" / "training" / "data" / "behaviours"
MODELS = ROOT / "models"
MIN_DF = 2
C = 16.0
HELD_OUT_FRACTION = 0.2


def load_rows() -> list[dict]:
    rows = []
    for name in ("primock57.jsonl", "written.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                r.setdefault("group", r["consultation"])
                rows.append(r)
    return rows


def build_vocab(texts: list[str]) -> Vocabulary:
    df: Counter[str] = Counter()
    for t in texts:
        df.update(set(extract(t)))
    kept = sorted(f for f, n in df.items() if n >= MIN_DF)
    n = len(texts)
    # Smooth idf as sklearn does: log((1+n)/(1+df)) + 1.
    return Vocabulary({f: i for i, f in enumerate(kept)}, [math.log((1 + n) / (1 + df[f])) + 1.0 for f in kept])


def matrix(texts: list[str], vocab: Vocabulary) -> csr_matrix:
    data, ind, ptr = [], [], [0]
    for t in texts:
        for j, v in sorted(weights(extract(t), vocab)):
            ind.append(j)
            data.append(v)
        ptr.append(len(ind))
    return csr_matrix((np.array(data, np.float64), np.array(ind, np.int64), np.array(ptr, np.int64)), shape=(len(texts), vocab.size))


def targets(rows: list[dict]) -> np.ndarray:
    return np.array([[1 if lab in r["labels"] else 0 for lab in LABELS] for r in rows], dtype=np.int64)


def fit(x: csr_matrix, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = np.zeros((x.shape[1], len(LABELS)), np.float64)
    b = np.full(len(LABELS), -10.0)
    for k in range(len(LABELS)):
        if y[:, k].sum() == 0:
            continue  # label absent: never fires
        clf = LogisticRegression(C=C, class_weight="balanced", solver="liblinear", random_state=SEED, max_iter=2000)
        clf.fit(x, y[:, k])
        w[:, k] = clf.coef_[0]
        b[k] = clf.intercept_[0]
    return w, b


def predict(x: csr_matrix, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def split_groups(groups: list[str], seed: int) -> tuple[set[str], set[str]]:
    uniq = sorted(set(groups))
    rng = random.Random(seed)
    rng.shuffle(uniq)
    n_test = max(1, round(len(uniq) * HELD_OUT_FRACTION))
    return set(uniq[n_test:]), set(uniq[:n_test])


def tune_thresholds(rows: list[dict], folds: int = 5) -> list[float]:
    """Per-label threshold maximising F1 on grouped out-of-fold predictions."""
    groups = sorted({r["group"] for r in rows})
    rng = random.Random(SEED + 1)
    rng.shuffle(groups)
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    y = targets(rows)
    oof = np.zeros(y.shape)
    for f in range(folds):
        tr = [r for r in rows if fold_of[r["group"]] != f]
        te_idx = [i for i, r in enumerate(rows) if fold_of[r["group"]] == f]
        vocab = build_vocab([r["text"] for r in tr])
        w, b = fit(matrix([r["text"] for r in tr], vocab), targets(tr))
        oof[te_idx] = predict(matrix([rows[i]["text"] for i in te_idx], vocab), w, b)
    out = []
    for k in range(len(LABELS)):
        best, best_t = -1.0, 0.5
        # Thresholds from grouped out-of-fold predictions of the training part only.
        for t in np.arange(0.2, 0.81, 0.05):
            p, r_, f1, _ = precision_recall_fscore_support(y[:, k], oof[:, k] >= t, average="binary", zero_division=0)
            if f1 > best + 1e-9:
                best, best_t = f1, float(round(t, 2))
        out.append(best_t)
    return out


def export_onnx(w: np.ndarray, b: np.ndarray, path: Path) -> None:
    vsize = w.shape[0]
    w_pad = np.vstack([w, np.zeros((1, w.shape[1]))]).astype(np.float32)  # row vsize = padding
    nodes = [
        helper.make_node("Gather", ["W", "indices"], ["gathered"], axis=0),
        helper.make_node("Unsqueeze", ["values", "axis_last"], ["values3"]),
        helper.make_node("Mul", ["gathered", "values3"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axis_one"], ["logits0"], keepdims=0),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "behaviours",
        [
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["batch", "features"]),
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", "features"]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializer=[
            numpy_helper.from_array(w_pad, "W"),
            numpy_helper.from_array(b.astype(np.float32), "B"),
            numpy_helper.from_array(np.array([-1], np.int64), "axis_last"),
            numpy_helper.from_array(np.array([1], np.int64), "axis_one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edge-agent train_behaviours")
    model.ir_version = 8
    model.metadata_props.append(onnx.StringStringEntryProto(key="labels", value=",".join(LABELS)))
    model.metadata_props.append(onnx.StringStringEntryProto(key="vocab_size", value=str(vsize)))
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def scores_table(y: np.ndarray, pred: np.ndarray) -> list[tuple[str, float, float, float, int]]:
    out = []
    for k, lab in enumerate(LABELS):
        p, r, f1, _ = precision_recall_fscore_support(y[:, k], pred[:, k], average="binary", zero_division=0)
        out.append((lab, float(p), float(r), float(f1), int(y[:, k].sum())))
    return out


def main() -> None:
    t_start = time.time()
    rows = load_rows()
    train_groups, test_groups = split_groups([r["group"] for r in rows], SEED)
    train = [r for r in rows if r["group"] in train_groups]
    test = [r for r in rows if r["group"] in test_groups]

    thresholds = tune_thresholds(train)
    vocab = build_vocab([r["text"] for r in train])
    w, b = fit(matrix([r["text"] for r in train], vocab), targets(train))
    probs = predict(matrix([r["text"] for r in test], vocab), w, b)
    pred = probs >= np.array(thresholds)
    y_test = targets(test)
    model_table = scores_table(y_test, pred)
    # Jargon as shipped: the lexicon detector decides it.
    jd = JargonDetector(MODELS / "jargon_lexicon.tsv")
    merged = pred.copy()
    kj = LABELS.index("jargon")
    merged[:, kj] = [jd.has_unexplained(r["text"]) for r in test]
    merged_table = scores_table(y_test, merged)
    real = np.array([r["consultation"] != "written" for r in test])
    primock_table = scores_table(y_test[real], merged[real])

    # Final model: same recipe on all data.
    vocab_all = build_vocab([r["text"] for r in rows])
    x_all = matrix([r["text"] for r in rows], vocab_all)
    w_all, b_all = fit(x_all, targets(rows))
    onnx_path = MODELS / "behaviours.onnx"
    export_onnx(w_all, b_all, onnx_path)
    feat_path = MODELS / "behaviours_features.json"
    feat_path.write_text(
        json.dumps(
            {
                "format": 1,
                "labels": list(LABELS),
                "thresholds": dict(zip(LABELS, thresholds)),
                "jargon_from": "lexicon",
                "featuriser": "edge_agent.behaviours.features v2 (word 1-3, first words, last token, char 3-5, sublinear tf-idf, L2; question-form cues)",
                "idf": vocab_all.idf,
                "vocab": list(vocab_all.index),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ),
        encoding="utf-8",
    )

    # Parity: onnxruntime on the runtime featuriser == sklearn-side numpy.
    from edge_agent.behaviours.features import batch_arrays

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    texts = [r["text"] for r in rows[:500]]
    idx, val = batch_arrays(texts, vocab_all)
    onnx_p = sess.run(None, {"indices": idx, "values": val})[0]
    ref_p = predict(matrix(texts, vocab_all), w_all, b_all)
    parity = float(np.abs(onnx_p - ref_p).max())
    assert parity < 1e-4, f"ONNX parity failed: {parity}"

    try:
        from edge_agent.models import Source, record_artefact

        data_note = "PriMock57 doctor sentences (CC BY 4.0, Papadopoulos Korfiatis et al. 2022) labelled for edge-agent + written examples; see tools/training/data/behaviours/README.md"
        for p, desc in (
            (onnx_path, "language behaviours: indices/values (batch, features) -> probabilities (batch, 11), labels in metadata"),
            (feat_path, "featuriser vocabulary, idf and per-label thresholds for behaviours.onnx"),
        ):
            record_artefact(
                p,
                source=Source(package="edge-agent", version="1", data=data_note),
                licence="CC BY 4.0 (derived from PriMock57)",
                build="python -m tools.training.data.behaviours.build_dataset && python -m tools.training.train_behaviours",
                description=desc,
                extra={"seed": SEED, "parity_max_abs_diff": parity} if p == onnx_path else {},
                root=MODELS,
            )
    except ImportError:
        pass

    macro_model = float(np.mean([f for _, _, _, f, n in model_table if n]))
    macro_merged = float(np.mean([f for _, _, _, f, n in merged_table if n]))
    write_eval(model_table, merged_table, primock_table, macro_model, macro_merged, train, test, thresholds, vocab_all.size, onnx_path, parity, time.time() - t_start)
    print(f"macro-F1 held-out: model {macro_model:.3f}, shipped (jargon from lexicon) {macro_merged:.3f}; vocab {vocab_all.size}; {time.time() - t_start:.1f}s")


def write_eval(model_table, merged_table, primock_table, macro_model, macro_merged, train, test, thresholds, vsize, onnx_path, parity, secs) -> None:  # type: ignore[no-untyped-def]
    test_cons = sorted({r["group"] for r in test})
    lines = [
        "# Language behaviours: held-out evaluation",
        "",
        "Regenerated by `python -m tools.training.train_behaviours` (seed fixed); do not edit by hand.",
        "",
        f"- Held-out split grouped by consultation: {len(test_cons)} of {len({r['group'] for r in train}) + len(test_cons)} groups "
        f"({len(test)} sentences; train {len(train)}). Written examples are grouped in 10 pseudo-consultations and split the same way.",
        f"- Held-out groups: {', '.join(test_cons)}",
        "- Thresholds tuned per label by 5-fold grouped cross-validation inside the training part only.",
        f"- The shipped model uses the same recipe refitted on all data: vocabulary {vsize} features, "
        f"`{onnx_path.name}` {onnx_path.stat().st_size / 1e6:.2f} MB, ONNX-vs-numpy parity {parity:.1e}.",
        f"- Build time {secs:.0f} s on this machine.",
        "",
        f"**Macro-F1 (labels present in the held-out part): shipped = {macro_merged:.3f}; model head alone = {macro_model:.3f}.**",
        "",
        f"Macro-F1 over the ten model labels only (jargon left out): "
        f"{np.mean([f for lab, _, _, f, n in merged_table if n and lab != 'jargon']):.3f}. The jargon row is not an independent "
        "measurement: the jargon labels were pre-annotated by the same lexicon detector and then corrected by hand, so it "
        "shows only where the annotator overruled the detector.",
        "",
        "| label | precision | recall | F1 | support | F1 (model head alone) | threshold |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (lab, p, r, f1, n), (_, _, _, f1m, _), t in zip(merged_table, model_table, thresholds):
        lines.append(f"| {lab} | {p:.3f} | {r:.3f} | {f1:.3f} | {n} | {f1m:.3f} | {t:.2f} |")
    lines += [
        "",
        "Held-out PriMock57 sentences only (written examples removed; rare labels have very small support here):",
        "",
        "| label | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for lab, p, r, f1, n in primock_table:
        lines.append(f"| {lab} | {p:.3f} | {r:.3f} | {f1:.3f} | {n} |")
    lines.append(f"\nMacro-F1 on these (labels with support): {np.mean([f for _, _, _, f, n in primock_table if n]):.3f}.")
    lines += [
        "",
        "\"Shipped\" = what `BehaviourClassifier.classify` returns: the ONNX model for ten labels and the",
        "lexicon detector (edge_agent/behaviours/jargon.py, with its explained-nearby logic) for `jargon`.",
        "Labels are the annotator's (see docs/labelling.md and tools/training/data/behaviours/README.md): a rule",
        "pre-annotation reviewed and corrected by hand in four passes (rare labels in full; then every sentence where",
        "grouped cross-validated predictions disagreed with the label; then an open/closed consistency pass). The",
        "fourth pass was prompted by open/closed misses, held-out ones included: its candidates were found by pattern",
        "over all sentences, train and held-out alike, decided by the guide's form rule, and the boundary cases were",
        "added to the guide; 31 labels changed (see corrections.tsv, pass 4). Figures are agreement with these labels,",
        "not with an independent second annotator. Rare labels have small support, so they move by several points",
        "with another split. The question-form cues in the featuriser were chosen by grouped cross-validation inside",
        "the training part (open F1 0.82 -> 0.87, closed 0.93 -> 0.97 there).",
        "",
    ]
    (ROOT / "docs" / "behaviours-eval.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
