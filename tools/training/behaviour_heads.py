"""Feature sets, per-label logistic-regression heads, thresholds and the two evaluations
(leave-one-source-out and grouped in-domain) of the behaviour classifier. Build time only
(scikit-learn, scipy); used by tools/training/train_behaviours.py.

A feature set (``Spec``) is some of: the sparse n-gram featuriser of
edge_agent.behaviours.features (version 2 = as shipped before, version 3 = plus the
sentence-form cues), or only its form cues, and the sentence encoder's embedding
(``edge_agent.behaviours.encoder``, one sentence per call), stacked column-wise. One
L2-regularised logistic regression per label (class_weight balanced). Decision
thresholds are tuned per label on out-of-fold predictions **inside the training rows
only**: by leave-one-source-out over the training sources (``inner="loso"``) or by
grouped 5-fold CV (``inner="grouped"``).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression

from edge_agent.behaviours.features import Context, Vocabulary, extract, weights
from edge_agent.behaviours.labels import LABELS
from edge_agent.behaviours.units import combine, expand, normalise
from tools.training.behaviour_sources import norm

SEED = 20240613
MIN_DF = 2
GRID = np.round(np.arange(0.10, 0.91, 0.05), 2)
QUESTION_COLUMNS = (LABELS.index("open_question"), LABELS.index("closed_question"))
CACHE = Path.home() / ".cache" / "edge-agent" / "behaviour-embeddings"


@dataclass(frozen=True)
class Spec:
    name: str
    ngram: bool = True  # word/char n-grams + question cues
    version: int = 2  # featuriser version (3 = + sentence-form cues)
    cues_only: bool = False  # keep only the q:/q3: cues of the featuriser (no n-grams)
    embedding: bool = False
    emb_scale: float = 1.0
    c: float = 16.0
    old_weight: float = 1.0  # sample weight of PriMock57 rows carrying the older labels (0 = left out)
    inner: str = "loso"  # threshold tuning inside training rows: "loso" | "grouped"
    source_balance: bool = False  # weight rows so that every source weighs the same in total
    units: int = 0  # labelling units version (edge_agent.behaviours.units; 0 = whole rows): fit on normalised rows, predict per unit and combine
    # Two threshold vectors, one for sentences with a known dialogue context and one for sentences without
    # (featuriser v6 features them differently, so their probabilities are calibrated differently).
    context_thresholds: bool = False
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def describe(self) -> str:
        parts = []
        if self.embedding:
            parts.append("encoder" + ("" if self.emb_scale == 1.0 else f"x{self.emb_scale:g}"))
        if self.ngram:
            parts.append(("form cues v3" if self.version >= 3 else "question cues v2") if self.cues_only else f"n-grams v{self.version}")
        if self.ngram and self.version >= 5:
            parts[-1] += " with dialogue-context cues (previous patient turn)"
            if self.version >= 6:
                parts[-1] += ", context unknown kept apart from no patient turn yet"
        text = " + ".join(parts) + f"; C {self.c:g}; thresholds by inner {'leave-one-source-out' if self.inner == 'loso' else 'grouped 5-fold CV'}"
        if self.context_thresholds:
            text += ", chosen apart for sentences with and without a known dialogue context"
        if self.old_weight != 1.0:
            text += "; older PriMock57 labels " + ("left out" if self.old_weight == 0 else f"weighted {self.old_weight:g}")
        if self.source_balance:
            text += "; sources weighted equally"
        if self.units:
            text += f"; labelled per unit v{self.units} (sentences, trailing question clause, question form restored" + (
                ", question + question cut (Q1)" if self.units >= 2 else "") + ")"
        return text


# ---------------------------------------------------------------- embeddings


class Embeddings:
    """Embedding of every text by the runtime encoder class, one sentence per call, cached on disk."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int, special_tokens: bool, dim: int) -> None:
        from edge_agent.behaviours.encoder import SentenceEncoder

        self.key = hashlib.sha256(onnx_path.read_bytes() + tokenizer_path.read_bytes() + f"{max_length}{special_tokens}".encode()).hexdigest()[:16]
        self.encoder = SentenceEncoder(onnx_path, tokenizer_path, max_length, special_tokens, dim, threads=1)
        self.dim = dim
        self.table: dict[str, np.ndarray] = {}
        self.path = CACHE / f"{self.key}.npz"
        if self.path.is_file():
            z = np.load(self.path, allow_pickle=False)
            self.table = dict(zip(z["texts"].tolist(), z["vecs"]))

    def ensure(self, texts: list[str]) -> None:
        new = sorted({t for t in texts if t not in self.table})
        for t in new:
            self.table[t] = self.encoder.embed_one(t)
        if new:
            CACHE.mkdir(parents=True, exist_ok=True)
            keys = sorted(self.table)
            np.savez(self.path, texts=np.array(keys), vecs=np.stack([self.table[k] for k in keys]))

    def matrix(self, texts: list[str]) -> np.ndarray:
        self.ensure(texts)
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------- features


