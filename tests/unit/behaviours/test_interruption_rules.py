"""Floor-taking interruptions vs the other overlap kinds, on small hand-written conversations.

docs/gold-events.md §2(c) (after Mulder-Vos et al. 2023): a back-channel, news receipt or
assessment over the patient is not an interruption; a substantive turn over the end of a
complete sentence is a turn-end overlap; one that takes a floor the patient still holds
(an open trailer, a clause stopped at its auxiliary) and after which the patient stops is
an interruption (rule 4); if the patient goes on for more than about a second and the
clinician stops first, the interruption was only attempted (rule 5).
"""

from __future__ import annotations

import pytest

from edge_agent.behaviours.conversation import build_turns, clinician_act, ends_open, is_receipt
from edge_agent.behaviours.events import detect_events
from edge_agent.transcript import Utterance

C, P = "clinician", "patient"


def U(speaker: str, t0: float, t1: float, text: str) -> Utterance:
    return Utterance(t0=t0, t1=t1, text=text, speaker=speaker)


def kinds(utts: list[Utterance]) -> list[tuple[int, str]]:
    return [(o.turn, o.kind) for o in detect_events(utts).overlaps]


@pytest.mark.parametrize(
    "text,open_",
    [
        ("I tried to rest the laptop on the desk but I can.", True),  # clause stopped at its auxiliary after "but"
        ("and it was", True),
        ("Yes, I can.", False),  # an elliptical answer yields
        ("I think it was.", False),  # no conjunction before the subject: a complete clause
        ("No rash, no, nothing that, um.", True),  # "that" then a hesitation
        ("I like that, um, a lot.", False),
        ("It's been three weeks now.", False),
        ("sometimes I'm constipated. Like", True),
    ],
)
def test_ends_open(text, open_):
    assert ends_open(text) is open_


def test_a_clause_stopped_at_its_auxiliary_is_taken_mid_sentence():
    utts = [
        U(C, 0.0, 2.0, "Can you show me your throat?"),
        U(P, 2.5, 6.0, "I've got the laptop on the desk but I can."),
        U(C, 5.2, 12.0, "OK. So if you hold the device above your head and open your mouth wide."),
        U(P, 12.5, 13.0, "Ah."),
    ]
    assert kinds(utts) == [(2, "interruption")]


def test_the_same_words_after_an_answer_are_a_turn_end_overlap():
    utts = [
        U(C, 0.0, 2.0, "Can you hold the device above your head?"),
        U(P, 2.5, 4.0, "Yes, I can."),
        U(C, 3.6, 8.0, "Great. Open your mouth wide and say ah."),
    ]
    assert kinds(utts) == [(2, "turn_end_overlap")]


def test_short_question_over_the_last_half_second_then_the_patient_stops_is_an_interruption():
    # rule 4: the patient's turn ends within a second, unfinished; that the clinician's
    # question is over before the patient's last word is not the patient keeping the floor
    utts = [
        U(C, 0.0, 2.0, "Did anything help?"),
        U(P, 2.5, 8.0, "I had to put something on it, a cream, but um"),
        U(C, 7.5, 7.9, "Which one?"),
        U(P, 9.0, 10.0, "Sudocrem."),
    ]
    assert kinds(utts) == [(2, "interruption")]


def test_patient_going_on_after_the_clinician_stops_makes_it_attempted():
    # rule 5: the patient goes on with content for more than about a second, the clinician stops
    utts = [
        U(C, 0.0, 2.0, "Did anything help?"),
        U(P, 2.5, 9.0, "I had to put something on it, a cream, and then the other one and"),
        U(C, 7.5, 8.0, "Which one?"),
        U(P, 10.5, 11.0, "Sudocrem."),
    ]
    assert kinds(utts) == [(2, "attempted_interruption")]
    assert detect_events(utts).interruptions == []


@pytest.mark.parametrize("receipt", ["Oh, really?", "Did you?", "That's good.", "OK, that's fine then.", "Of course."])
def test_news_receipts_and_assessments_are_back_channels(receipt):
    assert is_receipt(receipt)
    utts = [
        U(C, 0.0, 2.0, "What brings you in today?"),
        U(P, 2.5, 12.0, "I've been running every morning and my knee has started to swell, and"),
        U(C, 11.5, 12.2, receipt),
        U(P, 12.4, 18.0, "it hurts most when I go down the stairs, so that's why I'm here."),
        U(C, 18.5, 20.0, "Which knee is it?"),
    ]
    ev = detect_events(utts)
    assert [(o.turn, o.kind) for o in ev.overlaps] == [(2, "backchannel")]
    assert ev.opening_statement.outcome == "finished" and ev.opening_statement.end == pytest.approx(18.0)


@pytest.mark.parametrize("text", ["Did you take anything for it?", "That's good, and when did it start?",
                                  "It's fine to take paracetamol."])
def test_questions_and_content_are_not_receipts(text):
    assert not is_receipt(text)
    turns = build_turns([U(P, 0.0, 2.0, "I had a cough and"), U(C, 1.8, 4.0, text)])
    assert clinician_act(turns[1], turns[0]) == "substantive"
