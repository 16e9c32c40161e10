"""Dialogue context of the behaviour labels (issue 13 item 2; docs/behaviours-eval.md, "Dialogue context").

The featuriser's version-5 cues read the previous patient turn; the report hands each clinician
sentence its context; training rows carry the same context; older featuriser versions ignore it.
"""

from __future__ import annotations

import io
import json

import pytest

from edge_agent.behaviours.conversation import build_turns, sentence_contexts
from edge_agent.behaviours.features import Context, content_stems, context_cues, extract
from edge_agent.feedback.report import build_feedback
from edge_agent.transcript import Utterance

C, P = "clinician", "patient"


def U(speaker: str, t0: float, t1: float, text: str) -> Utterance:
    return Utterance(t0=t0, t1=t1, text=text, speaker=speaker)


def test_no_context_is_one_cue():
    assert context_cues("So the pain keeps you awake.", None) == ["ctx-none"]
    assert context_cues("So the pain keeps you awake.", Context(None, True)) == ["ctx-none"]
    assert context_cues("So the pain keeps you awake.", Context("  ", False)) == ["ctx-none"]


def test_restating_the_patient_is_overlap_in_content_stems():
    ctx = Context("The pain in my back keeps me awake at night, I can't sleep.", True)
    cues = context_cues("So the back pain is keeping you awake at night.", ctx)
    assert {"ctx-turn-start", "ctx-overlap-3", "ctx-echo-statement", "ctx-echo-half", "ctx-start-statement"} <= set(cues)
    other = context_cues("Have you had any fever?", Context("Yeah.", False))
    assert {"ctx-later", "ctx-patient-short", "ctx-overlap-0"} <= set(other)
    assert "ctx-patient-asked" in context_cues("It is a tracing of your heart.", Context("What's an ECG?", True))


def test_function_words_and_pronouns_are_not_overlap():
    assert content_stems("I think you know what I mean, okay?") == frozenset()
    assert content_stems("The swelling, it's painful.") == content_stems("my leg is swelled, painful") - {"leg"} == {"swell", "painful"}


def test_older_featuriser_versions_ignore_the_context():
    ctx = Context("My chest hurts when I climb the stairs.", True)
    for v in (2, 3, 4):
        assert extract("Your chest hurts on the stairs.", v, ctx) == extract("Your chest hurts on the stairs.", v)
    with_ctx = extract("Your chest hurts on the stairs.", 5, ctx)
    assert "q5:ctx-none" not in with_ctx and "q5:ctx-none" in extract("Your chest hurts on the stairs.", 5)
    assert all(k.startswith("q") for k in list(with_ctx)[-3:])  # cues come last (weights rely on it)


def test_sentence_contexts_follow_the_turns():
    turns = build_turns([U(C, 0, 2, "Hello. How can I help?"), U(P, 2, 5, "I've had a cough for a week."),
                         U(C, 5, 7, "A cough for a week. Any fever?"), U(C, 7, 8, "And any phlegm?")])
    ctx = sentence_contexts(turns)
    assert ctx["t000:s00"] == Context(None, False) and ctx["t000:s01"] == Context(None, False)
    assert ctx["t002:s00"] == Context("I've had a cough for a week.", True)
    assert ctx["t002:s01"] == Context("I've had a cough for a week.", False)
    assert ctx["t003:s00"] == Context("I've had a cough for a week.", False)  # after the clinician's own turn


class _Recorder:
    """A classifier that reads dialogue context and records what it was given."""

    uses_context = True

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[Context]]] = []

    def classify(self, texts, contexts=None):
        self.calls.append((list(texts), None if contexts is None else list(contexts)))
        return [type("R", (), {"labels": (), "to_dict": lambda self: {}})() for _ in texts]


def test_report_passes_each_sentence_its_previous_patient_turn():
    rec = _Recorder()
    build_feedback([U(C, 0, 2, "How can I help?"), U(P, 2, 6, "My knee has been swelling up."),
                    U(C, 6, 9, "Your knee has been swelling. Since when?")], rec)
    (texts, ctxs), = rec.calls
    got = dict(zip(texts, ctxs))
    assert got["How can I help?"] == Context(None, False)
    assert got["Your knee has been swelling."] == Context("My knee has been swelling up.", True)
    assert got["Since when?"] == Context("My knee has been swelling up.", False)


def test_cli_stream_reads_optional_context():
    from edge_agent.cli.behaviours import classify_stream

    rec = _Recorder()
    lines = [json.dumps({"text": "So it hurts at night.", "previous_patient": "It hurts at night.", "turn_start": True}),
             json.dumps({"text": "Any fever?"})]
    out, err = io.StringIO(), io.StringIO()
    classify_stream(io.StringIO("\n".join(lines) + "\n"), out, err, classifier=rec)
    assert rec.calls[0][1] == [Context("It hurts at night.", True), None]
    bad = io.StringIO()
    assert classify_stream(io.StringIO(json.dumps({"text": "x", "turn_start": "yes"}) + "\n"), io.StringIO(), bad, classifier=rec) == 1
    assert "turn_start" in bad.getvalue()


def test_dialogue_rows_get_their_context_field():
    pytest.importorskip("sklearn", reason="training code (build venv)")
    from tools.training.behaviour_sources import dialogue_context

    row = {"context": [{"speaker": "patient", "text": "I'm kind of scared."}, {"speaker": "clinician", "text": "Okay."},
                       {"speaker": "patient", "text": "My dad died of a heart attack."}]}
    assert dialogue_context(row) == Context("My dad died of a heart attack.", True)
    later = {"context": [{"speaker": "patient", "text": "My dad died."}, {"speaker": "clinician", "text": "I'm sorry.", "same_turn": True}]}
    assert dialogue_context(later) == Context("My dad died.", False)
    assert dialogue_context({"context": []}) == Context(None, False)


def test_shipped_classifier_accepts_contexts():
    from edge_agent.behaviours.classifier import BehaviourClassifier

    clf = BehaviourClassifier(threads=1)
    texts = ["So the pain keeps you awake.", "Have you had any fever?"]
    ctxs = [Context("The pain keeps me awake at night.", True), None]
    with_ctx = clf.classify(texts, ctxs)
    assert [r.text for r in with_ctx] == texts
    if not clf.uses_context:  # a model before featuriser v5: the context changes nothing
        assert [r.scores for r in with_ctx] == [r.scores for r in clf.classify(texts)]
    with pytest.raises(ValueError):
        clf.classify(texts, ctxs[:1])
