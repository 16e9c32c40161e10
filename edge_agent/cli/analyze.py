"""`edge-agent analyze FILE`: the full pipeline on a recording, then the coaching report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from edge_agent.asr.events import FinalTranscript, PipelineEvent, SpeakerRelabel, apply_relabels
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.device.session import TranscriptionSession
from edge_agent.device.visit import audio_quality
from edge_agent.errors import EdgeAgentError
from edge_agent.feedback.report import Feedback, build_feedback
from edge_agent.hardening import harden_process
from edge_agent.transcript import Utterance


def report_for_audio(path: Path, voiceprint_path: Path | None, session: TranscriptionSession | None = None) -> Feedback:
    from edge_agent.cli.transcribe import load_voiceprint

    harden_process()  # before the first sample (a --voiceprint recording is read first): a crash must not dump audio
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
        stats, _clean = session.run(source, collect, voiceprint)
    try:
        if not utterances:
            raise EdgeAgentError(f"no speech was recognised in {path}; nothing to report")
        feedback = build_feedback(apply_relabels(utterances, relabels), BehaviourClassifier())
        feedback.quality = audio_quality([stats])  # as on the device: the report says when it rests on partial audio
        return feedback
    finally:
        utterances.clear()  # the transcript ends with the report


def analyze_audio(path: Path, voiceprint_path: Path | None, as_json: bool) -> None:
    feedback = report_for_audio(path, voiceprint_path)
    if as_json:
        print(json.dumps(feedback.to_dict(), ensure_ascii=False))
    else:
        print(feedback.render())


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
