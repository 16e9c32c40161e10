"""Distil the shipped 3-layer MiniLM encoder into a 2-layer student (issue 13: per-sentence latency).

    HF_HUB_OFFLINE=1 PYTHONPATH=. python tools/encoder/distil.py [--candidate NAME]   # train + held-aside cosine
    HF_HUB_OFFLINE=1 PYTHONPATH=. python tools/encoder/distil.py --candidate minilm-l2d2-dyn8f --measure  # loss sizes at the start
    HF_HUB_OFFLINE=1 PYTHONPATH=. python tools/encoder/build.py --candidate minilm-l2d-dyn8f --out DIR

Teacher: float32 torch of the first 3 layers of all-MiniLM-L6-v2 (the shipped encoder before int8),
masked mean-pool + L2. Student: the first 2 layers of the same model (same tokenizer, same pooling),
trained so that its pooled, unit-norm 384-d vector matches the teacher's (loss 1 - cosine). The word
table is frozen (words not in the texts keep their pre-trained vectors); position/type embeddings,
LayerNorms and both layers are trained.

Option ``token_weight`` (candidate ``minilm-l2d2-dyn8f``, lever 5): the loss adds ``token_weight`` x a masked
token-level MSE between the student's last (2nd) hidden states and the teacher's last (3rd), averaged over the
real tokens ([CLS]/[SEP] included, as in the pooling) and the 384 dimensions; the teacher's token states are
computed once, batch by batch with the same padding as the student's. ``epochs`` sets the length (the learning
rate still warms up over 100 steps and decays linearly to 0 at the end). With the defaults (6 epochs, no token
term) the training is the one of ``minilm-l2d-dyn8f``, step for step.

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


def cache_key(texts: list[str], epochs: int = EPOCHS, token_weight: float = 0.0) -> str:
    from tools.encoder.build import minilm_dir

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((minilm_dir() / "model.safetensors").read_bytes()[:1 << 20])
    h.update("\n".join(texts).encode("utf-8"))
    h.update(f"epochs={epochs} token_weight={token_weight!r}".encode())
    return h.hexdigest()[:16]


def _chunks(n: int) -> list[list[int]]:
    """Batches of similar length: the length-sorted texts cut into runs of BATCH."""
    return [list(range(k, min(k + BATCH, n))) for k in range(0, n, BATCH)]


def teacher_states(tok, train: list[str], chunks: list[list[int]]) -> list:  # type: ignore[type-arg]
    """The teacher's last hidden states of every training batch (padded as the student's batch will be)."""
    import torch

    from tools.encoder.build import load_torch_model

    teacher = load_torch_model(TEACHER_LAYERS)
    out = []
    with torch.inference_mode():
        for idx in chunks:
            ids, mask = _batch(tok, [train[i] for i in idx])
            out.append(teacher(input_ids=ids, attention_mask=mask).last_hidden_state.clone())
    return out


def token_mse(h, th, mask):  # type: ignore[no-untyped-def]
    """Masked mean squared difference of hidden states (batch, tokens, dim) over real tokens and dimensions."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (((h - th) ** 2) * m).sum() / (m.sum() * h.shape[-1])


