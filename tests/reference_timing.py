"""Independent, deliberately naive reference for the *mechanical* timing metrics.

History: this file used to re-implement every timing metric from the old one-line
definitions (any overlap > 0.5 s before a patient segment's end was an interruption; the
opening question was one regex; a monologue ran until a non-minimal patient turn began;
the wait after a question dropped the questions the clinician followed with another).
Issue 13 replaced those definitions with conversation-aware ones (docs/coaching.md):
whether an overlap takes the floor, whether a patient "Yeah." answers a question, whether
a question was followed by another, all depend on the surrounding turns and on the event
protocol the gold was annotated with. A second rule set written from the same page would
not be an independent check of them; the adjudicated event gold is, and
``edge-agent bench coaching`` measures the detectors against it (tests/unit/behaviours/test_events_gold.py
keeps the development-half figures from regressing).

What is still purely mechanical is cross-checked here with a different method: talk
share by a 1 ms raster instead of interval unions, and the speech rate.
"""

from __future__ import annotations

import re

import numpy as np


def reference_metrics(utts):
    """utts: objects with speaker, t0, t1, text, words. Returns a plain dict."""
    utts = sorted(utts, key=lambda u: (u.t0, u.t1))
    end = max([u.t1 for u in utts] + [0.0])
    n = int(np.ceil(end * 1000)) + 2
    d_mask = np.zeros(n, bool)
    o_mask = np.zeros(n, bool)
    for u in utts:
        a, b = int(round(u.t0 * 1000)), int(round(u.t1 * 1000))
        if u.speaker == "clinician":
            d_mask[a:b] = True
        elif u.speaker in ("patient", "other"):
            o_mask[a:b] = True
    d_time, o_time = d_mask.sum() / 1000, o_mask.sum() / 1000
    share = d_time / (d_time + o_time) if d_time + o_time else None
    doc = [u for u in utts if u.speaker == "clinician"]
    d_words = sum(len(u.words) if u.words else len(re.findall(r"[a-z][a-z'-]*", u.text.lower())) for u in doc)
    wpm = d_words / (d_time / 60) if d_time else None
    return {"talk_share": share, "speech_rate_wpm": wpm}
