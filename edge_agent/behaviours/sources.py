"""Turn PriMock57 TextGrids into the Utterances the behaviour detectors read.

doctor -> "clinician", patient -> "patient": the same code then runs on live
pipeline output and on the corpus.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.behaviours.textgrid import clean_text, read_textgrid
from edge_agent.transcript import Utterance

ROLE_TO_SPEAKER = {"doctor": "clinician", "patient": "patient"}


def utterances_from_textgrids(doctor_path: Path, patient_path: Path) -> list[Utterance]:
    """Both speakers' TextGrids (one clock) -> utterances ordered by start time."""
    out: list[Utterance] = []
    for path, speaker in ((doctor_path, "clinician"), (patient_path, "patient")):
        for iv in read_textgrid(Path(path)):
            text = clean_text(iv.text)
            if text:
                out.append(Utterance(t0=iv.start, t1=iv.end, text=text, speaker=speaker, speaker_confidence=1.0))
    out.sort(key=lambda u: (u.t0, u.t1))
    return [Utterance(u.t0, u.t1, u.text, u.words, u.speaker, u.speaker_confidence, i) for i, u in enumerate(out)]
