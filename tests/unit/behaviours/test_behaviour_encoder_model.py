"""The shipped behaviour classifier: sentence encoder + n-gram features -> ONNX heads (real models, no doubles).

- the runtime loads the encoder, tokenizer and heads named by behaviours_features.json, all in the MANIFEST;
- it computes what training evaluated (probabilities recorded by tools/training/train_behaviours.py from the
  fitted heads, for sentences of the training data and of the held-out gold);
- the ONNX graph equals the training-side featurisation (behaviour_heads.sparse_matrix + the encoder) times
  the heads' weights;
- out-of-domain phrasings from issue 13 get the label the guide gives them;
- a missing or damaged encoder is refused with a one-line ModelError.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.models import load_manifest, models_dir, sha256_of
from tests.paths import REPO_ROOT

PARITY = REPO_ROOT / "tools" / "training" / "results" / "behaviour_parity.json"
FILES = ("MANIFEST", "behaviours.onnx", "behaviours_features.json", "jargon_lexicon.tsv", "behaviours_encoder.onnx", "behaviours_tokenizer.json")


def _meta() -> dict:
    return json.loads((models_dir() / "behaviours_features.json").read_text(encoding="utf-8"))


pytestmark = pytest.mark.skipif(not _meta().get("encoder"), reason="the shipped feature set has no encoder")


@pytest.fixture(scope="module")
def classifier():
    from edge_agent.behaviours import BehaviourClassifier

    return BehaviourClassifier(threads=1)


def test_encoder_files_are_listed_with_their_licence_notice():
    enc = _meta()["encoder"]
    entries = load_manifest()
    for name in (enc["onnx"], enc["tokenizer"], "behaviours_encoder_NOTICE.txt"):
        assert name in entries, name
        assert entries[name].licence.startswith("Apache-2.0"), entries[name].licence
        assert sha256_of(models_dir() / name) == entries[name].sha256
    notice = (models_dir() / "behaviours_encoder_NOTICE.txt").read_text(encoding="utf-8")
    assert "all-MiniLM-L6-v2" in notice and "MODIFIED" in notice and "Apache License" in notice and "END OF TERMS AND CONDITIONS" in notice


def test_runtime_loads_encoder_and_heads(classifier):
    assert classifier.encoder is not None
    x = classifier.encoder.embed(["How come you stopped the tablets?"])
    assert x.shape == (1, _meta()["encoder"]["dim"])
    assert abs(float(np.linalg.norm(x)) - 1.0) < 1e-3


def test_runtime_computes_what_training_evaluated(classifier):
    """Exact on the int8 kernel family training ran on; on another family (VNNI vs plain AVX2, ARM) the encoder's
    int8 arithmetic differs, so the bound is the one measured across families (docs/behaviours-eval.md) and no
    sentence may change its labels at the shipped thresholds."""
    from edge_agent.ort_session import int8_kernel_class

    ref = json.loads(PARITY.read_text(encoding="utf-8"))
    assert ref["behaviours.onnx sha256"] == sha256_of(models_dir() / "behaviours.onnx"), "parity reference is stale: rebuild"
    got = classifier.model_probabilities(ref["texts"])
    want = np.array(ref["probabilities"])
    if ref["int8 kernels"] == int8_kernel_class():
        assert np.abs(got - want).max() < 1e-4
        return
    assert np.abs(got - want).max() < 0.15 and np.abs(got - want).mean() < 0.005, (ref["int8 kernels"], int8_kernel_class())
    thresholds = classifier.row_thresholds(len(ref["texts"]), None)
    assert ((got >= thresholds) == (want >= thresholds)).all(), "a label changed across int8 kernel families"


def test_onnx_graph_equals_training_featurisation_times_weights(classifier):
    onnx = pytest.importorskip("onnx", reason="onnx is a build-time package (run with the build venv)")
    pytest.importorskip("scipy")
    from onnx import numpy_helper

    from edge_agent.behaviours.features import Vocabulary
    from tools.training.behaviour_heads import sparse_matrix

    meta = _meta()
    graph = onnx.load(str(models_dir() / "behaviours.onnx")).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    vocab = Vocabulary({f: i for i, f in enumerate(meta["vocab"])}, meta["idf"])
    texts = ["What would you feel would be helpful at this point?", "You're worried the side effects will be worse than the illness.",
             "Nicotine cravings usually peak in the first week.", "Have you had any chest pain?", "Okay."]
    x = sparse_matrix(texts, vocab, meta["featuriser_version"])
    logits = np.asarray(x @ init["W"][: vocab.size]) + classifier.encoder.embed(texts) @ init["E"] + init["B"]
    expected = 1.0 / (1.0 + np.exp(-logits))
    assert np.abs(classifier.model_probabilities(texts) - expected).max() < 1e-4


# Issue 13's out-of-domain misses and MI phrasings; none of them is in any training source.
OUT_OF_DOMAIN = [
    ("How come you decided to stop the patches?", "open_question"),
    ("What would you feel would be helpful for you right now?", "open_question"),
    ("How serious do you think the cough is?", "open_question"),
    ("Did the inhaler help at all?", "closed_question"),
    ("Would you be willing to keep a drinking diary this week?", "closed_question"),
    ("So you've already cut down a lot since the summer.", "reflection"),
    ("Your blood pressure reading today was a bit higher than last time.", "information"),
    ("I'd suggest taking the tablet with food from now on.", "advice"),
]


def test_out_of_domain_sentences_are_unseen():
    from tools.training.behaviour_sources import norm, training_texts

    seen = training_texts()
    for text, _ in OUT_OF_DOMAIN:
        assert norm(text) not in seen, text


@pytest.mark.parametrize("text,label", OUT_OF_DOMAIN)
def test_out_of_domain_sentences_get_their_label(text, label, classifier):
    (r,) = classifier.classify([text])
    assert label in r.labels, r


def _copy_models(tmp_path):
    for name in FILES:
        shutil.copy(models_dir() / name, tmp_path / name)


def test_corrupt_encoder_is_refused_in_one_line(tmp_path):
    from edge_agent.behaviours import BehaviourClassifier

    _copy_models(tmp_path)
    BehaviourClassifier(models_dir=tmp_path)  # the intact copy loads
    with (tmp_path / "behaviours_encoder.onnx").open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff\x00\xff\x00")
    with pytest.raises(ModelError) as err:
        BehaviourClassifier(models_dir=tmp_path)
    msg = str(err.value)
    assert "behaviours_encoder.onnx" in msg and "\n" not in msg


def test_missing_encoder_is_refused_in_one_line(tmp_path):
    from edge_agent.behaviours import BehaviourClassifier

    _copy_models(tmp_path)
    (tmp_path / "behaviours_tokenizer.json").unlink()
    with pytest.raises(ModelError) as err:
        BehaviourClassifier(models_dir=tmp_path)
    msg = str(err.value)
    assert "behaviours_tokenizer.json" in msg and "missing" in msg and "\n" not in msg


def test_unloadable_encoder_with_matching_manifest_is_one_line(tmp_path):
    """A damaged file whose MANIFEST entry was (wrongly) updated: onnxruntime's error becomes one line."""
    from edge_agent.behaviours import BehaviourClassifier
    from edge_agent.models import Source, record_artefact

    _copy_models(tmp_path)
    path = tmp_path / "behaviours_encoder.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    record_artefact(path, source=Source("test", "0"), licence="Apache-2.0", build="none", root=tmp_path)
    with pytest.raises(ModelError) as err:
        BehaviourClassifier(models_dir=tmp_path)
    msg = str(err.value)
    assert "cannot be loaded" in msg and "\n" not in msg


def test_unknown_provider_is_a_model_error():
    from edge_agent.behaviours import BehaviourClassifier

    with pytest.raises(ModelError, match="provider"):
        BehaviourClassifier(provider="tpu")
