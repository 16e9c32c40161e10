"""What the streaming pipeline tells its listeners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.transcript import Utterance


@dataclass(frozen=True)
class PartialTranscript:
    segment_id: int
    t0: float
    t1: float
    stable: str  # committed by local agreement; never changes afterwards
    unstable: str
    onset_latency_s: float | None  # wall time from speech onset, for the first partial of a segment

    @property
    def text(self) -> str:
        return f"{self.stable} {self.unstable}".strip()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "partial",
            "segment": self.segment_id,
            "t0": round(self.t0, 3),
            "t1": round(self.t1, 3),
            "text": self.text,
            "stable": self.stable,
        }


@dataclass(frozen=True)
class FinalTranscript:
    utterance: Utterance
    residency_s: float  # age of the segment's oldest raw sample when it was zeroed (as audio became features)
    latency_s: float  # end of speech -> this final emitted (wall time)

    def to_json(self) -> dict[str, Any]:
        u = self.utterance
        return {
            "type": "final",
            "segment": u.segment_id,
            "t0": round(u.t0, 3),
            "t1": round(u.t1, 3),
            "text": u.text,
            "words": [{"w": w.text, "t0": round(w.t0, 3), "t1": round(w.t1, 3), "p": round(w.probability, 3)} for w in u.words],
            "speaker": u.speaker,
            "speaker_confidence": round(u.speaker_confidence, 3),
            **({"voiceprint_similarity": round(u.voiceprint_similarity, 3)} if u.voiceprint_similarity is not None else {}),
            "residency_s": round(self.residency_s, 4),
        }


@dataclass(frozen=True)
class SegmentDiscarded:
    """A segment that produced no text (noise, silence, hallucination guard)."""

    segment_id: int
    t0: float
    t1: float
    reason: str
    residency_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "discarded",
            "segment": self.segment_id,
            "t0": round(self.t0, 3),
            "t1": round(self.t1, 3),
            "reason": self.reason,
            "residency_s": round(self.residency_s, 4),
        }


@dataclass(frozen=True)
class SpeakerRelabel:
    """At the end of a run: an earlier final's speaker, decided again with the whole visit's evidence.

    Live finals carry a provisional speaker (decided when their segment closed);
    whatever builds a report applies these first, so no identity swaps mid-visit.
    """

    segment_id: int
    t0: float  # the final's t0, as it was emitted
    speaker: str
    confidence: float
    # False: the speaker stays, only its confidence is decided again (a live view has nothing to correct)
    changed: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"type": "relabel", "segment": self.segment_id, "t0": round(self.t0, 3), "speaker": self.speaker,
                "speaker_confidence": round(self.confidence, 3), "changed": self.changed}


PipelineEvent = PartialTranscript | FinalTranscript | SegmentDiscarded | SpeakerRelabel


def apply_relabels(utterances: list[Utterance], relabels: list[SpeakerRelabel]) -> list[Utterance]:
    """The utterances with their final speakers (matched by segment and start time)."""
    from dataclasses import replace

    final = {(r.segment_id, round(r.t0, 3)): r for r in relabels}
    out = []
    for u in utterances:
        r = final.get((u.segment_id, round(u.t0, 3)))
        out.append(replace(u, speaker=r.speaker, speaker_confidence=r.confidence) if r else u)
    return out
