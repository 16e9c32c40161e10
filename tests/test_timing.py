"""Timing behaviours on hand-built timelines with known answers."""

from __future__ import annotations

import pytest
from reference_timing import reference_metrics

from edge_agent.behaviours.timing import compute_timing, is_minimal
from edge_agent.transcript import Utterance, Word


def U(speaker: str, t0: float, t1: float, text: str) -> Utterance:
    return Utterance(t0=t0, t1=t1, text=text, speaker=speaker)


C, P = "clinician", "patient"


def test_backchannels_do_not_interrupt_the_opening():
    utts = [
        U(C, 0.0, 2.0, "Hello, how can I help you today?"),
        U(P, 2.5, 20.0, "Well, I've had this pain in my side for a week and it keeps waking me up at night."),
        U(C, 6.0, 6.4, "Mm-hm."),
        U(C, 11.0, 11.5, "Okay."),
        U(C, 15.0, 15.3, "Yeah."),
        U(C, 20.4, 23.0, "And when did it start exactly?"),
        U(P, 23.8, 25.0, "Last Monday."),
    ]
    m = compute_timing(utts)
    assert m.opening_uninterrupted_s == pytest.approx(17.5)
    assert not m.opening_interrupted
    assert m.interruptions == 0
    assert m.wait_after_question_s == pytest.approx([0.5, 0.8])


def test_overlap_onset_is_an_interruption_and_ends_the_opening():
    utts = [
        U(C, 0.0, 2.0, "What brings you in?"),
        U(P, 3.0, 15.0, "I've been getting headaches, mostly in the mornings, and my vision goes blurry sometimes when"),
        U(C, 9.0, 12.0, "Any fever or neck stiffness with that?"),
        U(P, 16.0, 17.0, "No."),
    ]
    m = compute_timing(utts)
    assert m.opening_interrupted
    assert m.opening_uninterrupted_s == pytest.approx(6.0)
    assert m.interruptions == 1
    kinds = [e.kind for e in m.events]
    assert "opening_interrupted" in kinds and "interruption" in kinds
    ev = next(e for e in m.events if e.kind == "opening_interrupted")
    assert ev.at_s == pytest.approx(9.0) and ev.utterance_index == 2
    # The question overlapped: the patient answered 4 s after it ended.
    assert m.wait_after_question_s == pytest.approx([1.0, 4.0])


def test_overlap_in_the_last_half_second_is_a_transition():
    utts = [
        U(C, 0.0, 1.5, "How can I help?"),
        U(P, 2.0, 10.0, "I have a cough that won't go away, it's been three weeks now."),
        U(C, 9.7, 12.0, "Three weeks, okay. Is it dry or are you bringing anything up?"),
    ]
    m = compute_timing(utts)
    assert m.interruptions == 0
    assert not m.opening_interrupted
    assert m.opening_uninterrupted_s == pytest.approx(8.0)


def test_talk_share_monologue_and_rate():
    w = tuple(Word(f"w{i}", 10 + i * 0.5, 10 + i * 0.5 + 0.4) for i in range(30))
    utts = [
        U(C, 0.0, 4.0, "Hello, how can I help?"),
        U(P, 5.0, 9.0, "My knee hurts when I run, especially downhill."),
        Utterance(t0=10.0, t1=25.0, text="x " * 30, words=w, speaker=C),
        U(P, 18.0, 18.5, "Mm-hm."),  # a back-channel does not end the monologue
        U(C, 25.5, 30.0, "So rest it, ice it, and we'll see you in two weeks."),
        U(P, 31.0, 32.0, "Okay, thank you."),
    ]
    m = compute_timing(utts)
    clin = 4 + 15 + 4.5
    pat = 4 + 0.5 + 1
    assert m.talk_share == pytest.approx(clin / (clin + pat))
    assert m.longest_monologue_s == pytest.approx(20.0)  # 10.0 -> 30.0, no patient turn inside
    words = 5 + 30 + 12
    assert m.speech_rate_wpm == pytest.approx(words / (clin / 60))


def test_greeting_before_solicitation_is_not_the_opening():
    utts = [
        U(C, 0.0, 1.0, "Hello?"),
        U(P, 1.5, 4.0, "Hello, can you hear me well?"),
        U(C, 4.5, 7.0, "Yes, I can. So how can I help you today?"),
        U(P, 7.5, 19.5, "I've had diarrhoea for three days and I feel weak."),
        U(C, 20.0, 21.0, "Any blood?"),
    ]
    m = compute_timing(utts)
    assert m.opening_uninterrupted_s == pytest.approx(12.0)
    assert next(e for e in m.events if e.kind == "opening_start").at_s == pytest.approx(7.5)


def test_no_patient_speech():
    m = compute_timing([U(C, 0.0, 3.0, "Hello, can you hear me?")])
    assert m.opening_uninterrupted_s is None
    assert m.interruptions == 0
    assert m.talk_share == pytest.approx(1.0)
    assert m.wait_after_question_s == []
    assert compute_timing([]).talk_share is None


@pytest.mark.parametrize(
    "text,expected",
    [("Mm-hm.", True), ("Okay, yeah.", True), ("Hello, how are you?", True), ("Right, ok.", True),
     ("No, no blood.", False), ("And how many times a day?", False)],
)
def test_minimal(text, expected):
    assert is_minimal(text) is expected


def test_hand_built_timelines_agree_with_reference():
    utts = [
        U(C, 0.0, 2.0, "What brings you in?"),
        U(P, 3.0, 15.0, "I've been getting headaches, mostly in the mornings, and my vision goes blurry sometimes"),
        U(C, 5.0, 5.3, "Mm-hm."),
        U(C, 9.0, 12.0, "Any fever?"),
        U(P, 16.0, 17.0, "No."),
        U(C, 17.5, 40.0, "Okay. So it sounds like migraine and here is what I suggest we do about it."),
    ]
    m = compute_timing(utts)
    r = reference_metrics(utts)
    assert (m.interruptions, m.opening_uninterrupted_s, m.longest_monologue_s) == (
        r["interruptions"], r["opening_uninterrupted_s"], r["longest_monologue_s"])
