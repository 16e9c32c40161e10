"""Hedged reassurance is reassurance (docs/labelling.md §5.10: "no need to worry", in any form; Calgary-Cambridge:
reassurance given before the patient's concerns are known is premature). Before, "I don't think there's a lot to
worry about" (development half, label gold: reassurance) was missed by both rules. Dialogue written for the test."""

from __future__ import annotations

from edge_agent.behaviours.events import detect_events
from edge_agent.behaviours.functions import is_reassurance
from edge_agent.feedback.observations import candidates
from tests.dialogue import C, P, dialogue


def test_hedged_reassurance_is_reassurance_and_a_question_about_worry_is_not():
    assert is_reassurance("Um, I don't think there's a lot to worry about.")
    assert is_reassurance("There's not much to worry about here.")
    assert not is_reassurance("Is there a lot to worry about?")


def test_hedged_reassurance_before_any_concern_was_asked_is_coached():
    utts = dialogue([
        (C, "Hello, how can I help you today?", 2),
        (P, "I've had a sore throat and a cough for five days, and I've been feeling hot and achy.", 10),
        (C, "Have you had a temperature?", 2),
        (P, "Yes, it was thirty eight yesterday.", 2),
        (C, "Any trouble breathing?", 2),
        (P, "No.", 1),
        (C, "Um, I don't think there's a lot to worry about.", 3),
        (P, "OK.", 1),
        (C, "It sounds like a viral infection, so drink plenty of fluids and rest.", 5),
        (P, "OK, thanks.", 1),
    ])
    kinds = {o.behaviour for o in candidates(detect_events(utts))}
    assert "premature_reassurance" in kinds
