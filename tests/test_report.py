"""Coaching report: 1-3 timestamped observations quoting only the clinician, never a score."""

from __future__ import annotations

import json
import re

import pytest

from edge_agent.feedback.observations import moment, short_quote
from edge_agent.feedback.report import build_feedback
from edge_agent.transcript import Utterance
from tools.corpus.primock import consultation_ids, load_consultation, primock_dir, utterances_from_consultation

needs_primock = pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
EVALUATIVE = re.compile(
    r"\b(score[sd]?|scoring|grade[sd]?|rank(ed|ing|s)?|rating|rated|percentile|colleagues?|peers?|compared|"
    r"benchmark|better than|worse than|average clinician|top \d+|bottom \d+|pass(ed)?|fail(ed)?|excellent|poor)\b",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def classifier():
    from edge_agent.behaviours import BehaviourClassifier

    return BehaviourClassifier(threads=1)


def _check(fb, utts):
    clinician = [u.text for u in utts if u.speaker == "clinician"]
    patient = [u.text for u in utts if u.speaker == "patient"]
    assert 1 <= len(fb.observations) <= 3
    for o in fb.observations:
        assert re.fullmatch(r"\d+:\d\d", o.moment)
        assert o.moment == moment(o.at_s)
        quote = o.clinician_quote.removesuffix(" …")
        assert len(quote.split()) <= 20
        assert any(quote in c for c in clinician), quote
        assert o.alternative and o.rationale
        assert o.happened.startswith("you ") and f"At {o.moment}: {o.happened}" in fb.render()
    text = fb.render()
    assert not EVALUATIVE.search(text), EVALUATIVE.search(text)
    blob = text + json.dumps(fb.to_dict())
    # No patient words: no patient utterance of 4+ words appears anywhere in the report.
    for p in patient:
        if len(p.split()) >= 4 and not any(p in c for c in clinician):
            assert p not in blob


@needs_primock
@pytest.mark.parametrize("cid", ["day1_consultation01", "day2_consultation05", "day4_consultation04", "day5_consultation10"])
def test_primock_visit_report(cid, classifier):
    utts = utterances_from_consultation(load_consultation(cid))
    fb = build_feedback(utts, classifier)
    _check(fb, utts)
    d = fb.to_dict()
    assert set(d) == {"visit_duration_s", "timing", "label_counts", "observations"}
    assert d["label_counts"]["closed_question"] > 0
    json.dumps(d)  # serialisable


@needs_primock
def test_all_visits_have_1_to_3_grounded_observations(classifier):
    for cid in consultation_ids():
        utts = utterances_from_consultation(load_consultation(cid))
        _check(build_feedback(utts, classifier), utts)


def test_interrupted_opening_is_observed_with_the_clinician_words(classifier):
    utts = [
        Utterance(0.0, 2.0, "Hello, what brings you in today?", speaker="clinician"),
        Utterance(3.0, 20.0, "My chest has been hurting for two days and my left arm feels heavy when I climb stairs", speaker="patient"),
        Utterance(8.0, 10.0, "Is the pain sharp or dull?", speaker="clinician"),
        Utterance(20.5, 21.0, "Dull.", speaker="patient"),
        Utterance(21.5, 26.0, "We will check a CBC and an ECG today.", speaker="clinician"),
    ]
    fb = build_feedback(utts, classifier)
    first = fb.observations[0]
    assert first.behaviour == "opening_statement"
    assert first.moment == "0:08"
    assert first.clinician_quote == "Is the pain sharp or dull?"
    assert "jargon" in {o.behaviour for o in fb.observations}
    _check(fb, utts)


def test_short_quote_cuts_long_sentences():
    q = short_quote(" ".join(f"w{i}" for i in range(40)))
    assert q.endswith(" …") and len(q.split()) == 21


def test_render_has_no_evaluative_words_in_templates(classifier):
    # Every template at once: a visit that triggers many candidates.
    utts = [Utterance(0.0, 1.0, "How can I help?", speaker="clinician")]
    t = 2.0
    for i in range(12):
        utts.append(Utterance(t, t + 6, "I have had a cough and a fever and my back hurts too", speaker="patient"))
        utts.append(Utterance(t + 2, t + 3, "Any fever at night?", speaker="clinician"))
        t += 8
    utts.append(Utterance(t, t + 70, "Your blood pressure is high. You should take this tablet every day. It could be a TIA.", speaker="clinician"))
    fb = build_feedback(utts, classifier)
    assert not EVALUATIVE.search(fb.render())
