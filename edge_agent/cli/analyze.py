"""`edge-agent analyze FILE`: the full pipeline on a recording, then the coaching report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from rich.console import Console

from edge_agent.asr.events import FinalTranscript, PipelineEvent, SpeakerRelabel, apply_relabels
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.device.session import CaptureLost, TranscriptionSession
from edge_agent.device.visit import audio_quality
from edge_agent.errors import AudioInputError, EdgeAgentError
from edge_agent.feedback.quote_gate import QuoteGate
from edge_agent.feedback.report import Feedback, build_feedback
from edge_agent.hardening import harden_process
from edge_agent.transcript import Utterance


def report_for_audio(path: Path, voiceprint_path: Path | None, session: TranscriptionSession | None = None,
                     lines_to: IO[str] | None = None) -> Feedback:
    """The coaching report of a recording. A file that turns out truncated or corrupt part-way still gets the report of
    the part that was read, then its one-line error (:class:`PartialInput`). ``lines_to``: also write the
    `analyze --jsonl` lines there (the transcript is gone once this returns)."""
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
    lost: CaptureLost | None = None
    with console.status(f"analysing {path.name}…") if sys.stderr.isatty() else _null():
        try:
            stats, _clean = session.run(source, collect, voiceprint)
        except CaptureLost as exc:  # what was read before the damage is kept, as the error message promises
            lost, stats = exc, exc.stats
    try:
        if not utterances:
            if lost is not None:
                raise lost
            raise EdgeAgentError(f"no speech was recognised in {path}; nothing to report")
        final = apply_relabels(utterances, relabels)
        classifier = BehaviourClassifier()
        # attributed from audio: quotes only where the per-utterance quote gate vouches for the clinician's voice
        feedback = build_feedback(final, classifier, gate=QuoteGate())
        feedback.quality = audio_quality([stats])  # as on the device: the report says when it rests on partial audio
        if lines_to is not None:
            from edge_agent.cli.behaviours import write_report_lines

            write_report_lines(feedback, final, classifier, lines_to)
        if lost is not None:
            raise PartialInput(lost.message, feedback)
        return feedback
    finally:
        utterances.clear()  # the transcript ends with the report


class PartialInput(AudioInputError):
    """The recording broke off part-way; ``feedback`` is the report of the part that was read."""

    def __init__(self, message: str, feedback: Feedback) -> None:
        super().__init__(message)
        self.feedback = feedback


def analyze_audio(path: Path, voiceprint_path: Path | None, as_json: bool, jsonl: bool = False) -> None:
    """The report readably, as one JSON object (``as_json``) or as the JSON lines of the TextGrid path (``jsonl``)."""
    try:
        feedback = report_for_audio(path, voiceprint_path, lines_to=sys.stdout if jsonl else None)
    except PartialInput as partial:  # the report of what was read goes out first; the one-line error and exit 2 follow
        if not jsonl:
            _print_report(partial.feedback, as_json)
        raise
    if not jsonl:
        _print_report(feedback, as_json)


def _print_report(feedback: Feedback, as_json: bool) -> None:
    if as_json:
        print(json.dumps(feedback.to_dict(), ensure_ascii=False))
    else:
        print(feedback.render())


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
