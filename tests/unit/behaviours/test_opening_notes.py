"""The opening question and notes-led openings (docs/gold-events.md §2(a); Beckman & Frankel 1984; Marvel et al. 1999;
Calgary-Cambridge, Silverman, Kurtz & Draper 2013: "identify the problems the patient wishes to address").

Short dialogues written for the test, after the patterns of the development half: an open invitation narrowed to the
booking note in the same breath, a note restated as "you said…" after the ID check, a recap of the patient's own
words or ID answer that is not the opening question at all.
"""

from __future__ import annotations

from edge_agent.behaviours.events import detect_events
from edge_agent.feedback.observations import candidates
from edge_agent.transcript import Utterance
from tests.dialogue import C, P, dialogue


def _visit(opening: str, id_answer: str = "Peter Jones, twelfth of March nineteen eighty.") -> list[Utterance]:
    return dialogue([
        (C, "Hello there, good morning. Can you hear me OK?", 3),
        (P, "Yes.", 1),
        (C, "Before we start, could I confirm your full name and date of birth please?", 4),
        (P, id_answer, 4),
        (C, "Thank you. Are you in a private place where you're OK to speak?", 3),
        (P, "I am, yes.", 1),
        (C, opening, 5),
        (P, "Yeah, so it started about a month ago and it's slowly got worse, and now I struggle to follow conversations.", 12),
        (C, "How long has it been going on for?", 2),
        (P, "About six weeks.", 1.5),
    ])


def test_an_invitation_narrowed_to_the_booking_note_is_a_notes_led_opening():
    # Before: the invitation matched first and the note that followed it in the same turn was not seen, so the
    # opening was not notes-led and the report said nothing (gold: notes-led; the patient's account answers the note).
    for note in ("You've been saying there's a problem with your hearing. Is that right?",
                 "You said you're a bit hard of hearing. Is that right?",
                 "You've been having some trouble with your hearing. Is that correct?"):
        ev = detect_events(_visit(f"OK, great. So tell me what's been going on. {note}"))
        assert ev.opening_question is not None and ev.opening_question.turn == 6
        assert ev.opening_question.notes_led, note
        obs = {o.behaviour: o for o in candidates(ev)}["notes_led_opening"]
        assert obs.clinician_quote.startswith(note.split(".")[0][:20])  # quotes the note, not the invitation
        assert "open question" in obs.happened and "Let the open question stand" in obs.alternative


def test_an_id_answer_is_not_what_the_patient_said_about_their_problem():
    # Before: an ID answer of six words or more ("Peter Jones, twelfth of March…") counted as the patient having
    # described a problem, so "You said you're …" after it was not taken as the booking note.
    ev = detect_events(_visit("OK. You said you're a bit hard of hearing at the moment."))
    assert ev.opening_question is not None and ev.opening_question.turn == 6 and ev.opening_question.notes_led


def test_a_recap_of_the_id_answer_is_not_the_opening_question():
    # Before: "you're forty years old, you said, yeah?" (a "you said" with no patient content before) was taken as a
    # notes-led opening question; the opening question is the later "how can I help?".
    utts = dialogue([
        (C, "Hi, good morning. Could I confirm your full name and how old you are?", 4),
        (P, "Mary Richards, and I'm forty years old.", 3),
        (C, "OK, fine. So you're forty years old, you said, yeah?", 3),
        (P, "Yes.", 1),
        (C, "Perfect. Are you somewhere private where you can talk?", 3),
        (P, "Yep.", 1),
        (C, "Great. So how can I help you today?", 2),
        (P, "So I've been having problems with my hearing, and my face has been feeling numb on one side recently.", 10),
        (C, "How long has this been going on for?", 2),
    ])
    ev = detect_events(utts)
    assert ev.opening_question is not None and ev.opening_question.turn == 6 and not ev.opening_question.notes_led


def test_a_recap_of_what_the_patient_said_is_not_the_opening_question_nor_the_notes():
    # Before: "you mentioned that you are wheezy", repeating the patient's answer to "how are you?", was taken as the
    # opening question; the gold's opening question is the invitation that follows it, and it is not notes-led.
    utts = dialogue([
        (C, "Hi. How are you?", 2),
        (P, "I'm all right, thanks. Though I'm actually feeling a bit wheezy.", 5),
        (C, "OK. Can I confirm your name and date of birth, please?", 3),
        (P, "Tina Smith, and I'm forty.", 3),
        (C, "OK. And you mentioned that you are wheezy.", 3),
        (P, "Mm-hmm.", 0.6),
        (C, "Can you tell me a little bit more about that?", 2.5),
        (P, "So it started about two days ago, after I cleaned the house and all this dust came out of the carpet.", 15),
        (C, "Did it start suddenly or gradually?", 2),
    ])
    ev = detect_events(utts)
    assert ev.opening_question is not None and ev.opening_question.turn == 6 and not ev.opening_question.notes_led
    assert "notes_led_opening" not in {o.behaviour for o in candidates(ev)}


def test_a_plain_notes_led_opening_keeps_its_wording():
    ev = detect_events(_visit("So, I can see from your notes you've been having trouble with your hearing."))
    assert ev.opening_question.notes_led and ev.opening_question.notes_text == ev.opening_question.text
    obs = {o.behaviour: o for o in candidates(ev)}["notes_led_opening"]
    assert obs.happened.startswith("you opened with the problem from the booking notes")
    assert obs.alternative.startswith("Start with an open invitation before the notes")


def test_a_note_mentioned_long_after_the_patient_opened_is_not_the_opening():
    # Found on a real-voice visit (tests/unit/device/test_quote_gate_real_voices.py): the patient had talked for
    # over a minute when the clinician said "it says…", and the report told the clinician they had "opened with the
    # problem from the booking notes" — a false statement that also crowded out the visit's strength and quote.
    ev = detect_events(dialogue([
        (C, "Hello, good morning.", 2),
        (P, "Morning. So I've been getting these headaches behind my eyes, mostly in the afternoons, for about a month.", 12),
        (P, "They get worse when I'm at the computer and paracetamol only takes the edge off, and I've been sleeping badly.", 12),
        (P, "My mum had migraines so I was wondering whether it's that, and I'm worried because it's affecting work.", 12),
        (C, "OK. It says here you had your eyes tested last year. How often do the headaches come?", 5),
        (P, "Most days now.", 1.5),
    ]))
    assert ev.opening_question is None or not ev.opening_question.notes_led, ev.opening_question
