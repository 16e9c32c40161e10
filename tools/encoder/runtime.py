"""Runtime reference for the sentence encoder: what the device runs.

Needs only onnxruntime, tokenizers and numpy. An encoder folder holds

  encoder.onnx     input_ids, attention_mask (int64, batch x tokens) -> embedding (float32, batch x dim), L2-normalised
  tokenizer.json   the WordPiece tokenizer of all-MiniLM-L6-v2 (lower-casing BERT normaliser)
  encoder.json     metadata: dim, max_length, whether [CLS]/[SEP] are added, whether the output is
                   batch-invariant, sources, licences, sha256 of the files

    from tools.encoder.runtime import Encoder
    enc = Encoder("tools/encoder/out", threads=1)
    vecs = enc.embed(["How come you stopped the tablets?", "Did you stop the tablets?"])   # (2, dim), unit rows

Both kinds of encoder built by tools/encoder/build.py (a static token table and a
shrunk transformer) have the same interface, so the caller does not care which.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_agent.models import sha256_of

META_NAME = "encoder.json"


class EncoderError(RuntimeError):
    """The encoder folder is missing, incomplete or does not match its metadata."""


class Encoder:
    """Sentence encoder over an ONNX graph and a `tokenizers` tokenizer."""

    def __init__(self, folder: str | Path, threads: int = 1, verify: bool = True) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        meta_path = self.folder / META_NAME
        if not meta_path.is_file():
            raise EncoderError(f"{meta_path} is missing; rebuild with: python tools/encoder/build.py --out {self.folder}")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        files = self.meta["files"]
        for name, info in files.items():
            p = self.folder / name
            if not p.is_file():
                raise EncoderError(f"{p} is missing; rebuild with: python tools/encoder/build.py --out {self.folder}")
            if verify and sha256_of(p) != info["sha256"]:
                raise EncoderError(f"{p} does not match the sha256 in {META_NAME}")
        self.dim = int(self.meta["dim"])
        self.max_length = int(self.meta["max_length"])
        self.special_tokens = bool(self.meta["special_tokens"])
        self.batch_invariant = bool(self.meta.get("batch_invariant", True))
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.folder / "encoder.onnx"), sess_options=opts, providers=["CPUExecutionProvider"])

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=self.special_tokens)
        return [e.ids for e in encs]

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(1, max(len(x) for x in ids))
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """(len(texts), dim) float32 embeddings with unit L2 norm (an empty text gives a zero row).

        ``batch_size`` None = the encoder's own choice: 32 for a batch-invariant
        encoder, 1 for a dynamically quantised one, whose int8 activation scale is
        computed over the whole batch (so a sentence's embedding would shift slightly,
        cos ~0.99, with its batch-mates). Batches group sentences of similar length.
        """
        if batch_size is None:
            batch_size = 32 if self.batch_invariant else 1
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for s in range(0, len(order), max(1, batch_size)):
            chunk = order[s : s + batch_size]
            out[chunk] = self._run([ids[i] for i in chunk])
        return out
