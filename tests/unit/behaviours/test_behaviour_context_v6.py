"""Featuriser version 6 (docs/behaviours-eval.md, "Dialogue context", variant B): an unknown dialogue context
(no ``Context`` given) is kept apart from a sentence with no patient turn before it yet (``Context(None)``)."""

from __future__ import annotations

import io
import json

from edge_agent.behaviours.features import FEATURISER_VERSIONS, Context, context_cues, extract

S = "So the pain keeps you awake."


def test_unknown_context_has_no_cue_and_no_patient_turn_has_its_own():
    assert 6 in FEATURISER_VERSIONS
    assert context_cues(S, None, 6) == []
    assert context_cues(S, Context(None, False), 6) == ["ctx-no-patient-turn"]
    assert context_cues(S, Context("  ", True), 6) == ["ctx-no-patient-turn"]
    assert not any(k.startswith("q5:") for k in extract(S, 6))
    assert extract(S, 6) == extract(S, 4)  # unknown context: the sentence's own features alone


def test_known_context_cues_are_version_5s():
    for ctx in (Context("The pain keeps me awake at night.", True), Context("Yeah?", False)):
        assert context_cues(S, ctx, 6) == context_cues(S, ctx, 5)
        assert extract(S, 6, ctx) == extract(S, 5, ctx)
    assert context_cues(S, None, 5) == context_cues(S, Context(None), 5) == ["ctx-none"]  # v5 unchanged


def test_cli_stream_unknown_context_apart_from_no_patient_turn():
    from edge_agent.cli.behaviours import classify_stream

    class Rec:
        uses_context = True

        def __init__(self):
            self.calls = []

        def classify(self, texts, contexts=None):
            self.calls.append(None if contexts is None else list(contexts))
            return [type("R", (), {"to_dict": lambda self: {}})() for _ in texts]

    rec = Rec()
    lines = [{"text": "Hello, how can I help?", "previous_patient": None}, {"text": "Any fever?"}]
    classify_stream(io.StringIO("".join(json.dumps(x) + "\n" for x in lines)), io.StringIO(), io.StringIO(), classifier=rec)
    assert rec.calls == [[Context(None, False), None]]


def _context_model(tmp_path, no_context_threshold: float):
    """The shipped model files in a folder, declared as featuriser v6 with a second threshold vector for sentences
    without a context (v6 features an unknown context exactly as v4, so the shipped heads read them unchanged)."""
    import shutil

    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.behaviours.labels import LABELS
    from edge_agent.models import models_dir

    shutil.copytree(models_dir(), tmp_path / "m")
    _edit_features(tmp_path / "m", featuriser_version=6, thresholds_no_context={lab: no_context_threshold for lab in LABELS})
    return BehaviourClassifier(models_dir=tmp_path / "m")


def _edit_features(folder, **keys) -> None:
    """Change keys of the copy's behaviours_features.json and record its new size and sha256 in the copy's MANIFEST."""
    import hashlib

    feat = folder / "behaviours_features.json"
    meta = json.loads(feat.read_text(encoding="utf-8"))
    meta.update(keys)
    data = json.dumps(meta).encode()
    feat.write_bytes(data)
    manifest = json.loads((folder / "MANIFEST").read_text(encoding="utf-8"))
    manifest["artefacts"][feat.name].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "MANIFEST").write_text(json.dumps(manifest), encoding="utf-8")


def test_sentences_without_context_use_the_no_context_thresholds(tmp_path):
    """Variant C (docs/behaviours-eval.md): a sentence with a known context (also "no patient turn yet") is thresholded
    with ``thresholds``, one without a context with ``thresholds_no_context``."""
    q = "What brings you in today?"
    clf = _context_model(tmp_path, 1.01)  # nothing passes without a context
    assert "open_question" in clf.classify([q], [Context(None, False)])[0].labels
    assert clf.classify([q])[0].labels == ()
    assert clf.classify([q], [None])[0].labels == ()
    both = clf.classify([q, q], [None, Context("My knee hurts.", True)])
    assert both[0].labels == () and "open_question" in both[1].labels


def test_a_model_without_context_ignores_a_second_threshold_vector(tmp_path):
    from edge_agent.behaviours.classifier import BehaviourClassifier

    _context_model(tmp_path, 1.01)
    _edit_features(tmp_path / "m", featuriser_version=4)
    clf = BehaviourClassifier(models_dir=tmp_path / "m")
    assert clf.thresholds_no_context is None
    assert "open_question" in clf.classify(["What brings you in today?"])[0].labels
