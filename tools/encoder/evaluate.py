"""Downstream label F1 of encoder candidates with simple heads (build/eval time: scikit-learn, scipy).

    python tools/encoder/evaluate.py --encoders /tmp/enc/static-256 /tmp/enc/minilm-l3-nb8 [--ngram] [--combo]

For each feature set (n-gram baseline, each encoder, each encoder + n-grams):

* in-domain: 5-fold cross-validation on PriMock57 grouped by consultation;
* out-of-domain (leave-one-source-out): train on all of PriMock57, test on
  (a) tools/encoder/probe_mi.jsonl, MI-counselling-style therapist sentences
      written by the encoder engineer (a probe, not gold, not independent), and
  (b) models/data/behaviours/written.jsonl, the annotator's written examples.

Heads: one logistic regression per label (class_weight balanced); the decision
threshold of each label is tuned by grouped 5-fold CV inside the training data
only (as scripts/train_behaviours.py does). Nothing is tuned on the test source.
Results go to tools/encoder/results/<feature set>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support
from threadpoolctl import threadpool_limits

from edge_agent.behaviours.features import Vocabulary, extract, weights

ROOT = Path(__file__).resolve().parents[2]

threadpool_limits(1)  # one BLAS thread: faster for these small fits and kinder to a shared 2-core machine

REPORT = ("open_question", "closed_question", "reflection", "information", "advice", "empathy")
SEED = 20240613
DATA = ROOT / "models" / "data" / "behaviours"
PROBE = ROOT / "tools" / "encoder" / "probe_mi.jsonl"
RESULTS = ROOT / "tools" / "encoder" / "results"
CACHE = Path("/tmp/encoder-eval-cache")
C_SPARSE = 16.0  # as the shipped classifier
C_DENSE = 0.3  # on standardised embeddings; chosen by in-domain grouped CV only (see README)
DENSE_SCALE = 1.0  # multiplier of the unit-norm embedding when stacked with n-grams (in-domain CV)


def load(path: Path, group_key: str = "group") -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            r.setdefault("group", r.get("consultation", "x"))
            rows.append(r)
    return rows


def targets(rows: list[dict]) -> np.ndarray:
    return np.array([[1 if lab in r["labels"] else 0 for lab in REPORT] for r in rows], dtype=np.int64)


# ---------------------------------------------------------------- features


class NgramFeatures:
    """The shipped sparse featuriser; vocabulary built on the training texts only (MIN_DF 2)."""

    def fit(self, texts: list[str]) -> NgramFeatures:
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(extract(t)))
        kept = sorted(f for f, n in df.items() if n >= 2)
        n = len(texts)
        self.vocab = Vocabulary({f: i for i, f in enumerate(kept)}, [math.log((1 + n) / (1 + df[f])) + 1.0 for f in kept])
        return self

    def transform(self, texts: list[str]) -> csr_matrix:
        data, ind, ptr = [], [], [0]
        for t in texts:
            for j, v in sorted(weights(extract(t), self.vocab)):
                ind.append(j)
                data.append(v)
            ptr.append(len(ind))
        return csr_matrix((np.array(data), np.array(ind, np.int64), np.array(ptr, np.int64)), shape=(len(texts), self.vocab.size))


def embed_cached(folder: Path, texts: list[str]) -> np.ndarray:
    from tools.encoder.runtime import Encoder

    meta = json.loads((folder / "encoder.json").read_text())
    mode = "b32" if meta.get("batch_invariant", True) else "b1"  # as the runtime embeds by default
    key = hashlib.sha256((meta["files"]["encoder.onnx"]["sha256"] + mode + "\n".join(texts)).encode()).hexdigest()[:20]
    CACHE.mkdir(exist_ok=True)
    p = CACHE / f"{meta['name']}-{key}.npy"
    if p.is_file():
        return np.load(p)
    x = Encoder(folder, threads=2).embed(texts)
    np.save(p, x)
    return x


# ---------------------------------------------------------------- heads


def fit_heads(x, y: np.ndarray, sparse: bool, c: float) -> list[LogisticRegression]:  # type: ignore[no-untyped-def]
    heads = []
    for k in range(y.shape[1]):
        if sparse:
            clf = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=SEED, max_iter=3000)
        else:
            clf = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=3000)
        clf.fit(x, y[:, k])
        heads.append(clf)
    return heads


def predict(heads, x) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.stack([h.predict_proba(x)[:, 1] for h in heads], 1)


def fold_ids(groups: list[str], folds: int, seed: int) -> np.ndarray:
    uniq = sorted(set(groups))
    random.Random(seed).shuffle(uniq)
    f = {g: i % folds for i, g in enumerate(uniq)}
    return np.array([f[g] for g in groups])


class FeatureSet:
    """Builds train/test matrices for one feature set from texts (+ cached embeddings by row index)."""

    def __init__(self, name: str, emb: dict[str, np.ndarray] | None, ngram: bool) -> None:
        self.name, self.emb, self.ngram = name, emb, ngram

    @property
    def sparse(self) -> bool:
        return self.ngram

    @property
    def c(self) -> float:
        return C_SPARSE if self.ngram else C_DENSE

    def matrices(self, tr: list[dict], te: list[dict]):  # type: ignore[no-untyped-def]
        parts_tr, parts_te = [], []
        if self.ngram:
            nf = NgramFeatures().fit([r["text"] for r in tr])
            parts_tr.append(nf.transform([r["text"] for r in tr]))
            parts_te.append(nf.transform([r["text"] for r in te]))
        if self.emb is not None:
            etr = np.stack([self.emb[r["id"]] for r in tr])
            ete = np.stack([self.emb[r["id"]] for r in te])
            if self.ngram:
                parts_tr.append(csr_matrix(etr * DENSE_SCALE))
                parts_te.append(csr_matrix(ete * DENSE_SCALE))
            else:  # standardised on the training rows (faster, better-conditioned lbfgs)
                mu, sd = etr.mean(0), etr.std(0) + 1e-6
                parts_tr.append((etr - mu) / sd)
                parts_te.append((ete - mu) / sd)
        if self.ngram:
            return hstack(parts_tr).tocsr(), hstack(parts_te).tocsr()
        return parts_tr[0], parts_te[0]


def tuned_predict(fs: FeatureSet, tr: list[dict], te: list[dict], tune: bool = True) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Probabilities on te, predictions with thresholds tuned by grouped 5-fold CV inside tr (or 0.5)."""
    y = targets(tr)
    if not tune:
        xtr, xte = fs.matrices(tr, te)
        probs = predict(fit_heads(xtr, y, fs.sparse, fs.c), xte)
        return probs, probs >= 0.5, [0.5] * y.shape[1]
    fid = fold_ids([r["group"] for r in tr], 5, SEED + 1)
    oof = np.zeros(y.shape)
    for f in range(5):
        a = [r for r, k in zip(tr, fid) if k != f]
        b_idx = np.where(fid == f)[0]
        xa, xb = fs.matrices(a, [tr[i] for i in b_idx])
        oof[b_idx] = predict(fit_heads(xa, targets(a), fs.sparse, fs.c), xb)
    th = []
    for k in range(y.shape[1]):
        best, best_t = -1.0, 0.5
        for t in np.arange(0.2, 0.81, 0.05):
            f1 = precision_recall_fscore_support(y[:, k], oof[:, k] >= t, average="binary", zero_division=0)[2]
            if f1 > best + 1e-9:
                best, best_t = f1, float(round(t, 2))
        th.append(best_t)
    xtr, xte = fs.matrices(tr, te)
    probs = predict(fit_heads(xtr, y, fs.sparse, fs.c), xte)
    return probs, probs >= np.array(th), th


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    out = {}
    for k, lab in enumerate(REPORT):
        p, r, f1, _ = precision_recall_fscore_support(y[:, k], pred[:, k], average="binary", zero_division=0)
        out[lab] = {"p": round(float(p), 3), "r": round(float(r), 3), "f1": round(float(f1), 3), "n": int(y[:, k].sum())}
    out["macro"] = round(float(np.mean([out[lab]["f1"] for lab in REPORT])), 3)
    return out