def train_student(epochs: int = EPOCHS, token_weight: float = 0.0, log=_log):  # type: ignore[no-untyped-def]
    """The trained 2-layer student (a transformers BertModel, eval mode) and the held-aside cosines.

    ``token_weight`` > 0 adds the masked token-level MSE (student's last hidden states vs the teacher's) to the loss.

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
    cached = CACHE / f"{cache_key(texts, epochs, token_weight)}.pt"
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
    # Batches of similar length (sorted order cut into chunks), shuffled by a fixed generator.
    chunks = _chunks(len(train))
    ts = teacher_states(tok, train, chunks) if token_weight else None
    log(f"distil: {len(train)} texts, {len(hold)} held aside; {epochs} epochs, token weight {token_weight}; "
        f"teacher {time.time() - t0:.0f} s")

    student = load_torch_model(STUDENT_LAYERS)
    student.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    steps = epochs * len(chunks)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(SEED)
    student.train()
    # dropout off: the student should reproduce a deterministic function
    for m in student.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    for ep in range(epochs):
        tot = tot_tok = 0.0
        for ci in rng.permutation(len(chunks)):
            idx = chunks[ci]
            ids, mask = _batch(tok, [train[i] for i in idx])
            if ts is None:
                s = pooled(student, ids, mask)
                loss = (1 - (s * tv[idx]).sum(-1)).mean()
            else:
                from tools.encoder.build import pool_l2

                h = student(input_ids=ids, attention_mask=mask).last_hidden_state
                cos_loss = (1 - (pool_l2(h, mask) * tv[idx]).sum(-1)).mean()
                tok_loss = token_mse(h, ts[ci], mask)
                loss = cos_loss + token_weight * tok_loss
                tot_tok += float(tok_loss.detach()) * len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach() if ts is None else cos_loss.detach()) * len(idx)
        cos = held_cosine(student, tok, hold, hv)
        extra = f", token MSE {tot_tok / len(train):.5f}" if ts is not None else ""
        log(f"distil: epoch {ep + 1}/{epochs} train 1-cos {tot / len(train):.5f}{extra}; held-aside cos mean {cos.mean():.4f} "
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


def measure(token_weight: float) -> None:
    """Sizes of the two loss terms on the untrained student (the plain 2-layer truncation), over every 10th
    training batch: how ``token_weight`` is chosen (both terms about equal at the start)."""
    import torch

    from tools.encoder.build import load_torch_model, pool_l2

    torch.set_num_threads(THREADS)
    tok = _tokenizer()
    train = _by_length(tok, [t for t in corpus() if not held_aside(t)])
    chunks = _chunks(len(train))[::10]
    teacher, student = load_torch_model(TEACHER_LAYERS), load_torch_model(STUDENT_LAYERS)
    c = m = n = 0.0
    with torch.inference_mode():
        for idx in chunks:
            ids, mask = _batch(tok, [train[i] for i in idx])
            th, h = teacher(input_ids=ids, attention_mask=mask).last_hidden_state, student(input_ids=ids, attention_mask=mask).last_hidden_state
            c += float((1 - (pool_l2(h, mask) * pool_l2(th, mask)).sum(-1)).sum())
            m += float(token_mse(h, th, mask)) * len(idx)
            n += len(idx)
    print(f"untrained student, {int(n)} training texts: 1 - cos {c / n:.5f}, token MSE {m / n:.5f}, ratio {c / m:.3f}; "
          f"token weight {token_weight}: token term {token_weight * m / n:.5f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", default="minilm-l2d-dyn8f", help="a distilled candidate of tools/encoder/build.py")
    ap.add_argument("--measure", action="store_true", help="only print the loss terms' sizes on the untrained student")
    args = ap.parse_args()
    import torch

    from tools.encoder.build import CANDIDATES, load_torch_model

    spec = CANDIDATES[args.candidate]
    opts = spec["distil"] if isinstance(spec.get("distil"), dict) else {}
    if args.measure:
        measure(opts.get("token_weight", 0.0))
        return
    tok = _tokenizer()
    student, cos, hold = train_student(**opts)
    hv = teacher_vectors(tok, hold)
    base = held_cosine(load_torch_model(STUDENT_LAYERS), tok, hold, hv)
    print(f"held-aside ({len(hold)}): student cos mean {cos.mean():.4f} p5 {np.percentile(cos, 5):.4f} min {cos.min():.4f}; "
          f"plain 2-layer truncation mean {base.mean():.4f} p5 {np.percentile(base, 5):.4f} min {base.min():.4f}")
    del torch


if __name__ == "__main__":
    main()
