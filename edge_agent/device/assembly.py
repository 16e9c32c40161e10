"""`edge-agent serve`: the room-device daemon (gRPC over mutual TLS + the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.audio.frames import AudioSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.device.session import TranscriptionSession
from edge_agent.device.visit import PipelineEnroller, PipelineVisitRunner, SourceFactory, VisitPolicy
from edge_agent.speakers.attribution import AttributionConfig


@dataclass(frozen=True)
class DeviceParts:
    runner: PipelineVisitRunner
    enroller: PipelineEnroller


def build_device(source_factory: SourceFactory, config: PipelineConfig | None = None, policy: VisitPolicy = VisitPolicy(),
                 on_event=None, speakers: AttributionConfig | None = None) -> DeviceParts:  # type: ignore[no-untyped-def]
    """Load every model once (ASR, speaker, behaviours) and make the visit runner."""
    session = TranscriptionSession.load(config or PipelineConfig(), speakers=True, attribution=speakers)
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


def serve(config_path: Path | None, replay: Path | None) -> None:
    """Load the config (file < EDGE_AGENT_* environment) and run the daemon until SIGTERM."""
    import asyncio
    import os

    from edge_agent.config import load_config
    from edge_agent.device.main import run_daemon

    cfg = load_config(config_path, os.environ)
    asyncio.run(run_daemon(cfg, replay))
