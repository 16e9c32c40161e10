"""PriMock57 mock consultations (CC BY 4.0, Papadopoulos Korfiatis et al., ACL 2022).

One TextGrid per speaker and consultation; both share one clock, so overlaps are
real overlaps. Transcriber tags are stripped by :func:`clean_text`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_agent.behaviours.sources import ROLE_TO_SPEAKER
from edge_agent.behaviours.textgrid import clean_text, read_textgrid
from edge_agent.errors import EdgeAgentError
from edge_agent.transcript import Utterance

ROLES = ("doctor", "patient")


@dataclass(frozen=True)
class Turn:
    role: str  # "doctor" | "patient"
    start: float
    end: float
    text: str  # cleaned


@dataclass(frozen=True)
class Consultation:
    id: str  # e.g. "day1_consultation01"
    turns: tuple[Turn, ...]  # both roles, ordered by start time

    def of(self, role: str) -> list[Turn]:
        return [t for t in self.turns if t.role == role]


def shared_dir() -> Path:
    """The ``shared`` folder beside the checkout (override with EDGE_AGENT_SHARED)."""
    env = os.environ.get("EDGE_AGENT_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared"


def primock_dir() -> Path:
    return shared_dir() / "data" / "primock57" / "transcripts"


def consultation_ids(root: Path | None = None) -> list[str]:
    root = root or primock_dir()
    if not root.is_dir():
        raise EdgeAgentError(f"PriMock57 transcripts not found at {root}; set EDGE_AGENT_SHARED to the shared folder")
    return sorted({p.name.rsplit("_", 1)[0] for p in root.glob("*_doctor.TextGrid")})


def load_consultation(cid: str, root: Path | None = None) -> Consultation:
    root = root or primock_dir()
    if not root.is_dir():  # `bench coaching` without ../shared: say where the data is expected, as the other benches do
        raise EdgeAgentError(f"PriMock57 transcripts not found at {root}; set EDGE_AGENT_SHARED to the shared folder")
    turns: list[Turn] = []
    for role in ROLES:
        for iv in read_textgrid(root / f"{cid}_{role}.TextGrid"):
            text = clean_text(iv.text)
            if text:
                turns.append(Turn(role, iv.start, iv.end, text))
    turns.sort(key=lambda t: (t.start, t.end))
    return Consultation(cid, tuple(turns))


def iter_consultations(root: Path | None = None) -> Iterator[Consultation]:
    for cid in consultation_ids(root):
        yield load_consultation(cid, root)


def utterances_from_consultation(cons: Consultation) -> list[Utterance]:
    return [
        Utterance(t0=t.start, t1=t.end, text=t.text, speaker=ROLE_TO_SPEAKER[t.role], speaker_confidence=1.0, segment_id=i)
        for i, t in enumerate(cons.turns)
    ]
