"""Who talks like the clinician: a small text classifier (doctor vs patient language).

Features are hashed word uni- and bigrams (plus a question-mark token) computed
here in plain Python/numpy; the same function builds the training matrix in
``tools/training/train_role_classifier.py``, so training and run time agree exactly.
The classifier itself is a logistic regression exported to ONNX
(``models/role_classifier.onnx``): the device needs onnxruntime only.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from edge_agent.models import verify_model
from edge_agent.ort_session import open_session

MODEL_NAME = "role_classifier.onnx"
N_FEATURES = 1 << 14
_TOKEN = re.compile(r"[a-z0-9']+|\?")

# PriMock57 consultations never used for training: the speaker evaluation runs on them.
HELD_OUT_EVERY = 6  # consultation ids sorted; every 6th one (index % 6 == 0) is held out


def held_out(ids: list[str]) -> list[str]:
    ordered = sorted(ids)
    return [cid for i, cid in enumerate(ordered) if i % HELD_OUT_EVERY == 0]


def _hash(feature: str) -> int:
    # crc32 is stable across Python runs and platforms (unlike hash()).
    return zlib.crc32(feature.encode("utf-8")) % N_FEATURES


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def featurise(texts: list[str]) -> np.ndarray:
    """(len(texts), N_FEATURES) float32: log(1 + count) of hashed n-grams, L2-normalised rows."""
    out = np.zeros((len(texts), N_FEATURES), np.float32)
    for row, text in enumerate(texts):
        toks = ["<s>", *tokens(text), "</s>"]
        feats = [f"u:{t}" for t in toks[1:-1]] + [f"b:{a} {b}" for a, b in zip(toks, toks[1:])]
        for feat in feats:
            out[row, _hash(feat)] += 1.0
        np.log1p(out[row], out=out[row])
        norm = float(np.linalg.norm(out[row]))
        if norm > 0:
            out[row] /= norm
    return out


class RoleClassifier:
    """P(doctor | text) for utterances."""

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        path = model_path or verify_model(MODEL_NAME)
        # a small linear model: always on the CPU, whatever provider the encoders use
        self.session = open_session(path, threads, "cpu", "role model", "python -m tools.training.train_role_classifier")
        self._input = self.session.get_inputs()[0].name
        self._proba = self.session.get_outputs()[1].name

    def p_doctor(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, np.float32)
        proba = self.session.run([self._proba], {self._input: featurise(texts)})[0]
        return np.asarray(proba, np.float32)[:, 1]