Ctxs = list[Context | None] | None  # one dialogue context per text (None: none known), read by featuriser v5


def _ctxs(texts: list[str], ctxs: Ctxs) -> list[Context | None]:
    return list(ctxs) if ctxs is not None else [None] * len(texts)


def ctx_of(rows: list[dict]) -> list[Context | None]:
    """The rows' dialogue contexts (behaviour_sources ``ctx``)."""
    return [r.get("ctx") for r in rows]


def build_vocab(texts: list[str], version: int, cues_only: bool, ctxs: Ctxs = None) -> Vocabulary:
    df: Counter[str] = Counter()
    for t, c in zip(texts, _ctxs(texts, ctxs)):
        df.update(set(extract(t, version, c)))
    kept = sorted(f for f, n in df.items() if n >= MIN_DF and (not cues_only or f.startswith(("q:", "q3:", "q4:"))))
    n = len(texts)
    return Vocabulary({f: i for i, f in enumerate(kept)}, [math.log((1 + n) / (1 + df[f])) + 1.0 for f in kept])


def sparse_matrix(texts: list[str], vocab: Vocabulary, version: int, ctxs: Ctxs = None) -> csr_matrix:
    data, ind, ptr = [], [], [0]
    for t, c in zip(texts, _ctxs(texts, ctxs)):
        for j, v in sorted(weights(extract(t, version, c), vocab)):
            ind.append(j)
            data.append(v)
        ptr.append(len(ind))
    return csr_matrix((np.array(data, np.float64), np.array(ind, np.int64), np.array(ptr, np.int64)), shape=(len(texts), vocab.size))


class Featuriser:
    """Fitted on training texts (vocabulary); turns texts into the head's input matrix."""

    def __init__(self, spec: Spec, emb: Embeddings | None) -> None:
        self.spec, self.emb = spec, emb
        self.vocab: Vocabulary | None = None

    def fit(self, texts: list[str], ctxs: Ctxs = None) -> Featuriser:
        if self.spec.ngram:
            self.vocab = build_vocab(texts, self.spec.version, self.spec.cues_only, ctxs)
        return self

    def transform(self, texts: list[str], ctxs: Ctxs = None) -> csr_matrix:
        parts = []
        if self.spec.ngram:
            assert self.vocab is not None
            parts.append(sparse_matrix(texts, self.vocab, self.spec.version, ctxs))
        if self.spec.embedding:
            assert self.emb is not None
            parts.append(csr_matrix(self.emb.matrix(texts).astype(np.float64) * self.spec.emb_scale))
        return hstack(parts).tocsr() if len(parts) > 1 else parts[0].tocsr()


def targets(rows: list[dict]) -> np.ndarray:
    return np.array([[1 if lab in r["labels"] else 0 for lab in LABELS] for r in rows], dtype=np.int64)


def row_weights(rows: list[dict], spec: Spec) -> np.ndarray:
    w = np.array([spec.old_weight if r["origin"] == "primock57-old" else 1.0 for r in rows])
    if spec.source_balance:
        tot = Counter()
        for r, x in zip(rows, w):
            tot[r["source"]] += x
        mean = sum(tot.values()) / len(tot)
        w = w * np.array([mean / tot[r["source"]] for r in rows])
    return w


@dataclass
class Heads:
    featuriser: Featuriser
    coef: np.ndarray  # (n_features, 11)
    bias: np.ndarray  # (11,)

    def raw_proba(self, texts: list[str], ctxs: Ctxs = None) -> np.ndarray:
        x = self.featuriser.transform(texts, ctxs)
        return 1.0 / (1.0 + np.exp(-(np.asarray(x @ self.coef) + self.bias)))

    def proba(self, texts: list[str], ctxs: Ctxs = None) -> np.ndarray:
        """What the device computes for ``texts`` (per unit and combined when the spec says so); ``ctxs``: each
        text's dialogue context (every unit of a text gets its text's)."""
        if not self.featuriser.spec.units:
            return self.raw_proba(texts, ctxs)
        flat, where = expand(texts, self.featuriser.spec.units)
        flat_ctx: list[Context | None] = [None] * len(flat)
        for c, mine in zip(_ctxs(texts, ctxs), where):
            for _, j in mine:
                flat_ctx[j] = c
        return combine(self.raw_proba(flat, flat_ctx), where, QUESTION_COLUMNS)


