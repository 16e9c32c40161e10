"""Voice-activity segmentation: webrtcvad, Silero VAD v6, or both decide, per frame, what is speech.

``vad.engine`` picks the frame classifier: ``webrtc`` (webrtcvad's GMM, no model
file), ``silero`` (the neural VAD, :mod:`edge_agent.audio.silero`, with
hysteresis between a start and an end threshold) or ``hybrid`` (webrtcvad starts
a segment; inside it a frame is speech only if Silero hears voice too, and sound
Silero does not call voice ends the segment after Silero's shorter hang-over).
The segmentation around it (onset window, pre-roll, hang-over, tail, splits) is
the same for all three.

Each frame, once classified, goes to the stream featurizer
(:mod:`edge_agent.audio.featurize`) and is released (zeroed) at once: no raw
audio is kept here, not even for the pre-roll, which holds only each frame's
verdicts, energy and arrival time. A segment is a range of the stream's
feature frames (30 ms VAD frames are three 10 ms feature hops). Long speech is
split at the quietest frame near the limit rather than cut mid-word; a split
moves no audio, the continuation simply starts at the split point.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import webrtcvad

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.featurize import StreamFeaturizer
from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.silero import SileroModel, SileroStream
from edge_agent.audio.stft import HOP
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

_INT16_SCALE = np.float32(1.0 / 32768.0)
ENGINES = ("webrtc", "silero", "hybrid")
SILERO_ENGINES = ("silero", "hybrid")  # the engines that open the Silero model


@dataclass(frozen=True)
class VadConfig:
    # frame classifier: "webrtc" (webrtcvad), "silero" (Silero VAD v6, ONNX) or "hybrid" (webrtcvad starts,
    # Silero ends noisy pauses: docs/realvoice.md, "A hybrid end")
    engine: str = "webrtc"
    aggressiveness: int = 2  # webrtcvad mode 0 (permissive) .. 3 (strict)
    # Silero: a frame starts speech at probability >= threshold and, once in speech, stays speech
    # while >= neg_threshold (hysteresis: a dip inside a word does not end it). Silero's usual 0.5 / 0.35
    # lost far-field words of some voices (deletions up to 28 % against webrtcvad's 13 %); the lower the
    # end threshold, the fewer (0.35 / 0.2 / 0.15: far-field deletions 12 / 8 / 4 %), at the price of a
    # white-noise blip sometimes opening a segment at 0.15 (docs/realvoice.md 8)
    silero_threshold: float = 0.3
    silero_neg_threshold: float = 0.15
    # Silero's end does not wait on noisy pauses (it scores voice, not energy), so it can close sooner
    # than webrtcvad's 450 ms: a turn change with a shorter gap then ends the segment (docs/realvoice.md 8)
    silero_hangover_ms: int = 300
    # engine "hybrid" uses silero_neg_threshold as the probability below which Silero hears no voice, and
    # silero_hangover_ms as how long webrtcvad may go on hearing sound Silero does not call voice before the
    # segment ends (a noisy pause); an ordinary pause (both quiet) still closes on hangover_ms
    frame_ms: int = 30  # 10, 20 or 30
    preroll_ms: int = 240  # audio kept before the detected onset
    onset_ms: int = 150  # window in which most frames must be voiced to open a segment
    hangover_ms: int = 450  # silence that closes a segment
    tail_ms: int = 150  # audio kept after the last voiced frame
    # silence after which the ASR decodes the final's audio in advance; a pause
    # shorter than the hang-over wastes that decode, a later one costs latency
    candidate_ms: int = 300
    min_speech_ms: int = 200  # voiced time below which a segment is noise, not speech
    max_segment_s: float = 10.0  # continuous speech is split here (real voices: a 15 s limit held finals back, docs/realvoice.md 5.5)
    split_search_s: float = 2.5  # how far back from the limit to look for a quiet split point
    partial_interval_ms: int = 500

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"vad.engine is {self.engine!r}; allowed values: {', '.join(ENGINES)}")
        if not 0.0 < self.silero_neg_threshold <= self.silero_threshold < 1.0:
            raise ConfigError(
                f"vad.silero_threshold ({self.silero_threshold}) and vad.silero_neg_threshold ({self.silero_neg_threshold}) "
                "must satisfy 0 < silero_neg_threshold <= silero_threshold < 1"
            )
        if self.frame_ms not in (10, 20, 30):
            raise ConfigError(f"vad.frame_ms is {self.frame_ms}; allowed values: 10, 20, 30")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(f"vad.aggressiveness is {self.aggressiveness}; allowed values: 0, 1, 2, 3")
        # at least one frame (a shorter search finds no frame to split at), at most half the longest segment
        if not self.frame_ms / 1000 <= self.split_search_s <= 14:
            raise ConfigError(
                f"vad.split_search_s is {self.split_search_s}; allowed: {self.frame_ms / 1000:g}..14 seconds "
                "(one frame up to half of vad.max_segment_s)"
            )
        if self.max_segment_s < 2 * self.split_search_s or self.max_segment_s > 28:
            raise ConfigError(
                f"vad.max_segment_s is {self.max_segment_s}; allowed: {2 * self.split_search_s}..28 seconds"
            )
        for name in ("preroll_ms", "onset_ms", "hangover_ms", "silero_hangover_ms", "tail_ms", "min_speech_ms", "partial_interval_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad.{name} must be zero or positive")
        # A segment opens holding its onset window and the pre-roll before it. Longer than the segment buffer
        # (a small max_segment_s, or a SIGHUP raising the live pre-roll/onset), the VAD wrote past the buffer
        # and the run failed: refused here, which also refuses such a reload (the merged config is rebuilt).
        if self.opening_s > self.max_segment_s:
            raise ConfigError(
                f"vad.max_segment_s ({self.max_segment_s:g} s) must hold the audio a segment opens with: "
                f"vad.preroll_ms ({self.preroll_ms}) + vad.onset_ms ({self.onset_ms}) = {self.opening_s:g} s; "
                "lower those two or raise vad.max_segment_s"
            )
        if self.tail_ms > self.hangover_ms:
            raise ConfigError("vad.tail_ms must not exceed vad.hangover_ms")
        if self.tail_ms > self.silero_hangover_ms:
            raise ConfigError("vad.tail_ms must not exceed vad.silero_hangover_ms")
        if not self.tail_ms <= self.candidate_ms <= self.hangover_ms:
            raise ConfigError("vad.candidate_ms must lie between vad.tail_ms and vad.hangover_ms")

    @property
    def uses_silero(self) -> bool:
        """True when the engine needs the Silero model (``silero`` and ``hybrid``)."""
        return self.engine in SILERO_ENGINES

    @property
    def noisy_pause_ms(self) -> int | None:
        """Hybrid engine: sound Silero does not call voice that ends a segment (None: no such rule)."""
        return self.silero_hangover_ms if self.engine == "hybrid" else None

    @property
    def engine_hangover_ms(self) -> int:
        """The silence that closes a segment: ``silero_hangover_ms`` with the Silero engine, else ``hangover_ms``."""
        return self.silero_hangover_ms if self.engine == "silero" else self.hangover_ms

    @property
    def engine_candidate_ms(self) -> int:
        """The look-ahead point, never past the hang-over in force (at the hang-over itself: no look-ahead)."""
        return min(self.candidate_ms, self.engine_hangover_ms)

    @property
    def frame_samples(self) -> int:
        return SAMPLE_RATE * self.frame_ms // 1000

    def frames_for(self, ms: float) -> int:
        return max(1, int(round(ms / self.frame_ms)))

    @property
    def opening_s(self) -> float:
        """Seconds a segment holds when it opens: the onset window plus the pre-roll (as VadSegmenter keeps them)."""
        frames = self.frames_for(self.onset_ms) + (self.frames_for(self.preroll_ms) if self.preroll_ms else 0)
        return frames * self.frame_ms / 1000

    @property
    def segment_capacity(self) -> int:
        """Samples a segment buffer must hold: the limit plus one frame."""
        return int(self.max_segment_s * SAMPLE_RATE) + self.frame_samples


@dataclass
class SpeechSegment:
    """A stretch of speech: a range of the stream's feature frames (no audio)."""

    id: int
    start_sample: int  # position of its first sample since the source started (a multiple of the hop)
    length: int = 0
    last_arrival: float = 0.0  # monotonic time the newest sample arrived
    received: int = 0  # samples appended, including hang-over later trimmed
    onset_arrival: float | None = None  # monotonic time of the first voiced sample
    frame_voiced: list[bool] = field(default_factory=list)
    frame_energy: list[float] = field(default_factory=list)

    @property
    def t0(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def t1(self) -> float:
        return (self.start_sample + self.length) / SAMPLE_RATE

    def voiced_seconds(self, frame_ms: int) -> float:
        return sum(self.frame_voiced) * frame_ms / 1000.0


@dataclass(frozen=True)
class SegmentUpdate:
    """The open segment has grown; ``length`` samples are stable to decode."""

    segment: SpeechSegment
    length: int
    final_candidate: bool  # the speech has (probably) ended at ``length``


@dataclass(frozen=True)
class SegmentClosed:
    segment: SpeechSegment
    is_speech: bool  # False: too little voiced audio, release without decoding
    reason: str  # "silence" | "max_length" | "speaker_change" | "end_of_stream"


SegmentEvent = SegmentUpdate | SegmentClosed


class FrameClassifier(Protocol):
    """Says whether one int16 frame is speech, given the frames of the run before it.

    ``sound`` is what the start rule counts for the frame just classified: the same
    as :meth:`voiced` for a single VAD; for the hybrid, webrtcvad's verdict alone.
    """

    sound: bool

    def voiced(self, samples: np.ndarray) -> bool: ...

    def close(self) -> None:
        """End of run: zero anything that held audio."""

    def holds_audio(self) -> bool: ...


class WebrtcClassifier:
    """webrtcvad: stateless per frame, holds no audio."""

    def __init__(self, aggressiveness: int) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.sound = False

    def voiced(self, samples: np.ndarray) -> bool:
        self.sound = bool(self._vad.is_speech(samples.view(np.uint8), SAMPLE_RATE))
        return self.sound

    def close(self) -> None:
        pass

    def holds_audio(self) -> bool:
        return False


class SileroClassifier:
    """Silero VAD probabilities with hysteresis (start at ``threshold``, end below ``neg_threshold``)."""

    def __init__(self, stream: SileroStream, threshold: float, neg_threshold: float) -> None:
        self.stream = stream
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        self._speaking = False
        self.sound = False

    def voiced(self, samples: np.ndarray) -> bool:
        prob = self.stream.score(samples)
        self._speaking = prob >= self.threshold or (self._speaking and prob >= self.neg_threshold)
        self.sound = self._speaking
        return self._speaking

    def close(self) -> None:
        self.stream.close()
        self._speaking = False

    def holds_audio(self) -> bool:
        return self.stream.holds_audio()


class HybridClassifier:
    """webrtcvad decides the start; a frame is speech only while Silero's probability is >= ``end_threshold`` too.

    Why both: webrtcvad passes quiet far-field voices that Silero's start threshold loses, but it
    hears steady noise and babble as speech and holds segments open through noisy pauses; Silero
    scores voice, not energy. ``sound`` (webrtcvad's verdict) drives the onset window and the
    noisy-pause count; ``voiced`` (both) sets the kept end, the silence run and the speech time.
    """

    def __init__(self, stream: SileroStream, aggressiveness: int, end_threshold: float) -> None:
        self.stream = stream
        self._vad = webrtcvad.Vad(aggressiveness)
        self.end_threshold = end_threshold
        self.sound = False
        self.heard = False  # Silero's verdict on the last frame (p >= end_threshold)

    def voiced(self, samples: np.ndarray) -> bool:
        prob = self.stream.score(samples)  # every frame, also outside segments: the LSTM state follows the whole run
        self.sound = bool(self._vad.is_speech(samples.view(np.uint8), SAMPLE_RATE))
        self.heard = prob >= self.end_threshold
        return self.sound and self.heard

    def close(self) -> None:
        self.stream.close()
        self.sound = False

    def holds_audio(self) -> bool:
        return self.stream.holds_audio()


def make_classifier(config: VadConfig, silero: SileroModel | None = None) -> FrameClassifier:
    """The frame classifier ``config.engine`` names; Silero opens its model here unless one is given.

    Each call makes fresh per-run state (a Silero stream starts from a zero LSTM state).
    """
    if config.uses_silero:
        model = silero if silero is not None else SileroModel()
        if config.engine == "hybrid":
            return HybridClassifier(model.stream(), config.aggressiveness, config.silero_neg_threshold)
        return SileroClassifier(model.stream(), config.silero_threshold, config.silero_neg_threshold)
    return WebrtcClassifier(config.aggressiveness)


class VadSegmenter:
    def __init__(
        self, config: VadConfig, featurizer: StreamFeaturizer, silero: SileroModel | None = None
    ) -> None:
        self.cfg = config
        self.featurizer = featurizer
        self.classifier = make_classifier(config, silero)
        # (frame index, voiced, sound, energy, arrival): the pre-roll keeps no audio
        self._preroll: deque[FrameInfo] = deque()
        self._preroll_frames = config.frames_for(config.preroll_ms) if config.preroll_ms else 0
        self._onset_frames = config.frames_for(config.onset_ms)
        self._recent: deque[bool] = deque(maxlen=self._onset_frames)
        self._hangover_frames = config.frames_for(config.engine_hangover_ms)
        noisy = config.noisy_pause_ms
        self._noisy_frames = config.frames_for(noisy) if noisy is not None else None
        self._tail = config.frames_for(config.tail_ms) * config.frame_samples if config.tail_ms else 0
        self._candidate_frames = config.frames_for(config.engine_candidate_ms)
        self._partial_step = config.partial_interval_ms * SAMPLE_RATE // 1000
        self._segment: SpeechSegment | None = None
        self._split_request: tuple[int, int] | None = None  # (segment id, sample) from the ASR worker
        self._silence_run = 0
        self._noisy_run = 0  # frames of the silence run on which the start rule heard sound (hybrid: a noisy pause)
        self._last_voiced_end = 0
        self._last_update_len = 0
        self._candidate_sent = False
        self._next_id = 0
        self.noisy_pause_ends = 0  # segments the hybrid's noisy-pause rule closed (diagnosis)
        self.dropped_segments = 0  # no segment is lost here any more (no buffer to wait for); kept for the stats
        self.dropped_samples = 0
        self.frames_seen = 0

    # -- public ---------------------------------------------------------------

    def request_split(self, segment_id: int, at_sample: int) -> None:
        """Ask for the open segment to be closed at ``at_sample`` (another speaker takes over there).

        Called from the ASR worker; honoured by the capture thread at its next frame,
        if that segment is still open (a request for a closed segment is ignored).
        """
        self._split_request = (segment_id, at_sample)

    def process(self, frame: AudioFrame) -> list[SegmentEvent]:
        """Consume one frame (which this call releases) and return events."""
        self.frames_seen += 1
        pending, self._split_request = self._split_request, None
        events: list[SegmentEvent] = []
        if pending is not None and self._segment is not None and self._segment.id == pending[0]:
            events = self._split_at(pending[1], "speaker_change")
        try:
            voiced = self.classifier.voiced(frame.samples)
            energy = self.featurizer.push(frame.samples, frame.arrival)
            info = FrameInfo(frame.index, voiced, self.classifier.sound, energy, frame.arrival)
        finally:
            frame.release()  # raw audio leaves the VAD here: the featurizer holds its float copy until used
        if self._segment is None:
            return events + self._idle(info)
        return events + self._speaking(info)

    def flush(self) -> list[SegmentEvent]:
        """End of stream: features of everything received, any open segment closed, the classifier's audio zeroed."""
        events: list[SegmentEvent] = []
        self.classifier.close()
        self.featurizer.seal()
        self._preroll.clear()
        if self._segment is not None:
            events.extend(self._close("end_of_stream"))
        return events

    @property
    def mid_speech(self) -> bool:
        """A segment is open and its last frame was voiced (not in a pause): a seam here would cut a word."""
        return self._segment is not None and self._silence_run == 0

    def holds_audio(self) -> bool:
        """True while the featurizer or the classifier still holds audio (privacy check after a run)."""
        return self.featurizer.holds_audio() or self.classifier.holds_audio()

    # -- states ---------------------------------------------------------------

    def _idle(self, info: FrameInfo) -> list[SegmentEvent]:
        self._recent.append(info.sound)  # the start rule's view (hybrid: webrtcvad alone)
        self._preroll.append(info)
        onset = len(self._recent) == self._onset_frames and sum(self._recent) * 2 > self._onset_frames
        if not onset:
            keep = max(self._preroll_frames, self._onset_frames)
            while len(self._preroll) > keep:
                self._preroll.popleft()
            return []
        # Keep the onset window plus the configured pre-roll before it.
        keep = self._onset_frames + self._preroll_frames
        while len(self._preroll) > keep:
            self._preroll.popleft()
        first = self._preroll[0]
        seg = SpeechSegment(self._next_id, first.index * self.cfg.frame_samples)
        self._next_id += 1
        self._open(seg)
        self._silence_run = 0
        self._noisy_run = 0
        self._last_voiced_end = 0  # the hybrid can open a segment with no voiced frame yet (webrtcvad heard noise)
        self._last_update_len = 0
        self._candidate_sent = False
        while self._preroll:
            self._append(self._preroll.popleft())
        self._recent.clear()
        return self._maybe_update()

    def _speaking(self, info: FrameInfo) -> list[SegmentEvent]:
        seg = self._segment
        assert seg is not None
        events: list[SegmentEvent] = []
        if seg.length + self.cfg.frame_samples > self.cfg.segment_capacity:
            events.extend(self._split())
        self._append(info)
        if self._silence_run >= self._hangover_frames:
            events.extend(self._close("silence"))
            return events
        if self._noisy_frames is not None and self._noisy_run >= self._noisy_frames:
            # webrtcvad still hears sound that Silero does not call voice: a noisy pause, not speech
            self.noisy_pause_ends += 1
            events.extend(self._close("silence"))
            return events
        events.extend(self._maybe_update())
        return events

    # -- helpers --------------------------------------------------------------

    def _open(self, seg: SpeechSegment | None) -> None:
        self._segment = seg
        # the ring never overwrites an open segment's frames (readers may still need them)
        self.featurizer.pinned = seg.start_sample // HOP if seg is not None else None

    def _append(self, info: FrameInfo) -> None:
        seg = self._segment
        assert seg is not None
        fs = self.cfg.frame_samples
        seg.length += fs
        seg.received += fs
        seg.last_arrival = info.arrival
        voiced = info.voiced
        if voiced and seg.onset_arrival is None:
            seg.onset_arrival = info.arrival - self.cfg.frame_ms / 1000.0
        seg.frame_voiced.append(voiced)
        seg.frame_energy.append(info.energy)
        if voiced:
            self._silence_run = 0
            self._noisy_run = 0
            self._last_voiced_end = seg.length
            self._candidate_sent = False
        else:
            self._silence_run += 1
            self._noisy_run += info.sound

    def _speech_end(self) -> int:
        seg = self._segment
        assert seg is not None
        return min(seg.length, self._last_voiced_end + self._tail)

    def _maybe_update(self) -> list[SegmentEvent]:
        seg = self._segment
        assert seg is not None
        end = self._speech_end()
        heard = seg.onset_arrival is not None  # no look-ahead decode of a segment with no voiced frame (hybrid: noise)
        if heard and self._silence_run >= self._candidate_frames and end == self._last_voiced_end + self._tail and not self._candidate_sent:
            # The tail after the last voiced frame is complete: if no more speech
            # comes, this is exactly the audio of the final, so decode it now.
            self._candidate_sent = True
            self._last_update_len = end
            self.featurizer.compute()  # the decoder reads features up to here
            return [SegmentUpdate(seg, end, final_candidate=True)]
        if self._silence_run == 0 and seg.length - self._last_update_len >= self._partial_step:
            self._last_update_len = seg.length
            self.featurizer.compute()  # the decoder reads features up to here
            return [SegmentUpdate(seg, seg.length, final_candidate=False)]
        return []

    def _close(self, reason: str) -> list[SegmentEvent]:
        seg = self._segment
        assert seg is not None
        end = self._speech_end() if reason != "max_length" else seg.length
        seg.length = end
        nframes = -(-end // self.cfg.frame_samples)
        del seg.frame_voiced[nframes:], seg.frame_energy[nframes:]
        self._open(None)
        self._recent.clear()
        self.featurizer.compute()
        is_speech = seg.voiced_seconds(self.cfg.frame_ms) * 1000 >= self.cfg.min_speech_ms
        return [SegmentClosed(seg, is_speech, reason)]

    def _split(self) -> list[SegmentEvent]:
        """Close the full segment at its quietest recent frame; carry the rest on."""
        seg = self._segment
        assert seg is not None
        n = len(seg.frame_energy)
        search = min(n - 1, int(self.cfg.split_search_s * 1000 / self.cfg.frame_ms))
        window = seg.frame_energy[n - search :]
        quietest = n - search + int(np.argmin(window))
        return self._split_at((quietest + 1) * self.cfg.frame_samples, "max_length")

    def _split_at(self, split: int, reason: str) -> list[SegmentEvent]:
        """Close the open segment at sample ``split`` (rounded to a frame); the rest goes on as a new segment.

        No audio moves: the continuation is the range of feature frames after the split point."""
        seg = self._segment
        assert seg is not None
        fs = self.cfg.frame_samples
        split = max(fs, min(seg.length - fs, split // fs * fs)) if seg.length > 2 * fs else seg.length
        if split >= seg.length:
            return self._close(reason if reason != "speaker_change" else "max_length")
        last_frame = split // fs - 1  # the frame that ends the first part
        carry_len = seg.length - split
        new_seg = SpeechSegment(self._next_id, seg.start_sample + split)
        self._next_id += 1
        new_seg.length = carry_len
        new_seg.received = carry_len
        new_seg.last_arrival = seg.last_arrival
        new_seg.onset_arrival = seg.last_arrival - carry_len / SAMPLE_RATE
        new_seg.frame_voiced = seg.frame_voiced[last_frame + 1 :]
        new_seg.frame_energy = seg.frame_energy[last_frame + 1 :]
        seg.received = seg.length
        seg.length = split
        del seg.frame_voiced[last_frame + 1 :], seg.frame_energy[last_frame + 1 :]
        self.featurizer.compute()
        closed = SegmentClosed(seg, seg.voiced_seconds(self.cfg.frame_ms) * 1000 >= self.cfg.min_speech_ms, reason)
        self._open(new_seg)
        self._last_voiced_end = max(0, self._last_voiced_end - split)
        self._last_update_len = 0
        self._candidate_sent = False
        return [closed]


@dataclass(frozen=True)
class FrameInfo:
    """What the VAD keeps of a frame once its audio went to the featurizer."""

    index: int
    voiced: bool
    sound: bool
    energy: float  # RMS
    arrival: float


def speech_end_arrival(seg: SpeechSegment) -> float:
    """Wall time at which the segment's last kept sample arrived."""
    return seg.last_arrival - (seg.received - seg.length) / SAMPLE_RATE
