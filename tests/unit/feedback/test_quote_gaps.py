"""Quotes around transcript gaps and left-out names (docs/coaching-audit-2026-12.md: "Examine ," left out as a name).

PriMock57 transcripts, and the quote gate's own redaction, leave " ," or " ." where words were not transcribed or were
removed. The word before such a gap is the clinician's own, not a name said to someone; the quote must still be words
the clinician said, and a left-out name must leave one mark, not stray punctuation.
"""

from __future__ import annotations

from edge_agent.feedback.observations import short_quote


def test_a_word_cut_off_by_a_transcript_gap_is_not_left_out_as_a_name():
    # Before: "…, and we're gonna need to arrange some blood tests as well." — reads as if a name had been said.
    q = short_quote("Examine , and we're gonna need to arrange some blood tests as well.")
    assert q == "we're gonna need to arrange some blood tests as well."
    assert "…" not in short_quote("OK, so take , and come back if it's no better.")


def test_a_left_out_name_leaves_one_mark():
    assert short_quote("That's everything for today, thanks, Lou.") == "That's everything for today, thanks, …"
    assert short_quote("April, how can I help you this afternoon?") == "…, how can I help you this afternoon?"


def test_a_full_stop_after_doctor_ends_the_sentence_it_does_not_take_the_next_word_for_a_name():
    # Before: "Doctor . How can I help?" (the name not transcribed) quoted as "Doctor. … can I help?"
    assert short_quote("Right, I'm Doctor . How can I help you today?") == "I'm Doctor. How can I help you today?"
    assert short_quote("I'm Dr. Mesa from the practice.") == "I'm Dr. … from the practice."
