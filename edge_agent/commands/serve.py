"""`edge-agent serve`: the room-device daemon (gRPC over mutual TLS + the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.audio.frames import AudioSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.pipeline import PipelineConfig
from edge_agent.session import TranscriptionSession
from edge_agent.visit import PipelineEnroller, PipelineVisitRunner, SourceFactory, VisitPolicy


@dataclass(frozen=True)
class DeviceParts:
    runner: PipelineVisitRunner
    enroller: PipelineEnroller


def build_device(source_factory: SourceFactory, config: PipelineConfig | None = None, policy: VisitPolicy = VisitPolicy(),
                 on_event=None) -> DeviceParts:  # type: ignore[no-untyped-def]
    """Load every model once (ASR, speaker, behaviours) and make the visit runner."""
    session = TranscriptionSession.load(config or PipelineConfig(), speakers=True)
    runner = PipelineVisitRunner(session, BehaviourClassifier(), source_factory, policy, on_event=on_event)
    return DeviceParts(runner, PipelineEnroller(session))


def mic_factory(device: str | None) -> SourceFactory:
    def make() -> AudioSource:
        from edge_agent.audio.mic_source import MicSource

        return MicSource(device)

    return make


def file_factory(path: Path, realtime: bool = True) -> SourceFactory:
    """Replays a recording as the room microphone (demo, tests, soak runs)."""

    def make() -> AudioSource:
        from edge_agent.audio.file_source import FileSource

        return FileSource(path, realtime=realtime)

    return make


def serve(bundle: Path, data_dir: Path, room: str, crl: Path | None, host: str, port: int, advertise: bool,
          mic_device: str | None, replay: Path | None) -> None:
    from edge_agent.server import app

    factory = file_factory(replay) if replay is not None else mic_factory(mic_device)
    parts = build_device(factory)
    app.run(bundle, data_dir, room=room, crl=crl, host=host, port=port, advertise=advertise, runner=parts.runner, enroller=parts.enroller)
