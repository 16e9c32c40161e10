"""Capture -> VAD -> streaming ASR -> speakers, with raw audio confined to fixed pools.

Three threads, each with one job:

* the **caller's thread** reads the source and runs the (cheap) VAD;
* the **closer** takes each segment the VAD closes, turns it into the features
  the decoder and the speaker model need (Whisper log-mel, GE2E mel, a 10 ms
  energy envelope) and zeroes its raw audio at once. Raw-audio residency is
  therefore the closer's few tens of milliseconds, not the decoder's latency:
  a slow or loaded machine delays text, never the wipe;
* the **ASR worker** runs :class:`~edge_agent.asr.decoder.SegmentDecoder`:
  partials and committed sentences while a segment is open (reading its audio
  under the segment's lock, so the closer never zeroes a window mid-read),
  the final from the features once it closed, then speaker attribution.

Hand-offs are bounded: closed segments wait in a queue no longer than the
segment pool, features in a pool of their own, and only the newest partial
request per run is kept (older ones are counted as skipped). A live source
never blocks: with no free segment or feature buffer, speech is dropped and
counted (``dropped_segments``, metrics, the visit report's quality section).
A recording is read no faster than its closed segments can be turned into
features at once, so a slow decoder delays text, never the wipe, there too.
A decode that fails is retried on halves; failing again, the segment is
reported as a ``discarded`` event with reason ``decode_failed`` and counted in
``dropped_segments`` too. An
unexpected error anywhere in a worker is counted (``worker_errors``) and ends
the run with :class:`PipelineFault` after the audio is wiped: never a log line
the run survives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge_agent.asr.backend import AsrConfig, DecodedWord, Recognizer
from edge_agent.asr.decoder import Committed, DecoderConfig, SegmentDecoder, SegmentGoneError
from edge_agent.asr.events import FinalTranscript, PipelineEvent, SegmentDiscarded, SpeakerRelabel
from edge_agent.asr.whisper_ct2 import whisper_feature_shape
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.frames import AudioSource
from edge_agent.audio.pool import BufferPool, PooledBuffer
from edge_agent.audio.silero import SileroModel
from edge_agent.audio.vad import SegmentClosed, SegmentUpdate, SpeechSegment, VadConfig, VadSegmenter, speech_end_arrival
from edge_agent.device.ops.metrics import Registry
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.speakers.frontend import SpeakerFeatures
from edge_agent.transcript import Utterance, Word

log = logging.getLogger(__name__)

EventSink = Callable[[PipelineEvent], None]


class SpeakerSpan(Protocol):
    start: int  # samples within the segment
    stop: int
    speaker: str
    confidence: float
    entry: int  # the voice this span added to the visit's history (-1: none)
    voiceprint_similarity: float | None  # the span's cosine to the enrolled voiceprint (None: no voiceprint / no embedding)


class SpeakerStage(Protocol):
    """Attributes a stretch of speech from its features; keeps no audio."""

    def features(self, audio: np.ndarray) -> SpeakerFeatures: ...

    def attribute_segment(
        self, source: SpeakerFeatures, text: str = "", words: Sequence[tuple[str, float, float]] | None = None
    ) -> Sequence[SpeakerSpan]: ...

    def final_labels(self) -> list[tuple[str, float]]: ...

    def final_decision(self) -> tuple[list[tuple[str, float]], bool]: ...

    @property
    def voiceprint_unheard(self) -> bool: ...

    def open_watcher(self) -> ChangeWatcher: ...


class ChangeWatcher(Protocol):
    """Finds where another voice takes over in an open segment (sample offset), from its audio."""

    def feed(self, segment_id: int, length: int, window: Callable[[int, int], contextlib.AbstractContextManager[np.ndarray]]) -> int | None: ...

    def forget(self) -> None: ...


@dataclass(frozen=True)
class PipelineConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    frame_pool_s: float = 3.0  # raw int16 frames in flight (capture -> VAD)
    segment_buffers: int = 4  # float32 speech segments in flight (VAD -> closer); features get as many again
    partials: bool = True
    # live view: a partial at least every partial_max_gap_s of new speech (a stated cadence), more
    # often while partial_cpu_share of a core allows (docs/architecture.md has the measured cost)
    partial_max_gap_s: float = 1.5
    partial_min_step_s: float = 0.5
    partial_cpu_share: float = 0.0
    partial_cpu_burst_s: float = 0.5
    # a partial decodes at most this much audio (a tail past it: docs/realvoice.md 8); 0 = the whole window
    partial_window_s: float = 0.0

    def __post_init__(self) -> None:
        if self.segment_buffers < 2:
            raise ConfigError(
                f"pipeline.segment_buffers is {self.segment_buffers}; allowed: 2..64 (a split long turn needs a second buffer)"
            )
        # the VAD offers the decoder a partial only every vad.partial_interval_ms: a longer interval than the
        # stated cadence makes "a partial at least every partial_max_gap_s" false (live text every 4 s at 4000)
        if self.partials and self.vad.partial_interval_ms > self.partial_max_gap_s * 1000:
            raise ConfigError(
                f"vad.partial_interval_ms ({self.vad.partial_interval_ms}) must not exceed pipeline.partial_max_gap_s "
                f"({self.partial_max_gap_s:g} s): the live view gets a partial at least that often"
            )

    def decoder_config(self) -> DecoderConfig:
        return DecoderConfig(
            partials=self.partials, partial_max_gap_s=self.partial_max_gap_s, partial_min_step_s=self.partial_min_step_s,
            partial_cpu_share=self.partial_cpu_share, partial_cpu_burst_s=self.partial_cpu_burst_s,
            context_tokens=self.asr.context_tokens,
            partial_window_s=self.partial_window_s, partial_tail_s=min(2.0, self.partial_window_s / 2),
        )


@dataclass
class RunStats:
    segments: int = 0
    finals: int = 0  # segments that produced text
    utterances: int = 0  # final utterances emitted (a segment split at a speaker change gives several)
    discarded: int = 0
    discarded_by_reason: dict[str, int] = field(default_factory=dict)
    partial_decodes: int = 0
    partials_skipped: int = 0
    partials_over_budget: int = 0
    tail_partials: int = 0  # partials that decoded only a tail of their window (partial_window_s)
    partial_audio_s: float = 0.0  # seconds of audio the partial decodes covered
    partial_window_max_s: float = 0.0  # ... the longest one
    sentences_committed: int = 0
    candidate_decodes: int = 0
    candidate_reused: int = 0
    pause_commits: int = 0  # finals handed out at a pause inside a segment that went on (or closed later)
    decode_retries: int = 0
    failed_open_decodes: int = 0
    repeats_dropped: int = 0  # finals without the repeat of their last words Whisper invented (no audio under it)
    repeat_words_dropped: int = 0  # ... the words of those copies
    skips_recovered: int = 0  # finals decoded again without context because with it Whisper skipped speech
    stretches_filled: int = 0  # stretches of speech a final's decode skipped, decoded alone and put in
    # frames lost before the VAD: "capture_queue" (the source's queue was full), "frame_pool" (no free frame slot)
    dropped_frames_by_cause: dict[str, int] = field(default_factory=dict)
    # speech lost, any cause: no free segment or feature buffer, or a decode that failed twice (the causes are in
    # discarded_by_reason; the "summary still said dropped_segments: 0" must never recur)
    dropped_segments: int = 0
    worker_errors: int = 0
    residency_s: list[float] = field(default_factory=list)
    final_latency_s: list[float] = field(default_factory=list)
    first_partial_latency_s: list[float] = field(default_factory=list)
    audio_seconds: float = 0.0
    speech_seconds_lost: float = 0.0  # audio of dropped or failed segments
    speakers_uncertain: bool = False  # no voiceprint, and the two voices too alike to tell apart reliably
    voiceprint_unheard: bool = False  # a voiceprint, but its voice never heard: the final labels were decided without it

    @property
    def dropped_frames(self) -> int:
        return sum(self.dropped_frames_by_cause.values())

    def residency_max(self) -> float:
        return max(self.residency_s, default=0.0)

    def residency_p95(self) -> float:
        return float(np.percentile(self.residency_s, 95)) if self.residency_s else 0.0


class PipelineFault(EdgeAgentError):
    """A worker failed unexpectedly: the run ended (audio wiped); a bug, reported, never swallowed."""


class AudioPools:
    """The only memory that ever holds raw audio in this process, and the features made from it."""

    def __init__(self, cfg: PipelineConfig, feature_shape: tuple[int, int] | None = None) -> None:
        feature_shape = feature_shape or whisper_feature_shape(cfg.vad.segment_capacity, cfg.asr.pad_s)
        frames = max(8, int(cfg.frame_pool_s * 1000 / cfg.vad.frame_ms))
        self.frames = BufferPool("frames", frames, cfg.vad.frame_samples, np.int16)
        self.segments = BufferPool("segments", cfg.segment_buffers, cfg.vad.segment_capacity, np.float32)
        self.feature_shape = feature_shape
        self.features = BufferPool("features", cfg.segment_buffers + 2, feature_shape[0] * feature_shape[1], np.float32)

    def all_zero(self) -> bool:
        return self.frames.all_zero() and self.segments.all_zero() and self.features.all_zero()

    def in_use(self) -> int:
        return self.frames.in_use() + self.segments.in_use() + self.features.in_use()

    def wipe(self) -> None:
        self.frames.wipe()
        self.segments.wipe()
        self.features.wipe()


class _SegmentAccess:
    """Reads of an open segment's audio, excluded from the closer's zeroing by one lock per segment."""

    def __init__(self) -> None:
        self._locks: dict[int, threading.Lock] = {}
        self._closed: set[int] = set()
        self._guard = threading.Lock()

    def lock_of(self, seg_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(seg_id, threading.Lock())

    @contextlib.contextmanager
    def window(self, seg: SpeechSegment, start: int, stop: int) -> Iterator[np.ndarray]:
        with self.lock_of(seg.id):
            if seg.id in self._closed:
                raise SegmentGoneError
            view = seg.buf.data[start:stop]
            view.flags.writeable = False
            try:
                yield view
            finally:
                view.flags.writeable = True

    @contextlib.contextmanager
    def closing(self, seg_id: int) -> Iterator[None]:
        with self.lock_of(seg_id):
            self._closed.add(seg_id)
            yield
        with self._guard:
            self._locks.pop(seg_id, None)


@dataclass
class _Closed:
    """A closed segment after the closer: raw audio already zeroed."""

    seg_id: int
    start_sample: int
    n_samples: int
    residency_s: float
    speech_end: float
    is_speech: bool
    features: PooledBuffer | None = None
    n_frames: int = 0  # feature frames used in ``features``
    speaker: SpeakerFeatures | None = None
    reason: str = ""  # why it gives no text, when it cannot ("too_little_speech", "no_buffer")

    @property
    def t0(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def t1(self) -> float:
        return (self.start_sample + self.n_samples) / SAMPLE_RATE

    def release(self) -> None:
        if self.features is not None:
            self.features.release()
            self.features = None
        if self.speaker is not None:
            self.speaker.wipe()
            self.speaker = None


class StreamingPipeline:
    def __init__(
        self,
        cfg: PipelineConfig,
        recognizer: Recognizer,
        sink: EventSink,
        speakers: SpeakerStage | None = None,
        pools: AudioPools | None = None,
        stop: threading.Event | None = None,
        metrics: Registry | None = None,
        max_segment_samples: int | None = None,
        vad_model: SileroModel | None = None,
    ) -> None:
        limit = max_segment_samples if max_segment_samples is not None else cfg.vad.segment_capacity
        if cfg.vad.segment_capacity > limit:
            raise ConfigError(
                f"vad.max_segment_s {cfg.vad.max_segment_s} s is longer than the recogniser was sized for at start-up; "
                "it changes only with a restart (systemctl restart edge-agent)"
            )
        self.cfg = cfg
        self.asr = recognizer
        self.sink = sink
        self.speakers = speakers
        self.vad_model = vad_model  # Silero, loaded once per process (engines "silero", "hybrid"); None: the segmenter opens it
        self.pools = pools or AudioPools(cfg, recognizer.feature_shape(cfg.vad.segment_capacity))
        self.metrics = metrics
        self.stats = RunStats()
        self.decoder = SegmentDecoder(recognizer, cfg.decoder_config())
        self._access = _SegmentAccess()
        self._cond = threading.Condition()
        self._closed: queue.Queue[SegmentClosed | None] = queue.Queue()
        self._finals: list[_Closed] = []
        self._update: SegmentUpdate | None = None  # newest partial request
        self._candidate: SegmentUpdate | None = None  # newest look-ahead request (a final at a pause)
        self._capture_done = False
        self._closer_done = False
        self._stop = stop or threading.Event()
        self._fault: BaseException | None = None
        self._waiting_commits: dict[int, list[Committed]] = {}
        self._live = True
        self._vad: VadSegmenter | None = None
        self._watcher: ChangeWatcher | None = None
        # which emitted utterances each speaker-history entry labelled (ids and times only, no text)
        self._emitted: list[tuple[int, int, float, str, float]] = []  # (entry, segment id, t0, speaker, confidence)

    # -- control ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the capture loop to end; pending segments are still finalised."""
        self._stop.set()

    def run(self, source: AudioSource) -> RunStats:
        """Stream ``source`` to the end (or until stop()); blocks until done.

        Raises :class:`PipelineFault` if a worker failed (after every buffer was zeroed).
        """
        vad = VadSegmenter(self.cfg.vad, self.pools.segments, block_when_full=not source.live, silero=self.vad_model)
        self._vad = vad
        self._watcher = self.speakers.open_watcher() if self.speakers is not None else None
        self._live = source.live
        closer = threading.Thread(target=self._guarded, args=(self._close_loop,), name="segment-closer", daemon=True)
        worker = threading.Thread(target=self._guarded, args=(self._work_loop,), name="asr-worker", daemon=True)
        closer.start()
        worker.start()
        frames_seen = 0
        try:
            for frame in source.frames(self.pools.frames):
                frames_seen += 1
                if self._stop.is_set() or self._fault is not None:
                    frame.release()
                    break
                for event in vad.process(frame):
                    self._hand_off(event)
                if not source.live:
                    self._wait_for_features()
        finally:
            try:
                for event in vad.flush():
                    self._hand_off(event)
            finally:
                self._closed.put(None)
                closer.join()
                self._zero_unclosed()  # only a failed closer leaves any
                with self._cond:
                    self._capture_done = True
                    self._cond.notify_all()
                worker.join()
                if self._fault is not None:
                    # segments the closer finished after the fault (the VAD's flush) wait for a worker that is
                    # gone: their features are zeroed here, not left in the pool
                    self._drain_after_fault()
                # a faulted run's report still covers the audio before the fault: on final labels too
                self._relabel_after_run()
                stop_source = getattr(source, "stop", None)
                if callable(stop_source):
                    stop_source()
                source.close()
                self._finish_stats(source, vad, frames_seen)
        if self._fault is not None:
            raise PipelineFault(f"speech pipeline stopped by an internal error ({type(self._fault).__name__}); the audio was wiped")
        return self.stats

    def _wait_for_features(self) -> None:
        """A recording is read no faster than its closed segments can be turned into features at once.

        Read ahead of the decoder, closed segments waited (their raw audio in the pool) for a feature
        buffer the decoder still held: residency grew with the decoder's backlog (1.2-1.3 s on real
        continuous speech). A microphone is never held back: there speech without a buffer is dropped
        and counted.
        """
        while self._fault is None and not self._stop.is_set():
            if self.pools.features.wait_free(self._closed.qsize() + 1, timeout=0.1):
                return

    def vad_holds_audio(self) -> bool:
        """True if the run's segmenter still holds audio (pre-roll frames, the Silero scorer's buffers)."""
        return self._vad is not None and self._vad.holds_audio()

    def _relabel_after_run(self) -> None:
        if self._fault is None:
            self._relabel()
            return
        try:
            self._relabel()
        except Exception as exc:  # noqa: BLE001 - the run already failed (counted, raised by run()); say what else is lost
            log.error("speaker labels could not be decided again after the worker fault (%s); the report keeps the live ones",
                      type(exc))

    def _relabel(self) -> None:
        """Give every final its speaker and confidence as decided with the whole run's evidence (see SpeakerRelabel).

        A final whose label stays gets a relabel too when its confidence moves (``changed=False``): the report
        decides on final labels *and* final confidences (what it may quote rests on them, docs/privacy.md §4b).
        """
        if self.speakers is None or not self._emitted:
            return
        final, self.stats.speakers_uncertain = self.speakers.final_decision()
        self.stats.voiceprint_unheard = self.speakers.voiceprint_unheard
        for entry, seg_id, t0, speaker, confidence in self._emitted:
            if not 0 <= entry < len(final):
                continue
            label, conf = final[entry]
            if label != speaker or round(conf, 4) != round(confidence, 4):
                self.sink(SpeakerRelabel(seg_id, t0, label, conf, changed=label != speaker))
        self._emitted.clear()

    def _finish_stats(self, source: AudioSource, vad: VadSegmenter, frames_seen: int) -> None:
        st = self.stats
        st.dropped_segments += vad.dropped_segments
        st.speech_seconds_lost += vad.dropped_samples / SAMPLE_RATE
        st.dropped_frames_by_cause = {
            "capture_queue": int(source.dropped_frames),
            "frame_pool": self.pools.frames.exhausted_count,
        }
        st.audio_seconds = frames_seen * self.cfg.vad.frame_ms / 1000.0
        ds = self.decoder.stats
        st.partial_decodes, st.partials_over_budget = ds.partial_decodes, ds.partials_over_budget
        st.sentences_committed, st.candidate_decodes, st.candidate_reused = ds.sentences_committed, ds.candidate_decodes, ds.candidate_reused
        st.pause_commits = ds.pause_commits
        st.tail_partials, st.partial_audio_s, st.partial_window_max_s = ds.tail_partials, ds.partial_audio_s, ds.partial_window_max_s
        st.decode_retries, st.failed_open_decodes = ds.retried, ds.failed_open_decodes
        st.repeats_dropped, st.repeat_words_dropped = ds.repeats_dropped, ds.repeat_words_dropped
        st.skips_recovered, st.stretches_filled = ds.skips_recovered, ds.stretches_filled
        self.decoder.forget()
        self._waiting_commits.clear()
        if self._watcher is not None:
            self._watcher.forget()
        log.info(
            "audio run ended: segments=%d utterances=%d residency_max_s=%.3f residency_p95_s=%.3f dropped_frames=%d "
            "dropped_segments=%d discarded=%d partials_skipped=%d partials_budgeted=%d failed_open_decodes=%d worker_errors=%d "
            "repeats_dropped=%d skips_recovered=%d stretches_filled=%d",
            st.segments, st.utterances, st.residency_max(), st.residency_p95(), st.dropped_frames,
            st.dropped_segments, st.discarded, st.partials_skipped, st.partials_over_budget, st.failed_open_decodes, st.worker_errors,
            st.repeats_dropped, st.skips_recovered, st.stretches_filled,
        )

    def _guarded(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - recorded, counted and re-raised by run() as PipelineFault
            self.stats.worker_errors += 1
            if self.metrics is not None:
                self.metrics.inc("edge_agent_worker_errors_total")
            log.error("speech pipeline worker failed: %s", type(exc), exc_info=os.environ.get("EDGE_AGENT_DEBUG_TRACE") == "1")
            self._fault = exc
            self._stop.set()
            with self._cond:
                self._capture_done = True
                self._closer_done = True
                self._cond.notify_all()
            self._drain_after_fault()

    def _drain_after_fault(self) -> None:
        """Zero everything still held so a fault never leaves audio behind."""
        with self._cond:
            pending, self._finals = self._finals, []
        for job in pending:
            job.release()

    # -- capture thread ---------------------------------------------------------------------------------

    def _hand_off(self, event: SegmentUpdate | SegmentClosed) -> None:
        if isinstance(event, SegmentClosed):
            self._closed.put(event)
            self._gauge_queue()
            return
        if not self.decoder.wants_update(event.segment.id, event.length, event.final_candidate):
            return
        with self._cond:
            # a look-ahead (the final at a pause) never gives way to a partial request
            if event.final_candidate:
                self._candidate = event
            else:
                if self._update is not None:
                    self.stats.partials_skipped += 1
                self._update = event
            self._cond.notify()

    # -- closer thread ----------------------------------------------------------------------------------

    def _close_loop(self) -> None:
        while True:
            event = self._closed.get()
            if event is None:
                break
            job = self._close(event)
            with self._cond:
                self._finals.append(job)
                if self._update is not None and self._update.segment.id == job.seg_id:
                    self._update = None  # the final covers it
                if self._candidate is not None and self._candidate.segment.id == job.seg_id:
                    self._candidate = None
                self._cond.notify_all()
        with self._cond:
            self._closer_done = True
            self._cond.notify_all()

    def _close(self, event: SegmentClosed) -> _Closed:
        """Features out, raw audio zeroed: everything a closed segment needs, in tens of milliseconds."""
        seg = event.segment
        with self._access.closing(seg.id):
            job = _Closed(seg.id, seg.start_sample, seg.length, 0.0, speech_end_arrival(seg), event.is_speech)
            try:
                if not event.is_speech:
                    job.reason = "too_little_speech"
                    return job
                # A recording waits for the decoder; a microphone cannot: with every feature buffer
                # still queued for the decoder, this speech is lost and counted (never held unbounded)
                slot = self.pools.features.acquire(block=not self._live)
                if slot is None:
                    job.reason = "no_buffer"
                    return job
                job.features = slot
                bins, frames = self.pools.feature_shape
                audio = seg.audio
                job.n_frames = self.asr.features(audio, slot.data.reshape(bins, frames)).shape[1]
                if self.speakers is not None:
                    job.speaker = self.speakers.features(audio)
                return job
            except BaseException:
                job.release()  # the features taken before the failure: nobody else will hold this job
                raise
            finally:
                seg.buf.release()  # raw audio ends here
                job.residency_s = self._resided(seg)

    def _resided(self, seg: SpeechSegment) -> float:
        """Record the residency of a segment whose buffer was just zeroed: from the arrival of its last *kept*
        sample (a split's carry and a silence close's trimmed hang-over arrived later and were moved or zeroed
        at the close), so a segment cut by a max-length split is not shown younger than its audio."""
        resided = time.monotonic() - speech_end_arrival(seg)
        self.stats.residency_s.append(resided)
        if self.metrics is not None:
            self.metrics.observe("edge_agent_residency_seconds", resided)
        return resided

    def _zero_unclosed(self) -> None:
        """Segments the VAD handed to a closer that failed: zero their raw audio here, measure it, count it lost.

        Without this they waited, raw, for the end-of-run pool wipe (an ALARM, residency never recorded)."""
        while True:
            try:
                event = self._closed.get_nowait()
            except queue.Empty:
                return
            if event is None:
                continue
            seg = event.segment
            with self._access.closing(seg.id):
                seg.buf.release()
            self._resided(seg)
            self.stats.dropped_segments += 1
            self.stats.speech_seconds_lost += seg.length / SAMPLE_RATE

    # -- worker thread -----------------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._finals or self._candidate is not None or self._update is not None
                                    or (self._capture_done and self._closer_done))
                job = self._take_job()
                if job is None:
                    return
            if isinstance(job, _Closed):
                try:
                    self._finalise(job)
                finally:
                    job.release()
            else:
                self._decode_open(job)

    def _take_job(self) -> _Closed | SegmentUpdate | None:
        """The worker's next job (called holding ``_cond``): closed segments first, then the
        look-ahead at a pause (it becomes a final), then the newest partial request."""
        if self._finals:
            job: _Closed | SegmentUpdate = self._finals.pop(0)
            self._gauge_queue()
            return job
        if self._candidate is not None:
            job, self._candidate = self._candidate, None
            return job
        if self._update is not None:
            job, self._update = self._update, None
            return job
        return None

    def _decode_open(self, update: SegmentUpdate) -> None:
        seg = update.segment

        @contextlib.contextmanager
        def window(start: int, stop: int) -> Iterator[np.ndarray]:
            with self._access.window(seg, start, stop) as view:
                yield view

        failed_before = self.decoder.stats.failed_open_decodes
        try:
            committed, partial = self.decoder.on_update(
                seg.id, seg.t0, update.length, update.final_candidate, window,
                seg.start_sample + update.length, seg.onset_arrival,
            )
        except SegmentGoneError:
            return
        finally:
            # absorbed by the decoder (the final covers the audio), never silently: counted where operators look
            if self.metrics is not None and self.decoder.stats.failed_open_decodes > failed_before:
                self.metrics.inc("edge_agent_failed_open_decodes_total", self.decoder.stats.failed_open_decodes - failed_before)
        for piece in committed:
            self._emit_committed(seg, piece)
        self._watch_speakers(seg, update.length, window)
        if partial is not None:
            if partial.onset_latency_s is not None:
                self.stats.first_partial_latency_s.append(partial.onset_latency_s)
            self.sink(partial)

    def _watch_speakers(self, seg: SpeechSegment, length: int, window: Callable[[int, int], contextlib.AbstractContextManager[np.ndarray]]) -> None:
        """Close the open segment where another voice takes over, so its final need not wait for a pause."""
        if self._watcher is None or self._vad is None:
            return
        try:
            point = self._watcher.feed(seg.id, length, window)
        except SegmentGoneError:
            return
        # a change inside audio whose text is final already was attributed with that piece
        if point is not None and point > self.decoder.committed_until(seg.id):
            self._vad.request_split(seg.id, point)

    def _emit_committed(self, seg: SpeechSegment, piece: Committed) -> None:
        """A sentence finalised inside an open segment: attribute it from its own audio now, if still there."""
        speaker = None
        if self.speakers is not None:
            try:
                with self._access.window(seg, piece.start, piece.stop) as view:
                    speaker = self.speakers.features(view)
            except SegmentGoneError:
                self._waiting_commits.setdefault(seg.id, []).append(piece)  # attributed from the closed segment's features
                return
        try:
            latency = time.monotonic() - (seg.last_arrival - (seg.received - piece.stop) / SAMPLE_RATE)
            self._emit(seg.id, seg.start_sample + piece.start, piece.decoded.text, piece.words, speaker, 0.0, latency)
        finally:
            if speaker is not None:
                speaker.wipe()

    def _finalise(self, job: _Closed) -> None:
        self.stats.segments += 1
        if self.metrics is not None:
            self.metrics.inc("edge_agent_segments_total")
        waiting = self._waiting_commits.pop(job.seg_id, [])
        for piece in waiting:
            part = _piece_speaker(job.speaker, piece.start, piece.stop, job.n_samples)
            self._emit(job.seg_id, job.start_sample + piece.start, piece.decoded.text, piece.words, part, job.residency_s,
                       time.monotonic() - job.speech_end)
        if job.reason:
            if job.reason == "no_buffer":
                self.stats.dropped_segments += 1
                self.stats.speech_seconds_lost += job.n_samples / SAMPLE_RATE
                log.warning("speech dropped: no feature buffer free (ASR behind real time)")
            # its own reason: a segment lost for want of a buffer was never decoded (counted in dropped_segments
            # once, and not as a failed decode in the report's quality section)
            self._discard(job, job.reason)
            self.decoder.on_closed_without_text(job.seg_id)
            return
        assert job.features is not None
        bins, frames = self.pools.feature_shape
        feats = job.features.data.reshape(bins, frames)[:, : job.n_frames]
        try:
            final = self.decoder.on_closed(job.seg_id, feats, job.n_samples, job.start_sample)
        except Exception as exc:  # noqa: BLE001 - the retry on halves failed too: visible, counted, never silent
            log.error("final decode failed twice (%s); segment reported as discarded", type(exc))
            self.stats.dropped_segments += 1
            self.stats.speech_seconds_lost += job.n_samples / SAMPLE_RATE
            self._discard(job, "decode_failed")
            return
        for a, b in final.lost:  # a half the retry could not decode either: lost and reported, the rest kept
            t0 = (job.start_sample + final.start + a) / SAMPLE_RATE
            self.stats.dropped_segments += 1
            self.stats.speech_seconds_lost += (b - a) / SAMPLE_RATE
            log.error("a half of a segment failed to decode twice; reported as discarded, the other half kept")
            self._discard(job, "decode_failed", t0, t0 + (b - a) / SAMPLE_RATE)
        if final.decoded.rejected == "committed":
            return  # every word of this segment went out in committed pieces
        if not final.decoded.text:
            if not final.lost:  # what decoded of a partly lost segment was silence: the loss is the report
                self._discard(job, final.decoded.rejected or "empty")
            return
        part = _slice_speaker(job.speaker, final.start, job.n_samples) if final.start else job.speaker
        self._emit(job.seg_id, job.start_sample + final.start, final.decoded.text, final.words, part, job.residency_s,
                   time.monotonic() - job.speech_end)
        if part is not job.speaker and part is not None:
            part.wipe()

    def _emit(
        self, seg_id: int, start_sample: int, text: str, words: list[DecodedWord], speaker: SpeakerFeatures | None,
        residency: float, latency: float,
    ) -> None:
        spans = self._attribute(speaker, text, words)
        self.stats.finals += 1
        self.stats.final_latency_s.append(latency)
        if self.metrics is not None:
            self.metrics.observe("edge_agent_final_latency_seconds", latency)
        for utterance, entry in _utterances(seg_id, start_sample / SAMPLE_RATE, text, words, spans):
            self._emitted.append((entry, seg_id, round(utterance.t0, 3), utterance.speaker, utterance.speaker_confidence))
            self.stats.utterances += 1
            if self.metrics is not None:
                self.metrics.inc("edge_agent_utterances_total")
            self.sink(FinalTranscript(utterance, residency, latency))

    def _attribute(self, speaker: SpeakerFeatures | None, text: str, words: list[DecodedWord]) -> list[_Span]:
        """Speaker spans (seconds within the piece) with their history entry and voiceprint similarity."""
        if self.speakers is None or speaker is None:
            end = words[-1].end if words else 0.0
            return [(0.0, end, "unknown", 0.0, -1, None)]
        spans = self.speakers.attribute_segment(speaker, text, [(w.text, w.start, w.end) for w in words])
        return [(s.start / SAMPLE_RATE, s.stop / SAMPLE_RATE, s.speaker, s.confidence, s.entry, s.voiceprint_similarity)
                for s in spans]

    def _gauge_queue(self) -> None:
        if self.metrics is not None:
            self.metrics.set("edge_agent_queue_depth", self._closed.qsize() + len(self._finals))

    def _discard(self, job: _Closed, reason: str, t0: float | None = None, t1: float | None = None) -> None:
        """Report that ``job`` (or its part ``t0``..``t1``) gives no text."""
        self.stats.discarded += 1
        self.stats.discarded_by_reason[reason] = self.stats.discarded_by_reason.get(reason, 0) + 1
        if self.metrics is not None:
            self.metrics.inc("edge_agent_discarded_segments_total", reason=reason)
        self.sink(SegmentDiscarded(job.seg_id, job.t0 if t0 is None else t0, job.t1 if t1 is None else t1, reason, job.residency_s))


