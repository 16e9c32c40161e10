"""Event detectors on what a live transcript can hand over: empty, odd, mis-timed input.

The detectors run on live ASR output too (imperfect speaker labels, word timings out of
order, zero-length or reversed segments, a non-finite time from a broken segment). None
of it may crash the report, and a segment that is not speech in time (zero length) is
never "interrupted".
"""

from __future__ import annotations

import pytest

from edge_agent.behaviours.conversation import build_turns, clean_utterances, ends_open
from edge_agent.behaviours.events import detect_events
from edge_agent.behaviours.timing import compute_timing
from edge_agent.feedback.report import build_feedback, render_text
from edge_agent.transcript import Utterance, Word

C, P = "clinician", "patient"


def U(speaker: str, t0: float, t1: float, text: str, words: tuple[Word, ...] = ()) -> Utterance:
    return Utterance(t0=t0, t1=t1, text=text, words=words, speaker=speaker)


class _Labels:
    """A stand-in classifier: every sentence a closed question."""

    def classify(self, texts):
        return [type("R", (), {"labels": ("closed_question",)})() for _ in texts]


ODD = {
    "empty": [],
    "empty text": [U(C, 0, 1, ""), U(P, 0.5, 2, "")],
    "punctuation only": [U(C, 0, 1, "..."), U(P, 0.5, 2, "? ! ."), U(C, 1, 2, ",")],
    "patient only": [U(P, 0, 4, "I have had a cough and")],
    "unknown speakers": [U("unknown", 0, 1, "How can I help?"), U("other", 1, 3, "I have a cough and")],
    "reversed times": [U(C, 5, 1, "How can I help?"), U(P, 2, 0, "I have a cough and"), U(C, 1.5, 1.0, "When?")],
    "non-finite times": [U(C, 0, 2, "How can I help?"), U(P, float("nan"), 4, "I have a cough and"),
                         U(C, 3, float("inf"), "Since when?"), U(P, 5, 6, "A week.")],
    "words out of order and outside the segment": [
        U(C, 0, 2, "How can I help?"),
        U(P, 2, 6, "I have a cough and", (Word("and", 5, 6), Word("i", 1.0, 2.2), Word("have", 2.2, 3), Word("a", 3, 9),
                                        Word("cough", float("nan"), 4.5))),
        U(C, 5.2, 8, "Since when?"),
    ],
    "same instant": [U(C, 0, 2, "How can I help?"), U(P, 0, 2, "I have a cough and"), U(C, 0, 2, "OK so when")],
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_input_does_not_crash(name):
    utts = ODD[name]
    ev = detect_events(utts)
    ev.to_gold()
    m = compute_timing(utts)
    assert m.interruptions == len(ev.interruptions)
    fb = build_feedback(utts, _Labels())
    render_text(fb)
    for o in ev.overlaps:
        assert 0 <= o.turn < len(ev.turns) and 0 <= o.patient_turn < len(ev.turns)


def test_clean_utterances_keeps_good_input_and_repairs_the_rest():
    good = [U(C, 0, 2, "How can I help?"), U(P, 2.5, 6, "I have a cough.", (Word("i", 2.5, 3), Word("have", 3, 4)))]
    assert clean_utterances(good) == good
    bad = ODD["non-finite times"] + [U(P, 9, 8, "Reversed.")]
    out = clean_utterances(bad)
    assert [u.text for u in out] == ["How can I help?", "A week.", "Reversed."]
    assert out[-1].t0 == out[-1].t1 == 9
    words = clean_utterances(ODD["words out of order and outside the segment"])[1].words
    assert [w.text for w in words] == ["i", "have", "a", "and"]  # NaN word dropped, the rest in time order
    assert all(2 <= w.t0 <= w.t1 <= 6 for w in words)


def test_timing_marks_point_at_the_callers_utterances_after_a_dropped_one():
    utts = [
        U(P, float("nan"), 1, "noise"),
        U(C, 0.0, 2.0, "What brings you in?"),
        U(P, 3.0, 15.0, "I've been getting headaches, mostly in the mornings, and my vision goes blurry sometimes and"),
        U(C, 14.2, 17.0, "Any fever or neck stiffness with that?"),
    ]
    m = compute_timing(utts)
    assert m.opening_redirected and m.interruptions == 1
    ev = next(e for e in m.events if e.kind == "opening_redirected")
    assert ev.utterance_index == 3 and ev.at_s == pytest.approx(14.2)


def test_a_zero_length_patient_segment_is_not_interrupted():
    utts = [U(C, 0, 2, "How can I help?"), U(P, 3, 3, "and"), U(C, 3, 5, "When did the cough start?")]
    assert detect_events(utts).interruptions == []
    assert len(build_turns(utts)) == 3


@pytest.mark.parametrize("text", ["", " ", "?", "...", "<unk>", "um", "so", "Ok", "and", "-", "’"])
def test_ends_open_on_fragments(text):
    assert ends_open(text) in (True, False)
