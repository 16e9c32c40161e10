"""Labelling units (edge_agent.behaviours.units) and the issue-13 out-of-domain forms, end to end.

Part 1 is pure: how a text is cut into units (sentences, a trailing question clause), how a
question by form gets its "?" back when ASR left it out, and how the units' probabilities are
combined (question type from the last part of a sentence, docs/labelling.md Q1; every other label
the maximum).

Part 2 runs the shipped classifier on sentences written for this test from the MITI 4.2.1 / MISC
definitions in docs/labelling.md (none is in any training source or gold set; checked below): the
typical misses of issue 13 ("how come...?", "what would you feel would be helpful...?", "how
serious do you think...?", a statement followed by a question, reflections phrased as statements)
and the forms around them. A sentence the shipped model gets wrong is an xfail with the reason,
never a special case in the code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.behaviours.features import Vocabulary, extract, weight_arrays, weights
from edge_agent.behaviours.labels import LABELS
from edge_agent.behaviours.units import clause_split, combine, expand, normalise, question_form, units
from edge_agent.models import models_dir

# ---------------------------------------------------------------- part 1: units


@pytest.mark.parametrize("text", [
    "how come you moved back in with your parents",
    "so um what would make this week different",
    "and, er, how serious do you think the debt has got",
    "do you still go to the gym",
    "is that something your partner would support",
    "What's the worst bit of the night shifts",
])
def test_unpunctuated_question_by_form_gets_its_question_mark(text):
    assert question_form(text)
    assert normalise(text).endswith("?")


@pytest.mark.parametrize("text", [
    "what I'd suggest is a short course of tablets",
    "how you feel about it matters",
    "you've been sleeping badly since the move",
    "Could be a virus",
    "Take one twice a day.",
    "I wonder whether it's a migraine",
])
def test_statements_keep_their_form(text):
    assert not normalise(text).endswith("?")


@pytest.mark.parametrize("text,parts", [
    ("It sounds like the move has been a lot, how are you finding the new place?",
     ["It sounds like the move has been a lot,", "how are you finding the new place?"]),
    ("You said the mornings are the worst, what happens first thing",
     ["You said the mornings are the worst,", "what happens first thing?"]),
    ("So you've been walking to work every day, has that helped your sleep?",
     ["So you've been walking to work every day,", "has that helped your sleep?"]),
])
def test_statement_followed_by_question_is_two_units(text, parts):
    assert [u for _, u in units(text)] == parts


@pytest.mark.parametrize("text", [
    "So you've been coughing, on and off, for about a fortnight?",  # declarative check: one question
    "And you told me you live with your brother, is that right?",  # tag
    "You're not drinking during the week, are you?",  # tag
    "If you had to pick one thing, what would it be?",  # subordinate clause first
    "On a scale of one to ten, how ready do you feel?",  # the scale belongs to the question
    "Is it all the time, or does it come and go?",  # either/or
    "We'll send the letter today, OK?",  # ritual tag on a plan
])
def test_one_question_stays_one_unit(text):
    assert len(clause_split(normalise(text))) == 1


def test_version_2_cuts_two_questions_and_keeps_hedges():
    two = "Can you tell me a bit more about the pain, what kind of pain is it?"
    assert clause_split(two, 1) == [two]
    assert clause_split(two, 2) == ["Can you tell me a bit more about the pain,", "what kind of pain is it?"]
    hedge = "How many cigarettes is that a day, would you say?"
    assert clause_split(hedge, 2) == [hedge]
    assert [u for _, u in units(two, 2)] == ["Can you tell me a bit more about the pain?", "what kind of pain is it?"]


def test_several_sentences_are_several_units():
    got = units("You've cut down a lot. What helped? Let's keep going.")
    assert got == [(0, "You've cut down a lot."), (1, "What helped?"), (2, "Let's keep going.")]


def test_combine_takes_question_type_from_the_last_part_and_the_rest_by_maximum():
    o, c, r = LABELS.index("open_question"), LABELS.index("closed_question"), LABELS.index("reflection")
    probs = np.zeros((4, len(LABELS)), np.float32)
    probs[0, [o, r]] = 0.9, 0.8  # "Tell me about X," (open by itself) ...
    probs[1, c] = 0.95  # "... who's at home with you?" -> the sentence is closed (Q1)
    probs[2, o] = 0.7  # a second sentence, open
    probs[3, c] = 0.6
    flat_where = [[(0, 0), (0, 1), (1, 2)], [(0, 3)]]
    out = combine(probs, flat_where, (o, c))
    assert out[0, c] == pytest.approx(0.95) and out[0, r] == pytest.approx(0.8)
    assert out[0, o] == pytest.approx(0.7)  # from the second sentence only, not from the first sentence's head
    assert np.array_equal(out[1], probs[3])


def test_expand_keeps_one_unit_texts_as_they_are():
    flat, where = expand(["Have you had a temperature?", "Okay."])
    assert flat == ["Have you had a temperature?", "Okay."] and where == [[(0, 0)], [(0, 1)]]


def test_fast_weights_equal_the_plain_tf_idf_definition():
    meta = json.loads((models_dir() / "behaviours_features.json").read_text(encoding="utf-8"))
    vocab = Vocabulary({f: i for i, f in enumerate(meta["vocab"])}, meta["idf"])
    for text in ("So, um, how come you stopped the patches?", "Your results came back normal, normal.", "", "Okay."):
        counts = extract(text, int(meta["featuriser_version"]))
        ng = {vocab.index[f]: (1 + np.log(tf)) * vocab.idf[vocab.index[f]] for f, tf in counts.items()
              if f in vocab.index and not f.startswith("q")}
        norm = np.sqrt(sum(v * v for v in ng.values())) or 1.0
        want = {j: v / norm for j, v in ng.items()} | {vocab.index[f]: 0.6 for f in counts if f in vocab.index and f.startswith("q")}
        got = dict(weights(counts, vocab))
        assert got.keys() == want.keys()
        assert all(abs(got[j] - want[j]) < 1e-12 for j in want)
        idx, val = weight_arrays(counts, vocab)
        assert len(idx) == len(val) == len(want)


# ---------------------------------------------------------------- part 2: the shipped classifier

# (text, labels it must get, labels it must not get)
FORMS: list[tuple[str, set[str], set[str]]] = [
    # issue 13's typical misses, in new words
    ("How come you stopped going to the group?", {"open_question"}, {"closed_question"}),
    ("What would you feel would be most useful to talk about today?", {"open_question"}, {"closed_question"}),
    ("How serious do you think your gambling has become?", {"open_question"}, {"closed_question"}),
    ("how come you went back to smoking after the wedding", {"open_question"}, {"closed_question"}),
    ("so um how come you decided to come in today", {"open_question"}, {"closed_question"}),
    # wh-word after discourse markers and fillers
    ("So, um, what would need to change for you to feel ready?", {"open_question"}, {"closed_question"}),
    ("And, er, how do you see your drinking fitting in with that?", {"open_question"}, {"closed_question"}),
    ("Well, what do you make of what your sister said?", {"open_question"}, {"closed_question"}),
    ("and what would it take for you to give it another go", {"open_question"}, {"closed_question"}),
    # embedded questions and requests to tell (MITI: open)
    ("Can you tell me what a typical evening looks like for you?", {"open_question"}, {"closed_question"}),
    ("Tell me about the times you've managed to say no.", {"open_question"}, {"closed_question"}),
    ("I wonder what it would be like for you to have a week without arguing.", {"open_question"}, set()),
    ("I'm curious about what you enjoy about smoking.", {"open_question"}, set()),
    ("I was wondering how things have been going with the exercise.", {"open_question"}, set()),
    # appraisal and wh-questions that ask for a view
    ("How important is it to you to get your licence back?", {"open_question"}, {"closed_question"}),
    ("What worries you most about cutting down?", {"open_question"}, {"closed_question"}),
    ("Where do you want to go from here?", {"open_question"}, {"closed_question"}),
    # closed by form
    ("Do you drink on the train home?", {"closed_question"}, {"open_question"}),
    ("Is it the mornings or the evenings that are hardest?", {"closed_question"}, {"open_question"}),
    ("How many cigarettes are you smoking a day now?", {"closed_question"}, {"open_question"}),
    ("On a scale of zero to ten, how confident are you?", {"closed_question"}, {"open_question"}),
    ("do you want to cut down", {"closed_question"}, {"open_question"}),
    ("is that something you'd be willing to try", {"closed_question"}, {"open_question"}),
    # a statement followed by a question
    ("You've been arguing with your partner a lot. What do you think is behind that?", {"reflection", "open_question"}, {"closed_question"}),
    ("You said the evenings are the hardest, what happens then?", {"reflection", "open_question"}, set()),
    ("It sounds like work has been piling up, how are you coping with that?", {"reflection", "open_question"}, set()),
    ("You mentioned the kids, what do they think about it", {"reflection", "open_question"}, set()),
    ("So you feel like you've tried everything, and nothing's worked. What would be different this time?",
     {"reflection", "open_question"}, {"closed_question"}),
    ("So you've tried quitting three times before. Did any of those attempts last more than a week?",
     {"reflection", "closed_question"}, {"open_question"}),
    # reflections phrased as statements
    ("You're worried that your kids are noticing the drinking.", {"reflection"}, {"information"}),
    ("It sounds like you feel stuck between your mum and your wife.", {"reflection"}, {"information"}),
    ("So you've been going to bed later and later.", {"reflection"}, {"information"}),
    ("You feel that the medication isn't doing anything for you.", {"reflection"}, {"information"}),
    ("You're really fed up with being told what to do.", {"reflection"}, {"information"}),
    ("It seems like the weekends are when things get out of hand.", {"reflection"}, {"information"}),
    ("You don't want your son to grow up the way you did.", {"reflection"}, {"information"}),
    ("It's really important to you to be a good dad.", {"reflection"}, set()),
    ("Sounds like you've got a lot on your plate right now.", {"reflection"}, set()),
    ("That's something you really value.", {"reflection"}, set()),
    ("So it's been a tough year.", {"reflection"}, set()),
    # information with a third-person subject, and advice
    ("Your blood sugar has come down since the last test.", {"information"}, {"reflection"}),
    ("Alcohol can make anxiety worse the following day.", {"information"}, {"reflection"}),
    ("The patches release nicotine slowly through the skin.", {"information"}, {"reflection"}),
    ("The group meets every Tuesday evening at the library.", {"information"}, {"reflection"}),
    ("A lot of people in your situation find that cutting down slowly works better.", {"information"}, set()),
    ("I'd recommend talking to your GP about the sleeping tablets.", {"advice"}, set()),
    ("It might be worth cutting out the lunchtime pint first.", {"advice"}, set()),
]

# Sentences the shipped model gets wrong, with what it does instead (strict: a fix shows up as XPASS).
# The first model of this work also missed five more of FORMS (an embedded "I wonder what...", "Where do
# you want to go from here?", two value reflections, general information about others); the 38
# sentences then added to the miti_forms source (same forms, other words and topics) fixed those.
FORMS_MISSED: dict[str, str] = {
    "Sounds like you've got a lot on your plate right now.":
        "read as empathy only (0.88); reflection 0.40 against 0.45 (the guide makes 'a lot going on' a reflection, 5.4 ex. 10)",
}


def test_form_sentences_are_unseen():
    from tools.training.behaviour_sources import norm, training_texts

    seen = training_texts()
    assert not [t for t, _, _ in FORMS if norm(t) in seen]


@pytest.fixture(scope="module")
def classifier():
    from edge_agent.behaviours import BehaviourClassifier

    return BehaviourClassifier(threads=1)


@pytest.mark.parametrize("text,must,must_not", FORMS, ids=[t[:48] for t, _, _ in FORMS])
def test_form_sentences_get_their_labels(text, must, must_not, classifier, request):
    if text in FORMS_MISSED:
        request.applymarker(pytest.mark.xfail(reason=FORMS_MISSED[text], strict=True))
    (r,) = classifier.classify([text])
    got = set(r.labels)
    assert must <= got and not (must_not & got), f"{text!r}: {sorted(got)}"
