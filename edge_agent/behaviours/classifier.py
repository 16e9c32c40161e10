"""Runtime language-behaviour classifier: sentence encoder + n-gram features -> ONNX heads, and the
lexicon jargon detector.

Needs onnxruntime, tokenizers and numpy only. Every file (heads, featuriser file, encoder,
tokenizer) is checked against models/MANIFEST before use. What runs here is exactly what
tools/training/train_behaviours.py evaluated: the n-gram features of
edge_agent.behaviours.features (the version named in the featuriser file) and, when the
featuriser file names an encoder, its embedding of the sentence (one sentence per encoder
call, as in training), fed to the per-label heads in ``behaviours.onnx``. When the featuriser
file says ``units``, each text is first cut into labelling units (sentences, a trailing
question clause; question form restored in unpunctuated ASR text) and the units'
probabilities are combined per text (edge_agent.behaviours.units), exactly as the training
script evaluated. Featuriser version 5 also reads each sentence's dialogue context
(``features.Context``: the previous patient turn, whether the sentence opens the reply);
``classify(texts)`` without contexts is still accepted and featurises every text as having
no context (what the model saw for the sources of single sentences).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.behaviours.encoder import SentenceEncoder, make_session
from edge_agent.behaviours.features import FEATURISER_VERSIONS, Context, Vocabulary, batch_arrays
from edge_agent.behaviours.jargon import LEXICON_NAME, JargonDetector, verified_lexicon_path
from edge_agent.behaviours.labels import LABELS
from edge_agent.behaviours.units import VERSIONS as UNIT_VERSIONS
from edge_agent.behaviours.units import combine, expand
from edge_agent.errors import ModelError

MODEL_NAME = "behaviours.onnx"
FEATURES_NAME = "behaviours_features.json"
# Scores for jargon come from the lexicon detector: an unexplained term is certain
# evidence, an explained one is reported below threshold so it can be inspected.
JARGON_UNEXPLAINED, JARGON_EXPLAINED, JARGON_NONE = 1.0, 0.25, 0.0
# Question type of a sentence cut into parts comes from its last part (docs/labelling.md Q1).
QUESTION_COLUMNS = (LABELS.index("open_question"), LABELS.index("closed_question"))


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

    def __init__(self, threads: int = 1, models_dir: Path | None = None, lexicon_path: Path | None = None, provider: str = "cpu") -> None:
        """``provider``: "cpu" or "cuda" (needs onnxruntime-gpu), for the encoder and the heads."""
        model_path = _resolve(MODEL_NAME, models_dir)
        feat_path = _resolve(FEATURES_NAME, models_dir)
        try:
            meta = json.loads(feat_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{feat_path} is unreadable ({exc}); run: python -m tools.training.train_behaviours") from None
        if tuple(meta.get("labels", ())) != LABELS:
            raise ModelError(f"{feat_path} was built for other labels; run: python -m tools.training.train_behaviours")
        self.version = int(meta.get("featuriser_version", 2))
        if self.version not in FEATURISER_VERSIONS:
            raise ModelError(f"{feat_path} needs featuriser version {self.version}, this code has {FEATURISER_VERSIONS}; update edge-agent")
        self.vocab = Vocabulary({f: i for i, f in enumerate(meta["vocab"])}, meta["idf"])
        # "units": the texts are cut into labelling units (sentences, a trailing question clause) and
        # the units' probabilities combined per text (edge_agent.behaviours.units), as in training.
        units = meta.get("units")
        self.units = int(str(units).rsplit("v", 1)[-1]) if units else 0  # 0: whole texts (older models)
        if self.units and self.units not in UNIT_VERSIONS:
            raise ModelError(f"{feat_path} needs labelling units v{self.units}, this code has {UNIT_VERSIONS}; update edge-agent")
        self.thresholds = np.array([float(meta["thresholds"][lab]) for lab in LABELS], dtype=np.float32)
        # A model that reads dialogue context may carry a second threshold vector for sentences whose context is
        # unknown (featured on their own words alone, so their probabilities are calibrated differently).
        unknown = meta.get("thresholds_no_context")
        self.thresholds_no_context = (
            np.array([float(unknown[lab]) for lab in LABELS], dtype=np.float32) if unknown and self.uses_context else None
        )
        self.encoder: SentenceEncoder | None = None
        enc = meta.get("encoder")
        if enc:
            self.encoder = SentenceEncoder(
                _resolve(enc["onnx"], models_dir), _resolve(enc["tokenizer"], models_dir), max_length=int(enc["max_length"]),
                special_tokens=bool(enc["special_tokens"]), dim=int(enc["dim"]), threads=threads, provider=provider,
            )
        self.session = make_session(model_path, threads, provider, "behaviour model")
        if models_dir is not None and lexicon_path is None and (models_dir / LEXICON_NAME).is_file():
            lexicon_path = verified_lexicon_path(models_dir)
        self.jargon = JargonDetector(lexicon_path)
        self._jargon_k = LABELS.index("jargon")

    @property
    def uses_context(self) -> bool:
        """Whether the model reads the dialogue context (featuriser version 5 and later)."""
        return self.version >= 5

    def model_probabilities(self, texts: list[str], contexts: list[Context | None] | None = None) -> np.ndarray:
        """(len(texts), 11) probabilities of the ONNX heads alone (the jargon column is the model's, unused).
        ``contexts``: one per text (None, or a None item: no context)."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError(f"{len(contexts)} contexts for {len(texts)} texts")
        if not self.uses_context:
            contexts = None
        if not self.units:
            return self._heads(texts, contexts)
        flat, where = expand(texts, self.units)
        flat_ctx: list[Context | None] | None = None
        if contexts is not None:
            flat_ctx = [None] * len(flat)
            for c, mine in zip(contexts, where):
                for _, j in mine:
                    flat_ctx[j] = c
        return combine(self._heads(flat, flat_ctx), where, QUESTION_COLUMNS)

    def _heads(self, texts: list[str], contexts: list[Context | None] | None = None) -> np.ndarray:
        idx, val = batch_arrays(texts, self.vocab, self.version, contexts)
        feeds = {"indices": idx, "values": val}
        if self.encoder is not None:
            feeds["embedding"] = self.encoder.embed(texts)
        return self.session.run(None, feeds)[0]

    def probabilities(self, texts: list[str], contexts: list[Context | None] | None = None) -> np.ndarray:
        """(len(texts), 11) model probabilities, jargon column from the lexicon detector."""
        probs = self.model_probabilities(texts, contexts)
        for i, t in enumerate(texts):
            hits = self.jargon.find(t)
            if any(not h.explained for h in hits):
                probs[i, self._jargon_k] = JARGON_UNEXPLAINED
            else:
                probs[i, self._jargon_k] = JARGON_EXPLAINED if hits else JARGON_NONE
        return probs

    def row_thresholds(self, n: int, contexts: list[Context | None] | None) -> np.ndarray:
        """(n, labels) thresholds: the unknown-context vector for a sentence without a context, when the model has one."""
        out = np.tile(self.thresholds, (n, 1))
        if self.thresholds_no_context is not None:
            unknown = [True] * n if contexts is None else [c is None for c in contexts]
            out[np.array(unknown, dtype=bool)] = self.thresholds_no_context
        return out

    def classify(self, texts: list[str], contexts: list[Context | None] | None = None) -> list[Classification]:
        """Labels of each text; ``contexts`` (one per text) gives each sentence's dialogue context
        (``features.Context``: the previous patient turn), read by models of featuriser version 5."""
        probs = self.probabilities(list(texts), None if contexts is None else list(contexts))
        on = probs >= self.row_thresholds(len(probs), contexts)
        on[:, self._jargon_k] = probs[:, self._jargon_k] >= 0.5
        out = []
        for t, p, o in zip(texts, probs, on):
            labels = tuple(lab for lab, flag in zip(LABELS, o) if flag)
            out.append(Classification(t, labels, {lab: float(v) for lab, v in zip(LABELS, p)}))
        return out
