"""Dataclasses that carry transcribed speech between stages.

Text lives only in memory for the duration of a visit; nothing here is ever
serialised to disk by the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPEAKERS = ("clinician", "patient", "other", "unknown")


@dataclass(frozen=True)
class Word:
    text: str
    t0: float  # seconds from visit start
    t1: float
    probability: float = 1.0


@dataclass(frozen=True)
class Utterance:
    """One final, attributed stretch of speech."""

    t0: float  # seconds from visit start
    t1: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str = "unknown"  # one of SPEAKERS
    speaker_confidence: float = 0.0
    segment_id: int = -1
    extra: dict[str, float] = field(default_factory=dict, compare=False)
    # cosine of this stretch's voice (its speaker embedding) to the clinician's enrolled voiceprint: the voiceprint's
    # verification of it. None: no voiceprint, or too little audio to embed. The report quotes the clinician only
    # where it verifies the voice (edge_agent/feedback/quote_gate.py)
    voiceprint_similarity: float | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.t1 - self.t0)
