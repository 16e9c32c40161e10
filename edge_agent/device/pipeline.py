"""Capture -> VAD -> streaming ASR, with raw audio confined to fixed pools.

Two threads: the caller's thread reads the source and runs the (cheap) VAD; one
worker thread runs Whisper. They share a bounded hand-off: closed segments wait
in a queue bounded by the segment pool, and only the newest partial request is
kept (older ones are counted as skipped). A live source never blocks: when no
segment buffer is free, speech is dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge_agent.asr.agreement import LocalAgreement
from edge_agent.asr.engine import AsrConfig, Decoded, DecodedWord, WhisperEngine
from edge_agent.asr.events import FinalTranscript, PartialTranscript, PipelineEvent, SegmentDiscarded
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.frames import AudioSource
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.vad import SegmentClosed, SegmentUpdate, SpeechSegment, VadConfig, VadSegmenter, speech_end_arrival
from edge_agent.device.ops.metrics import Registry
from edge_agent.transcript import Utterance, Word

log = logging.getLogger(__name__)

EventSink = Callable[[PipelineEvent], None]


class SpeakerSpan(Protocol):
    start: int  # samples within the segment
    stop: int
    speaker: str
    confidence: float


class SpeakerStage(Protocol):
    """Attributes a segment before its buffer is zeroed; must keep no audio."""

    def attribute_segment(
        self, audio: np.ndarray, text: str = "", words: Sequence[tuple[str, float]] | None = None
    ) -> Sequence[SpeakerSpan]: ...


@dataclass(frozen=True)
class PipelineConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    frame_pool_s: float = 3.0  # raw int16 frames in flight (capture -> VAD)
    segment_buffers: int = 4  # float32 speech segments in flight (VAD -> ASR)
    partials: bool = True
    # Share of one core that partial re-decodes may use, on average over the
    # audio (the first partial of each utterance is always decoded). Partials
    # only feed a live view: finals are what the coaching is built from, so on
    # a 2-core room PC they get a small, fixed budget. Raise it on a Jetson.
    partial_cpu_share: float = 0.003
    partial_cpu_burst_s: float = 0.3


@dataclass
class RunStats:
    segments: int = 0
    finals: int = 0  # segments that produced text
    utterances: int = 0  # final utterances emitted (a segment split at a speaker change gives several)
    discarded: int = 0
    partial_decodes: int = 0
    partials_skipped: int = 0
    partials_over_budget: int = 0
    sentences_committed: int = 0
    combined_finals: int = 0
    candidate_decodes: int = 0
    candidate_reused: int = 0
    # frames lost before the VAD: "capture_queue" (the source's queue was full), "frame_pool" (no free frame slot)
    dropped_frames_by_cause: dict[str, int] = field(default_factory=dict)
    dropped_segments: int = 0
    worker_errors: int = 0
    residency_s: list[float] = field(default_factory=list)
    final_latency_s: list[float] = field(default_factory=list)
    first_partial_latency_s: list[float] = field(default_factory=list)
    audio_seconds: float = 0.0

    @property
    def dropped_frames(self) -> int:
        return sum(self.dropped_frames_by_cause.values())

    def residency_max(self) -> float:
        return max(self.residency_s, default=0.0)

    def residency_p95(self) -> float:
        return float(np.percentile(self.residency_s, 95)) if self.residency_s else 0.0


def process_cpu() -> float:
    return time.process_time()


class PartialBudget:
    """Token bucket of CPU seconds for partial decodes, filled as audio arrives."""

    def __init__(self, share: float, burst_s: float) -> None:
        self.share = share
        self.burst = burst_s
        self._tokens = burst_s
        self._audio_samples = 0

    def audio_at(self, sample: int) -> None:
        if sample > self._audio_samples:
            self._tokens = min(self.burst, self._tokens + (sample - self._audio_samples) / SAMPLE_RATE * self.share)
            self._audio_samples = sample

    def allows(self) -> bool:
        return self.share > 0 and self._tokens > 0

    def spend(self, cpu_s: float) -> None:
        self._tokens -= cpu_s


class AudioPools:
    """The only memory that ever holds raw audio in this process."""

    def __init__(self, cfg: PipelineConfig) -> None:
        frames = max(8, int(cfg.frame_pool_s * 1000 / cfg.vad.frame_ms))
        self.frames = BufferPool("frames", frames, cfg.vad.frame_samples, np.int16)
        self.segments = BufferPool("segments", cfg.segment_buffers, cfg.vad.segment_capacity, np.float32)

    def all_zero(self) -> bool:
        return self.frames.all_zero() and self.segments.all_zero()

    def in_use(self) -> int:
        return self.frames.in_use() + self.segments.in_use()

    def wipe(self) -> None:
        self.frames.wipe()
        self.segments.wipe()


@dataclass
class _SegmentState:
    """Per-segment streaming state, dropped when the segment is finalised.

    Once two consecutive decodes agree on a whole timestamped sentence that
    ends well before the window does, the sentence is committed and the
    window start moves past it: later partials re-decode only the rest, so
    their cost stays flat however long the utterance runs.
    """

    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    window_start: int = 0  # samples of the segment already committed
    committed_tokens: list[int] = field(default_factory=list)
    committed_text: str = ""
    previous_first: tuple[tuple[int, ...], float] | None = None
    candidate: tuple[int, Decoded] | None = None  # (window_start, decode of the final's exact audio)
    last_partial: str = ""
    partials: int = 0


class StreamingPipeline:
    def __init__(
        self,
        cfg: PipelineConfig,
        engine: WhisperEngine,
        sink: EventSink,
        speakers: SpeakerStage | None = None,
        pools: AudioPools | None = None,
        stop: threading.Event | None = None,
        metrics: Registry | None = None,
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.sink = sink
        self.speakers = speakers
        self.pools = pools or AudioPools(cfg)
        self.metrics = metrics
        self.stats = RunStats()
        self._cond = threading.Condition()
        self._finals: deque[SegmentClosed] = deque()
        self._partial: SegmentUpdate | None = None
        self._states: dict[int, _SegmentState] = {}
        self._capture_done = False
        self._stop = stop or threading.Event()
        self._budget = PartialBudget(cfg.partial_cpu_share, cfg.partial_cpu_burst_s)
        # tokens of the latest finals, in memory for this run only (cleared at the end)
        self._context: deque[int] = deque(maxlen=max(1, cfg.asr.context_tokens))

    # -- control ---------------------------------------------------------------

    def stop(self) -> None:
        """Ask the capture loop to end; pending segments are still finalised."""
        self._stop.set()

    def run(self, source: AudioSource) -> RunStats:
        """Stream ``source`` to the end (or until stop()); blocks until done."""
        vad = VadSegmenter(self.cfg.vad, self.pools.segments, block_when_full=not source.live)
        worker = threading.Thread(target=self._worker, name="asr-worker", daemon=True)
        self._capture_done = False
        worker.start()
        frames_seen = 0
        try:
            for frame in source.frames(self.pools.frames):
                frames_seen += 1
                if self._stop.is_set():
                    frame.release()
                    break
                for event in vad.process(frame):
                    self._hand_off(event)
        finally:
            for event in vad.flush():
                self._hand_off(event)
            with self._cond:
                self._capture_done = True
                self._cond.notify_all()
            worker.join()
            stop_source = getattr(source, "stop", None)
            if callable(stop_source):
                stop_source()
            source.close()
            self.stats.dropped_segments += vad.dropped_segments
            self.stats.dropped_frames_by_cause = {
                "capture_queue": int(getattr(source, "dropped_frames", 0)),
                "frame_pool": self.pools.frames.exhausted_count,
            }
            self.stats.audio_seconds = frames_seen * self.cfg.vad.frame_ms / 1000.0
            self._states.clear()
            self._context.clear()
            st = self.stats
            log.info(
                "audio run ended: segments=%d utterances=%d residency_max_s=%.3f residency_p95_s=%.3f "
                "dropped_frames=%d dropped_segments=%d partials_skipped=%d partials_budgeted=%d worker_errors=%d",
                st.segments, st.utterances, st.residency_max(), st.residency_p95(), st.dropped_frames,
                st.dropped_segments, st.partials_skipped, st.partials_over_budget, st.worker_errors,
            )
        return self.stats

    def _hand_off(self, event: SegmentUpdate | SegmentClosed) -> None:
        with self._cond:
            if isinstance(event, SegmentClosed):
                self._finals.append(event)
                self._gauge_queue()
                if self._partial is not None and self._partial.segment is event.segment:
                    self._partial = None
            elif self.cfg.partials or event.final_candidate:
                self._budget.audio_at(event.segment.start_sample + event.length)
                if self._partial is not None:
                    self.stats.partials_skipped += 1
                self._partial = event
            self._cond.notify()

    # -- worker ----------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._finals or self._partial is not None or self._capture_done)
                if self._finals:
                    job: SegmentClosed | SegmentUpdate = self._finals.popleft()
                    self._gauge_queue()
                elif self._partial is not None:
                    job = self._partial
                    self._partial = None
                else:
                    return
            try:
                if isinstance(job, SegmentClosed):
                    self._finalise(job)
                else:
                    self._partial_decode(job)
            except Exception as exc:  # a decode failure must never leave audio behind or stop the worker
                self.stats.worker_errors += 1
                log.error("ASR worker error: %s", type(exc).__name__)
                if self.metrics is not None:
                    self.metrics.inc("edge_agent_worker_errors_total")
                if isinstance(job, SegmentClosed):
                    self._discard(job.segment, "decode_failed")

    def _partial_decode(self, update: SegmentUpdate) -> None:
        seg = update.segment
        state = self._states.setdefault(seg.id, _SegmentState())
        if update.length - state.window_start < SAMPLE_RATE // 4:
            return
        window = seg.buf.data[state.window_start : update.length]
        if update.final_candidate:
            self.stats.candidate_decodes += 1
            decoded = self.engine.decode(window, final=True, context=self._final_context(state))
        else:
            if state.partials > 0 and not self._budget.allows():
                self.stats.partials_over_budget += 1
                return
            spent = process_cpu()
            decoded = self.engine.decode(window)
            self._budget.spend(process_cpu() - spent)
        self.stats.partial_decodes += 1
        if update.final_candidate:
            state.candidate = (state.window_start, decoded)
        else:
            self._maybe_commit_sentence(state, decoded)
        if not self.cfg.partials or not decoded.text:
            return
        stable, unstable = state.agreement.update(decoded.text)
        stable = f"{state.committed_text} {stable}".strip()
        text = f"{stable} {unstable}".strip()
        if text == state.last_partial:
            return
        state.last_partial = text
        onset_latency = None
        if state.partials == 0 and seg.onset_arrival is not None:
            onset_latency = time.monotonic() - seg.onset_arrival
            self.stats.first_partial_latency_s.append(onset_latency)
        state.partials += 1
        self.sink(PartialTranscript(seg.id, seg.t0, (seg.start_sample + update.length) / SAMPLE_RATE, stable, unstable, onset_latency))

    def _maybe_commit_sentence(self, state: _SegmentState, decoded: Decoded) -> None:
        first = decoded.sentences[0] if len(decoded.sentences) >= 2 and decoded.text else None
        if first is None:
            state.previous_first = None
            return
        key = (tuple(first.tokens), first.end)
        previous = state.previous_first
        state.previous_first = key
        window_s = decoded.n_samples / SAMPLE_RATE
        agreed = previous is not None and previous[0] == key[0] and abs(previous[1] - key[1]) <= 0.2
        if not agreed or not 0.5 <= first.end <= window_s - 1.0:
            return
        state.committed_tokens.extend(first.tokens)
        state.committed_text = self.engine.tokenizer.decode(state.committed_tokens).strip()
        state.window_start += int(first.end * SAMPLE_RATE)
        state.agreement = LocalAgreement()
        state.previous_first = None
        self.stats.sentences_committed += 1

    def _finalise(self, closed: SegmentClosed) -> None:
        seg = closed.segment
        state = self._states.pop(seg.id, _SegmentState())
        self.stats.segments += 1
        if self.metrics is not None:
            self.metrics.inc("edge_agent_segments_total")
        if not closed.is_speech:
            self._discard(seg, "too_little_speech")
            return
        decoded = self._final_decode(seg, state)
        if not decoded.text:
            self._discard(seg, decoded.rejected or "empty")
            return
        words = self.engine.align_words(decoded)
        if self.cfg.asr.context_tokens > 0:
            self._context.extend(decoded.tokens)
        spans = self._attribute(seg, decoded.text, words)
        speech_end = speech_end_arrival(seg)
        residency = self._release(seg)
        latency = time.monotonic() - speech_end
        self.stats.finals += 1
        self.stats.final_latency_s.append(latency)
        if self.metrics is not None:
            self.metrics.observe("edge_agent_final_latency_seconds", latency)
        for utterance in self._utterances(seg, decoded.text, words, spans):
            self.stats.utterances += 1
            if self.metrics is not None:
                self.metrics.inc("edge_agent_utterances_total")
            self.sink(FinalTranscript(utterance, residency, latency))

    def _attribute(self, seg: SpeechSegment, text: str, words: list[DecodedWord]) -> list[tuple[float, float, str, float]]:
        """Speaker spans (seconds within the segment), computed before the buffer is zeroed."""
        if self.speakers is None:
            return [(0.0, seg.length / SAMPLE_RATE, "unknown", 0.0)]
        spans = self.speakers.attribute_segment(seg.audio, text, [(w.text, w.start) for w in words])
        return [(s.start / SAMPLE_RATE, s.stop / SAMPLE_RATE, s.speaker, s.confidence) for s in spans]

    def _utterances(
        self, seg: SpeechSegment, text: str, words: list[DecodedWord], spans: list[tuple[float, float, str, float]]
    ) -> list[Utterance]:
        """One utterance per speaker span; a segment split at a change point gives several."""
        offset = seg.t0
        if len(spans) <= 1 or not words:
            speaker, confidence = (spans[0][2], spans[0][3]) if spans else ("unknown", 0.0)
            return [
                Utterance(
                    t0=offset + (words[0].start if words else 0.0),
                    t1=offset + (words[-1].end if words else seg.length / SAMPLE_RATE),
                    text=text,
                    words=tuple(Word(w.text, offset + w.start, offset + w.end, w.probability) for w in words),
                    speaker=speaker,
                    speaker_confidence=confidence,
                    segment_id=seg.id,
                )
            ]
        utterances = []
        for i, (start, stop, speaker, confidence) in enumerate(spans):
            last = i == len(spans) - 1
            part = [w for w in words if start <= w.start < stop or (last and w.start >= stop)]
            if not part:
                continue
            utterances.append(
                Utterance(
                    t0=offset + part[0].start,
                    t1=offset + part[-1].end,
                    text=" ".join(w.text for w in part),
                    words=tuple(Word(w.text, offset + w.start, offset + w.end, w.probability) for w in part),
                    speaker=speaker,
                    speaker_confidence=confidence,
                    segment_id=seg.id,
                )
            )
        return utterances

    def _final_decode(self, seg: SpeechSegment, state: _SegmentState) -> Decoded:
        """The whole segment's text, reusing the candidate decode when it matches."""
        start = state.window_start
        tail = None
        if state.candidate is not None:
            candidate_start, candidate = state.candidate
            if candidate_start == start and start + candidate.n_samples == seg.length:
                tail = candidate
                self.stats.candidate_reused += 1
        if tail is None:
            tail = self.engine.decode(seg.buf.data[start : seg.length], final=True, context=self._final_context(state))
        if start == 0:
            return tail
        self.stats.combined_finals += 1
        return self.engine.combine(state.committed_tokens, tail, seg.buf.data[: seg.length])

    def _final_context(self, state: _SegmentState) -> list[int] | None:
        """Recent finals' tokens (plus this segment's committed ones) as decoder context."""
        limit = self.cfg.asr.context_tokens
        if limit <= 0:
            return None
        tokens = list(self._context) + state.committed_tokens
        return tokens[-limit:] or None

    def _gauge_queue(self) -> None:
        if self.metrics is not None:
            self.metrics.set("edge_agent_queue_depth", len(self._finals))

    def _discard(self, seg: SpeechSegment, reason: str) -> None:
        t0, t1 = seg.t0, seg.t1
        residency = self._release(seg)
        self.stats.discarded += 1
        if self.metrics is not None:
            self.metrics.inc("edge_agent_discarded_segments_total", reason=reason)
        self.sink(SegmentDiscarded(seg.id, t0, t1, reason, residency))

    def _release(self, seg: SpeechSegment) -> float:
        """Zero the segment's buffer; returns its raw-audio residency."""
        seg.buf.release()
        residency = time.monotonic() - seg.last_arrival
        self.stats.residency_s.append(residency)
        if self.metrics is not None:
            self.metrics.observe("edge_agent_residency_seconds", residency)
        log.debug("segment %d zeroed, residency %.3f s", seg.id, residency)
        return residency
