"""Capture -> VAD -> streaming ASR -> speakers, with raw audio confined to fixed pools.

Three threads, each with one job:

* the **caller's thread** reads the source, runs the (cheap) VAD and turns the
  audio into features as it arrives (:mod:`edge_agent.audio.featurize`: the
  Whisper log-mel before its per-window normalisation, the GE2E mel, a 10 ms
  energy envelope, every 0.1 s of audio), zeroing each raw sample once no
  feature needs it. Raw-audio residency is therefore about a chunk plus the
  STFT overlap (docs/architecture.md "Residency"), whatever the decoder does:
  a slow or loaded machine delays text, never the wipe. When the VAD closes a
  segment, its feature frames are copied from the stream's ring into a store
  of its own;
* the **closer** finishes each closed segment's store (Whisper's
  normalisation over the segment, the speaker features' volume gain);
* the **ASR worker** runs :class:`~edge_agent.asr.decoder.SegmentDecoder`:
  partials and committed sentences while a segment is open (reading its
  *features* from the ring under the segment's lock), the final from the
  closed segment's store, then speaker attribution. Nothing downstream of
  the featurizer ever reads audio.

Hand-offs are bounded: features live in the ring (the open segment) and a pool
of closed-segment stores, and only the newest partial request per run is kept
(older ones are counted as skipped). A live source never blocks: with no free
store for a closed segment, its speech is dropped and counted
(``dropped_segments``, metrics, the visit report's quality section). A
recording is read no faster than its closed segments find a store; before it
waits, the featurizer finishes the stream as if silence followed, so no raw
sample waits with it.
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
from edge_agent.audio.featurize import (
    SPEAKER_PAD_FRAMES,
    FeatureLayout,
    FrameRows,
    RowsView,
    StreamFeaturizer,
    normalise_log_mel,
    volume_gain,
    window_rows,
)
from edge_agent.audio.frames import AudioSource
from edge_agent.audio.pool import BufferPool, PooledBuffer
from edge_agent.audio.silero import SileroModel
from edge_agent.audio.speaker_frontend import SpeakerFeatures, mel_filterbank
from edge_agent.audio.stft import HOP
from edge_agent.audio.vad import SegmentClosed, SegmentUpdate, SpeechSegment, VadConfig, VadSegmenter, speech_end_arrival
from edge_agent.device.ops.metrics import Registry
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.hardening import locked_zeros
from edge_agent.transcript import Utterance, Word

log = logging.getLogger(__name__)

EventSink = Callable[[PipelineEvent], None]
FEATURE_CHUNK_S = 0.1  # raw audio is turned into features (and zeroed) at least this often
PARTIAL_PAD = SPEAKER_PAD_FRAMES * HOP  # a closed segment's GE2E mel runs one encoder window past its end


class SpeakerSpan(Protocol):
    start: int  # samples within the segment
    stop: int
    speaker: str
    confidence: float
    entry: int  # the voice this span added to the visit's history (-1: none)
    voiceprint_similarity: float | None  # the span's cosine to the enrolled voiceprint (None: no voiceprint / no embedding)


class SpeakerStage(Protocol):
    """Attributes a stretch of speech from its features; keeps no audio."""

    def attribute_segment(
        self, source: SpeakerFeatures, text: str = "", words: Sequence[tuple[str, float, float]] | None = None
    ) -> Sequence[SpeakerSpan]: ...

    def final_labels(self) -> list[tuple[str, float]]: ...

    def final_decision(self) -> tuple[list[tuple[str, float]], bool]: ...

    @property
    def voiceprint_unheard(self) -> bool: ...

    def open_watcher(self) -> ChangeWatcher: ...


SpeakerWindow = Callable[[int, int], contextlib.AbstractContextManager[SpeakerFeatures]]


class ChangeWatcher(Protocol):
    """Finds where another voice takes over in an open segment (sample offset), from its speaker features."""

    def feed(self, segment_id: int, length: int, window: SpeakerWindow) -> int | None: ...

    def forget(self) -> None: ...


@dataclass(frozen=True)
class PipelineConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    frame_pool_s: float = 3.0  # raw int16 frames in flight (capture -> VAD)
    segment_buffers: int = 4  # closed segments' feature stores in flight (VAD -> decoder), plus two
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
                f"pipeline.segment_buffers is {self.segment_buffers}; allowed: 2..64 (closed segments wait here for the decoder)"
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
    residency_s: list[float] = field(default_factory=list)  # per segment: the oldest raw sample's age when zeroed
    raw_residency_max_s: float = 0.0  # ... over every raw sample of the run, between segments too
    feature_seals: int = 0  # times the stream was finished early so that no raw sample waited (a recording's backlog)
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
        return max(max(self.residency_s, default=0.0), self.raw_residency_max_s)

    def residency_p95(self) -> float:
        return float(np.percentile(self.residency_s, 95)) if self.residency_s else 0.0


class PipelineFault(EdgeAgentError):
    """A worker failed unexpectedly: the run ended (audio wiped); a bug, reported, never swallowed."""


class AudioPools:
    """The only memory that ever holds raw audio in this process (capture frames), and the features made from it."""

    def __init__(self, cfg: PipelineConfig, feature_shape: tuple[int, int] | None = None) -> None:
        feature_shape = feature_shape or whisper_feature_shape(cfg.vad.segment_capacity, cfg.asr.pad_s)
        frames = max(8, int(cfg.frame_pool_s * 1000 / cfg.vad.frame_ms))
        self.frames = BufferPool("frames", frames, cfg.vad.frame_samples, np.int16)
        capacity = cfg.vad.segment_capacity
        # the stream's feature ring holds the open segment (at most its capacity) and what the featurizer
        # computed past it before the VAD's next decision: never overwritten while a reader may need it
        self.ring_frames = capacity // HOP + int(FEATURE_CHUNK_S * SAMPLE_RATE) // HOP + 64
        self.segments = BufferPool("segments", 1, FeatureLayout.ring(self.ring_frames).slot_len, np.float32)
        self.feature_shape = feature_shape
        self.layout = FeatureLayout(feature_shape[1], FeatureLayout.segment(capacity, 0).speaker_frames, capacity // HOP + 1)
        self.features = BufferPool("features", cfg.segment_buffers + 2, self.layout.slot_len, np.float32)

    def all_zero(self) -> bool:
        return self.frames.all_zero() and self.segments.all_zero() and self.features.all_zero()

    def in_use(self) -> int:
        return self.frames.in_use() + self.segments.in_use() + self.features.in_use()

    def wipe(self) -> None:
        self.frames.wipe()
        self.segments.wipe()
        self.features.wipe()


class _SegmentAccess:
    """Reads of an open segment's features, excluded from its close by one lock per segment."""

    def __init__(self) -> None:
        self._locks: dict[int, threading.Lock] = {}
        self._closed: set[int] = set()
        self._guard = threading.Lock()

    def lock_of(self, seg_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(seg_id, threading.Lock())

    @contextlib.contextmanager
    def reading(self, seg: SpeechSegment) -> Iterator[None]:
        with self.lock_of(seg.id):
            if seg.id in self._closed:
                raise SegmentGoneError
            yield

    @contextlib.contextmanager
    def closing(self, seg_id: int) -> Iterator[None]:
        with self.lock_of(seg_id):
            self._closed.add(seg_id)
            yield
        with self._guard:
            self._locks.pop(seg_id, None)


class _OpenView(RowsView):
    """An open segment's features in the stream's ring, each read under the segment's lock (a closed one is gone)."""

    def __init__(self, pipeline: StreamingPipeline, seg: SpeechSegment) -> None:
        super().__init__(pipeline._rows(), seg.start_sample, pipeline.asr.window_pad, pipeline._window_scratch)
        self._access = pipeline._access
        self._seg = seg

    def features(self, start: int, stop: int, final: bool) -> np.ndarray:
        with self._access.reading(self._seg):
            return super().features(start, stop, final)

    def energy(self, start: int, stop: int) -> np.ndarray:
        with self._access.reading(self._seg):
            return super().energy(start, stop)

    def speaker(self, start: int, stop: int) -> SpeakerFeatures:
        """Speaker features of ``start:stop`` (gain over the span, as for a segment of its own); the caller wipes them."""
        with self._access.reading(self._seg):
            return super().speaker(start, stop)


@dataclass
class _Stored:
    """A closed segment's feature frames, copied out of the ring by the capture thread (not yet normalised)."""

    event: SegmentClosed
    store: PooledBuffer | None
    whisper_frames: int  # Whisper rows of the segment's decode window (its audio and silence pad), not normalised
    frames: int  # GE2E frames copied (centred inside the segment)
    residency_s: float


@dataclass
class _Closed:
    """A closed segment after the closer: its features in a store of its own (no audio anywhere)."""

    seg_id: int
    start_sample: int
    n_samples: int
    residency_s: float
    speech_end: float
    is_speech: bool
    features: PooledBuffer | None = None
    n_frames: int = 0  # decoder feature frames (audio and its silence pad)
    whisper: np.ndarray | None = None  # (bins, n_frames) view into ``features``
    speaker: SpeakerFeatures | None = None
    reason: str = ""  # why it gives no text, when it cannot ("too_little_speech", "no_buffer")

    @property
    def t0(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def t1(self) -> float:
        return (self.start_sample + self.n_samples) / SAMPLE_RATE

    def release(self) -> None:
        if self.speaker is not None:
            self.speaker.wipe()
            self.speaker = None
        self.whisper = None
        if self.features is not None:
            self.features.release()
            self.features = None


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
        self._closed: queue.Queue[_Stored | None] = queue.Queue()
        self._featurizer: StreamFeaturizer | None = None
        self._ring: PooledBuffer | None = None
        # one decode window's features at a time (the worker's); locked, zeroed by the decoder after each decode
        self._window_scratch = locked_zeros((self.pools.feature_shape[1], self.pools.feature_shape[0]), np.float32)
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
        ring = self.pools.segments.acquire()
        if ring is None:
            raise ConfigError("the audio pools are in use by another run")  # one run per pipeline at a time
        self._ring = ring
        featurizer = StreamFeaturizer(self.asr.mel_filters, mel_filterbank(), ring.data, self.pools.ring_frames,
                                      int(FEATURE_CHUNK_S * SAMPLE_RATE), self.cfg.vad.frame_samples)
        self._featurizer = featurizer
        vad = VadSegmenter(self.cfg.vad, featurizer, silero=self.vad_model)
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
                featurizer.seal()  # also after a failure: no raw sample outlives the run
                featurizer.wipe()
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
                self._window_scratch.fill(0.0)
                ring.release()  # the stream's features: zeroed
        if self._fault is not None:
            raise PipelineFault(f"speech pipeline stopped by an internal error ({type(self._fault).__name__}); the audio was wiped")
        return self.stats

    def _wait_for_features(self) -> None:
        """A recording is read no faster than its closed segments find a feature store.

        One frame can close two segments (a speaker-change split, then a max-length one), so two
        stores are kept free. Before waiting for the decoder to free one, the featurizer finishes the
        stream as if silence followed (a seam like a segment's edge), so no raw sample waits with us.
        The wait is taken in a pause where one comes: mid-speech the reader goes on while one store
        is free (the open segment needs none until it closes). A microphone is never held back:
        there speech without a store is dropped and counted.
        """
        features, vad = self.pools.features, self._vad
        if features.wait_free(2, timeout=0) or self._featurizer is None or vad is None:
            return
        if vad.mid_speech and features.wait_free(1, timeout=0):
            return
        self._featurizer.seal()
        self.stats.feature_seals += 1
        while self._fault is None and not self._stop.is_set():
            if features.wait_free(2, timeout=0.1):
                return

    def _rows(self) -> FrameRows:
        assert self._featurizer is not None
        return self._featurizer.rows

    def vad_holds_audio(self) -> bool:
        """True if the run's segmenter still holds audio (the featurizer's carry, the Silero scorer's buffers)."""
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
        st.raw_residency_max_s = vad.featurizer.max_age_s
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
            "audio run ended: segments=%d utterances=%d residency_max_s=%.3f residency_p95_s=%.3f feature_seals=%d dropped_frames=%d "
            "dropped_segments=%d discarded=%d partials_skipped=%d partials_budgeted=%d failed_open_decodes=%d worker_errors=%d "
            "repeats_dropped=%d skips_recovered=%d stretches_filled=%d",
            st.segments, st.utterances, st.residency_max(), st.residency_p95(), st.feature_seals, st.dropped_frames,
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
            self._closed.put(self._store(event))
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

    def _store(self, event: SegmentClosed) -> _Stored:
        """A closed segment's feature frames out of the ring into a store of its own, its residency measured.

        Runs on the capture thread, before the ring moves on (a copy of at most a segment's frames). A
        reader of the segment finishes first; later reads find it gone. A microphone never waits: with
        no free store the speech is dropped (counted by the worker)."""
        seg = event.segment
        featurizer = self._featurizer
        assert featurizer is not None
        with self._access.closing(seg.id):
            store = None
            frames = whisper_frames = 0
            if event.is_speech:
                store = self.pools.features.acquire(block=False)
                if store is None and not self._live:
                    featurizer.seal()  # nothing raw waits with us
                    self.stats.feature_seals += 1
                    while store is None and self._fault is None and not self._stop.is_set():
                        store = self.pools.features.acquire(block=True, timeout=0.1)
                if store is not None:
                    whisper, speaker, energy = self.pools.layout.views(store.data)
                    rows = featurizer.rows
                    f0 = seg.start_sample // HOP
                    frames = -(-seg.length // HOP)  # frames centred inside the segment
                    # the decoder's features of the whole segment and its silence pad, before normalisation
                    whisper_frames = len(window_rows(rows, f0, seg.length, self.asr.window_pad(True), whisper))
                    frames = rows.copy(rows.speaker, f0, f0 + frames, speaker)
                    rows.copy(rows.energy, f0, f0 + seg.length // HOP, energy)
        resided = featurizer.age_over(seg.start_sample, seg.start_sample + seg.length)
        self.stats.residency_s.append(resided)
        if self.metrics is not None:
            self.metrics.observe("edge_agent_residency_seconds", resided)
        return _Stored(event, store, whisper_frames, frames, resided)

    # -- closer thread ----------------------------------------------------------------------------------

    def _close_loop(self) -> None:
        while True:
            stored = self._closed.get()
            if stored is None:
                break
            job = self._close(stored)
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

    def _close(self, stored: _Stored) -> _Closed:
        """The closed segment's features as the decoder and the speaker stage read them, in its store."""
        seg = stored.event.segment
        job = _Closed(seg.id, seg.start_sample, seg.length, stored.residency_s, speech_end_arrival(seg), stored.event.is_speech,
                      features=stored.store)
        try:
            if not stored.event.is_speech:
                job.reason = "too_little_speech"
                return job
            if stored.store is None:
                job.reason = "no_buffer"
                return job
            job.whisper, job.n_frames = self._closed_features(stored.store, stored.whisper_frames)
            if self.speakers is not None:
                job.speaker = self._closed_speaker(stored.store, seg.length)
            return job
        except BaseException:
            job.release()  # nobody else will hold this job
            raise

    def _closed_features(self, store: PooledBuffer, total: int) -> tuple[np.ndarray, int]:
        """Whisper features of the whole segment plus ``pad_s`` of silence (the store's ``total`` rows), normalised
        over them as a per-segment extractor gives them: (bins, frames) in the store."""
        whisper = self.pools.layout.views(store.data)[0]
        normalise_log_mel(whisper[:total])
        return whisper[:total].T, total

    def _closed_speaker(self, store: PooledBuffer, n_samples: int) -> SpeakerFeatures:
        """GE2E mel (zero-padded one encoder window past the end) with the segment's volume gain, and energies."""
        _, mel, energy = self.pools.layout.views(store.data)
        frames, blocks = 1 + (n_samples + PARTIAL_PAD) // HOP, n_samples // HOP
        gain = volume_gain(float(energy[:blocks].sum(dtype=np.float64)), blocks * HOP)
        if gain != 1.0:
            mel[:frames] *= np.float32(gain * gain)
        return SpeakerFeatures(mel[:frames], energy[:blocks], n_samples)

    def _zero_unclosed(self) -> None:
        """Segments the capture thread stored for a closer that failed: their features zeroed here, counted lost.

        (Their raw audio was zeroed as it arrived and their residency measured when they were stored.)"""
        while True:
            try:
                stored = self._closed.get_nowait()
            except queue.Empty:
                return
            if stored is None:
                continue
            if stored.store is not None:
                stored.store.release()
            self.stats.dropped_segments += 1
            self.stats.speech_seconds_lost += stored.event.segment.length / SAMPLE_RATE

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
        view = _OpenView(self, seg)
        failed_before = self.decoder.stats.failed_open_decodes
        try:
            committed, partial = self.decoder.on_update(
                seg.id, seg.t0, update.length, update.final_candidate, view,
                seg.start_sample + update.length, seg.onset_arrival,
            )
        except SegmentGoneError:
            return
        finally:
            # absorbed by the decoder (the final covers the audio), never silently: counted where operators look
            if self.metrics is not None and self.decoder.stats.failed_open_decodes > failed_before:
                self.metrics.inc("edge_agent_failed_open_decodes_total", self.decoder.stats.failed_open_decodes - failed_before)
        for piece in committed:
            self._emit_committed(seg, view, piece)
        self._watch_speakers(seg, update.length, view.speaker_window)
        if partial is not None:
            if partial.onset_latency_s is not None:
                self.stats.first_partial_latency_s.append(partial.onset_latency_s)
            self.sink(partial)

    def _watch_speakers(self, seg: SpeechSegment, length: int, window: SpeakerWindow) -> None:
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

    def _emit_committed(self, seg: SpeechSegment, view: _OpenView, piece: Committed) -> None:
        """A sentence finalised inside an open segment: attribute it from its own features now, if still open."""
        speaker = None
        if self.speakers is not None:
            try:
                speaker = view.speaker(piece.start, piece.stop)
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
        assert job.whisper is not None
        feats = job.whisper
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
    from edge_agent.audio.speaker_frontend import ENERGY_HOP, HOP

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
