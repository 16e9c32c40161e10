"""The mechanical timing metrics on the 57 PriMock57 visits equal the independent reference.

The conversation-aware metrics (opening, interruptions, monologues, wait times, stacks) are
checked against the adjudicated event gold instead: tests/unit/behaviours/test_events_gold.py and
``edge-agent bench coaching`` (see tests/reference_timing.py for why).
"""

from __future__ import annotations

import pytest

from edge_agent.behaviours.timing import compute_timing
from tests.reference_timing import reference_metrics
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
        # The reference rasters speaking time at 1 ms.
        assert _agree(m.talk_share, r["talk_share"], 2e-3), cons.id
        assert _agree(m.speech_rate_wpm, r["speech_rate_wpm"], 0.5), cons.id
        n += 1
    assert n == 57
