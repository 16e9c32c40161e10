"""Real voices through the real pipeline: the committed visits, close-talk and in a room.

Two pairs of LibriSpeech readers (tests/data/realvoice): a woman and a man (1998 / 2609)
and two women (1998 / 3331), each rendered close-talk and 1-1.5 m from a desk
microphone with reverberation and babble. In the room the two women are 0.89 apart
in cosine, and the clinician's close-talk voiceprint scores everyone 0.2-0.3 lower
than close-talk, so no segment reaches the enrolment threshold.

Before the fix the same-sex room visit collapsed into one voice: the clinician's words
were all called patient (clinician accuracy 0.0, word attribution 0.63-0.71), with and
without enrolment, and the enrolled cross-sex room visit lost a seventh of the
clinician's words (docs/speakers.md, "Real voices").

Real Whisper, real speaker encoder, the report's final labels (relabels applied), scored
like ``tools.realvoice.bench``; unpaced. Nothing here is timed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_agent.speakers.enrol import voiceprint_from
from tests.paths import REPO_ROOT
from tests.streamed_words import final_words
from tools.realvoice import metrics as M

DATA = REPO_ROOT / "tests" / "data" / "realvoice"
SAME_FAR = "visit01_same_1998_3331_far"

# (visit, enrolled): floor for word attribution (labelled with enrolment, best mapping without).
# The bars are 0.97 enrolled / 0.92 not; measured unpaced on this branch (docs/speakers.md):
# cross close 0.974 / 0.967, cross far 0.994 / 0.994, same close 0.988 / 0.983, same far 0.936 / 0.936.
# Floors sit at the bar where the bar is met, and a little under the measured figure where it is not
# (cross close enrolled: two turn-end words; same far enrolled: turn changes inside one VAD segment).
# Cross far enrolled 0.994 -> 0.967 (h/rv12): four of the patient's words ("It's out to me", 53.0-53.9 s)
# that Whisper used to skip are now decoded (docs/realvoice.md 10), and they sit in a 1.2 s patient tail
# of a clinician segment that the speaker stage does not split: speech no longer lost, but on the
# wrong speaker, which this floor (the bar) counts and the lost words never were.
# Cross far enrolled 0.967 -> 0.984 (h/edges): that tail is now split off by the edge test (docs/speakers.md
# "Edges"); its floor is the bar, which the code before failed.
FLOORS: dict[tuple[str, bool], float] = {
    ("visit00_cross_1998_2609_close", False): 0.92,
    ("visit00_cross_1998_2609_close", True): 0.95,
    ("visit00_cross_1998_2609_far", False): 0.92,
    ("visit00_cross_1998_2609_far", True): 0.97,
    ("visit01_same_1998_3331_close", False): 0.92,
    ("visit01_same_1998_3331_close", True): 0.97,
    (SAME_FAR, False): 0.90,
    (SAME_FAR, True): 0.90,
}


def _final_words(session: Any, visit: str, enrolled: bool) -> list[M.HypWord]:
    """Stream one rendering; each word carries its final (report) label."""
    ref = json.loads((DATA / f"{visit}.json").read_text())
    voiceprint = voiceprint_from(DATA / ref["enrolment"]["file"]) if enrolled else None
    return final_words(session, DATA / ref["audio"], voiceprint)


@pytest.mark.parametrize("enrolled", [False, True], ids=["no-enrolment", "enrolled"])
@pytest.mark.parametrize("visit", sorted({v for v, _ in FLOORS}), ids=lambda v: v.split("_", 1)[1])
def test_real_voices_keep_two_identities(session_with_speakers: Any, visit: str, enrolled: bool) -> None:
    ref = json.loads((DATA / f"{visit}.json").read_text())
    intervals = [M.Interval(i["speaker"], i["start_s"], i["stop_s"], i["kind"]) for i in ref["intervals"]]
    scored = M.score_words(_final_words(session_with_speakers, visit, enrolled), intervals)
    attr = M.attribution(scored)
    # with enrolment the names are the point (labels as they are); without, the best mapping
    accuracy = attr.labelled if enrolled else attr.mapped
    mapping = {"clinician": "clinician", "patient": "patient"} if enrolled else attr.mapping
    clinician = [mapping.get(s.word.speaker) == "clinician" for s in scored if s.ref == "clinician"]
    labels = {s.word.speaker for s in scored if s.ref is not None}
    assert {"clinician", "patient"} <= labels, labels  # both voices found, not one
    # same-sex room visit before the fix: 0 of the clinician's words were hers
    assert sum(clinician) >= 0.75 * len(clinician), (sum(clinician), len(clinician), accuracy)
    assert accuracy is not None and accuracy >= FLOORS[(visit, enrolled)], accuracy
    assert M.identity_swaps(scored).swaps == 0
