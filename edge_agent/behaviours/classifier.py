"""Runtime language-behaviour classifier: ONNX model + lexicon jargon detector.

Needs onnxruntime and numpy only. The model and its featuriser file are
checked against models/MANIFEST before use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.behaviours.features import Vocabulary, batch_arrays
from edge_agent.behaviours.jargon import JargonDetector
from edge_agent.behaviours.labels import LABELS
from edge_agent.errors import ModelError

MODEL_NAME = "behaviours.onnx"
FEATURES_NAME = "behaviours_features.json"
# Scores for jargon come from the lexicon detector: an unexplained term is certain
# evidence, an explained one is reported below threshold so it can be inspected.
JARGON_UNEXPLAINED, JARGON_EXPLAINED, JARGON_NONE = 1.0, 0.25, 0.0


@dataclass(frozen=True)
class Classification:
    text: str
    labels: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "labels": list(self.labels), "scores": {k: round(v, 4) for k, v in self.scores.items()}}


def _resolve(name: str, models_dir: Path | None) -> Path:
    """Verified path of an artefact (sha256 against MANIFEST)."""
    try:
        from edge_agent.models import verify_model
    except ImportError:  # models.py absent: fall back to the plain file
        base = models_dir or Path(__file__).resolve().parents[2] / "models"
        path = base / name
        if not path.is_file():
            raise ModelError(f"model file {path} is missing; run: python -m tools.training.train_behaviours") from None
        return path
    return verify_model(name, models_dir)


class BehaviourClassifier:
    """Multi-label classifier of clinician sentences into the docs/design.md §5 labels."""

    def __init__(self, threads: int = 1, models_dir: Path | None = None, lexicon_path: Path | None = None) -> None:
        import onnxruntime as ort

        model_path = _resolve(MODEL_NAME, models_dir)
        feat_path = _resolve(FEATURES_NAME, models_dir)
        try:
            meta = json.loads(feat_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{feat_path} is unreadable ({exc}); run: python -m tools.training.train_behaviours") from None
        if tuple(meta.get("labels", ())) != LABELS:
            raise ModelError(f"{feat_path} was built for other labels; run: python -m tools.training.train_behaviours")
        self.vocab = Vocabulary({f: i for i, f in enumerate(meta["vocab"])}, meta["idf"])
        self.thresholds = np.array([float(meta["thresholds"][lab]) for lab in LABELS], dtype=np.float32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        if models_dir is not None and lexicon_path is None and (models_dir / "jargon_lexicon.tsv").is_file():
            lexicon_path = models_dir / "jargon_lexicon.tsv"
        self.jargon = JargonDetector(lexicon_path)
        self._jargon_k = LABELS.index("jargon")

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 11) model probabilities, jargon column from the lexicon detector."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        idx, val = batch_arrays(texts, self.vocab)
        probs = self.session.run(None, {"indices": idx, "values": val})[0]
        for i, t in enumerate(texts):
            hits = self.jargon.find(t)
            if any(not h.explained for h in hits):
                probs[i, self._jargon_k] = JARGON_UNEXPLAINED
            else:
                probs[i, self._jargon_k] = JARGON_EXPLAINED if hits else JARGON_NONE
        return probs

    def classify(self, texts: list[str]) -> list[Classification]:
        probs = self.probabilities(list(texts))
        on = probs >= self.thresholds
        on[:, self._jargon_k] = probs[:, self._jargon_k] >= 0.5
        out = []
        for t, p, o in zip(texts, probs, on):
            labels = tuple(lab for lab, flag in zip(LABELS, o) if flag)
            out.append(Classification(t, labels, {lab: float(v) for lab, v in zip(LABELS, p)}))
        return out
