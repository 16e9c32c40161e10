"""Known sentences get their labels (five or more per label, none of them in the training data)."""

from __future__ import annotations

import pytest

from edge_agent.behaviours import LABELS
from edge_agent.behaviours.features import tokens

KNOWN: dict[str, list[str]] = {
    "open_question": [
        "What brings you to see me this morning?",
        "How has the tiredness been affecting your days?",
        "Tell me a bit more about these dizzy spells.",
        "What happened when the pain first came on?",
        "How are you sleeping these days?",
    ],
    "closed_question": [
        "Have you had any fever?",
        "Do you get short of breath on the stairs?",
        "Is the pain there all the time?",
        "Any blood when you brush your teeth?",
        "Did you take anything for it?",
        "Are you allergic to penicillin?",
    ],
    "agenda_solicitation": [
        "Is there something else you'd like to talk about today?",
        "Was there something else you wanted to raise with me today?",
        "What else did you want to cover this morning?",
        "Before we look at the rash, is there something else on your list today?",
        "Is there anything else you were hoping to discuss with me today?",
    ],
    "empathy": [
        "That must have been really frightening for you.",
        "I'm so sorry to hear about your husband.",
        "It sounds like it's been a really difficult month.",
        "I can imagine how worrying that was.",
        "That sounds like a really hard few weeks for you and the kids.",
    ],
    "reflection": [
        "You mentioned the pain started after you lifted the boxes.",
        "So you've had the headaches for about three weeks now.",
        "You said the tablets made you feel sick.",
        "You said the dizziness started after the new tablets.",
        "So the main thing bothering you is the itching at night.",
        "You've noticed you get breathless walking up hills.",
        "So the cough is worse first thing in the morning.",
        "So you're worried this might be something to do with your heart.",
    ],
    "information": [
        "Your cholesterol result came back a little high.",
        "This kind of rash is usually caused by a virus.",
        "The antibiotics should start to work within two days.",
        "It sounds like a muscle strain in your lower back.",
        "The scan will show whether the tendon is torn.",
    ],
    "advice": [
        "I'd like you to rest your ankle for a few days.",
        "Make sure you drink plenty of water.",
        "You should stop taking the ibuprofen for now.",
        "Try to cut down on caffeine in the evenings.",
        "If the swelling spreads, please come back straight away.",
    ],
    "teach_back": [
        "Can you tell me in your own words how you'll use the inhaler?",
        "Just to check I've explained it clearly, what will you do if the fever comes back?",
        "Could you explain back to me how you're going to take the antibiotics?",
        "So I know I've been clear, can you tell me what the plan is?",
        "What are you going to do if the rash gets worse?",
    ],
    "jargon": [
        "Your ECG was normal.",
        "I think you have dyspepsia.",
        "We need to check your LFTs.",
        "This looks like cellulitis.",
        "You had an episode of syncope.",
    ],
    "reassurance": [
        "There's nothing to worry about here.",
        "This is very common and nearly always settles by itself.",
        "Please don't worry, it's not serious.",
        "The good news is that everything looks normal.",
        "Nothing in your results worries me.",
    ],
    "partnership": [
        "What do you think about starting a tablet?",
        "How would you feel about trying physiotherapy first?",
        "Would you prefer to wait and see, or start treatment now?",
        "Does that plan sound okay to you?",
        "Are you happy to give that a try?",
    ],
}

# Known misses of the shipped model, kept visible (strict xfail flags when they are fixed). The encoder +
# n-gram model (trained on every source, tools/training/train_behaviours.py) fixed the two short "So ..."
# restatements that the n-gram model missed, and lost these two (a polite request to narrate, guide Q2, is
# open; praise for coming in is reassurance).
KNOWN_MISSES: list[tuple[str, str]] = [
    ("Can you describe what the headache feels like?", "open_question"),
    ("You did the right thing coming in.", "reassurance"),
]

# Explained terms and boundary cases that must NOT get a label.
NOT: list[tuple[str, str]] = [
    ("We'll do an ECG, which is a tracing of your heart.", "jargon"),
    ("I think it's gastroenteritis, which means a stomach bug.", "jargon"),
    ("Have you got any questions for me before you go?", "agenda_solicitation"),
    ("Does all of that make sense to you?", "teach_back"),
    ("Any other symptoms like a sore throat?", "agenda_solicitation"),
    ("Do you have any pain?", "open_question"),
]


def _norm(text: str) -> str:
    return " ".join(tokens(text))


def _training_texts() -> set[str]:
    """Every sentence of every labelled source the classifier may learn from (tools/training/behaviour_sources.py)."""
    from tools.training.behaviour_sources import training_texts

    return training_texts()


@pytest.fixture(scope="module")
def classifier():
    from edge_agent.behaviours import BehaviourClassifier

    return BehaviourClassifier(threads=1)


def test_catalogue_is_the_design_label_set():
    assert LABELS == (
        "open_question", "closed_question", "agenda_solicitation", "empathy", "reflection", "information",
        "advice", "teach_back", "jargon", "reassurance", "partnership",
    )
    assert set(KNOWN) == set(LABELS)
    assert all(len(v) >= 5 for v in KNOWN.values())


def test_known_sentences_are_not_in_training_data():
    train = _training_texts()
    for sents in KNOWN.values():
        for s in sents:
            assert _norm(s) not in train, s
    for s, _ in NOT + KNOWN_MISSES:
        assert _norm(s) not in train, s


@pytest.mark.parametrize("label", LABELS)
def test_known_sentences_get_their_label(label, classifier):
    results = classifier.classify(KNOWN[label])
    missed = [r.text for r in results if label not in r.labels]
    assert not missed, f"{label} missed on {missed}"


@pytest.mark.xfail(strict=True, reason="documented model miss (docs/behaviours-eval.md)")
@pytest.mark.parametrize("text,label", KNOWN_MISSES)
def test_known_misses(text, label, classifier):
    (r,) = classifier.classify([text])
    assert label in r.labels


@pytest.mark.parametrize("text,label", NOT)
def test_boundary_cases_do_not_get_the_label(text, label, classifier):
    (r,) = classifier.classify([text])
    assert label not in r.labels, r


def test_scores_cover_every_label(classifier):
    (r,) = classifier.classify(["Any fever?"])
    assert set(r.scores) == set(LABELS)
    assert all(0.0 <= v <= 1.0 for v in r.scores.values())
    assert classifier.classify([]) == []


def test_model_is_verified_against_manifest(tmp_path):
    import shutil

    from edge_agent.behaviours import BehaviourClassifier
    from edge_agent.errors import ModelError
    from edge_agent.models import models_dir

    for name in ("MANIFEST", "behaviours.onnx", "behaviours_features.json", "jargon_lexicon.tsv", "behaviours_encoder.onnx", "behaviours_tokenizer.json"):
        if (models_dir() / name).is_file():
            shutil.copy(models_dir() / name, tmp_path / name)
    BehaviourClassifier(models_dir=tmp_path)  # intact copy loads
    with (tmp_path / "behaviours.onnx").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match="sha256|corrupt"):
        BehaviourClassifier(models_dir=tmp_path)
