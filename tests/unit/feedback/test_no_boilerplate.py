"""No repeated boilerplate across visits, with quotes off (the device's default: ``feedback.quotes`` false).

The audit behind issue 13 found the same teach-back script in 52 of 57 reports. The
alternatives and the one strength are phrased from what happened; with quotes off they
may not repeat the clinician's words, and that is the text the device sends. Over the 57
PriMock57 visits no suggestion and no strength may read the same in more than 5 reports
(about one in ten).
"""

from __future__ import annotations

from collections import Counter

import pytest

from tools.corpus.primock import primock_dir

MAX_SAME = 5


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_suggestions_and_strengths_are_not_the_same_text_across_visits() -> None:
    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.feedback.report import build_feedback
    from tools.bench.coaching import gold_ids
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    classifier = BehaviourClassifier(threads=1)
    suggestions: Counter[tuple[str, str]] = Counter()
    strengths: Counter[tuple[str, str]] = Counter()
    with_strength = 0
    for cid in gold_ids():
        fb = build_feedback(utterances_from_consultation(load_consultation(cid)), classifier, quotes=False)
        for o in fb.observations:
            assert not o.clinician_quote
            suggestions[(o.behaviour, o.alternative)] += 1
        if fb.strength is not None:
            with_strength += 1
            strengths[(fb.strength.behaviour, fb.strength.happened)] += 1
    assert with_strength >= 40  # the strength is still found where it was
    same = [(n, kind, text[:90]) for (kind, text), n in suggestions.most_common() if n > MAX_SAME]
    assert not same, f"suggestions repeated across visits: {same}"
    same = [(n, kind, text[:90]) for (kind, text), n in strengths.most_common() if n > MAX_SAME]
    assert not same, f"strengths repeated across visits: {same}"
