"""A recording streamed through the real pipeline, as words carrying their report labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.asr.events import FinalTranscript, SpeakerRelabel
from edge_agent.audio.file_source import FileSource
from edge_agent.speakers.enrol import Voiceprint, voiceprint_from
from tools.realvoice import metrics as M


def final_words(session: Any, audio: Path, voiceprint: Voiceprint | None) -> list[M.HypWord]:
    """Stream ``audio`` unpaced; each final word carries its final (report) label, relabels applied."""
    finals: list[FinalTranscript] = []
    relabels: dict[tuple[int, float], str] = {}

    def sink(event: object) -> None:
        if isinstance(event, FinalTranscript):
            finals.append(event)
        elif isinstance(event, SpeakerRelabel):
            relabels[(event.segment_id, round(event.t0, 3))] = event.speaker

    session.run(FileSource(audio), sink, voiceprint)
    words = []
    for f in finals:
        u = f.utterance
        speaker = relabels.get((u.segment_id, round(u.t0, 3)), u.speaker)
        words.extend(M.HypWord(w.text, w.t0, w.t1, speaker, u.segment_id) for w in u.words)
    return words


def scored_generated_visit(session: Any, ref_path: Path, enrolled: bool) -> list[M.ScoredWord]:
    """A visit made by ``tools.realvoice.generate`` (its reference JSON at ``ref_path``) streamed with or without its
    clinician's enrolment, each final word scored against the visit's reference speaker intervals."""
    ref = json.loads(ref_path.read_text())
    voiceprint = voiceprint_from(ref_path.parent / ref["enrolment"]["file"]) if enrolled else None
    words = final_words(session, ref_path.parent / ref["audio"], voiceprint)
    return M.score_words(words, [M.Interval(i["speaker"], i["start_s"], i["stop_s"], i["kind"]) for i in ref["intervals"]])
