"""The per-utterance quote gate (edge_agent/feedback/quote_gate.py, docs/privacy.md §4b).

A sentence is quoted only if its utterance's voice is verified (final label clinician, confident, close to the
enrolled voiceprint) and it lies MARGIN_S inside speech not verified as the clinician's; a refused moment is
phrased as with quotes off, the strength's bracketed quote included, and the sealing backstop holds every quote
to the sentences the gate cleared.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from edge_agent.behaviours.conversation import Sentence
from edge_agent.feedback.proto import feedback_to_proto
from edge_agent.feedback.quote_gate import MARGIN_S, QuoteGate, quotable_sentences
from edge_agent.feedback.quotes import enforce_quote_policy
from edge_agent.feedback.report import build_feedback
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from edge_agent.transcript import Utterance, Word

C, P = "clinician", "patient"


def _u(speaker: str, t0: float, text: str, vp: float | None = 0.92, conf: float = 0.99, rate: float = 0.4) -> Utterance:
    """An utterance with evenly timed words (``rate`` s each) and its attribution evidence."""
    words = tuple(Word(w, t0 + i * rate, t0 + (i + 1) * rate - 0.05) for i, w in enumerate(text.split()))
    return Utterance(t0, words[-1].t1, text, words, speaker, conf, voiceprint_similarity=vp if speaker == C else 0.55)


def _sentence(u: Utterance, first: int, last: int, turn: int) -> Sentence:
    return Sentence(turn, 0, " ".join(w.text for w in u.words[first : last + 1]), u.words[first].t0, u.words[last].t1)


LONG = ("If the pain comes back you should take the tablets with food. The tablets work best in the morning. "
        "Call us if anything gets worse or you feel unwell at all")


def test_a_confident_clinician_sentence_well_inside_the_clinician_speech_is_quotable() -> None:
    visit = [_u(P, 0.0, "It started a week ago and it hurts"), _u(C, 4.0, LONG), _u(P, 20.0, "Okay I will do that")]
    gate = QuoteGate()
    regions = gate.regions(visit)
    clin = visit[1]
    middle = _sentence(clin, 12, 18, 1)  # "The tablets work best in the morning."
    assert middle.t0 - clin.t0 > MARGIN_S and clin.t1 - middle.t1 > MARGIN_S
    assert gate.allows(regions[1], middle)
    assert "The tablets work best in the morning." in quotable_sentences(visit)


def test_words_near_a_speaker_change_are_not_quotable() -> None:
    """ "... how can I help | you today?": the end of a clinician utterance the patient speaks right after, and its
    start right after the patient, may hold the patient's words."""
    visit = [_u(P, 0.0, "It started a week ago and it hurts"), _u(C, 4.0, LONG), _u(P, 20.0, "Okay I will do that")]
    gate = QuoteGate()
    regions = gate.regions(visit)
    clin = visit[1]
    first = _sentence(clin, 0, 11, 1)  # starts 0.8 s after the patient stopped
    last = _sentence(clin, 19, len(clin.words) - 1, 1)  # ends right where the patient starts
    assert not gate.allows(regions[1], first)
    assert not gate.allows(regions[1], last)
    cleared = quotable_sentences(visit)
    assert cleared == ["The tablets work best in the morning."], cleared
    # the same utterance between two verified clinician utterances keeps its edges
    calm = [_u(C, 0.0, "Let me explain the plan now"), _u(C, 4.0, LONG), _u(C, 20.0, "Does that sound all right")]
    assert gate.allows(gate.regions(calm)[1], first) and gate.allows(gate.regions(calm)[1], last)
    # and a patient back-channel inside the clinician's turn cuts the margin around it
    mm = [*calm, Utterance(9.0, 9.4, "mm", (Word("mm", 9.0, 9.4),), P, 0.9)]
    mm.sort(key=lambda u: (u.t0, u.t1))
    assert not gate.allows(gate.regions(mm)[1], _sentence(calm[1], 12, 18, 1))


def test_an_unverified_voice_is_never_quotable() -> None:
    gate = QuoteGate()
    quiet = [_u(P, 0.0, "Yes"), _u(C, 10.0, LONG), _u(P, 40.0, "Thanks")]
    middle = _sentence(quiet[1], 12, 18, 1)
    assert gate.allows(gate.regions(quiet)[1], middle)
    for why, u in (("low voiceprint similarity (a patient labelled clinician)", replace(quiet[1], voiceprint_similarity=0.62)),
                   ("low final confidence", replace(quiet[1], speaker_confidence=0.6)),
                   ("no voiceprint (not enrolled)", replace(quiet[1], voiceprint_similarity=None)),
                   ("labelled patient", replace(quiet[1], speaker=P))):
        visit = [quiet[0], u, quiet[2]]
        assert not gate.allows(gate.regions(visit)[1], middle), why
        assert quotable_sentences(visit) == [], why
    # an unverified "clinician" utterance next to a verified one is treated as another voice: the margin applies
    doubtful = [replace(_u(C, 0.0, "So how are things at home"), voiceprint_similarity=0.6), _u(C, 2.5, LONG)]
    assert not gate.allows(gate.regions(doubtful)[1], _sentence(doubtful[1], 0, 11, 1))


