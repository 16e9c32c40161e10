"""The bundled demo without enrolment (issue 12: "attributes 75 % of words correctly"; bar >= 0.92).

Measured 2026-12-02 on main (29053d0): 0.772 of words right (best label mapping; the
clinician's words 0.66, the patient's 0.86). Why (docs/speakers.md "The demo without
enrolment"): every VAD segment of the demo holds a turn change; the first two have no
reference voice and the reference-free cut needs window means below cosine 0.80, which the
espeak pair (~0.85) never reaches, so the visit's two clusters are built from mixed
segments (centroids 0.06 apart) and later segments are scored against them. Two-means over
the visit's *windows* separates the two voices perfectly (every unambiguous window of the
demo, from its first 10 windows on), but used as the change-point reference ungated it adds
spurious changes on one-reader recordings (1688: 1 -> 11) and lowers the same-sex room
visit (0.923 -> 0.869); gated (window clusters > 1.5x as far apart as the segment clusters)
the demo reaches 0.953 but one reader still gets 14 spurious changes (1688) and the same-sex
close-talk visit drops 0.989 -> 0.977, so it is not adopted: the floor below is today's figure and the bar
is kept as a strict xfail until a gated version passes both.

Real Whisper, real speaker encoder, unpaced; nothing is timed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.paths import REPO_ROOT
from tests.streamed_words import final_words
from tools.realvoice import metrics as M

DATA = REPO_ROOT / "edge_agent" / "data"
ROLE = {"doctor": "clinician", "patient": "patient"}


def _attribution(session: Any) -> M.Attribution:
    ref = json.loads((DATA / "demo_conversation.json").read_text())
    turns = [M.Interval(ROLE[t["role"]], t["t0"], t["t1"]) for t in ref["turns"]]
    scored = M.score_words(final_words(session, DATA / "demo_conversation.flac", None), turns)
    assert len(scored) >= 100  # the demo was transcribed
    return M.attribution(scored)


def test_demo_without_enrolment_keeps_its_floor(session_with_speakers: Any) -> None:
    # 0.772 measured; the floor leaves room for one segment's placement moving (a few words)
    assert (_attribution(session_with_speakers).mapped or 0.0) >= 0.75


@pytest.mark.xfail(strict=True, reason="issue 12 bar not met without enrolment: 0.772 (docs/speakers.md)")
def test_demo_without_enrolment_meets_the_bar(session_with_speakers: Any) -> None:
    assert (_attribution(session_with_speakers).mapped or 0.0) >= 0.92
