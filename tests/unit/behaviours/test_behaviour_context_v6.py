"""Featuriser version 6 (docs/behaviours-eval.md, "Dialogue context", variant B): an unknown dialogue context
(no ``Context`` given) is kept apart from a sentence with no patient turn before it yet (``Context(None)``)."""

from __future__ import annotations

import io
import json

from edge_agent.behaviours.features import FEATURISER_VERSIONS, Context, context_cues, extract

S = "So the pain keeps you awake."


def test_unknown_context_has_no_cue_and_no_patient_turn_has_its_own():
    assert 6 in FEATURISER_VERSIONS
    assert context_cues(S, None, 6) == []
    assert context_cues(S, Context(None, False), 6) == ["ctx-no-patient-turn"]
    assert context_cues(S, Context("  ", True), 6) == ["ctx-no-patient-turn"]
    assert not any(k.startswith("q5:") for k in extract(S, 6))
    assert extract(S, 6) == extract(S, 4)  # unknown context: the sentence's own features alone


def test_known_context_cues_are_version_5s():
    for ctx in (Context("The pain keeps me awake at night.", True), Context("Yeah?", False)):
        assert context_cues(S, ctx, 6) == context_cues(S, ctx, 5)
        assert extract(S, 6, ctx) == extract(S, 5, ctx)
    assert context_cues(S, None, 5) == context_cues(S, Context(None), 5) == ["ctx-none"]  # v5 unchanged


def test_cli_stream_unknown_context_apart_from_no_patient_turn():
    from edge_agent.cli.behaviours import classify_stream

    class Rec:
        uses_context = True

        def __init__(self):
            self.calls = []

        def classify(self, texts, contexts=None):
            self.calls.append(None if contexts is None else list(contexts))
            return [type("R", (), {"to_dict": lambda self: {}})() for _ in texts]

    rec = Rec()
    lines = [{"text": "Hello, how can I help?", "previous_patient": None}, {"text": "Any fever?"}]
    classify_stream(io.StringIO("".join(json.dumps(x) + "\n" for x in lines)), io.StringIO(), io.StringIO(), classifier=rec)
    assert rec.calls == [[Context(None, False), None]]
