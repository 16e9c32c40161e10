"""Short written dialogues for the coaching tests: (speaker, text, seconds) in order, 0.5 s apart."""

from __future__ import annotations

from edge_agent.transcript import Utterance

C, P = "clinician", "patient"


def dialogue(lines: list[tuple[str, str, float]]) -> list[Utterance]:
    out, t = [], 0.0
    for who, text, dur in lines:
        out.append(Utterance(t, t + dur, text, speaker=who))
        t += dur + 0.5
    return out