class _Labels:
    """Behaviour labels by rule: a "worried ...?" question asks for concerns, plan sentences ("you should", "take") are advice."""

    uses_context = False

    class _R:
        def __init__(self, labels: tuple[str, ...]) -> None:
            self.labels = labels

    def classify(self, texts: list[str]) -> list[Any]:
        out = []
        for t in texts:
            low = t.lower()
            if "worried" in low and t.endswith("?"):
                labs: tuple[str, ...] = ("ice_question",)
            elif re.search(r"\b(?:should|call us|take)\b", low):
                labs = ("advice",)
            else:
                labs = ("open_question",) if t.endswith("?") else ()
            out.append(self._R(labs))
        return out


def _visit(plan_vp: float) -> list[Utterance]:
    """A patient's opening statement, then the clinician's plan, the patient says nothing back: teach-back and
    safety-net observations quote the plan's sentences."""
    return [
        _u(C, 0.0, "What brings you in today?"),
        _u(P, 2.5, "I have had a sore throat for a week and it is getting worse every day and I cannot sleep at night "
                   "because of it and I am worried", rate=0.5),
        _u(C, 21.0, "Right. I think you should take ibuprofen three times a day with food for five days. "
                    "It will ease the pain and the swelling in your throat. Come back if it is not better by next week",
           vp=plan_vp),
        _u(P, 42.0, "Okay thank you"),
    ]


def _quotes(fb: Any) -> list[str]:
    out = [o.clinician_quote for o in fb.observations if o.clinician_quote]
    if fb.strength is not None and fb.strength.clinician_quote:
        out.append(fb.strength.clinician_quote)
    return out


def test_the_report_quotes_only_what_the_gate_allows_and_paraphrases_the_rest() -> None:
    labels = _Labels()
    trusted = build_feedback(_visit(0.92), labels, quotes=True)  # a human transcript's labels: no gate
    assert _quotes(trusted), "precondition: the plan is quoted"
    refused = build_feedback(_visit(0.60), labels, quotes=True, gate=QuoteGate())  # the voice is not verified
    off = build_feedback(_visit(0.60), labels, quotes=False)
    assert not _quotes(refused)
    # refused is the quotes-off report: the same observations, the same words (one no-quote path)
    assert [o.to_dict() for o in refused.observations] == [o.to_dict() for o in off.observations]
    assert refused.summary == off.summary
    gated = build_feedback(_visit(0.92), labels, quotes=True, gate=QuoteGate())
    cleared = quotable_sentences(_visit(0.92))
    for q in _quotes(gated):
        assert any(q.rstrip(" …") in s for s in cleared), (q, cleared)


def test_the_strengths_bracketed_quote_obeys_the_gate() -> None:
    visit = [
        _u(C, 0.0, "Hello there, come in and take a seat please"),
        _u(P, 5.0, "Thank you doctor it is my knee again", rate=0.5),
        _u(C, 10.0, "I see. Before we go on, what were you most worried this might be? There is no rush at all "
                    "and I want to hear it", rate=0.4),
        _u(P, 23.5, "I was worried it might be arthritis like my mother had"),
    ]
    trusted = build_feedback(visit, _Labels(), quotes=True)
    assert trusted.strength is not None and trusted.strength.clinician_quote, "precondition: an ICE question is quoted"
    assert "(\"" in trusted.summary
    # the ICE question starts 0.8 s into an utterance that follows the patient: inside the margin, so not quoted
    gated = build_feedback(visit, _Labels(), quotes=True, gate=QuoteGate())
    assert gated.strength is not None and not gated.strength.clinician_quote
    assert "(\"" not in gated.summary
    assert gated.summary == build_feedback(visit, _Labels(), quotes=False).summary


def test_the_sealing_backstop_removes_quotes_the_gate_did_not_clear() -> None:
    fb = feedback_pb2.Feedback(summary="What went well: at 0:10 you asked (\"what were you most worried this might be?\"). Why.")
    fb.observations.add(behaviour="teach_back", clinician_quote="I think you should take ibuprofen three times a day",
                        alternative="Ask \"I think you should take ibuprofen …\" back.", rationale="Why.")
    fb.observations.add(behaviour="safety_net_missing", clinician_quote="It will ease the pain and the swelling in your throat.",
                        alternative="Say what to watch for.", rationale="Why.")
    cleared = ["It will ease the pain and the swelling in your throat."]
    enforce_quote_policy(fb, True, cleared)
    assert fb.observations[0].clinician_quote == "" and "ibuprofen" not in fb.observations[0].alternative
    assert fb.observations[1].clinician_quote == "It will ease the pain and the swelling in your throat."
    assert "worried" not in fb.summary and fb.summary.startswith("What went well")
    # a quote cut and redacted by the builder ("…") is still recognised as cleared words
    ok = feedback_pb2.Feedback()
    ok.observations.add(behaviour="jargon", clinician_quote="So Mr … your blood pressure is a bit high …")
    enforce_quote_policy(ok, True, ["So Mr Jones, your blood pressure is a bit high today and we should treat it."])
    assert ok.observations[0].clinician_quote
    # nothing cleared (a runner that cannot vouch for any sentence): no quote leaves
    none = feedback_pb2.Feedback()
    none.observations.add(behaviour="teach_back", clinician_quote="It will ease the pain")
    enforce_quote_policy(none, True, [])
    assert not none.observations[0].clinician_quote


def test_a_gated_report_passes_the_backstop_untouched() -> None:
    visit = _visit(0.92)
    fb = build_feedback(visit, _Labels(), quotes=True, gate=QuoteGate())
    message = feedback_to_proto(fb)
    before = message.SerializeToString()
    enforce_quote_policy(message, True, quotable_sentences(visit))
    assert message.SerializeToString() == before
