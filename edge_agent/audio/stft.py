"""Power spectrum of speech frames in scratch buffers that are zeroed after use.

Both mel front-ends (Whisper's log-mel in ``edge_agent.asr.features`` and the
speaker encoder's in ``edge_agent.audio.speaker_frontend``) frame audio the same
way: n_fft 400, hop 160, periodic Hann, centred (half a window of padding on
each side). The padded wave, the windowed frames and the spectrum are copies
of the audio or close to it, so they live only here, preallocated, and
``clear()`` zeroes what a call used. Nothing else in a call allocates audio.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edge_agent.hardening import locked_zeros

N_FFT = 400
HOP = 160
HALF = N_FFT // 2


def hann_window() -> np.ndarray:
    """The periodic Hann window of both front-ends (torch.hann_window, librosa's 'hann')."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def power_frames(wave: np.ndarray, n_frames: int, window: np.ndarray, windowed: np.ndarray, spectrum: np.ndarray,
                 power: np.ndarray) -> np.ndarray:
    """|STFT|² of ``n_frames`` frames of ``wave`` (frame i starts at ``i * HOP``), in the given scratch (rows reused)."""
    item = wave.itemsize
    frames = as_strided(wave, shape=(n_frames, N_FFT), strides=(HOP * item, item), writeable=False)
    windowed = windowed[:n_frames]
    np.multiply(frames, window, out=windowed)
    spectrum = spectrum[:n_frames]
    np.fft.rfft(windowed, axis=-1, out=spectrum)
    power = power[:n_frames]
    np.abs(spectrum, out=power)
    np.square(power, out=power)
    return power


class ScratchPowerSpectrum:
    """``power(audio, total)`` -> (1 + total // HOP, 201) |STFT|² frames, a view into scratch."""

    def __init__(self, max_samples: int, grow: bool = False) -> None:
        self.window = hann_window()
        self.grow = grow
        self._used_samples = 0
        self._used_frames = 0
        self._alloc(max_samples)

    def _alloc(self, max_samples: int) -> None:
        self.max_samples = max_samples
        max_frames = 1 + max_samples // HOP
        # locked, dump-excluded pages (hardening.locked_zeros): copies of speech must not reach swap
        self._wave = locked_zeros(max_samples + 2 * HALF + HOP, np.float32)
        self._windowed = locked_zeros((max_frames, N_FFT), np.float32)
        self._spectrum = locked_zeros((max_frames, N_FFT // 2 + 1), np.complex64)
        self._power = locked_zeros((max_frames, N_FFT // 2 + 1), np.float32)

    def power(self, audio: np.ndarray, total_samples: int, reflect_start: bool) -> np.ndarray:
        """Frames of ``audio`` followed by zeros up to ``total_samples``.

        ``reflect_start`` pads the start by reflection (torch.stft, Whisper);
        otherwise with zeros (librosa's constant padding, the GE2E encoder).
        Call :meth:`clear` once the result has been turned into mel energies.
        """
        n = len(audio)
        total = max(n, total_samples)
        if total > self.max_samples:
            if not self.grow:
                raise ValueError(f"window of {total} samples exceeds the extractor's {self.max_samples}")
            self.wipe()  # the old buffers are dropped: leave nothing in them
            self._alloc(max(total, 2 * self.max_samples))
        wave = self._wave
        wave[:HALF] = 0.0
        wave[HALF : HALF + n] = audio
        wave[HALF + n : 2 * HALF + total] = 0.0
        k = min(HALF, n - 1)
        if reflect_start and k > 0:
            wave[HALF - k : HALF] = audio[1 : k + 1][::-1]
        n_frames = 1 + total // HOP
        power = power_frames(wave, n_frames, self.window, self._windowed, self._spectrum, self._power)
        self._used_samples, self._used_frames = 2 * HALF + total, n_frames
        return power

    def clear(self) -> None:
        """Zero everything the last :meth:`power` call wrote."""
        self._wave[: self._used_samples] = 0.0
        self._windowed[: self._used_frames] = 0.0
        self._spectrum[: self._used_frames] = 0.0
        self._power[: self._used_frames] = 0.0
        self._used_samples = self._used_frames = 0

    def scratch_buffers(self) -> tuple[np.ndarray, ...]:
        """Every buffer that ever holds audio-derived samples (tests check they end zeroed)."""
        return (self._wave, self._windowed, self._spectrum, self._power)

    def wipe(self) -> None:
        for buf in self.scratch_buffers():
            buf.fill(0)
