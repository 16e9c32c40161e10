"""Runtime reference of the sentence encoder (tools/encoder/runtime.py) on the committed encoder.

Needs only onnxruntime, tokenizers and numpy; the encoder files are built by
tools/encoder/build.py (torch at build time) and committed under tools/encoder/out/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.paths import REPO_ROOT
from tools.encoder.runtime import Encoder, EncoderError

OUT = REPO_ROOT / "tools" / "encoder" / "out"

pytestmark = pytest.mark.skipif(not (OUT / "encoder.json").is_file(), reason="encoder not built: python tools/encoder/build.py --out tools/encoder/out")


@pytest.fixture(scope="module")
def enc() -> Encoder:
    return Encoder(OUT, threads=1)


def test_shape_dtype_and_unit_norm(enc: Encoder) -> None:
    texts = ["How come you stopped taking the tablets?", "Did you take them this morning?", "Okay.", "It sounds like the cravings are worst in the morning."]
    x = enc.embed(texts)
    assert x.shape == (4, enc.dim) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert enc.embed([]).shape == (0, enc.dim)


TEXTS = ["Hi.", "What would you feel would be helpful for you at this point?", "You drink mainly to relax after work, and the weekends are the hardest part."]


def test_embedding_does_not_depend_on_the_other_sentences_of_the_call(enc: Encoder) -> None:
    alone = np.stack([enc.embed([t])[0] for t in TEXTS])
    together = enc.embed(TEXTS)  # the runtime's default batching
    assert np.abs(alone - together).max() < 1e-4


def test_padded_batch_stays_close(enc: Encoder) -> None:
    # Forced batching pads the short sentences; the mask must keep padding out of the mean.
    # (A dynamically quantised encoder shares one activation scale per batch, hence "close", not equal.)
    alone = np.stack([enc.embed([t])[0] for t in TEXTS])
    together = enc.embed(TEXTS, batch_size=8)
    tol = 1e-4 if enc.batch_invariant else 0.02
    assert np.all((alone * together).sum(1) > 1 - tol)


def test_paraphrase_is_closer_than_unrelated(enc: Encoder) -> None:
    a, para, other = enc.embed([
        "How come you stopped taking your tablets?",
        "Why did you stop taking the medication?",
        "The train to the coast leaves at nine tomorrow.",
    ])
    assert float(a @ para) > float(a @ other) + 0.1


def test_tokeniser_truncates_long_input(enc: Encoder) -> None:
    long = "and the pain " * 200
    assert max(len(ids) for ids in enc.token_ids([long])) == enc.max_length
    assert enc.embed([long]).shape == (1, enc.dim)


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "enc"
    shutil.copytree(OUT, copy)
    meta = json.loads((copy / "encoder.json").read_text())
    meta["files"]["encoder.onnx"]["sha256"] = "0" * 64
    (copy / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(EncoderError, match="sha256"):
        Encoder(copy)
