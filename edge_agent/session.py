"""Builds the streaming pipeline from settings and runs it over one source."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.asr.engine import WhisperEngine
from edge_agent.audio.frames import AudioSource
from edge_agent.hardening import harden_process
from edge_agent.pipeline import EventSink, PipelineConfig, RunStats, SpeakerHook, StreamingPipeline


@dataclass
class TranscriptionSession:
    config: PipelineConfig
    engine: WhisperEngine

    @classmethod
    def load(cls, config: PipelineConfig) -> "TranscriptionSession":
        harden_process()
        return cls(config, WhisperEngine(config.asr, config.vad.max_segment_s))

    def run(self, source: AudioSource, sink: EventSink, speaker_hook: SpeakerHook | None = None) -> tuple[RunStats, bool]:
        """Stream the source; returns stats and whether every pool slot ended zeroed."""
        pipeline = StreamingPipeline(self.config, self.engine, sink, speaker_hook)
        try:
            stats = pipeline.run(source)
        finally:
            clean = pipeline.pools.all_zero()
            pipeline.pools.wipe()
        return stats, clean
