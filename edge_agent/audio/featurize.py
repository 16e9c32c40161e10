"""Raw audio turned into features as it arrives, so no raw sample outlives a fraction of a second.

The capture thread hands every 16 kHz frame to :class:`StreamFeaturizer` right after the VAD
classified it. Every ``chunk`` of audio (0.1 s by default) it computes, from one short-time
Fourier transform of the continuous stream (n_fft 400, hop 160, periodic Hann):

* Whisper's log-mel frames (80 bands, ``log10(max(mel, 1e-10))``), stored *before* Whisper's
  per-window normalisation (clamp at the window's maximum less 8, then ``(x + 4) / 4``), which
  each decode window applies over its own frames as a per-window extractor would. For every hop
  position also the five frames a decode window *starting* or *ending* there has at its edge
  (two whose window reaches before the start, reflected as torch.stft pads a window's start; three
  whose window reaches past the end, zero-padded): a window cut anywhere out of the stream is then
  exactly what a per-window extractor gives for its audio (:func:`whisper_window`);
* the GE2E speaker encoder's mel frames (40 Slaney bands, power, no gain: a span's volume gain
  is applied when its features are read, from the span's energies);
* the energy of every 10 ms block (sum of squares), for quiet split points and the gain.

Frame ``f`` is centred on stream sample ``f * HOP``, so frames, energies and the VAD's 30 ms
frames (three hops) share one grid: a segment is a range of frames, and a split moves no
audio. Frames go into a ring (one pooled buffer) that holds the open segment; a closed
segment's frames are copied out of it into a pooled store of their own.

Raw samples are kept only until no frame needs them: the STFT overlap and the edge variants'
reach (at most 400 samples) plus the part of a chunk not yet computed. The age of the oldest raw sample at the moment it
is zeroed is measured for every chunk (:attr:`StreamFeaturizer.max_age_s`, and per segment by
:meth:`StreamFeaturizer.age_over`). A caller that must wait (a recording read no faster than
its decoder) first :meth:`seal`\\ s the stream: the pending frames are computed as if silence
followed, as at the edge of a segment, so no raw sample waits with it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from edge_agent.audio.speaker_frontend import SpeakerFeatures, mel_filterbank
from edge_agent.audio.stft import HALF, HOP, N_FFT, hann_window, power_frames
from edge_agent.hardening import locked_zeros

WHISPER_BINS = 80
SPEAKER_BINS = 40
SILENCE_LOG_MEL = -10.0  # log10 of the 1e-10 floor: the value of a frame of digital silence
_INT16_SCALE = np.float32(1.0 / 32768.0)
_BINS = N_FFT // 2 + 1
SPEAKER_PAD_FRAMES = 160  # a speaker span's mel is zero-padded one 1.6 s encoder window past its end
_TARGET_DBFS = -30.0  # the GE2E front-end's volume normalisation (increase only)
# The window-edge variants of the frames at hop position h (sample e = h * HOP), as sample offsets from e of each
# of the 400 points of the frame's window, and whether the point is zero (past a window's end):
#   0: the frame centred on e, its window reflected about e (the first frame of a window starting at e)
#   1: the frame centred on e + HOP, its first 40 points reflected about e (the second)
#   2, 3, 4: the frames centred on e - HOP, e, e + HOP, zero from e on (the last frames of a window ending at e)
EDGE_VARIANTS = 5
_J = np.arange(N_FFT)
_EDGE_OFFSETS = np.stack([np.abs(_J - HALF), np.abs(_J - (HALF - HOP)), _J - HALF - HOP, _J - HALF, _J - (HALF - HOP)])
_START_REACH = N_FFT - (HALF - HOP)  # a position's start variants reach this far into the audio (360 samples)
_END_REACH = HALF + HOP  # ... its end variants this far back (360)
_EDGE_ZERO = np.stack([np.zeros(N_FFT, bool), np.zeros(N_FFT, bool), _J - HALF - HOP >= 0, _J - HALF >= 0, _J - (HALF - HOP) >= 0])


@dataclass(frozen=True)
class FeatureLayout:
    """How one flat float32 buffer holds ``frames`` rows of each feature (frames-major)."""

    whisper_frames: int
    speaker_frames: int
    energy_frames: int
    edge_frames: int = 0  # rows of the five window-edge variants of each Whisper frame (the ring only)

    @classmethod
    def ring(cls, frames: int) -> FeatureLayout:
        return cls(frames, frames, frames, frames)

    @classmethod
    def segment(cls, max_samples: int, pad_samples: int) -> FeatureLayout:
        """A closed segment's store: Whisper frames with the decoder's silence pad, GE2E frames with one encoder window."""
        return cls((max_samples + pad_samples) // HOP + 1, 1 + (max_samples + SPEAKER_PAD_FRAMES * HOP) // HOP, max_samples // HOP + 1)

    @property
    def slot_len(self) -> int:
        return (self.whisper_frames * WHISPER_BINS + self.speaker_frames * SPEAKER_BINS + self.energy_frames
                + self.edge_frames * EDGE_VARIANTS * WHISPER_BINS)

    def views(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self.whisper_frames * WHISPER_BINS
        b = a + self.speaker_frames * SPEAKER_BINS
        return (data[:a].reshape(self.whisper_frames, WHISPER_BINS), data[a:b].reshape(self.speaker_frames, SPEAKER_BINS),
                data[b : b + self.energy_frames])

    def edge_view(self, data: np.ndarray) -> np.ndarray:
        """(edge frames, EDGE_VARIANTS, bins): the window-edge variants of each position."""
        start = self.whisper_frames * WHISPER_BINS + self.speaker_frames * SPEAKER_BINS + self.energy_frames
        return data[start : start + self.edge_frames * EDGE_VARIANTS * WHISPER_BINS].reshape(
            self.edge_frames, EDGE_VARIANTS, WHISPER_BINS)


class FrameRows:
    """Rows of frames ``f`` at ``f % len`` (a ring), or at ``f`` (a plain store); ``available`` frames written."""

    def __init__(self, whisper: np.ndarray, speaker: np.ndarray, energy: np.ndarray, edges: np.ndarray | None = None) -> None:
        self.whisper, self.speaker, self.energy = whisper, speaker, energy
        self.edges = edges  # (positions, EDGE_VARIANTS, bins) window-edge variants, or None (a store without them)
        self.available = 0  # frames 0 .. available-1 are written (set after the rows, read by other threads)
        self.starts_available = 0  # positions whose start variants (0, 1) are written
        self.ends_available = 0  # ... whose end variants (2, 3, 4) are written

    def edge_row(self, position: int, variant: int) -> np.ndarray | None:
        """A window-edge variant of the frame at ``position`` (None if not computed)."""
        done = self.starts_available if variant < 2 else self.ends_available
        if self.edges is None or position < 0 or position >= done:
            return None
        return self.edges[position % len(self.edges), variant]

    def copy(self, kind: np.ndarray, f0: int, f1: int, out: np.ndarray) -> int:
        """Rows ``f0 .. f1`` (clipped to what is written) into ``out``; returns how many."""
        f1 = min(f1, self.available)
        n = f1 - f0
        if n <= 0:
            return 0
        size = len(kind)
        a = f0 % size
        first = min(n, size - a)
        out[:first] = kind[a : a + first]
        if first < n:
            out[first:n] = kind[: n - first]
        return n


def window_rows(rows: FrameRows, f0: int, n_samples: int, pad_samples: int, out: np.ndarray) -> np.ndarray:
    """Whisper log10-mel rows (before normalisation) of the window of ``n_samples`` from frame ``f0`` plus
    ``pad_samples`` of silence, into ``out[:frames]``: what a per-window extractor computes for that audio.

    The window's first two frames are the start variants of position ``f0``, its last three the end variants
    of its end's position (the nearest hop), the frames between them the stream's, the rest silence. Where a
    variant is not there (a store without them, or not computed yet) the stream's frame stands in."""
    total = (n_samples + pad_samples) // HOP
    rows_out = out[:total]
    h = f0 + (n_samples + HOP // 2) // HOP  # the end's position
    inner = min(total, h - f0 + 2)  # frames up to the last whose window reaches into the audio
    got = rows.copy(rows.whisper, f0, f0 + min(inner, h - f0), rows_out)
    rows_out[got:] = SILENCE_LOG_MEL
    if h - f0 >= 4:  # a window too short for both edges keeps the stream's frames
        for k, position, variant in ((0, f0, 0), (1, f0, 1), (h - f0 - 1, h, 2), (h - f0, h, 3), (h - f0 + 1, h, 4)):
            row = rows.edge_row(position, variant) if k < total else None
            if row is not None:
                rows_out[k] = row
    return rows_out


def whisper_window(rows: FrameRows, f0: int, n_samples: int, pad_samples: int, out: np.ndarray) -> np.ndarray:
    """Whisper features of ``n_samples`` from frame ``f0`` plus ``pad_samples`` of silence: (80, frames), in ``out``
    (max frames, 80), normalised over the window as Whisper's extractor does (:func:`window_rows`)."""
    rows_out = window_rows(rows, f0, n_samples, pad_samples, out)
    normalise_log_mel(rows_out)
    return rows_out.T


def normalise_log_mel(mel: np.ndarray) -> np.ndarray:
    """Whisper's per-window normalisation of log10 mel, in place."""
    if mel.size:
        np.maximum(mel, mel.max() - 8.0, out=mel)
        mel += 4.0
        mel /= 4.0
    return mel


def span_energy(rows: FrameRows, f0: int, blocks: int) -> np.ndarray:
    """The 10 ms energies of ``blocks`` blocks from block ``f0`` (a copy; zeros where not yet computed)."""
    out = np.zeros(max(0, blocks), np.float32)
    rows.copy(rows.energy, f0, f0 + blocks, out)
    return out


def volume_gain(energy_sum: float, n_samples: int) -> float:
    """The GE2E front-end's gain (to -30 dBFS RMS, increase only) from a span's sum of squares."""
    if n_samples <= 0:
        return 1.0
    rms = math.sqrt(max(0.0, energy_sum) / n_samples)
    if rms < 1e-7:
        return 1.0
    change_db = _TARGET_DBFS - 20.0 * math.log10(rms)
    return float(10 ** (change_db / 20.0)) if change_db > 0 else 1.0


def speaker_span(rows: FrameRows, f0: int, n_samples: int, mel_out: np.ndarray | None = None,
                 energy_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(GE2E mel frames zero-padded one encoder window past the end, gain applied; 10 ms energies) of a span.

    Into ``mel_out``/``energy_out`` when given (a closed segment's store), else new arrays the caller wipes."""
    frames = 1 + (n_samples + SPEAKER_PAD_FRAMES * HOP) // HOP
    blocks = n_samples // HOP
    mel = mel_out[:frames] if mel_out is not None else np.zeros((frames, SPEAKER_BINS), np.float32)
    got = rows.copy(rows.speaker, f0, f0 + min(frames, -(-n_samples // HOP)), mel)
    mel[got:] = 0.0
    energy = energy_out[:blocks] if energy_out is not None else np.zeros(blocks, np.float32)
    got = rows.copy(rows.energy, f0, f0 + blocks, energy)
    energy[got:] = 0.0
    gain = volume_gain(float(energy.sum(dtype=np.float64)), blocks * HOP)
    if gain != 1.0:
        mel *= np.float32(gain * gain)
    return mel, energy


class StreamFeaturizer:
    """Features of the continuous input stream, computed every ``chunk_samples``; raw audio zeroed as it is used.

    Owned by the capture thread (:meth:`push`, :meth:`compute`, :meth:`seal`); other threads only
    read frames below ``rows.available`` of segments still pinned in the ring."""

    def __init__(self, whisper_filters: np.ndarray, speaker_filters: np.ndarray, ring: np.ndarray, ring_frames: int,
                 chunk_samples: int, frame_samples: int) -> None:
        self.layout = FeatureLayout.ring(ring_frames)
        self.rows = FrameRows(*self.layout.views(ring), self.layout.edge_view(ring))
        self.whisper_filters_t = np.ascontiguousarray(np.asarray(whisper_filters, np.float32).T)
        self.speaker_filters_t = np.ascontiguousarray(np.asarray(speaker_filters, np.float32).T)
        self.chunk = max(HOP, chunk_samples)
        self.window = hann_window()
        max_pending = self.chunk + frame_samples + 2 * N_FFT + 2 * HOP
        max_frames = max_pending // HOP + 2
        # raw audio and its copies: locked, dump-excluded pages, zeroed after every chunk
        self._carry = locked_zeros(max_pending + N_FFT, np.float32)
        self._windowed = locked_zeros((max_frames, N_FFT), np.float32)
        self._spectrum = locked_zeros((max_frames, _BINS), np.complex64)
        self._power = locked_zeros((max_frames, _BINS), np.float32)
        self._mel_w = locked_zeros((max_frames, WHISPER_BINS), np.float32)
        self._mel_s = locked_zeros((max_frames, SPEAKER_BINS), np.float32)
        self._index = np.zeros((max_frames, N_FFT), np.intp)  # where each point of an edge variant's window is
        self.received = 0  # stream samples pushed
        self._carry_start = -N_FFT  # stream sample of _carry[0] (the stream starts after a window of silence)
        self._energy_done = 0  # next 10 ms block to compute
        self._arrivals: deque[tuple[int, float]] = deque()  # (first stream sample, arrival) of each pushed frame
        self._ages: deque[tuple[int, int, float]] = deque(maxlen=4096)  # (from, to, age) of every zeroing
        self.max_age_s = 0.0  # the oldest raw sample's age when zeroed, over the whole run
        self.pinned: int | None = None  # first frame a reader may still need (the open segment's start): never overwritten

    @classmethod
    def standalone(cls, frame_samples: int, max_samples: int, whisper_filters: np.ndarray | None = None) -> StreamFeaturizer:
        """A featurizer with a ring of its own (tools and tests that run the VAD without a pipeline)."""
        if whisper_filters is None:
            from faster_whisper.feature_extractor import FeatureExtractor

            whisper_filters = FeatureExtractor(feature_size=WHISPER_BINS).mel_filters
        frames = max_samples // HOP + 128
        ring = locked_zeros(FeatureLayout.ring(frames).slot_len, np.float32)
        return cls(whisper_filters, mel_filterbank(), ring, frames, 1600, frame_samples)

    # -- capture thread -----------------------------------------------------------------------------

    def push(self, samples: np.ndarray, arrival: float) -> float:
        """Add one int16 frame (not kept: its float copy is the carry); returns its RMS (float scale)."""
        n = len(samples)
        at = self.received - self._carry_start
        if at + n > len(self._carry) - N_FFT:
            self.compute()
            at = self.received - self._carry_start
        dst = self._carry[at : at + n]
        if samples.dtype == np.int16:
            np.multiply(samples, _INT16_SCALE, out=dst, dtype=np.float32)
        else:  # float audio already on the [-1, 1] scale (tools and tests that featurise an array)
            dst[:] = samples
        rms = float(np.sqrt(np.dot(dst, dst) / n)) if n else 0.0
        self._arrivals.append((self.received, arrival))
        self.received += n
        if self.received - (self.rows.available * HOP - HALF) >= self.chunk:
            self.compute()
        return rms

    def compute(self) -> None:
        """Every frame and energy the audio so far allows; the raw samples no frame needs any more zeroed."""
        received = self.received
        self._frames_until((received - HALF) // HOP + 1 if received >= HALF else 0)
        self._edges_until(True, (received - _START_REACH) // HOP + 1 if received >= _START_REACH else 0)
        self._edges_until(False, received // HOP + 1)
        self._energy_until(received // HOP)
        self._zero_before(self._needed_from())

    def seal(self) -> None:
        """Finish the stream as if silence followed (before a wait, and at its end): no raw sample is left.

        The frames whose window reaches past the last sample see zeros there, as at the end of a
        segment today; audio pushed afterwards starts a new stretch (its first frames see zeros
        before it). Up to one hop of it lies before the next frame's window and is in no frame."""
        if self.received <= max(0, self._carry_start):
            return
        received = self.received
        self._energy_until(-(-received // HOP))  # a last part-block counts what it has
        self._frames_until((received + HALF - 1) // HOP + 1)  # every frame that sees any audio (zeros after it)
        self._edges_until(True, -(-received // HOP))  # every position inside the audio
        self._edges_until(False, received // HOP + 1)
        self._zero_before(received)
        self._carry_start = received - N_FFT  # what comes next starts after a window of silence (all zero now)

    def holds_audio(self) -> bool:
        return self.received > self._carry_start and bool(self._carry.any())

    def scratch_buffers(self) -> tuple[np.ndarray, ...]:
        return (self._carry, self._windowed, self._spectrum, self._power, self._mel_w, self._mel_s)

    def wipe(self) -> None:
        for buf in self.scratch_buffers():
            buf.fill(0)

    def age_over(self, start: int, stop: int) -> float:
        """The largest age at zeroing of any raw sample in stream samples ``start .. stop`` zeroed so far."""
        return max((age for a, b, age in self._ages if a < stop and b > start), default=0.0)

    # -- internals -------------------------------------------------------------------------------------

    def _frames_until(self, end: int) -> None:
        f0 = self.rows.available
        k = end - f0
        if k <= 0:
            return
        if self.pinned is not None and end - 1 - self.pinned >= self.layout.whisper_frames:
            raise RuntimeError("feature ring overrun: the open segment outgrew the ring (a sizing bug)")
        first = f0 * HOP - HALF - self._carry_start  # carry offset of frame f0's window
        if first < 0 or first + (k - 1) * HOP + N_FFT > len(self._carry):
            raise RuntimeError("feature carry misaligned (a bug)")
        power = power_frames(self._carry[first:], k, self.window, self._windowed, self._spectrum, self._power)
        mel_w, mel_s = self._mel_w[:k], self._mel_s[:k]
        np.matmul(power, self.whisper_filters_t, out=mel_w)
        np.maximum(mel_w, 1e-10, out=mel_w)
        np.log10(mel_w, out=mel_w)
        np.matmul(power, self.speaker_filters_t, out=mel_s)
        size = self.layout.whisper_frames
        a = f0 % size
        n1 = min(k, size - a)
        self.rows.whisper[a : a + n1] = mel_w[:n1]
        self.rows.speaker[a : a + n1] = mel_s[:n1]
        if n1 < k:
            self.rows.whisper[: k - n1] = mel_w[n1:]
            self.rows.speaker[: k - n1] = mel_s[n1:]
        for buf in (self._windowed[:k], self._spectrum[:k], power, mel_w, mel_s):
            buf.fill(0)
        self.rows.available = end

    def _needed_from(self) -> int:
        """The first raw sample a frame, edge variant or energy still to compute needs."""
        rows = self.rows
        return min(rows.available * HOP - HALF, rows.starts_available * HOP, rows.ends_available * HOP - _END_REACH,
                   self._energy_done * HOP)

    def _edges_until(self, starts: bool, end: int) -> None:
        """The start (0, 1) or end (2, 3, 4) variants of positions up to ``end``."""
        rows = self.rows
        first = rows.starts_available if starts else rows.ends_available
        k = end - first
        if k <= 0 or rows.edges is None:
            return
        if self.pinned is not None and end - 1 - self.pinned >= len(rows.edges):
            raise RuntimeError("feature ring overrun: the open segment outgrew the ring (a sizing bug)")
        zero_at = len(self._carry) - 1  # never written (a push keeps N_FFT spare): a point past a window's end
        base = (np.arange(first, end) * HOP - self._carry_start)[:, None]
        size = len(rows.edges)
        positions = np.arange(first, end) % size
        for variant in ((0, 1) if starts else (2, 3, 4)):
            index = self._index[:k]
            np.add(base, _EDGE_OFFSETS[variant], out=index)
            index[:, _EDGE_ZERO[variant]] = zero_at
            if index.min() < 0 or index.max() > zero_at:
                raise RuntimeError("feature carry misaligned (a bug)")
            windowed = self._windowed[:k]
            np.take(self._carry, index, out=windowed)
            windowed *= self.window
            spectrum, power, mel = self._spectrum[:k], self._power[:k], self._mel_w[:k]
            np.fft.rfft(windowed, axis=-1, out=spectrum)
            np.abs(spectrum, out=power)
            np.square(power, out=power)
            np.matmul(power, self.whisper_filters_t, out=mel)
            np.maximum(mel, 1e-10, out=mel)
            np.log10(mel, out=mel)
            rows.edges[positions, variant] = mel
            for buf in (windowed, spectrum, power, mel):
                buf.fill(0)
        if starts:
            rows.starts_available = end
        else:
            rows.ends_available = end

    def _energy_until(self, end: int) -> None:
        size = len(self.rows.energy)
        for k in range(self._energy_done, end):
            a = k * HOP - self._carry_start
            block = self._carry[max(0, a) : a + HOP]
            self.rows.energy[k % size] = float(np.dot(block, block))
        self._energy_done = max(self._energy_done, end)

    def _zero_before(self, keep: int) -> None:
        """Zero the raw samples before stream sample ``keep``; record the oldest one's age."""
        keep = min(keep, self.received)
        drop = keep - self._carry_start
        if drop <= 0:
            return
        oldest = max(0, self._carry_start)
        if keep > oldest:
            while len(self._arrivals) > 1 and self._arrivals[1][0] <= oldest:
                self._arrivals.popleft()
            if self._arrivals:
                age = time.monotonic() - self._arrivals[0][1]
                self._ages.append((oldest, keep, age))
                self.max_age_s = max(self.max_age_s, age)
        used = self.received - self._carry_start
        rest = used - drop
        # move the kept tail to the front in pieces that never overlap (no hidden temporary copy)
        for off in range(0, rest, drop):
            n = min(drop, rest - off)
            self._carry[off : off + n] = self._carry[drop + off : drop + off + n]
        self._carry[rest:used] = 0.0
        self._carry_start = keep
        while len(self._arrivals) > 1 and self._arrivals[1][0] <= keep:
            self._arrivals.popleft()
        if keep >= self.received:
            self._arrivals.clear()


class RowsView:
    """A segment starting at stream sample ``start_sample``, read from ``rows``: what the decoder
    (:class:`~edge_agent.asr.decoder.SegmentView`) and the speaker watcher read of an open segment.

    Windows start at the nearest hop (the decoder's cut points are samples, frames are 10 ms).
    Decode windows go into ``scratch`` (the caller zeroes them once decoded); speaker features
    are new arrays the caller wipes."""

    def __init__(self, rows: FrameRows, start_sample: int, window_pad: Callable[[bool], int], scratch: np.ndarray) -> None:
        self.rows, self.start_sample, self._pad, self._scratch = rows, start_sample, window_pad, scratch

    def _frame(self, start: int) -> int:
        return (self.start_sample + start + HOP // 2) // HOP

    def features(self, start: int, stop: int, final: bool) -> np.ndarray:
        return whisper_window(self.rows, self._frame(start), stop - start, self._pad(final), self._scratch)

    def energy(self, start: int, stop: int) -> np.ndarray:
        first = (self.start_sample + start) // HOP
        return span_energy(self.rows, first, (self.start_sample + stop) // HOP - first)

    def speaker(self, start: int, stop: int) -> SpeakerFeatures:
        mel, energy = speaker_span(self.rows, self._frame(start), stop - start)
        return SpeakerFeatures(mel, energy, stop - start)

    @contextmanager
    def speaker_window(self, start: int, stop: int) -> Iterator[SpeakerFeatures]:
        feats = self.speaker(start, stop)
        try:
            yield feats
        finally:
            feats.wipe()


class ArrayFeatures(RowsView):
    """A whole array of 16 kHz float32 audio featurised as the stream featurizer does it (tools and tests that
    start from audio they hold). The features are computed once and the caller's array is not kept; :meth:`wipe`
    zeroes them."""

    def __init__(self, audio: np.ndarray, whisper_filters: np.ndarray, window_pad: Callable[[bool], int]) -> None:
        frames = len(audio) // HOP + 4
        self._store = np.zeros(FeatureLayout.ring(frames).slot_len, np.float32)
        featurizer = StreamFeaturizer(whisper_filters, mel_filterbank(), self._store, frames, 4800, 480)
        for i in range(0, len(audio), 480):
            featurizer.push(audio[i : i + 480], 0.0)
        featurizer.seal()
        featurizer.wipe()
        self.n_samples = len(audio)
        super().__init__(featurizer.rows, 0, window_pad,
                         np.zeros(((len(audio) + window_pad(True)) // HOP + 1, WHISPER_BINS), np.float32))

    def wipe(self) -> None:
        self._store.fill(0.0)
        self._scratch.fill(0.0)
