"""Distil the shipped 3-layer MiniLM encoder into a 2-layer student (issue 13: per-sentence latency).

    HF_HUB_OFFLINE=1 PYTHONPATH=. python tools/encoder/distil.py [--check]   # train + held-aside cosine
    HF_HUB_OFFLINE=1 PYTHONPATH=. python tools/encoder/build.py --candidate minilm-l2d-dyn8f --out DIR

Teacher: float32 torch of the first 3 layers of all-MiniLM-L6-v2 (the shipped encoder before int8),
masked mean-pool + L2. Student: the first 2 layers of the same model (same tokenizer, same pooling),
trained so that its pooled, unit-norm 384-d vector matches the teacher's (loss 1 - cosine). The word
table is frozen (words not in the texts keep their pre-trained vectors); position/type embeddings,
LayerNorms and both layers are trained.

Texts (no labels are read): every text the behaviour trainer uses (``load_sources``: training rows of
all sources and the PriMock57 gold rows) plus every PriMock57 transcript sentence of either role
(``tools.corpus.primock``), de-duplicated, sorted, at most ``MAX_TOKENS`` tokens as on the device. A
fixed 5 % (by a hash of the text) is held aside to report student-vs-teacher cosine. Seeds, thread
count and order are fixed, so ``build.py`` re-trains the same student from packages every time.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_TOKENS = 48  # as tools/training/train_behaviours.py
STUDENT_LAYERS, TEACHER_LAYERS = 2, 3
EPOCHS, BATCH, LR, SEED, THREADS = 6, 32, 1e-4, 0, 2
HOLD_PERCENT = 5
CACHE = Path.home() / ".cache" / "edge-agent" / "distil"


def corpus() -> list[str]:
    from edge_agent.behaviours.text import is_filler, split_sentences
    from tools.corpus.primock import iter_consultations
    from tools.training.behaviour_sources import load_sources

    data = load_sources()
    texts = {r["text"] for r in data.train} | {r["text"] for r in data.gold_all}
    for cons in iter_consultations():
        for t in cons.turns:
            texts.update(s for s in split_sentences(t.text) if not is_filler(s))
    return sorted(t for t in texts if t.strip())


def held_aside(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100 < HOLD_PERCENT


def _tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    from tools.encoder.build import minilm_dir

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


def _batch(tok, texts: list[str]):  # type: ignore[no-untyped-def]
    import torch

    enc = [tok.encode(t).ids for t in texts]
    n = max(len(e) for e in enc)
    ids = torch.zeros((len(enc), n), dtype=torch.long)
    mask = torch.zeros((len(enc), n), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    return ids, mask


def pooled(model, ids, mask):  # type: ignore[no-untyped-def]
    from tools.encoder.build import mean_pool_l2  # the exported encoder's own pooling

    return mean_pool_l2(model, ids, mask)


def _by_length(tok, texts: list[str]) -> list[str]:
    return sorted(texts, key=lambda t: (len(tok.encode(t).ids), t))


def teacher_vectors(tok, texts: list[str]) -> np.ndarray:
    import torch

    from tools.encoder.build import load_torch_model

    teacher = load_torch_model(TEACHER_LAYERS)
    out = []
    with torch.inference_mode():
        for k in range(0, len(texts), 64):
            ids, mask = _batch(tok, texts[k:k + 64])
            out.append(pooled(teacher, ids, mask).numpy())
    return np.concatenate(out)


def _log(msg: str) -> None:
    print(msg, flush=True)


def cache_key(texts: list[str]) -> str:
    from tools.encoder.build import minilm_dir

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((minilm_dir() / "model.safetensors").read_bytes()[:1 << 20])
    h.update("\n".join(texts).encode("utf-8"))
    return h.hexdigest()[:16]


def train_student(log=_log):  # type: ignore[no-untyped-def]
    """The trained 2-layer student (a transformers BertModel, eval mode) and the held-aside cosines.

    The trained weights are cached under ~/.cache/edge-agent/distil (key: this file, the weights, the texts),
    so that ``distil.py`` followed by ``build.py`` trains once; without the cache the same student is trained.
    """
    import torch

    from tools.encoder.build import load_torch_model

    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    tok = _tokenizer()
    texts = corpus()
    train = _by_length(tok, [t for t in texts if not held_aside(t)])
    hold = _by_length(tok, [t for t in texts if held_aside(t)])
    cached = CACHE / f"{cache_key(texts)}.pt"
    if cached.is_file():
        student = load_torch_model(STUDENT_LAYERS)
        student.load_state_dict(torch.load(cached, weights_only=True))
        student.eval()
        cos = held_cosine(student, tok, hold, teacher_vectors(tok, hold))
        log(f"distil: cached student {cached}; held-aside cos mean {cos.mean():.4f}")
        return student, cos, hold
    t0 = time.time()
    tv = torch.from_numpy(teacher_vectors(tok, train))
    hv = teacher_vectors(tok, hold)
    log(f"distil: {len(train)} texts, {len(hold)} held aside; teacher {time.time() - t0:.0f} s")

    student = load_torch_model(STUDENT_LAYERS)
    student.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    # Batches of similar length (sorted order cut into chunks), shuffled by a fixed generator.
    chunks = [list(range(k, min(k + BATCH, len(train)))) for k in range(0, len(train), BATCH)]
    steps = EPOCHS * len(chunks)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(SEED)
    student.train()
    # dropout off: the student should reproduce a deterministic function
    for m in student.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    for ep in range(EPOCHS):
        tot = 0.0
        for ci in rng.permutation(len(chunks)):
            idx = chunks[ci]
            ids, mask = _batch(tok, [train[i] for i in idx])
            s = pooled(student, ids, mask)
            loss = (1 - (s * tv[idx]).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        cos = held_cosine(student, tok, hold, hv)
        log(f"distil: epoch {ep + 1}/{EPOCHS} train 1-cos {tot / len(train):.5f}; held-aside cos mean {cos.mean():.4f} "
            f"p5 {np.percentile(cos, 5):.4f} min {cos.min():.4f} ({time.time() - t0:.0f} s)")
    student.eval()
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(student.state_dict(), cached)
    return student, held_cosine(student, tok, hold, hv), hold


def held_cosine(model, tok, hold: list[str], hv: np.ndarray) -> np.ndarray:
    import torch

    was = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for k in range(0, len(hold), 64):
            ids, mask = _batch(tok, hold[k:k + 64])
            out.append(pooled(model, ids, mask).numpy())
    model.train(was)
    return (np.concatenate(out) * hv).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args()
    import torch

    from tools.encoder.build import load_torch_model

    tok = _tokenizer()
    student, cos, hold = train_student()
    hv = teacher_vectors(tok, hold)
    base = held_cosine(load_torch_model(STUDENT_LAYERS), tok, hold, hv)
    print(f"held-aside ({len(hold)}): student cos mean {cos.mean():.4f} p5 {np.percentile(cos, 5):.4f} min {cos.min():.4f}; "
          f"plain 2-layer truncation mean {base.mean():.4f} p5 {np.percentile(base, 5):.4f} min {base.min():.4f}")
    del torch


if __name__ == "__main__":
    main()
