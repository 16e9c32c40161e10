"""The other voice in the first or last second of a VAD segment gets its own label.

Real turn-taking rarely leaves a pause as long as the VAD's hang-over, so the next
speaker's first words (or a back-channel) often end a segment, and a reply's first words
can open one. The 1.6 s windows that find changes inside a segment step 0.8 s and stop
short of its end, so a 0.3-1.5 s part at an edge rarely dominates one: before the edge
test the whole segment went to the majority voice (docs/speakers.md "Edges").

The visit is a generated real-voice one (tools/realvoice/generate.py, seed 31, visit 1:
two women, LibriSpeech 1998 and 3331, close-talk, 80 s), generated here deterministically
rather than committed. Before the edge test it scored 0.960 with and without enrolment:
the clinician's "Is it the duty of the ...?" (1.1 s) closing a patient segment, and one
turn's last word, went to the patient. Real Whisper, real encoder, the report's labels,
scored as ``tools.realvoice.bench`` does; unpaced, nothing timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.streamed_words import scored_generated_visit
from tools.realvoice import metrics as M
from tools.realvoice.generate import PlanSettings, generate_visit

FLOOR = 0.97  # the bar with enrolment (0.92 without); measured after the edge test: 0.991 with and without


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (ref,) = generate_visit(tmp_path_factory.mktemp("edges"), 31, 1, PlanSettings(duration_s=80.0), ("close",))
    return ref


@pytest.mark.parametrize("enrolled", [False, True], ids=["no-enrolment", "enrolled"])
def test_turn_edges_inside_a_segment_keep_their_speaker(session_with_speakers: Any, visit: Path, enrolled: bool) -> None:
    scored = scored_generated_visit(session_with_speakers, visit, enrolled)
    attr = M.attribution(scored)
    accuracy = attr.labelled if enrolled else attr.mapped
    assert accuracy is not None and accuracy >= FLOOR, accuracy  # before: 0.960 with and without enrolment
    assert M.identity_swaps(scored).swaps == 0