def evaluate(fs: FeatureSet, primock: list[dict], tests: dict[str, list[dict]], cv: bool = True, tune: bool = True) -> dict:
    t0 = time.time()
    res: dict = {"feature_set": fs.name}
    if cv:
        fid = fold_ids([r["group"] for r in primock], 5, SEED)
        pred = np.zeros((len(primock), len(REPORT)), bool)
        for f in range(5):
            tr = [r for r, k in zip(primock, fid) if k != f]
            te_idx = np.where(fid == f)[0]
            _, p, _ = tuned_predict(fs, tr, [primock[i] for i in te_idx], tune)
            pred[te_idx] = p
        res["in_domain_cv"] = scores(targets(primock), pred)
    # Leave-one-source-out: one fit on all of PriMock57, applied to every other source.
    names = list(tests)
    all_te = [r for n in names for r in tests[n]]
    probs_all, pred_all, th = tuned_predict(fs, primock, all_te, tune) if all_te else (None, None, None)
    start = 0
    for name in names:
        rows = tests[name]
        probs, pred = probs_all[start : start + len(rows)], pred_all[start : start + len(rows)]
        start += len(rows)
        y = targets(rows)
        res[name] = scores(y, pred)
        res[name + "@0.5"] = scores(y, probs >= 0.5)
        res[name]["thresholds"] = dict(zip(REPORT, th))
        res[name]["errors"] = [
            {"text": r["text"], "label": lab, "gold": int(y[i, k]), "prob": round(float(probs[i, k]), 3)}
            for i, r in enumerate(rows) for k, lab in enumerate(REPORT) if bool(pred[i, k]) != bool(y[i, k])
        ]
    res["seconds"] = round(time.time() - t0, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoders", nargs="*", type=Path, default=[])
    ap.add_argument("--ngram", action="store_true", help="evaluate the n-gram baseline")
    ap.add_argument("--combo", action="store_true", help="also evaluate each encoder stacked with the n-grams")
    ap.add_argument("--no-cv", action="store_true", help="skip the in-domain CV (faster)")
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    args = ap.parse_args()
    primock = load(DATA / "primock57.jsonl")
    tests = {"probe_mi": load(PROBE), "written": load(DATA / "written.jsonl")}
    all_rows = primock + [r for rows in tests.values() for r in rows]
    sets = []
    if args.ngram:
        sets.append(FeatureSet("ngram", None, True))
    for folder in args.encoders:
        name = json.loads((folder / "encoder.json").read_text())["name"]
        x = embed_cached(folder, [r["text"] for r in all_rows])
        emb = {r["id"]: v for r, v in zip(all_rows, x)}
        sets.append(FeatureSet(name, emb, False))
        if args.combo:
            sets.append(FeatureSet(name + "+ngram", emb, True))
    RESULTS.mkdir(exist_ok=True)
    for fs in sets:
        res = evaluate(fs, primock, tests, cv=not args.no_cv)
        (RESULTS / f"{fs.name}{args.tag}.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        line = [fs.name]
        for part in ("in_domain_cv", "probe_mi", "written"):
            if part in res:
                line.append(f"{part}: " + " ".join(f"{lab[:5]} {res[part][lab]['f1']:.2f}" for lab in REPORT) + f" | macro {res[part]['macro']:.3f}")
        print("\n  ".join(line), f"({res['seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
