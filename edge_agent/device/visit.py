"""A visit on the device: microphone -> pipeline -> behaviours -> coaching report.

Implements the server's VisitRunner/VoiceEnroller seam
(:mod:`edge_agent.device.lifecycle`). Everything a visit produces lives in this
object's memory until ``stop``: the report is built, every utterance and the
voiceprint are dropped, and only the report leaves (to be sealed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge_agent.asr.events import FinalTranscript, PipelineEvent, SpeakerRelabel
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.frames import AudioSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.behaviours.features import forget_text
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.pipeline import RunStats
from edge_agent.device.session import CaptureLost, RunFault, TranscriptionSession
from edge_agent.errors import EdgeAgentError
from edge_agent.feedback.proto import SCHEMA_VERSION, feedback_to_proto
from edge_agent.feedback.quote_gate import QuoteGate, quotable_sentences
from edge_agent.feedback.report import build_feedback
from edge_agent.hardening import release_free_heap
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from edge_agent.speakers.enrol import Voiceprint, enrol
from edge_agent.transcript import Utterance

log = logging.getLogger(__name__)

SourceFactory = Callable[[], AudioSource]


@dataclass(frozen=True)
class VisitPolicy:
    long_silence_s: float = 600.0  # no speech for this long ends the visit (0: never)
    mic_retry_s: float = 2.0  # how often a lost microphone is looked for again
    heap_trim_s: float = 30.0  # how often freed decoder memory is handed back to the kernel (0: never)


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


class _VisitState:
    """In-memory state of the one running visit."""

    def __init__(self, ctx: VisitContext) -> None:
        self.ctx = ctx
        self.utterances: list[Utterance] = []
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.last_speech = time.monotonic()
        self.started = time.monotonic()
        self.runs: list[RunStats] = []  # one per capture run (a lost microphone starts another)
        self.capture_losses = 0  # runs that ended because the microphone went away (it may not have come back)
        self.pools_clean = True

    def wipe(self) -> None:
        self.utterances.clear()


class PipelineVisitRunner:
    def __init__(
        self,
        session: TranscriptionSession,
        classifier: BehaviourClassifier,
        source_factory: SourceFactory,
        policy: VisitPolicy = VisitPolicy(),
        on_event: Callable[[PipelineEvent], None] | None = None,
        metrics: Registry | None = None,
    ) -> None:
        if session.speakers is None:
            raise ValueError("a visit needs speaker attribution: load the session with speakers=True")
        self.session = session
        self.classifier = classifier
        self.source_factory = source_factory
        self.policy = policy
        self.on_event = on_event  # e.g. the demo's live view; never logs text
        self.metrics = metrics
        # what the last visit's capture runs counted (numbers only: for benchmarks and doctor-style checks)
        self.last_runs: list[RunStats] = []
        self.last_pools_clean = True
        self._quote_clearance: list[str] = []  # the last report's quotable sentences, until the lifecycle takes them
        self._state: _VisitState | None = None
        self._lock = threading.Lock()

    # -- VisitRunner -------------------------------------------------------------

    def start(self, ctx: VisitContext) -> None:
        with self._lock:
            if self._state is not None:
                raise EdgeAgentError("a visit is already running on this device")
            # the voiceprint is read before the microphone opens: a damaged one refuses the visit with no device held
            voiceprint = _voiceprint_of(ctx)
            source = self.source_factory()  # raises a clear error if the microphone is missing
            state = _VisitState(ctx)
            state.thread = threading.Thread(target=self._capture, args=(state, source, voiceprint), name="visit-capture", daemon=True)
            self._state = state
            try:
                state.thread.start()
            except BaseException:
                self._state = None
                source.close()
                raise

    def stop(self, quotes: bool = False) -> feedback_pb2.Feedback:
        """End the visit's capture and build its report on the final labels.

        ``quotes=False`` (the site's default): the report is phrased without the clinician's
        words ("ask the first question on its own"), not built with them and blanked afterwards.
        With quotes on, only sentences the quote gate lets through are quoted, utterance by
        utterance (:mod:`edge_agent.feedback.quote_gate`); :meth:`quote_clearance` hands the
        lifecycle the same sentences for its check at sealing.
        """
        state = self._finish()
        self._quote_clearance = []
        try:
            if state.error and not state.utterances:
                raise EdgeAgentError(state.error)
            # the report is built on each voice's final label and confidence, never on provisional ones (applied by the sink)
            utterances = list(state.utterances)
            # voices the device could not tell apart: "the clinician's words" may be the patient's, which are never
            # quoted (docs/privacy.md §4b), so the report is phrased without quotes whatever the site allows
            quotes = quotes and not any(r.speakers_uncertain or r.voiceprint_unheard for r in state.runs)
            gate = QuoteGate()
            feedback = build_feedback(utterances, self.classifier, quotes=quotes, gate=gate) if utterances else None
            if quotes and utterances:
                self._quote_clearance = quotable_sentences(utterances, gate)
            # the lifecycle stamps the visit's own duration and start time on it
            message = feedback_to_proto(feedback) if feedback else feedback_pb2.Feedback(schema_version=SCHEMA_VERSION)
            message.quality.CopyFrom(audio_quality(state.runs, state.capture_losses))
            self.last_runs, self.last_pools_clean = list(state.runs), state.pools_clean
            return message
        finally:
            state.wipe()
            forget_text()  # the featuriser's memo of the visit's words
            release_free_heap()  # the visit's transcript and the report's working memory

    def quote_clearance(self) -> list[str]:
        """The sentences the last report may quote (its quote gate's), handed over once: the lifecycle holds
        every quote to them where it seals the report (:func:`edge_agent.feedback.quotes.enforce_quote_policy`)."""
        cleared, self._quote_clearance = self._quote_clearance, []
        return cleared

    def wait_capture_end(self, timeout: float | None = None) -> bool:
        """Block until the running visit's audio source ends (a replayed file); True if it did."""
        state = self._state
        return state is None or state.stop_event.wait(timeout)

    def abort(self) -> None:
        """End and wipe the running visit without a report; nothing to do if none runs (a failed stop ended it)."""
        with self._lock:
            running = self._state is not None
        if not running:
            return
        state = self._finish()
        state.wipe()
        forget_text()

    # -- internals ---------------------------------------------------------------

    def _finish(self) -> _VisitState:
        with self._lock:
            state, self._state = self._state, None
        if state is None:
            raise EdgeAgentError("no visit is running")
        state.stop_event.set()
        if state.thread is not None:
            state.thread.join()
        return state

    def _capture(self, state: _VisitState, source: AudioSource | None, voiceprint: Voiceprint | None) -> None:
        """Run the pipeline until stop; if the microphone goes away, wait for it and carry on."""
        watchdog = threading.Thread(target=self._watch, args=(state,), name="visit-watch", daemon=True)
        watchdog.start()
        try:
            while not state.stop_event.is_set():
                if source is None:
                    try:
                        source = self.source_factory()
                    except EdgeAgentError:
                        state.stop_event.wait(self.policy.mic_retry_s)
                        continue
                    log.info("microphone back; capture resumed")
                offset = time.monotonic() - state.started
                try:
                    stats, clean = self.session.run(source, self._sink(state, offset), voiceprint, stop=state.stop_event,
                                                    metrics=self.metrics)
                    self._checked(state, stats, clean)
                    return  # stop requested, or a replayed recording ended
                except CaptureLost as lost:
                    self._checked(state, lost.stats, lost.pools_clean)
                    state.capture_losses += 1
                    state.error = lost.message
                    log.warning("microphone lost during a visit; waiting for it to return")
                    if self.metrics is not None:
                        self.metrics.inc("edge_agent_mic_lost_total")
                    source = None
                    state.stop_event.wait(self.policy.mic_retry_s)
                except RunFault as fault:  # a worker bug ended the run (counted by the pipeline); its figures still count
                    self._checked(state, fault.stats, fault.pools_clean)
                    state.error = f"{fault.message}; the report covers the audio before it"
                    log.error("ALARM: visit capture failed: %s", fault.message)
                    return
        except Exception as exc:  # noqa: BLE001 - a bug: recorded, alarmed, and the visit's stop reports it
            state.error = f"capture stopped by an internal error ({type(exc).__name__}); the report covers the audio before it"
            log.error("ALARM: visit capture failed: %s", type(exc))
            if self.metrics is not None:
                self.metrics.inc("edge_agent_worker_errors_total")
        finally:
            if voiceprint is not None:
                voiceprint.wipe()  # the runs' attributors wiped their copies; this is the visit's own
            state.stop_event.set()

    def _checked(self, state: _VisitState, stats: RunStats, clean: bool) -> None:
        """Every run's audio pools must end all zero; anything else is an alarm, never silence."""
        state.runs.append(stats)
        if self.metrics is not None:
            self.metrics.record_run(stats)
        if not clean:
            state.pools_clean = False
            log.error("ALARM: an audio buffer still held data after the capture run ended; it was wiped now. Report this bug.")
            if self.metrics is not None:
                self.metrics.inc("edge_agent_pools_not_zeroed_total")

    def _sink(self, state: _VisitState, offset_s: float) -> Callable[[PipelineEvent], None]:
        """Collect finals on the visit's clock (a resumed capture starts its own clock at 0)."""

        # this run's finals by the key its relabels name them with (segment, t0 on the run's clock as
        # emitted): matched here, before the shift, since a shifted rounded time can round apart
        emitted: dict[tuple[int, float], int] = {}

        def sink(event: PipelineEvent) -> None:
            if isinstance(event, FinalTranscript):
                u = event.utterance
                emitted[(u.segment_id, round(u.t0, 3))] = len(state.utterances)
                state.utterances.append(_shifted(u, offset_s) if offset_s > 0.5 else u)
                state.last_speech = time.monotonic()
            elif isinstance(event, SpeakerRelabel):  # the run's final speaker for an earlier utterance
                at = emitted.get((event.segment_id, round(event.t0, 3)))
                if at is not None:
                    state.utterances[at] = replace(state.utterances[at], speaker=event.speaker, speaker_confidence=event.confidence)
                else:
                    log.warning("a speaker relabel matched no final of its run")
            if self.on_event is not None:
                self.on_event(event)

        return sink

    def _watch(self, state: _VisitState) -> None:
        """Once a second: end a visit that has been silent too long; every ``heap_trim_s``, trim the heap
        (RSS must stay flat through a long visit, docs/architecture.md "Measured")."""
        trimmed = time.monotonic()
        while not state.stop_event.wait(1.0):
            policy = self.policy  # read each tick: a SIGHUP may change the long-silence limit mid-visit
            now = time.monotonic()
            if policy.long_silence_s > 0 and now - state.last_speech > policy.long_silence_s:
                state.ctx.request_stop("long_silence")
                return
            if policy.heap_trim_s > 0 and now - trimmed >= policy.heap_trim_s:
                release_free_heap()
                trimmed = now


def audio_quality(runs: Sequence[RunStats], capture_losses: int | None = None) -> feedback_pb2.AudioQuality:
    """What the visit's capture runs lost, for the report. ``capture_losses``: times the microphone went away
    (also when it never came back: then no new run started); default, the runs after the first."""
    return feedback_pb2.AudioQuality(
        audio_s=round(sum(r.audio_seconds for r in runs), 1),
        speech_lost_s=round(sum(r.speech_seconds_lost for r in runs), 1),
        dropped_segments=sum(r.dropped_segments for r in runs),
        failed_segments=sum(r.discarded_by_reason.get("decode_failed", 0) for r in runs),
        dropped_frames=sum(r.dropped_frames for r in runs),
        capture_interruptions=max(0, len(runs) - 1) if capture_losses is None else capture_losses,
        speakers_uncertain=any(r.speakers_uncertain for r in runs),
        voiceprint_unheard=any(r.voiceprint_unheard for r in runs),
    )


def _shifted(u: Utterance, offset_s: float) -> Utterance:
    words = tuple(replace(w, t0=w.t0 + offset_s, t1=w.t1 + offset_s) for w in u.words)
    return replace(u, t0=u.t0 + offset_s, t1=u.t1 + offset_s, words=words)


def _voiceprint_of(ctx: VisitContext) -> Voiceprint | None:
    if ctx.voiceprint_bytes:
        return Voiceprint.from_bytes(ctx.voiceprint_bytes)  # read in place: ctx.wipe() zeroes it, a bytes copy would stay
    if ctx.voiceprint is not None and len(ctx.voiceprint):
        return Voiceprint._checked(np.asarray(ctx.voiceprint, np.float32), 0.0, 0.0, 0)
    return None


class PipelineEnroller:
    """EnrollVoice over gRPC: the voiceprint goes back to the phone, nothing is kept."""

    def __init__(self, session: TranscriptionSession) -> None:
        if session.speakers is None:
            raise ValueError("enrolment needs the speaker models: load the session with speakers=True")
        self.encoder = session.speakers.encoder

    @property
    def model_id(self) -> str:
        """The encoder the runner attributes with too (one session): a voiceprint from another one is stale."""
        return str(self.encoder.model_id)

    def enroll(self, pcm: np.ndarray, sample_rate: int) -> Sequence[float]:
        import soxr

        audio = np.multiply(pcm, np.float32(1 / 32768), dtype=np.float32)
        try:
            if sample_rate != SAMPLE_RATE:
                # asarray, not astype: a copy would leave soxr's array (the clinician's voice) unzeroed
                resampled = np.asarray(soxr.resample(audio, sample_rate, SAMPLE_RATE), dtype=np.float32)
                audio.fill(0)
                audio = resampled
            voiceprint = enrol(audio, self.encoder)
            try:
                return [float(v) for v in voiceprint.embedding]
            finally:
                voiceprint.wipe()  # the phone keeps the voiceprint; the device's array of it is zeroed, not just freed
        finally:
            audio.fill(0)