def _piece_speaker(feats: SpeakerFeatures | None, start: int, stop: int, n_samples: int) -> SpeakerFeatures | None:
    """The features of a piece committed while its segment was open, from the closed segment's.

    The piece can reach past the segment's end: its text was committed at a pause, and the
    VAD then split the segment a little before that point (the rest went to the next
    segment). Only audio the segment holds is described (its features are padded one
    partial window past its end, no further); a piece that lies wholly past the end is
    described by the segment's last quarter second, the speech it continues.
    """
    stop = min(stop, n_samples)
    start = max(0, min(start, stop - SAMPLE_RATE // 4))
    return _slice_speaker(feats, start, stop)


def _slice_speaker(feats: SpeakerFeatures | None, start: int, stop: int) -> SpeakerFeatures | None:
    """The features of part of a closed segment (views; windows past ``stop`` see the audio after it)."""
    if feats is None:
        return None
    from edge_agent.speakers.frontend import ENERGY_HOP, HOP

    return SpeakerFeatures(feats.mel[start // HOP :], feats.energy[start // ENERGY_HOP : stop // ENERGY_HOP], stop - start)


# a speaker span of a piece: (start s, stop s, speaker, confidence, history entry, voiceprint similarity)
_Span = tuple[float, float, str, float, int, float | None]


def _utterances(
    seg_id: int, offset: float, text: str, words: list[DecodedWord], spans: list[_Span]
) -> list[tuple[Utterance, int]]:
    """One utterance per speaker span, with the span's history entry; a word belongs to the span
    holding its middle (a word's start is often early at a change of speaker)."""
    if len(spans) <= 1 or not words:
        speaker, confidence, entry, similarity = spans[0][2:6] if spans else ("unknown", 0.0, -1, None)
        return [(
            Utterance(
                t0=offset + (words[0].start if words else 0.0),
                t1=offset + (words[-1].end if words else 0.0),
                text=text,
                words=tuple(Word(w.text, offset + w.start, offset + w.end, w.probability) for w in words),
                speaker=speaker,
                speaker_confidence=confidence,
                segment_id=seg_id,
                voiceprint_similarity=similarity,
            ),
            entry,
        )]
    out = []
    for i, (start, stop, speaker, confidence, entry, similarity) in enumerate(spans):
        last = i == len(spans) - 1
        part = [w for w in words if start <= (w.start + w.end) / 2 < stop or (last and (w.start + w.end) / 2 >= stop) or (i == 0 and (w.start + w.end) / 2 < start)]
        if not part:
            continue
        out.append((
            Utterance(
                t0=offset + part[0].start,
                t1=offset + part[-1].end,
                text=" ".join(w.text for w in part),
                words=tuple(Word(w.text, offset + w.start, offset + w.end, w.probability) for w in part),
                speaker=speaker,
                speaker_confidence=confidence,
                segment_id=seg_id,
                voiceprint_similarity=similarity,
            ),
            entry,
        ))
    return out
