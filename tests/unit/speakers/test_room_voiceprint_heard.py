"""A clinician's own voiceprint heard through a room microphone names the visit's voices; it is not "never heard".

Found by the acceptance review after `h/edges` (docs/realvoice.md 13.1): seed 101, visit 4 (LibriSpeech 3331 F
clinician, 2033 M patient), far-field, scored 1.000 without enrolment and **0.000** with it. Far from the
microphone, no segment reached the voiceprint's threshold and the visit's voice nearer to it averaged about 0.50,
under ``room_floor``, so the visit was flagged ``voiceprint_unheard`` and its speakers named without the voiceprint,
backwards, although the clinician's voice sat about 0.15 nearer to the voiceprint than the patient's. A voiceprint
that leans that clearly to one of two voices is heard (docs/speakers.md "A voiceprint never heard"). Generated
deterministically here (tools/realvoice/generate.py); real Whisper, real encoder, the report's labels; nothing timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.streamed_words import scored_generated_visit
from tools.realvoice import metrics as M
from tools.realvoice.generate import PlanSettings, generate_visit

FLOOR = 0.96  # test_realvoice_attribution's enrolled cross-sex far-field floor; before: 0.000


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (ref,) = generate_visit(tmp_path_factory.mktemp("roomheard"), 101, 4, PlanSettings(duration_s=60.0), ("far",))
    return ref


def test_the_clinicians_voiceprint_through_a_room_microphone_names_the_voices(session_with_speakers: Any, visit: Path) -> None:
    labelled = M.attribution(scored_generated_visit(session_with_speakers, visit, enrolled=True)).labelled
    assert labelled is not None and labelled >= FLOOR, labelled
