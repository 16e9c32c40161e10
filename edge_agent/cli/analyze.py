"""`edge-agent analyze FILE`: the full pipeline on a recording, then the coaching report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from edge_agent.asr.events import FinalTranscript, PipelineEvent, SpeakerRelabel, apply_relabels
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.pipeline import PipelineConfig, RunStats
from edge_agent.device.session import TranscriptionSession
from edge_agent.errors import EdgeAgentError
from edge_agent.feedback.report import Feedback, build_feedback
from edge_agent.transcript import Utterance


def report_for_audio(path: Path, voiceprint_path: Path | None, session: TranscriptionSession | None = None) -> tuple[Feedback, RunStats]:
    from edge_agent.cli.transcribe import load_voiceprint

    voiceprint = load_voiceprint(voiceprint_path) if voiceprint_path is not None else None
    source = FileSource(path)
    session = session or TranscriptionSession.load(PipelineConfig(), speakers=True)
    utterances: list[Utterance] = []
    relabels: list[SpeakerRelabel] = []

    def collect(event: PipelineEvent) -> None:
        if isinstance(event, FinalTranscript):
            utterances.append(event.utterance)
        elif isinstance(event, SpeakerRelabel):
            relabels.append(event)

    console = Console(stderr=True)
    with console.status(f"analysing {path.name}…") if sys.stderr.isatty() else _null():
        stats, _ = session.run(source, collect, voiceprint)
    try:
        if not utterances:
            raise EdgeAgentError(f"no speech was recognised in {path}; nothing to report")
        return build_feedback(apply_relabels(utterances, relabels), BehaviourClassifier()), stats
    finally:
        utterances.clear()  # the transcript ends with the report


def analyze_audio(path: Path, voiceprint_path: Path | None, as_json: bool) -> None:
    from edge_agent.phone.client import SPEAKERS_UNCERTAIN

    feedback, stats = report_for_audio(path, voiceprint_path)
    if as_json:
        print(json.dumps({**feedback.to_dict(), "speakers_uncertain": stats.speakers_uncertain}, ensure_ascii=False))
    else:
        if stats.speakers_uncertain:
            print(SPEAKERS_UNCERTAIN.replace("on the phone", "(edge-agent enroll, then --voiceprint)") + "\n")
        print(feedback.render())


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
