#!/usr/bin/env python3
"""Train the doctor-vs-patient language classifier and export models/role_classifier.onnx.

    pip install scikit-learn skl2onnx onnx      # build extras, not needed on the device
    python -m tools.training.train_role_classifier

Data: PriMock57 doctor and patient utterances (CC BY 4.0). Consultations
selected by ``edge_agent.speakers.role.held_out`` are never trained on: the
speaker evaluation runs on them, and this script reports accuracy there.
Features: ``edge_agent.speakers.role.featurise`` (hashed word n-grams), the
same code the device runs. Model: logistic regression, fixed seed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

from edge_agent.models import Source, record_artefact  # noqa: E402
from edge_agent.speakers.role import N_FEATURES, featurise, held_out  # noqa: E402
from tools.corpus.primock import consultation_ids, load_consultation  # noqa: E402

BUILD = "python -m tools.training.train_role_classifier"
SEED = 0
MIN_WORDS = 1


def _data(ids: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts, labels, weights = [], [], []
    for cid in ids:
        for turn in load_consultation(cid).turns:
            n = len(turn.text.split())
            if n >= MIN_WORDS:
                texts.append(turn.text)
                labels.append(1 if turn.role == "doctor" else 0)
                weights.append(n)
    return texts, np.array(labels), np.array(weights, np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "models" / "role_classifier.onnx")
    parser.add_argument("--C", type=float, default=4.0)
    args = parser.parse_args()

    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    ids = consultation_ids()
    test_ids = held_out(ids)
    train_ids = [c for c in ids if c not in test_ids]
    x_texts, y, _ = _data(train_ids)
    t_texts, ty, tw = _data(test_ids)
    x = featurise(x_texts)
    clf = LogisticRegression(C=args.C, max_iter=2000, random_state=SEED, class_weight="balanced")
    clf.fit(x, y)
    pred = clf.predict(featurise(t_texts))
    acc = float((pred == ty).mean())
    wacc = float(((pred == ty) * tw).sum() / tw.sum())
    print(f"train {len(x_texts)} utterances ({len(train_ids)} consultations); held-out {len(t_texts)} ({len(test_ids)})")
    print(f"held-out accuracy per utterance {acc:.3f}, word-weighted {wacc:.3f}")

    onx = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, N_FEATURES]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(onx.SerializeToString())

    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    ft = featurise(t_texts[:200])
    diff = float(np.abs(sess.run(None, {"features": ft})[1][:, 1] - clf.predict_proba(ft)[:, 1]).max())
    print(f"ONNX vs sklearn max |diff| of P(doctor): {diff:.2e}")
    if diff > 1e-4:
        sys.exit("parity check failed")

    record_artefact(
        args.out,
        source=Source(
            package="edge-agent",
            version=f"scikit-learn {importlib.metadata.version('scikit-learn')}, skl2onnx {importlib.metadata.version('skl2onnx')}",
            data="PriMock57 transcripts (CC BY 4.0, Babylon Health)",
        ),
        licence="CC BY 4.0 (trained on PriMock57; credit Papadopoulos Korfiatis et al. 2022)",
        build=BUILD,
        description="doctor vs patient language: hashed word n-gram features (edge_agent.speakers.role.featurise) -> "
        "logistic regression; outputs label and probabilities [patient, doctor]",
        extra={
            "n_features": N_FEATURES,
            "seed": SEED,
            "C": args.C,
            "held_out_consultations": test_ids,
            "held_out_accuracy": round(acc, 4),
            "held_out_word_weighted_accuracy": round(wacc, 4),
        },
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); MANIFEST updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
