"""Patterns behind false or ill-fitting observations found by the hand audit of December 2026
(docs/coaching-audit-2026-12.md), each as a short dialogue written for the test.

Every test states what a clinician would have read before the fix and why, by the published
definition, it was false or did not fit the moment.
"""

from __future__ import annotations

from edge_agent.behaviours.events import detect_events
from edge_agent.behaviours.jargon import JargonDetector
from edge_agent.feedback.observations import candidates, short_quote, strength
from edge_agent.transcript import Utterance
from tests.dialogue import C, P, dialogue

_dialogue = dialogue


def _kinds(utts: list[Utterance], jargon: JargonDetector | None = None) -> dict[str, object]:
    ev = detect_events(utts, jargon=jargon)
    return {o.behaviour: o for o in candidates(ev)}


# ---- quotes: a sentence-initial word before a comma is not a name ---------------------------


def test_discourse_words_before_a_comma_are_quoted_not_left_out_as_names():
    # Before: "However, I would like you to be assessed…" was quoted as "…, I would like you…",
    # which misquotes the clinician and reads as if a name had been said.
    assert short_quote("However, I would like you to be assessed in a clinic today.") == \
        "However, I would like you to be assessed in a clinic today."
    assert short_quote("Obviously, we need to rule that out first.").startswith("Obviously, we need")
    assert short_quote("Unfortunately, the test was not clear.").startswith("Unfortunately, the test")
    # names said to the patient are still left out
    assert short_quote("April, how can I help you this afternoon?") == "…, how can I help you this afternoon?"


# ---- the plan starts with what will be done, not with a recap of what was done -----------------


def _recap_visit() -> list[Utterance]:
    return _dialogue([
        (C, "Hello, how can I help you today?", 2),
        (P, "I've had some funny turns where my arm goes weak and my speech goes strange for a few minutes.", 30),
        (C, "How long have these episodes been going on for?", 3),
        (P, "About a month now.", 2),
        (C, "Do you have any other symptoms at the moment?", 3),
        (P, "No, nothing else.", 2),
        (C, "Any headaches at all?", 2),
        (P, "No.", 1),
        (C, "And your father had a stroke, you said?", 3),
        (P, "Yes, when he was sixty.", 2),
        (C, "So you had a blood test done last month and it was normal.", 4),
        (P, "Yes, that's right.", 2),
        (C, "You've tried the aspirin your wife had and it didn't change anything.", 4),
        (P, "No, it didn't.", 2),
        (C, "Did you have any thoughts as to what might be going on?", 4),
        (P, "I've actually got no idea.", 3),
        (C, "The way you describe these episodes makes me think of mini-strokes. I'm going to refer you to a clinic for mini-strokes "
            "this week, and they will do a scan of your neck arteries.", 12),
        (P, "OK.", 1),
    ])


def test_a_recap_of_earlier_tests_or_medicines_is_not_the_start_of_the_plan():
    # Before: "So you had a blood test done" (history) was taken as the start of the plan, and the
    # strength then said the ICE question came "after explaining the plan" when it came before it.
    ev = detect_events(_recap_visit())
    referral_turn = next(t.index for t in ev.turns if "refer you" in t.text)
    assert ev.plan_start_turn == referral_turn
    st = strength(ev)
    assert st is not None and st.behaviour == "strength_ice"
    assert "after explaining the plan" not in st.happened and "before you explained the plan" in st.happened


def test_a_medicine_the_clinician_advises_against_is_not_the_plan_the_alternative_names():
    # Before: "don't take any other paracetamol" made the ICE advice say "Before suggesting the paracetamol".
    utts = _dialogue([
        (C, "Hello, what can I do for you today?", 2),
        (P, "I've had a cough and a streaming nose for five days.", 6),
        (C, "Are you normally fit and well?", 2),
        (P, "Yes.", 1),
        (C, "Any fever?", 1),
        (P, "A bit.", 1),
        (C, "Any shortness of breath?", 2),
        (P, "No.", 1),
        (C, "It sounds like a viral chest infection. You should take your temperature twice a day with a thermometer.", 8),
        (P, "OK.", 1),
        (C, "Keep taking the lemsip, but don't take any other paracetamol with it.", 5),
        (P, "OK, thanks.", 1),
    ])
    ev = detect_events(utts)
    ice = {o.behaviour: o for o in candidates(ev)}.get("ice_not_elicited")
    assert ice is not None
    assert "paracetamol" not in ice.alternative.lower()


# ---- ideas, concerns, expectations the patient volunteered ----------------------------------


def _numb_face_visit(opening: str, asks: str, answer: str, plan: str) -> list[Utterance]:
    return _dialogue([
        (C, "Hello, how can I help you today?", 2),
        (P, opening, 9),
        (C, "Which side of your face?", 2),
        (P, "The left side.", 2),
        (C, asks, 4),
        (P, answer, 8),
        (C, plan, 12),
        (P, "OK, thank you.", 1),
    ])


