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


def test_speech_that_could_not_be_transcribed_is_shown_where_it_happened() -> None:
    """A segment lost to a failed decode or a missing buffer is a line in the live view (the person watching
    would otherwise see nothing there); noise and silence discards stay quiet."""
    from edge_agent.asr.events import SegmentDiscarded

    out = io.StringIO()
    with LiveTranscriptView(Console(file=out, width=100, color_system=None)) as view:
        view(SegmentDiscarded(segment_id=4, t0=31.2, t1=36.0, reason="decode_failed", residency_s=0.01))
        view(SegmentDiscarded(segment_id=5, t0=40.0, t1=41.0, reason="no_buffer", residency_s=0.01))
        view(SegmentDiscarded(segment_id=6, t0=50.0, t1=50.4, reason="too_little_speech", residency_s=0.01))
    text = out.getvalue()
    assert "[0:31] (about 5 s of speech could not be transcribed)" in text, text
    assert "[0:40] (about 1 s of speech could not be transcribed)" in text, text
    assert "0:50" not in text


def test_a_final_confidence_decided_again_corrects_nothing_in_the_live_view() -> None:
    """At the end of a run every final gets its final confidence (the report's quote gate rests on it); when the
    speaker stays the same (``changed=False``) the person watching has nothing to be told."""
    out = io.StringIO()
    with LiveTranscriptView(Console(file=out, width=100, color_system=None)) as view:
        view(SpeakerRelabel(segment_id=3, t0=26.4, speaker="clinician", confidence=0.97, changed=False))
    assert "correction" not in out.getvalue()
