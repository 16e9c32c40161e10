"""Enrolment never makes a visit's attribution worse than the un-enrolled decision.

The acceptance review (docs/realvoice.md 13) found a fresh visit where it did: seed 101,
visit 6 (LibriSpeech 2609 M clinician, 1998 F patient, close-talk, 60 s) scored 0.958
without enrolment and 0.897 with it. The clinician's opening question was cut 1 s early,
leaving a 0.96 s part under ``min_cluster_s``, so the voiceprint counted as never heard
and the visit's two halves of the *patient* were named by it (a 3.4 s patient stretch at
cosine 0.59 called clinician); later the voiceprint-anchored clinician voice (the
enrolment recording's, not the visit's) lost every in-visit window to the patient
centroid, and a segment of four 1-2 s turns stayed whole. Generated here
deterministically (tools/realvoice/generate.py) rather than committed. Real Whisper,
real encoder, the report's labels, scored as ``tools.realvoice.bench`` does; unpaced,
nothing timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.streamed_words import scored_generated_visit
from tools.realvoice import metrics as M
from tools.realvoice.generate import PlanSettings, generate_visit

FLOOR = 0.95  # test_realvoice_attribution's enrolled cross-sex close-talk floor; before: 0.897
# the two runs cut the same visit into different parts (their splits need not agree word for word): enrolled may
# trail by up to this (one word of the visit's 165 scored, as measured after the fix: 0.952 against 0.958)
SLACK = 0.01


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (ref,) = generate_visit(tmp_path_factory.mktemp("enrolfresh"), 101, 6, PlanSettings(duration_s=60.0), ("close",))
    return ref


def _accuracy(session: Any, visit: Path, enrolled: bool) -> float:
    scored = scored_generated_visit(session, visit, enrolled)
    assert M.identity_swaps(scored).swaps == 0
    attr = M.attribution(scored)
    accuracy = attr.labelled if enrolled else attr.mapped
    assert accuracy is not None
    return accuracy


def test_enrolment_does_not_lose_what_the_visit_alone_finds(session_with_speakers: Any, visit: Path) -> None:
    without = _accuracy(session_with_speakers, visit, False)
    enrolled = _accuracy(session_with_speakers, visit, True)
    assert enrolled >= FLOOR, (enrolled, without)  # before: 0.897 enrolled, 0.958 without
    assert enrolled >= without - SLACK, (enrolled, without)
