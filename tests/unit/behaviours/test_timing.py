"""Timing behaviours on hand-built conversations with known answers (definitions: docs/coaching.md).

Each case is a small conversation in which the surrounding turns decide the answer: a
back-channel or an empathy token over the patient is not an interruption, a repair after
the opening question moves the opening to the repeat, a patient "No." ends a monologue
while "Mm-hm" does not, a question the clinician follows with another waits 0 s.
"""

from __future__ import annotations

import pytest

from edge_agent.behaviours.events import detect_events
from edge_agent.behaviours.timing import compute_timing, is_minimal
from edge_agent.transcript import Utterance, Word


def U(speaker: str, t0: float, t1: float, text: str) -> Utterance:
    return Utterance(t0=t0, t1=t1, text=text, speaker=speaker)


def timed(speaker: str, t0: float, text: str, step: float = 0.4) -> Utterance:
    """An utterance with word timings (as live ASR gives them)."""
    ws = text.split()
    words = tuple(Word(w, t0 + i * step, t0 + i * step + step * 0.8) for i, w in enumerate(ws))
    return Utterance(t0=t0, t1=words[-1].t1, text=text, words=words, speaker=speaker)


C, P = "clinician", "patient"


def test_backchannels_and_empathy_do_not_end_the_opening():
    utts = [
        U(C, 0.0, 2.0, "Hello, how can I help you today?"),
        U(P, 2.5, 20.0, "Well, I've had this pain in my side for a week and it keeps waking me up at night."),
        U(C, 6.0, 6.4, "Mm-hm."),
        U(C, 11.0, 12.5, "Oh, sorry to hear that."),
        U(C, 15.0, 15.3, "Yeah."),
        U(C, 20.4, 23.0, "And when did it start exactly?"),
        U(P, 23.8, 25.0, "Last Monday."),
    ]
    m = compute_timing(utts)
    assert m.opening_uninterrupted_s == pytest.approx(17.5)
    assert not m.opening_redirected
    assert m.interruptions == 0
    assert m.wait_after_question_s == pytest.approx([0.5, 0.8])
    kinds = [o.kind for o in detect_events(utts).overlaps]
    assert kinds == ["backchannel", "backchannel", "backchannel"]


def test_taking_the_floor_over_an_open_trailer_redirects_the_opening():
    utts = [
        U(C, 0.0, 2.0, "What brings you in?"),
        U(P, 3.0, 15.0, "I've been getting headaches, mostly in the mornings, and my vision goes blurry sometimes and"),
        U(C, 14.2, 17.0, "Any fever or neck stiffness with that?"),
        U(P, 18.0, 19.0, "No."),
    ]
    m = compute_timing(utts)
    assert m.opening_redirected
    assert m.opening_uninterrupted_s == pytest.approx(11.2)
    assert m.interruptions == 1
    ev = next(e for e in m.events if e.kind == "opening_redirected")
    assert ev.at_s == pytest.approx(14.2) and ev.utterance_index == 2
    o = detect_events(utts).overlaps[0]
    assert (o.kind, o.overlap) == ("interruption", True)


def test_turn_end_overlap_after_a_complete_sentence_is_not_an_interruption():
    utts = [
        U(C, 0.0, 1.5, "How can I help?"),
        U(P, 2.0, 10.0, "I have a cough that won't go away, it's been three weeks now."),
        U(C, 9.0, 12.0, "Three weeks, okay. Is it dry or are you bringing anything up?"),
    ]
    m = compute_timing(utts)
    assert m.interruptions == 0
    assert not m.opening_redirected
    assert m.opening_uninterrupted_s == pytest.approx(8.0)
    assert detect_events(utts).overlaps[0].kind == "turn_end_overlap"


def test_silent_redirection_in_a_pause_the_patient_still_holds():
    utts = [
        U(C, 0.0, 2.0, "So what can I do for you?"),
        U(P, 2.5, 9.0, "I've been coughing a lot, and my nose is running, and, like"),
        U(C, 9.6, 11.0, "How long for?"),
        U(P, 11.5, 12.5, "A week."),
    ]
    ev = detect_events(utts)
    assert ev.opening_statement.outcome == "redirected" and ev.opening_statement.overlap is False
    assert ev.opening_statement.end == pytest.approx(9.6)
    assert [(o.kind, o.overlap) for o in ev.overlaps] == [("interruption", False)]


def test_repair_and_id_checks_are_not_the_opening():
    utts = [
        U(C, 0.0, 1.0, "Hello? Can you hear me?"),
        U(P, 1.5, 2.0, "Yes."),
        U(C, 2.5, 4.0, "Can I confirm your date of birth?"),
        U(P, 4.5, 6.0, "Third of May, eighty two."),
        U(C, 6.5, 8.0, "How can I help you today?"),
        U(P, 8.5, 9.5, "Sorry, say that again?"),
        U(C, 9.8, 11.0, "How can I help you today?"),
        U(P, 11.5, 23.5, "I've had diarrhoea for three days and I feel weak."),
        U(C, 24.0, 25.0, "Any blood?"),
    ]
    ev = detect_events(utts)
    assert ev.opening_question.turn == 6
    assert ev.opening_statement.start == pytest.approx(11.5)
    assert ev.opening_statement.outcome == "finished" and ev.opening_statement.end == pytest.approx(23.5)


def test_notes_led_opening():
    utts = [
        U(C, 0.0, 3.0, "Are you in a private place where you can talk?"),
        U(P, 3.2, 3.8, "Yes."),
        U(C, 4.0, 9.0, "So, you've mentioned on our notes that you're having a bit of a cough. Is that correct?"),
        U(P, 9.5, 20.0, "Yeah, it's been going on for a few days now, and it's keeping me up at night."),
        U(C, 20.5, 22.0, "Is it dry?"),
    ]
    ev = detect_events(utts)
    assert ev.opening_question.turn == 2 and ev.opening_question.notes_led