_NUMB = "I can't hear very well and my face has been feeling numb for three weeks."
_CLINIC = "I would like you to be seen in a clinic today, and I'll send a message to book you in."


def test_no_ice_not_elicited_when_the_patient_put_their_concern_into_words_and_it_was_answered():
    # Before: "you did not ask … what worried them" with "ask 'What were you thinking it might be?'"
    # straight after the patient had said what they feared and the clinician had answered it.
    utts = _numb_face_visit(_NUMB, "Is there anything else you wanted to tell me about what's been going on?",
                            "I've been looking online and I'm worried it's something really serious, like a stroke.",
                            "From what you've told me this doesn't seem like a stroke, so I don't think you need to worry about "
                            "that. " + _CLINIC)
    assert "ice_not_elicited" not in _kinds(utts)


def test_ice_not_elicited_still_said_when_the_patient_voiced_nothing_or_was_left_unanswered():
    for opening in (_NUMB, _NUMB[:-1] + ", and I'm worried it's serious."):
        utts = _numb_face_visit(opening, "Any ringing in the ears?", "Sometimes.", _CLINIC)
        assert "ice_not_elicited" in _kinds(utts), opening


# ---- a cue answered with a question: say what happened, not a symptom question ---------------


def test_cue_observation_names_the_feeling_and_does_not_call_every_question_a_symptom_question():
    # Before: "you went on with a symptom question just after the patient mentioned not knowing what
    # to do" after "I'm really struggling at work" → "Are you a smoker?" (a social-history question).
    utts = _dialogue([
        (C, "Hello, tell me what's been going on.", 2),
        (P, "I've had a fever and sweats for a week and I ache all over.", 14),
        (C, "Any cough?", 1),
        (P, "No.", 1),
        (C, "What do you do for work?", 2),
        (P, "I work in a shop.", 2),
        (P, "But I'm really struggling quite a lot at work at the moment, it's been quite difficult.", 6),
        (C, "Sure, OK. Are you a smoker at all?", 3),
        (P, "No.", 1),
        (C, "I'd like you to have some blood tests today.", 4),
        (P, "OK.", 1),
    ])
    cue = _kinds(utts).get("cue_not_explored")
    assert cue is not None
    assert "symptom question" not in cue.happened
    assert "not knowing what to do" not in cue.happened and "hard to cope" in cue.happened
    assert "know what to do" not in cue.alternative


# ---- jargon to a patient who works in health care -----------------------------------------


def _markers_visit(job: str) -> list[Utterance]:
    return _dialogue([
        (C, "Hello, tell me what's been going on.", 2),
        (P, "I've had a fever for a week and I sweat at night.", 14),
        (C, "Any cough?", 1),
        (P, "No.", 1),
        (C, "What do you do for work?", 2),
        (P, job, 2),
        (C, "I'll ask for inflammatory markers and a full blood count today.", 5),
        (P, "OK.", 1),
    ])


def test_jargon_is_not_coached_when_the_patient_works_in_health_care():
    # Before: "you said 'carotid' without explaining it" to a patient the clinician had just called
    # "a medic yourself" (Castro et al. 2007 define jargon by what a lay patient understands).
    jd = JargonDetector()
    assert "jargon" in _kinds(_markers_visit("I work in a shop."), jd)  # the control: a lay patient
    assert "jargon" not in _kinds(_markers_visit("I work as a nurse."), jd)


# ---- stacked questions: a summary check or one question reworded is not a stack ------------


def _stack_visit(first: str, second: str) -> list[Utterance]:
    return _dialogue([
        (C, "Hello, what brings you in today?", 2),
        (P, "I've had a cough for two weeks and it keeps me awake at night, and I feel tired all day long.", 30),
        (C, first, 5),
        (P, "Yes, it's mostly dry.", 3),
        (C, "Do you smoke?", 1),
        (P, "No.", 1),
        (C, second, 5),
        (P, "No, nothing like that.", 2),
    ])


def test_a_summary_check_followed_by_a_question_is_not_a_stack():
    # Before: "Is that right? Can you tell me a bit more about your cough?" counted as two questions
    # asked at once (Calgary-Cambridge: summarising and checking is a skill, not a second question).
    kinds = _kinds(_stack_visit(
        "So it started two weeks ago and it's worse at night. Is that right? Can you tell me a bit more about your cough?",
        "So you're tired all day as well. Is that correct? How is your breathing?"))
    assert "stacked_questions" not in kinds
    # the control: two different questions at once, twice
    kinds = _kinds(_stack_visit("When did it start? Is it worse at night?", "How is your breathing? Have you lost weight?"))
    assert "stacked_questions" in kinds


