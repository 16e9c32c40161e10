"""Timing metrics on the 57 PriMock57 visits equal the independent reference."""

from __future__ import annotations

import pytest
from reference_timing import reference_metrics

from edge_agent.behaviours.timing import compute_timing
from tools.corpus.primock import iter_consultations, primock_dir, utterances_from_consultation

pytestmark = pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")


def _agree(a, b, tol):
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tol


def test_57_visits_match_reference():
    n = 0
    for cons in iter_consultations():
        utts = utterances_from_consultation(cons)
        m = compute_timing(utts)
        r = reference_metrics(utts)
        assert m.interruptions == r["interruptions"], cons.id
        assert m.opening_interrupted == r["opening_interrupted"], cons.id
        assert _agree(m.opening_uninterrupted_s, r["opening_uninterrupted_s"], 1e-6), cons.id
        # The reference rasters speaking time at 1 ms.
        assert _agree(m.talk_share, r["talk_share"], 2e-3), cons.id
        assert _agree(m.speech_rate_wpm, r["speech_rate_wpm"], 0.5), cons.id
        assert _agree(m.longest_monologue_s, r["longest_monologue_s"], 1e-6), cons.id
        assert len(m.wait_after_question_s) == len(r["wait_after_question_s"]), cons.id
        assert all(abs(x - y) < 1e-6 for x, y in zip(m.wait_after_question_s, r["wait_after_question_s"])), cons.id
        n += 1
    assert n == 57