def fit(rows: list[dict], spec: Spec, emb: Embeddings | None) -> Heads:
    rows = [r for r in rows if spec.old_weight > 0 or r["origin"] != "primock57-old"]
    texts = [normalise(r["text"]) if spec.units else r["text"] for r in rows]
    ctxs = ctx_of(rows)
    fz = Featuriser(spec, emb).fit(texts, ctxs)
    x = fz.transform(texts, ctxs)
    y = targets(rows)
    sw = row_weights(rows, spec)
    coef = np.zeros((x.shape[1], len(LABELS)))
    bias = np.full(len(LABELS), -10.0)
    for k in range(len(LABELS)):
        if y[:, k].sum() == 0:
            continue  # label absent: never fires
        clf = LogisticRegression(C=spec.c, class_weight="balanced", solver="liblinear", random_state=SEED, max_iter=3000)
        clf.fit(x, y[:, k], sample_weight=sw)
        coef[:, k] = clf.coef_[0]
        bias[k] = clf.intercept_[0]
    return Heads(fz, coef, bias)


# ---------------------------------------------------------------- folds and thresholds


def without_duplicates(train: list[dict], test: list[dict]) -> list[dict]:
    """Training rows minus any sentence whose normalised text is also a test sentence."""
    seen = {norm(r["text"]) for r in test}
    return [r for r in train if norm(r["text"]) not in seen]


def grouped_folds(rows: list[dict], k: int, seed: int) -> list[tuple[list[int], list[int]]]:
    groups = sorted({r["group"] for r in rows})
    random.Random(seed).shuffle(groups)
    fold_of = {g: i % k for i, g in enumerate(groups)}
    return [([i for i, r in enumerate(rows) if fold_of[r["group"]] != f], [i for i, r in enumerate(rows) if fold_of[r["group"]] == f])
            for f in range(k)]


