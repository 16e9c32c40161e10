"""The clinician's coaching report for one visit (docs/design.md §5).

``build_feedback`` turns attributed utterances into a :class:`Feedback`:
visit duration, timing metrics, label counts and up to 3 observations. It is
coaching, never an evaluation: no score, grade, rank or comparison with
colleagues appears anywhere (tests grep the rendered text for such words).
Only the clinician's words are ever quoted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_agent.behaviours.conversation import Sentence, Turn, build_turns, clean_utterances, sentence_contexts
from edge_agent.behaviours.events import VisitEvents, detect_events
from edge_agent.behaviours.jargon import JargonDetector
from edge_agent.behaviours.labels import LABELS
from edge_agent.behaviours.reliability import SHOWN as SHOWN_LABELS
from edge_agent.behaviours.text import is_filler
from edge_agent.behaviours.timing import CLINICIAN, TimingMetrics, compute_timing
from edge_agent.feedback.observations import WITHHELD_TIMING, LabelledSentence, Observation, candidates, moment, select, strength
from edge_agent.feedback.quality import QUALITY_FIELDS, quality_notes
from edge_agent.feedback.quote_gate import QuoteGate
from edge_agent.transcript import Utterance


class _Classifier(Protocol):
    def classify(self, texts: list[str]) -> list: ...  # noqa: E704  (BehaviourClassifier or a test double)


@dataclass
class Feedback:
    visit_duration_s: float
    timing: TimingMetrics
    label_counts: dict[str, int]
    observations: list[Observation] = field(default_factory=list)
    # (speaker, start_s, end_s) per utterance, time order: the phone's picture of the visit (no words)
    turns: list[tuple[str, float, float]] = field(default_factory=list)
    strength: Observation | None = None  # one specific thing that went well (shown apart from the suggestions)
    events: VisitEvents | None = field(default=None, repr=False)  # stays on the device: serves the observations and the bench
    # what the capture lost (feedback_pb2.AudioQuality, from device.visit.audio_quality): the report says when it rests
    # on partial audio; None when the utterances did not come from audio (TextGrids)
    quality: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        timing = self.timing.to_dict()
        timing.pop("events", None)  # event details serve the observations; the report carries the metrics
        for key in WITHHELD_TIMING:  # withheld with their observation here too, as in the text report and the proto
            timing.pop(key, None)
        return {
            "visit_duration_s": round(self.visit_duration_s, 2),
            "timing": {k: _rounded(v) for k, v in timing.items()},
            "label_counts": dict(self.label_counts),
            "observations": [o.to_dict() for o in self.observations],
            "strength": self.strength.to_dict() if self.strength else None,
            **({"quality": {k: _rounded(getattr(self.quality, k)) for k in QUALITY_FIELDS}} if self.quality is not None else {}),
        }

    def render(self) -> str:
        return render_text(self)

    @property
    def summary(self) -> str:
        """The strength as one line (the proto's ``summary``, shown by the phone under the observations)."""
        st = self.strength
        if st is None:
            return ""
        quote = f" (\"{st.clinician_quote}\")" if st.clinician_quote else ""
        return f"What went well: at {st.moment} {st.happened}{quote}. {st.rationale}"


def _rounded(v: object) -> object:
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def _classify_turns(turns: list[Turn], classifier: _Classifier) -> dict[str, tuple[str, ...]]:
    """The classifier's labels for every non-filler clinician sentence, by sentence id (``tNNN:sNN``)."""
    items = [s for t in turns if t.speaker == CLINICIAN for s in t.sentences if not is_filler(s.text)]
    if not items:
        return {}
    texts = [s.text for s in items]
    if getattr(classifier, "uses_context", False):  # the model reads the previous patient turn (featuriser v5)
        ctx = sentence_contexts(turns)
        results = classifier.classify(texts, [ctx[s.id] for s in items])
    else:
        results = classifier.classify(texts)
    return {s.id: tuple(r.labels) for s, r in zip(items, results)}


def _final_labels(events: VisitEvents, sid: str) -> tuple[str, ...]:
    """A sentence's labels as the report counts them: the classifier's, with the conversation-aware
    decisions for agenda, teach-back and jargon (in context)."""
    labs = set(events.labels.get(sid, set()))
    labs.discard("jargon")
    a, b = sid.split(":")
    turn, sent = int(a[1:]), int(b[1:])
    if any(j.turn == turn and j.sentence == sent and j.unexplained for j in events.jargon):
        labs.add("jargon")
    return tuple(lab for lab in LABELS if lab in labs)


def label_clinician_sentences(utterances: list[Utterance], classifier: _Classifier, jargon: JargonDetector | None = None,
                              events: VisitEvents | None = None) -> list[LabelledSentence]:
    """Every non-filler clinician sentence with its labels, in time order."""
    if events is None:
        turns = build_turns(list(utterances))
        if jargon is None:
            jargon = getattr(classifier, "jargon", None)
        events = detect_events(turns=turns, classifier_labels=_classify_turns(turns, classifier), jargon=jargon)
    out = []
    for t in events.turns:
        if t.speaker != CLINICIAN:
            continue
        for s in t.sentences:
            if is_filler(s.text) or s.id not in events.labels:
                continue
            labs = _final_labels(events, s.id)
            terms = tuple((j.term, j.plain) for j in events.jargon if j.turn == t.index and j.sentence == s.index and j.unexplained)
            out.append(LabelledSentence(t.index, s.t0, s.text, labs, terms, s.index))
    out.sort(key=lambda x: x.at_s)
    return out


def build_feedback(utterances: list[Utterance], classifier: _Classifier, jargon: JargonDetector | None = None,
                   quotes: bool = True, gate: QuoteGate | None = None) -> Feedback:
    """The coaching report for one visit. ``quotes=False``: no verbatim clinician words in it.

    ``gate``: utterances attributed from audio (the device, ``analyze FILE``) quote only what the gate lets
    through, utterance by utterance (:mod:`edge_agent.feedback.quote_gate`); a refused moment is phrased as
    with quotes off. None: the labels are a human transcript's (TextGrids), taken as they are.
    """
    utts = sorted(clean_utterances(list(utterances)), key=lambda u: (u.t0, u.t1))
    turns = build_turns(utts)
    if jargon is None:
        jargon = getattr(classifier, "jargon", None)
    events = detect_events(turns=turns, classifier_labels=_classify_turns(turns, classifier), jargon=jargon)
    timing = compute_timing(utts, events)
    sentences = label_clinician_sentences(utts, classifier, jargon, events)
    counts = Counter(lab for s in sentences for lab in s.labels)
    # events.turns are these utterances in this order: a sentence's turn is its utterance's index
    may_quote = _gate_of(gate, utts) if quotes and gate is not None else None
    observations = select(candidates(events, quotes=quotes, may_quote=may_quote), events)
    best = strength(events, quotes=quotes, avoid=observations, may_quote=may_quote)
    duration = (max(u.t1 for u in utts) - min(0.0, min(u.t0 for u in utts))) if utts else 0.0
    spans = [(u.speaker, u.t0, u.t1) for u in utts]
    # only labels coders agree on reach the clinician (docs/labelling.md §8)
    return Feedback(duration, timing, {lab: counts.get(lab, 0) for lab in SHOWN_LABELS}, observations, spans, best, events)


def _gate_of(gate: QuoteGate, utts: list[Utterance]) -> Callable[[Sentence], bool]:
    regions = gate.regions(utts)
    return lambda s: gate.allows(regions[s.turn], s)


_LABEL_NAMES = {
    "open_question": "open questions",
    "closed_question": "closed questions",
    "agenda_solicitation": "asked for further concerns",
    "empathy": "empathic statements",
    "reflection": "reflections / summaries",
    "information": "information given",
    "advice": "advice given",
    "teach_back": "teach-back checks",
    "jargon": "unexplained medical terms",
    "reassurance": "reassurance",
    "partnership": "shared decisions / preference asked",
}


def _fmt_s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


def render_text(fb: Feedback) -> str:
    """Plain-text report for the clinician (no colours, no markup)."""
    t = fb.timing
    lines = [f"Visit feedback ({moment(fb.visit_duration_s)} of conversation)", ""]
    for note in quality_notes(fb.quality) if fb.quality is not None else ():
        lines += [note, ""]
    lines.append("Observations")
    if not fb.observations:
        lines.append("  (nothing specific to suggest for this visit)")
    for n, o in enumerate(fb.observations, 1):
        lines.append(f"  {n}. At {o.moment}: {o.happened or o.behaviour.replace('_', ' ')}")
        if o.clinician_quote:
            lines.append(f"     You said: \"{o.clinician_quote}\"")
        lines += [f"     Try: {o.alternative}", f"     Why: {o.rationale}"]
    if fb.strength is not None:
        st = fb.strength
        lines += ["", "What went well", f"  At {st.moment}: {st.happened}"]
        if st.clinician_quote:
            lines.append(f"     You said: \"{st.clinician_quote}\"")
        lines.append(f"     Why it helps: {st.rationale}")
    lines += ["", "Turn-taking"]
    if t.opening_uninterrupted_s is None:
        lines.append("  Opening statement: the patient did not give one")
    else:
        how = "until you redirected" if t.opening_redirected else "until the patient finished"
        lines.append(f"  Opening statement: {t.opening_uninterrupted_s:.0f} s {how}")
    # interruptions: withheld with their observation (feedback/observations.py WITHHELD_TIMING)
    if t.talk_share is not None:
        lines.append(f"  Your share of the talking time: {t.talk_share * 100:.0f} %")
    lines.append(f"  Longest stretch of your talking without a patient turn: {moment(t.longest_monologue_s)}")
    lines.append(f"  Patient's pause before answering your questions (median; 0 when you went on): {_fmt_s(t.wait_after_question_median_s)}")
    lines.append(f"  Your pause after the patient's answers (median): {_fmt_s(t.pause_after_answer_median_s)}")
    lines.append(f"  Times you asked two or more questions before the patient could answer: {t.stacked_questions}")
    if t.speech_rate_wpm is not None:
        lines.append(f"  Your speaking pace: {t.speech_rate_wpm:.0f} words per minute")
    lines += ["", "What you did (sentences)"]
    for lab in SHOWN_LABELS:
        lines.append(f"  {_LABEL_NAMES[lab]}: {fb.label_counts.get(lab, 0)}")
    return "\n".join(lines) + "\n"
