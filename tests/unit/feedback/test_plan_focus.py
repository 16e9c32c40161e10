"""The alternative names the medicine the plan is about, not the first one mentioned.

Teach-back checks the instructions the patient has to get right (Schillinger et al. 2003; Calgary-Cambridge,
Silverman, Kurtz & Draper 2013: give specific instructions and check understanding). In the December 2026 audit
(docs/coaching-audit-2026-12.md, day3 07) the report asked the patient to say back how they would take "the
antihistamines", named in passing, when the new cream with its fingertip amounts and twice-daily use was the plan.
Dialogues written for the test.
"""

from __future__ import annotations

from edge_agent.behaviours.events import detect_events
from edge_agent.feedback.observations import candidates
from edge_agent.transcript import Utterance
from tests.dialogue import C, P, dialogue


def _skin_visit(plan: list[str]) -> list[Utterance]:
    lines: list[tuple[str, str, float]] = [
        (C, "Hello, how can I help you today?", 2),
        (P, "My eczema has flared up really badly over the last two weeks, it's on my arms and the backs of my hands.", 12),
        (C, "Is there something else you'd like to deal with today?", 3),
        (P, "No, just that.", 1.5),
        (C, "What have you been using on it so far?", 2),
        (P, "Just the hydrocortisone, and it isn't doing much.", 3),
        (C, "Do you have any thoughts about what might have set it off?", 3),
        (P, "Not really, no.", 1.5),
    ]
    for sentence in plan:
        lines.append((C, sentence, 6))
        lines.append((P, "OK.", 0.6))
    lines += [(C, "If it isn't better in two weeks or it gets infected, call us.", 4), (P, "OK, thank you.", 1)]
    return dialogue(lines)


def _teach_back(utts: list[Utterance]) -> str:
    return {o.behaviour: o for o in candidates(detect_events(utts))}["teach_back"].alternative


def test_teach_back_names_the_medicine_with_the_instructions_not_the_first_one_named():
    utts = _skin_visit([
        "To keep you comfortable I'm going to prescribe some antihistamines as well.",
        "And then we'll try some Betnovate, which is a stronger steroid cream than the hydrocortisone.",
        "You only need a very small amount, about one fingertip to cover both palms.",
        "Use it twice a day for the next two weeks, and then stop.",
    ])
    alt = _teach_back(utts)
    assert "Betnovate" in alt and "antihistamine" not in alt
    assert "how are you going to use Betnovate" in alt  # a cream is used, not taken


def test_a_tablet_with_its_dose_is_named_and_taken():
    utts = _skin_visit([
        "Keep using the emollients as you have been.",
        "I'm going to prescribe some antihistamines called Fexofenadine to help with the itch.",
        "It's one tablet once a day, in the morning, for the next couple of weeks.",
    ])
    alt = _teach_back(utts)
    assert "how are you going to take Fexofenadine" in alt


def test_instructions_about_something_else_do_not_count_for_the_last_medicine():
    # "drink two litres a day" after the ibuprofen is about fluids, not the ibuprofen: the medicine with its own
    # instructions (the ointment) is still the one named (a guard on the new rule; the old one named the first medicine)
    utts = _skin_visit([
        "I'm going to prescribe a steroid ointment, apply it thinly twice a day for a week.",
        "You can also take ibuprofen if it gets sore.",
        "Make sure you drink two litres of water a day and get to bed early every night.",
    ])
    alt = _teach_back(utts)
    assert "use the steroid" in alt and "ibuprofen" not in alt.lower()