def source_folds(rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    sources = sorted({r["source"] for r in rows})
    return [([i for i, r in enumerate(rows) if r["source"] != s], [i for i, r in enumerate(rows) if r["source"] == s]) for s in sources]


def oof_proba(rows: list[dict], spec: Spec, emb: Embeddings | None) -> np.ndarray:
    folds = source_folds(rows) if spec.inner == "loso" else grouped_folds(rows, 5, SEED + 1)
    out = np.zeros((len(rows), len(LABELS)))
    for tr_idx, te_idx in folds:
        te = [rows[i] for i in te_idx]
        tr = without_duplicates([rows[i] for i in tr_idx], te)
        out[te_idx] = fit(tr, spec, emb).proba([r["text"] for r in te], ctx_of(te))
    return out


def f1_at(y: np.ndarray, pred: np.ndarray) -> float:
    tp = int((y & pred).sum())
    fp = int((~y & pred).sum())
    fn = int((y & ~pred).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def choose_thresholds(rows: list[dict], oof: np.ndarray) -> np.ndarray:
    """Per label, the grid threshold with the best F1 on the out-of-fold predictions (ties: closest to 0.5)."""
    y = targets(rows).astype(bool)
    out = np.full(len(LABELS), 0.5)
    for k in range(len(LABELS)):
        if not y[:, k].any():
            continue
        scored = [(f1_at(y[:, k], oof[:, k] >= t), -abs(t - 0.5), t) for t in GRID]
        out[k] = max(scored)[2]
    return out


def context_known(rows: list[dict]) -> np.ndarray:
    """Per row, whether its dialogue context is known ("no patient turn yet" is known; a single sentence is not)."""
    return np.array([c is not None for c in ctx_of(rows)], dtype=bool)


def choose_context_thresholds(rows: list[dict], oof: np.ndarray) -> np.ndarray:
    """(2, labels): thresholds chosen on the rows with a known context, then on the rows without one."""
    known = context_known(rows)
    pick = lambda mask: choose_thresholds([r for r, m in zip(rows, mask) if m], oof[mask])  # noqa: E731
    return np.stack([pick(known), pick(~known)])


def predict(th: np.ndarray, proba: np.ndarray, rows: list[dict]) -> np.ndarray:
    """Labels on/off: one threshold vector for every row, or (2, labels) picked by whether the row's context is known."""
    if th.ndim == 1:
        return proba >= th
    return np.where(context_known(rows)[:, None], proba >= th[0], proba >= th[1])


def fit_with_thresholds(rows: list[dict], spec: Spec, emb: Embeddings | None) -> tuple[Heads, np.ndarray]:
    """Heads on all ``rows`` and thresholds from out-of-fold predictions inside ``rows``."""
    oof = oof_proba(rows, spec, emb)
    th = choose_context_thresholds(rows, oof) if spec.context_thresholds else choose_thresholds(rows, oof)
    return fit(rows, spec, emb), th


def threshold_record(th: np.ndarray) -> dict:
    """The thresholds as the results files and behaviours_features.json record them."""
    known = th if th.ndim == 1 else th[0]
    out = {"thresholds": dict(zip(LABELS, map(float, known)))}
    if th.ndim == 2:
        out["thresholds_no_context"] = dict(zip(LABELS, map(float, th[1])))
    return out


# ---------------------------------------------------------------- scores


def prf(y: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    tp = int((y & pred).sum())
    fp = int((~y & pred).sum())
    fn = int((y & ~pred).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"p": p, "r": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "n": int(y.sum()), "tp": tp, "fp": fp, "fn": fn}


def score(rows: list[dict], pred: np.ndarray, proba: np.ndarray | None = None, jargon_from_lexicon: bool = True) -> dict:
    """Per-label P/R/F1 of ``pred`` (bool, rows x 11) against the rows' labels; jargon as shipped (lexicon)."""
    y = targets(rows).astype(bool)
    pred = pred.copy()
    if jargon_from_lexicon:
        from edge_agent.behaviours.jargon import JargonDetector
        from edge_agent.models import models_dir

        jd = JargonDetector(models_dir() / "jargon_lexicon.tsv")
        pred[:, LABELS.index("jargon")] = [jd.has_unexplained(r["text"]) for r in rows]
    out = {lab: prf(y[:, k], pred[:, k]) for k, lab in enumerate(LABELS)}
    if proba is not None:
        out["_errors"] = [
            {"id": r["id"], "text": r["text"], "label": lab, "gold": int(y[i, k]), "prob": round(float(proba[i, k]), 3)}
            for i, r in enumerate(rows) for k, lab in enumerate(LABELS)
            if lab != "jargon" and bool(pred[i, k]) != bool(y[i, k])
        ]
    return out


def pooled(parts: list[dict]) -> dict:
    """Sum tp/fp/fn over several scored parts (micro over rows, per label)."""
    out = {}
    for lab in LABELS:
        tp = sum(p[lab]["tp"] for p in parts)
        fp = sum(p[lab]["fp"] for p in parts)
        fn = sum(p[lab]["fn"] for p in parts)
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        out[lab] = {"p": pr, "r": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0, "n": tp + fn, "tp": tp, "fp": fp, "fn": fn}
    return out


def variant(spec: Spec, **kw) -> Spec:  # type: ignore[no-untyped-def]
    return replace(spec, **kw)


# ---------------------------------------------------------------- the two evaluations

TARGET_LABELS = ("open_question", "closed_question", "reflection", "information", "advice")
# The issue-13 out-of-domain targets (leave-one-source-out F1).
LOSO_TARGETS = {"open_question": 0.85, "closed_question": 0.80, "reflection": 0.60, "information": 0.70, "advice": 0.55}


def loso(train: list[dict], gold_all: list[dict], spec: Spec, emb: Embeddings | None, log=print) -> dict:  # type: ignore[no-untyped-def]
    """Leave-one-source-out: for each source, fit (heads + inner thresholds) on the others, test on it.

    The PriMock57 fold is tested on the 891 gold sentences of all 57 consultations (no PriMock57
    row is trained on in that fold); every other fold on the source's own rows.
    """
    out: dict = {}
    for s in sorted({r["source"] for r in train}):
        test = gold_all if s == "primock57" else [r for r in train if r["source"] == s]
        tr = without_duplicates([r for r in train if r["source"] != s], test)
        heads, th = fit_with_thresholds(tr, spec, emb)
        proba = heads.proba([r["text"] for r in test], ctx_of(test))
        out[s] = score(test, predict(th, proba, test), proba)
        out[s]["_thresholds"] = threshold_record(th)["thresholds"] if th.ndim == 1 else threshold_record(th)
        log(f"  {spec.name} LOSO {s:<20} " + " ".join(f"{lab[:5]} {out[s][lab]['f1']:.2f}" for lab in TARGET_LABELS))
    return out


def summary(scored: dict) -> dict:
    """Macro figures of one scored part: the five target labels, and every model label with support."""
    target = float(np.mean([scored[lab]["f1"] for lab in TARGET_LABELS]))
    model = [lab for lab in LABELS if lab != "jargon" and scored[lab]["n"]]
    return {"macro5_f1": target, "macro5_p": float(np.mean([scored[lab]["p"] for lab in TARGET_LABELS])),
            "macro_model_f1": float(np.mean([scored[lab]["f1"] for lab in model]))}