def test_monologue_ends_at_an_answer_not_at_a_backchannel():
    utts = [
        U(C, 0.0, 2.0, "How can I help?"),
        U(P, 2.5, 8.0, "My knee hurts when I run, especially downhill."),
        U(C, 10.0, 40.0, "So I think this is runner's knee. Let me explain what that means. It settles with rest."),
        U(P, 25.0, 25.5, "Mm-hm."),  # a back-channel does not end the stretch
        U(C, 40.5, 75.0, "Ice it after runs and cut the distance for two weeks. Any questions so far?"),
        U(P, 75.5, 76.0, "No."),  # an answer ends it
        U(C, 76.5, 80.0, "Great, see you in two weeks."),
    ]
    ev = detect_events(utts)
    long_ = max(ev.stretches, key=lambda m: m.duration)
    assert (long_.start, long_.end, long_.ended_by_turn) == (10.0, 75.0, 5)
    assert [m.duration for m in ev.monologues] == [65.0]
    assert compute_timing(utts).longest_monologue_s == pytest.approx(65.0)


def test_wait_times_one_and_two():
    utts = [
        U(C, 0.0, 2.0, "What brings you in?"),
        U(P, 3.5, 8.0, "I've had a rash on my arm for a week."),
        U(C, 8.4, 10.0, "Is it itchy?"),
        U(C, 10.2, 11.0, "Or sore?"),  # the clinician went on: the first question waited 0 s
        U(P, 12.2, 13.0, "Itchy."),
        U(C, 14.0, 15.0, "Any new soaps?"),
        U(P, 14.8, 15.5, "No."),  # overlapping answer: 0 s
    ]
    m = compute_timing(utts)
    assert m.wait_after_question_s == pytest.approx([1.5, 0.0, 1.2, 0.0])
    assert m.pause_after_answer_s == pytest.approx([0.4, 1.0])
    assert m.stacked_questions == 1


def test_stacked_questions_and_what_breaks_a_stack():
    utts = [
        U(C, 0.0, 4.0, "How is your breathing? Any pain in your chest?"),
        U(P, 4.5, 5.0, "No."),
        U(C, 5.5, 9.0, "Do you smoke at all? Do you, can I ask? Do you smoke?"),  # a restart: one question
        U(P, 9.5, 10.0, "No."),
        U(C, 10.5, 12.0, "Any allergies?"),
        U(P, 12.1, 12.5, "Yeah."),
        U(C, 12.6, 14.0, "Which ones?"),  # a patient turn in between breaks the stack
    ]
    stacks = detect_events(utts).stacked_questions
    assert [s.turn for s in stacks] == [0]
    assert stacks[0].questions == ["How is your breathing?", "Any pain in your chest?"]


def test_word_timings_place_the_patient_answer_between_two_questions():
    # The first question is said fast, the second slowly. By the word clock the patient's "Yeah"
    # comes after the first question (it answers it: no stack); at an even rate over the turn it
    # would fall inside the first question (a stack). Word timings win when the utterance has them.
    fast = "Do you get short of breath?".split()
    slow = "Is that when you run or when you rest?".split()
    words = tuple(Word(w, i * 0.2, i * 0.2 + 0.18) for i, w in enumerate(fast))
    words += tuple(Word(w, 1.2 + i * 0.75, 1.2 + i * 0.75 + 0.6) for i, w in enumerate(slow))
    text = " ".join(fast + slow)
    answer = U(P, 1.3, 1.7, "Yeah.")
    with_words = [Utterance(0.0, words[-1].t1, text, words=words, speaker=C), answer]
    without = [Utterance(0.0, words[-1].t1, text, speaker=C), answer]
    assert detect_events(with_words).stacked_questions == []
    assert len(detect_events(without).stacked_questions) == 1


def test_talk_share_and_rate():
    w = tuple(Word(f"w{i}", 10 + i * 0.5, 10 + i * 0.5 + 0.4) for i in range(30))
    utts = [
        U(C, 0.0, 4.0, "Hello, how can I help?"),
        U(P, 5.0, 9.0, "My knee hurts when I run, especially downhill."),
        Utterance(t0=10.0, t1=25.0, text="x " * 30, words=w, speaker=C),
        U(P, 18.0, 18.5, "Mm-hm."),
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


def test_no_patient_speech():
    m = compute_timing([U(C, 0.0, 3.0, "Hello, can you hear me?")])
    assert m.opening_uninterrupted_s is None
    assert m.interruptions == 0
    assert m.talk_share == pytest.approx(1.0)
    assert m.wait_after_question_s == []
    assert compute_timing([]).talk_share is None


def test_unsorted_input_keeps_input_indices():
    utts = [
        U(P, 3.0, 15.0, "I've been getting headaches, mostly in the mornings, and my vision goes blurry sometimes and"),
        U(C, 0.0, 2.0, "What brings you in?"),
        U(C, 14.2, 17.0, "Any fever or neck stiffness with that?"),
    ]
    m = compute_timing(utts)
    ev = next(e for e in m.events if e.kind == "opening_redirected")
    assert ev.utterance_index == 2


@pytest.mark.parametrize(
    "text,expected",
    [("Mm-hm.", True), ("Okay, yeah.", True), ("Hello, how are you?", True), ("Right, ok.", True),
     ("No, no blood.", False), ("And how many times a day?", False)],
)
def test_minimal(text, expected):
    assert is_minimal(text) is expected