def test_one_question_reworded_is_not_coached_as_several_questions():
    # Before: "Any family history at all? So anything relevant in the family…? Anything like diabetes…?"
    # read "with 3 questions at once the patient can answer only one" — it is one question asked in
    # three wordings, and the lesson for that is to ask it once and wait (Silverman, Kurtz & Draper 2013).
    kinds = _kinds(_stack_visit(
        "Any family history at all? So anything relevant in the family that I should be aware of? Anything like diabetes, high "
        "blood pressure?",
        "And any allergies at all? So anything you react to that I should know about? Anything like penicillin, or plasters?"))
    st = kinds.get("stacked_questions")
    assert st is not None
    assert "can answer only one" not in st.alternative
    assert "once" in st.alternative


def test_agenda_observation_cites_the_first_specific_question_not_an_invitation_or_a_check():
    # Before: "you did not ask whether there was something else…" quoted "Do you want to tell me a bit more
    # about it?" (an invitation to go on, which is hearing the patient out) or "Is that right?" as the moment
    # the clinician went into specifics.
    for first in ("Do you want to tell me a bit more about it? When did it all start?",
                  "So a cough for two weeks, worse at night. Is that right? When did it all start?"):
        utts = _dialogue([
            (C, "Hello, what brings you in today?", 2),
            (P, "I've had a cough and it keeps me awake.", 5),
            (C, first, 5),
            (P, "Two weeks ago.", 2),
            (C, "Any fever?", 1),
            (P, "No.", 1),
        ])
        agenda = _kinds(utts).get("agenda_not_set")
        assert agenda is not None
        assert agenda.clinician_quote == "When did it all start?", agenda.clinician_quote


def test_an_echoed_answer_between_two_questions_ends_the_stack():
    # Before: "Any discharge coming out of the ear? No, OK. Have you had any fever?" counted as two questions
    # asked at once; the clinician's "No, OK." shows the patient answered (a shake of the head on video).
    ev = detect_events(_dialogue([
        (C, "Hello, what brings you in today?", 2),
        (P, "My hearing has gone muffled in one ear for six weeks.", 8),
        (C, "Any discharge coming out of the ear? No, OK. Have you had any fever?", 6),
        (P, "No.", 1),
    ]))
    assert ev.stacked_questions == []


# ---- a strength in an emergency ---------------------------------------------------------------


def test_an_emergency_visit_gets_the_escalation_with_its_reason_as_its_strength():
    # Before: a wasp sting with breathing difficulty, the ambulance called with a reason and what to do while
    # waiting, got neither a suggestion (right: none fits an emergency) nor a strength (nothing to name it by).
    utts = _dialogue([
        (C, "How can I help you?", 2),
        (P, "I was stung by a wasp fifteen minutes ago and now my breathing feels shallow and my lips tingle.", 8),
        (C, "Any swelling of your lips or your throat?", 3),
        (P, "My lips a bit.", 2),
        (C, "You do need to have medical attention straight away. Is there someone at home with you?", 5),
        (P, "Yes, my wife.", 2),
        (C, "Because your breathing can get worse very quickly, I'd like her to call an ambulance now. In the meantime, take "
            "one of your antihistamines while the ambulance is coming.", 10),
        (P, "OK, she's calling now.", 2),
    ])
    ev = detect_events(utts)
    assert ev.emergency_escalation.value
    st = strength(ev)
    assert st is not None and st.behaviour == "strength_escalation"
    assert st.happened == "you arranged emergency care and told the patient why and what to do while waiting"
    assert "breathing can get worse" in st.clinician_quote


def test_a_question_about_past_hospital_visits_is_not_an_emergency_escalation():
    # Before: "Has your mum ever said that you had to go to hospital because you had a severe allergic reaction?"
    # (history) set the emergency flag, so the report treated a history question as the moment care was arranged.
    ev = detect_events(_dialogue([
        (C, "How can I help you?", 2),
        (P, "My lips feel tingly after I ate prawns.", 5),
        (C, "Has your mum ever said that you had to go to hospital because you had a severe allergic reaction?", 5),
        (P, "No, never.", 2),
    ]))
    assert not ev.emergency_escalation.value


def test_a_yes_no_question_about_a_cause_is_not_praised_as_asking_what_the_patient_thought():
    # Before: "Do you think that might have any correlation to your symptoms?" (the clinician's idea, stress, offered for
    # a yes or no) was praised as "you asked the patient what they thought was going on".
    for question, praised in (("Do you think that might have any correlation to your symptoms?", "whether they linked it to a possible cause"),
                              ("Did you have any thoughts as to what might be going on?", "what they thought was going on")):
        ev = detect_events(_dialogue([
            (C, "Hello, how can I help you today?", 2),
            (P, "I've had dry itchy skin on my hands for a week, and work has been really busy.", 20),
            (C, "Whereabouts on your hands?", 2),
            (P, "The backs of them.", 2),
            (C, question, 4),
            (P, "I'm not sure.", 2),
            (C, "I'll prescribe a steroid cream for you to use twice a day.", 5),
            (P, "OK.", 1),
        ]))
        st = strength(ev)
        assert st is not None and st.behaviour == "strength_ice"
        assert st.happened.startswith(f"you asked the patient {praised}"), st.happened
