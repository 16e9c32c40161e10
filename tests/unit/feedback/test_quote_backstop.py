"""The quote policy's backstop at sealing (feedback/quotes.py) removes every verbatim clinician word,
whatever built the report: the observations' quotes and the strength's quote in the summary."""

from __future__ import annotations

import pytest

from tools.corpus.primock import primock_dir


@pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")
def test_a_report_built_with_quotes_leaves_no_quote_when_the_site_forbids_them() -> None:
    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.feedback.proto import feedback_to_proto
    from edge_agent.feedback.quotes import enforce_quote_policy
    from edge_agent.feedback.report import build_feedback
    from tools.corpus.primock import load_consultation, utterances_from_consultation

    classifier = BehaviourClassifier(threads=1)
    checked = 0
    for cid in ("day1_consultation02", "day1_consultation04", "day4_consultation07"):
        fb = build_feedback(utterances_from_consultation(load_consultation(cid)), classifier, quotes=True)
        quotes = [o.clinician_quote for o in fb.observations if o.clinician_quote]
        if fb.strength is not None and fb.strength.clinician_quote:
            quotes.append(fb.strength.clinician_quote)
        assert quotes
        message = feedback_to_proto(fb)
        enforce_quote_policy(message, quotes_allowed=False)
        texts = [message.summary] + [getattr(o, f) for o in message.observations
                                     for f in ("moment", "clinician_quote", "alternative", "rationale")]
        for q in quotes:
            core = q.rstrip(" …").strip()
            assert not any(core in t for t in texts), (cid, core)
            checked += 1
    assert checked >= 3
