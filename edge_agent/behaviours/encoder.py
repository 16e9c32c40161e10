"""Sentence encoder of the behaviour classifier: tokenizers + onnxruntime, one sentence per call.

The encoder (``models/behaviours_encoder.onnx``, the first three layers of
all-MiniLM-L6-v2, dynamically quantised to int8; built by tools/encoder/build.py)
maps a sentence to a 384-d unit vector (masked mean pooling, then L2). Its int8
activations are quantised with one scale per *batch*, so a sentence's embedding
depends slightly on its batch-mates: the runtime, and the training script that fits
the heads, therefore embed exactly one sentence per ``session.run``.

Training (tools/training/train_behaviours.py) uses this very class, so the heads are
fitted on the embeddings the device computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.ort_session import first_line, open_session

REBUILD = "python -m tools.training.train_behaviours"


def make_session(path: Path, threads: int, provider: str, what: str):  # type: ignore[no-untyped-def]
    """The behaviour models' sessions (see edge_agent.ort_session)."""
    return open_session(path, threads, provider, what, REBUILD, per_sentence=True)


class SentenceEncoder:
    """``embed(texts)`` -> (n, dim) float32 unit rows; one ONNX call per sentence."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int = 64, special_tokens: bool = True,
                 dim: int = 384, threads: int = 1, provider: str = "cpu") -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise ModelError(f"tokenizer {tokenizer_path} cannot be loaded ({first_line(exc)}); run: {REBUILD}") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.special_tokens = special_tokens
        self.dim = dim
        self.session = make_session(onnx_path, threads, provider, "sentence encoder")

    def embed_one(self, text: str) -> np.ndarray:
        ids = self.tokenizer.encode(text, add_special_tokens=self.special_tokens).ids
        if not ids:
            return np.zeros(self.dim, np.float32)
        input_ids = np.asarray([ids], dtype=np.int64)
        mask = np.ones_like(input_ids)
        return self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0][0].astype(np.float32, copy=False)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self.embed_one(t)
        return out
