"""Conversation events against the adjudicated event gold, on the development half only.

The held-out half (tools/bench/coaching.py ``split``) is reported by ``edge-agent bench
coaching`` and never asserted on here: a test that had to pass on it would be tuning on it.
These floors keep the development-half figures from regressing.
"""

from __future__ import annotations

import pytest

from edge_agent.behaviours.events import detect_events
from edge_agent.behaviours.functions import ice_components, is_agenda_question, is_emergency, is_safety_netting, is_teach_back
from tools.bench.coaching import EventScores, gold_ids, load_gold, score_events, split
from tools.corpus.primock import load_consultation, primock_dir, utterances_from_consultation

needs_primock = pytest.mark.skipif(not primock_dir().is_dir(), reason="PriMock57 not available")


def test_split_is_fixed():
    dev, held = split(gold_ids())
    assert len(dev) == 28 and len(held) == 29 and not set(dev) & set(held)
    assert dev[:3] == ["day1_consultation02", "day1_consultation04", "day1_consultation06"]
    assert "day3_consultation08" in held  # the protocol's worked example of a redirection is held out


@needs_primock
def test_development_half_events():
    dev, _ = split(gold_ids())
    s = EventScores()
    for cid in dev:
        ev = detect_events(utterances_from_consultation(load_consultation(cid)))
        score_events(cid, ev, load_gold(cid), s)
    assert s.opening_ok / s.visits >= 0.9
    # the opening question and its notes-led flag (gold §2(a)); 23/28 before notes named after an invitation
    # ("tell me what's been going on. You've been saying…") and recaps of the patient's own words were read right
    assert s.opening_question_ok / s.visits >= 0.95
    # interruptions: the grammatical floor test (floor.py) fits the development half at P 0.808 / R 0.875 and
    # scores P 0.800 / R 0.833 left-one-visit-out; the old word lists fitted it at 0.923 / 1.000 (docs/coaching.md)
    assert s.interruptions.precision >= 0.8 and s.interruptions.recall >= 0.85
    assert s.monologues.precision >= 0.8 and s.monologues.recall >= 0.8
    assert s.utterances["ice_questions"].recall >= 0.85
    assert s.utterances["agenda_questions"].recall >= 0.85
    assert s.flags["emergency_escalation"][0] == s.visits


@pytest.mark.parametrize(
    "text,components",
    [
        ("So, I mean, do you have any ideas as to what could be causing your symptoms?", ("idea",)),
        ("Is there anything you're particularly worried about?", ("concern",)),
        ("And was there anything you were particularly expecting, or hoping to get out of this consultation?", ("expectation",)),
        ("And what, what were you thinking might be going on?", ("idea",)),
        ("Have you, have you read anything online, or spoken to people?", ()),
        ("Do you have any, have you had any thoughts about harming yourself or hurting yourself?", ()),
        ("In what way has it been affecting your life?", ()),
    ],
)
def test_ice_rule_follows_the_guide(text, components):  # docs/labelling.md §5.14 examples
    assert ice_components(text) == components


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Just so I know I've explained it properly, can you tell me how you're going to take the antibiotics?", True),
        ("What will you do if the rash starts spreading?", True),
        ("Does that make sense?", False),
        ("Okay, and is the treatment plan clear?", False),
        ("Do you have any questions for me?", False),
    ],
)
def test_teach_back_rule_follows_the_guide(text, expected):  # §5.11
    assert is_teach_back(text) is expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("I'll admit if your symptoms haven't got better, in three to four days, I'd like to come and see you again.", True),
        ("So, things to look out for would be worsening tummy pain, if you're feeling really hot or sweaty.", True),
        ("But, if you breathing's getting worse and you've not seen us, do take your puffs to A and E.", True),
        ("But I really like, would like you to come back and see me in about a week's time, see how you're getting on.", False),
        ("So if you're happy to book an appointment with us, with the support line.", False),
    ],
)
def test_safety_netting_rule_follows_the_guide(text, expected):  # §5.9
    assert is_safety_netting(text) is expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Is there, just before we wrap up, is there anything else that you would like to talk about?", True),
        ("Was there anything else that you wanna talk about right now?", True),
        ("Diabetes, OK. Anything else?", False),
        ("Taking anything else at all?", False),
        ("Have you got any other medical problems?", False),
        ("Do you have any questions for me?", False),
    ],
)
def test_agenda_rule_follows_the_guide(text, expected):  # §5.3
    assert is_agenda_question(text, text.endswith("?")) is expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Um I think we need to call an ambulance, because it sounds like an anaphylactic reaction.", True),
        ("So from what you're saying, you do need to have medical attention straight away.", True),
        ("If it gets worse, go straight to A and E.", False),
        ("I'm going to refer you to the TIA clinic.", False),
    ],
)
def test_emergency_rule(text, expected):  # docs/gold-events.md §2(f)
    assert is_emergency(text) is expected
