"""Builds the streaming pipeline from settings and runs it over one source."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio.frames import AudioSource
from edge_agent.audio.silero import SileroModel
from edge_agent.audio.vad import VadConfig
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.pipeline import EventSink, PipelineConfig, PipelineFault, RunStats, StreamingPipeline
from edge_agent.errors import AudioInputError
from edge_agent.hardening import harden_process, scrub_freed_heap
from edge_agent.speakers.attribution import AttributionConfig, SpeakerAttributor
from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder
from edge_agent.speakers.enrol import Voiceprint
from edge_agent.speakers.role import RoleClassifier


@dataclass
class SpeakerModels:
    """Loaded once per process; a fresh attributor is made for every run."""

    encoder: SpeakerEncoder
    roles: RoleClassifier

    @classmethod
    def load(cls, threads: int = 1, provider: str = "cpu") -> "SpeakerModels":
        return cls(SpeakerEncoder(EncoderConfig(threads=threads, provider=provider)), RoleClassifier(threads=threads))

    config: AttributionConfig | None = None

    def attributor(self, voiceprint: Voiceprint | None) -> SpeakerAttributor:
        return SpeakerAttributor(self.encoder, self.roles, voiceprint, self.config)


@dataclass
class TranscriptionSession:
    config: PipelineConfig
    engine: WhisperCT2
    speakers: SpeakerModels | None = None
    vad_model: SileroModel | None = None  # loaded when vad.engine is "silero" or "hybrid" (at start, or by a reload)

    @classmethod
    def load(cls, config: PipelineConfig, speakers: bool = False, attribution: AttributionConfig | None = None) -> "TranscriptionSession":
        harden_process()
        # buffers are sized from the segment capacity the VAD can really fill (limit + one frame)
        engine = WhisperCT2(config.asr, config.vad.segment_capacity)
        models = SpeakerModels.load() if speakers else None
        if models is not None:
            models.config = attribution
        session = cls(config, engine, models)
        session.ensure_vad_model(config.vad)
        scrub_freed_heap()  # the models are loaded: from here on, freed buffers (the visit's words) are overwritten
        return session

    def ensure_vad_model(self, vad: VadConfig) -> None:
        """Open the Silero model if ``vad`` needs it and it is not open yet (ModelError if it cannot be)."""
        if vad.uses_silero and self.vad_model is None:
            self.vad_model = SileroModel()

    def run(
        self,
        source: AudioSource,
        sink: EventSink,
        voiceprint: Voiceprint | None = None,
        stop: threading.Event | None = None,
        metrics: Registry | None = None,
    ) -> tuple[RunStats, bool]:
        """Stream the source; returns stats and whether every pool slot ended zeroed.

        The attributor (and with it any voiceprint) lives for this run only and
        is wiped when it ends, whatever happens. A microphone that goes away
        mid-run raises :class:`CaptureLost`, which still carries the run's
        stats and pool check.
        """
        attributor = self.speakers.attributor(voiceprint) if self.speakers is not None else None
        pipeline = StreamingPipeline(self.config, self.engine, sink, attributor, stop=stop, metrics=metrics,
                                     max_segment_samples=self.engine.max_samples, vad_model=self.vad_model)
        lost: AudioInputError | None = None
        fault: PipelineFault | None = None
        try:
            stats = pipeline.run(source)
        except AudioInputError as exc:
            lost, stats = exc, pipeline.stats
        except PipelineFault as exc:  # a bug: the caller alarms, and still records what the run did
            fault, stats = exc, pipeline.stats
        finally:
            clean = pipeline.pools.all_zero() and not pipeline.vad_holds_audio()
            pipeline.pools.wipe()
            if attributor is not None:
                attributor.forget()
        if lost is not None:
            raise CaptureLost(lost.message, stats, clean) from None
        if fault is not None:
            raise RunFault(fault.message, stats, clean) from None
        return stats, clean


class CaptureLost(AudioInputError):
    """The audio source failed mid-run (microphone unplugged); what the run did is kept."""

    def __init__(self, message: str, stats: RunStats, pools_clean: bool) -> None:
        super().__init__(message)
        self.stats = stats
        self.pools_clean = pools_clean


class RunFault(PipelineFault):
    """A worker failed mid-run (a bug); what the run did, and whether its pools ended zeroed, is kept."""

    def __init__(self, message: str, stats: RunStats, pools_clean: bool) -> None:
        super().__init__(message)
        self.stats = stats
        self.pools_clean = pools_clean
