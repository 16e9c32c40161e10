"""The people-facing live view: a late speaker correction says which earlier line it corrects."""

from __future__ import annotations

import io

from rich.console import Console

from edge_agent.asr.events import SpeakerRelabel
from edge_agent.cli.render import LiveTranscriptView


def test_a_relabel_names_the_line_it_corrects_and_the_speaker() -> None:
    out = io.StringIO()
    with LiveTranscriptView(Console(file=out, width=100, color_system=None)) as view:
        view(SpeakerRelabel(segment_id=3, t0=26.4, speaker="patient", confidence=0.9))
        view(SpeakerRelabel(segment_id=5, t0=75.0, speaker="other", confidence=0.6))
    text = out.getvalue()
    assert "[0:26] correction: the line at 0:26 was the patient" in text
    assert "[1:15] correction: the line at 1:15 was another speaker" in text
