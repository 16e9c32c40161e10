"""Which of the clinician's words a report may quote, utterance by utterance (docs/privacy.md §4b).

With the site's ``feedback.quotes`` on, a report may quote the clinician's own words and never the
patient's. A "clinician" label can be wrong while confident, and a speaker change placed late puts
the patient's first words at the end of a clinician utterance ("... how can I help | you today?").
So a sentence is quotable only where the audio itself vouches for it:

1. **The voice is verified.** The utterance's final label is the clinician, its final confidence is
   at least :data:`MIN_CONFIDENCE`, and its voice (speaker embedding) is at least
   :data:`MIN_VOICEPRINT_SIMILARITY` in cosine to the clinician's enrolled voiceprint. Without a
   voiceprint nothing verifies a voice, and nothing is quoted.
2. **The sentence lies well inside the clinician's speech.** It starts at least :data:`MARGIN_S`
   after the utterance's start when the utterance before it is not verified clinician speech, ends at
   least :data:`MARGIN_S` before the utterance's end when the one after it is not, and keeps
   :data:`MARGIN_S` from any speech not verified as the clinician's.

Measured basis (real voices, ``python -m tools.realvoice.quotes``; docs/privacy.md §4b): with
enrolment, close-talk, every patient word the pipeline labelled clinician with a voiceprint
similarity of at least 0.75 lay within 1.12 s of such an utterance edge and within 1.79 s of speech
labelled otherwise (patient back-channels spoken over the clinician aside); the margin is the
turn-boundary error p90 measured on real voices (2.28-2.36 s, docs/realvoice.md section 4). Far-field
(a room microphone, a close-talk voiceprint) no utterance reaches the similarity bar, so nothing is
quoted there. The numbers are fixed here, not site settings: a site chooses whether to quote, not how
sure the device must be.

When the gate refuses, the report phrases the moment as with quotes off (the builders' one
no-quote path); :func:`quotable_sentences` is what the sealing backstop checks every quote against
(:func:`edge_agent.feedback.quotes.enforce_quote_policy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.behaviours.conversation import Sentence, build_turns, clean_utterances
from edge_agent.behaviours.timing import CLINICIAN
from edge_agent.transcript import Utterance

# the attributor's calibrated clinician threshold on real close-talk voices (AttributionConfig.threshold,
# docs/realvoice.md 5.3): correctly attributed clinician words 0.80-0.96 (5th-95th percentile), patients 0.46-0.66
MIN_VOICEPRINT_SIMILARITY = 0.75
# the final clustering must also name the voice clearly: correctly attributed clinician words were all >= 0.95
MIN_CONFIDENCE = 0.9
# seconds kept between a quote and speech not verified as the clinician's (docs/privacy.md §4b)
MARGIN_S = 2.3
_EPS = 1e-6


@dataclass(frozen=True)
class QuoteGate:
    min_voiceprint_similarity: float = MIN_VOICEPRINT_SIMILARITY
    min_confidence: float = MIN_CONFIDENCE
    margin_s: float = MARGIN_S

    def verified(self, u: Utterance) -> bool:
        """The clinician's voice, by its final label and confidence and by the enrolled voiceprint."""
        sim = u.voiceprint_similarity
        return (u.speaker == CLINICIAN and u.speaker_confidence >= self.min_confidence
                and sim is not None and sim >= self.min_voiceprint_similarity)

    def regions(self, utterances: Sequence[Utterance]) -> list[list[tuple[float, float]]]:
        """Per utterance (``utterances`` in time order, as the report's turns are), the stretches of it a
        quote may come from; empty when none."""
        ok = [self.verified(u) for u in utterances]
        others = [(u.t0, u.t1) for u, good in zip(utterances, ok) if not good]
        m = self.margin_s
        out: list[list[tuple[float, float]]] = []
        for i, u in enumerate(utterances):
            if not ok[i]:
                out.append([])
                continue
            lo = u.t0 + (m if i > 0 and not ok[i - 1] else 0.0)
            hi = u.t1 - (m if i + 1 < len(utterances) and not ok[i + 1] else 0.0)
            spans = [(lo, hi)] if hi > lo else []
            for a, b in others:  # speech of any other voice, overlapping or near
                spans = [piece for s in spans for piece in _minus(s, (a - m, b + m))]
            out.append(spans)
        return out

    def allows(self, regions: Sequence[tuple[float, float]], s: Sentence) -> bool:
        """Sentence ``s`` lies wholly inside one of its utterance's quotable stretches."""
        return any(a - _EPS <= s.t0 and s.t1 <= b + _EPS for a, b in regions)


def _minus(span: tuple[float, float], cut: tuple[float, float]) -> list[tuple[float, float]]:
    a, b = span
    c, d = cut
    if d <= a or c >= b:
        return [span]
    return [(x, y) for x, y in ((a, c), (d, b)) if y > x]


def quotable_sentences(utterances: Sequence[Utterance], gate: QuoteGate | None = None) -> list[str]:
    """The text of every clinician sentence ``gate`` lets a report quote: what the sealing backstop
    holds each quote to. Sentences as the report splits them (the same turns)."""
    gate = gate or QuoteGate()
    utts = sorted(clean_utterances(list(utterances)), key=lambda u: (u.t0, u.t1))
    turns = build_turns(utts)
    regions = gate.regions(utts)
    return [s.text for t in turns if t.clinician for s in t.sentences if gate.allows(regions[t.index], s)]
