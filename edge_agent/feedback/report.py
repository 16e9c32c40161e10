"""The clinician's coaching report for one visit (DESIGN.md §5).

``build_feedback`` turns attributed utterances into a :class:`Feedback`:
visit duration, timing metrics, label counts and 1–3 observations. It is
coaching, never an evaluation: no score, grade, rank or comparison with
colleagues appears anywhere (tests grep the rendered text for such words).
Only the clinician's words are ever quoted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.behaviours.jargon import JargonDetector
from edge_agent.behaviours.labels import LABELS
from edge_agent.behaviours.text import is_filler, split_sentences
from edge_agent.behaviours.timing import CLINICIAN, TimingMetrics, compute_timing
from edge_agent.feedback.observations import LabelledSentence, Observation, candidates, moment, select
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

    def to_dict(self) -> dict[str, object]:
        timing = self.timing.to_dict()
        timing.pop("events", None)  # event details serve the observations; the report carries the metrics
        return {
            "visit_duration_s": round(self.visit_duration_s, 2),
            "timing": {k: _rounded(v) for k, v in timing.items()},
            "label_counts": dict(self.label_counts),
            "observations": [o.to_dict() for o in self.observations],
        }

    def render(self) -> str:
        return render_text(self)


def _rounded(v: object) -> object:
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def _sentence_times(u: Utterance, sentences: list[str]) -> list[float]:
    """Start time of each sentence: from word times when present, else by character position."""
    times = []
    if u.words:
        k = 0
        for s in sentences:
            times.append(u.words[min(k, len(u.words) - 1)].t0)
            k += len(s.split())
        return times
    pos, n = 0, max(1, len(u.text))
    for s in sentences:
        at = u.text.find(s, pos)
        at = pos if at < 0 else at
        times.append(u.t0 + (u.t1 - u.t0) * at / n)
        pos = at + len(s)
    return times


def label_clinician_sentences(utterances: list[Utterance], classifier: _Classifier, jargon: JargonDetector | None = None) -> list[LabelledSentence]:
    """Every non-filler clinician sentence with its labels, in time order."""
    items: list[tuple[int, float, str]] = []
    for i, u in enumerate(utterances):
        if u.speaker != CLINICIAN:
            continue
        sents = split_sentences(u.text)
        for s, at in zip(sents, _sentence_times(u, sents)):
            if not is_filler(s):
                items.append((i, at, s))
    results = classifier.classify([t for _, _, t in items]) if items else []
    out = []
    for (i, at, s), res in zip(items, results):
        terms: tuple[tuple[str, str], ...] = ()
        if jargon is not None and "jargon" in res.labels:
            terms = tuple((h.term, h.entry.plain) for h in jargon.find(s) if not h.explained)
        out.append(LabelledSentence(i, at, s, tuple(res.labels), terms))
    out.sort(key=lambda x: x.at_s)
    return out


def build_feedback(utterances: list[Utterance], classifier: _Classifier, jargon: JargonDetector | None = None) -> Feedback:
    utts = sorted(utterances, key=lambda u: (u.t0, u.t1))
    timing = compute_timing(utts)
    if jargon is None:
        jargon = getattr(classifier, "jargon", None)
    sentences = label_clinician_sentences(utts, classifier, jargon)
    counts = Counter(lab for s in sentences for lab in s.labels)
    observations = select(candidates(utts, timing, sentences))
    duration = (max(u.t1 for u in utts) - min(0.0, min(u.t0 for u in utts))) if utts else 0.0
    turns = [(u.speaker, u.t0, u.t1) for u in utts]
    return Feedback(duration, timing, {lab: counts.get(lab, 0) for lab in LABELS}, observations, turns)


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
    lines.append("Observations")
    if not fb.observations:
        lines.append("  (nothing specific to suggest for this visit)")
    for n, o in enumerate(fb.observations, 1):
        lines += [
            f"  {n}. At {o.moment}: {o.happened or o.behaviour.replace('_', ' ')}",
            f"     You said: \"{o.clinician_quote}\"",
            f"     Try: {o.alternative}",
            f"     Why: {o.rationale}",
        ]
    lines += ["", "Turn-taking"]
    if t.opening_uninterrupted_s is None:
        lines.append("  Opening statement: the patient did not take the floor")
    else:
        how = "until you came in" if t.opening_interrupted else "until the patient finished"
        lines.append(f"  Opening statement: {t.opening_uninterrupted_s:.0f} s {how}")
    lines.append(f"  Times you started while the patient was mid-sentence: {t.interruptions}")
    if t.talk_share is not None:
        lines.append(f"  Your share of the talking time: {t.talk_share * 100:.0f} %")
    lines.append(f"  Longest stretch of your talking without a patient turn: {moment(t.longest_monologue_s)}")
    lines.append(f"  Pause after your questions (median): {_fmt_s(t.wait_after_question_median_s)}")
    if t.speech_rate_wpm is not None:
        lines.append(f"  Your speaking pace: {t.speech_rate_wpm:.0f} words per minute")
    lines += ["", "What you did (sentences)"]
    for lab in LABELS:
        lines.append(f"  {_LABEL_NAMES[lab]}: {fb.label_counts.get(lab, 0)}")
    return "\n".join(lines) + "\n"
