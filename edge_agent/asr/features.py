"""Whisper log-mel features computed in owned, reusable scratch buffers.

faster-whisper's own extractor makes several full copies of the waveform
(float cast, padding, framing) that we could not zero. This one reproduces the
same features (periodic Hann, n_fft 400, hop 160, reflect-centred STFT, 80 mel
bands, Whisper's log compression) while every array that holds audio is
preallocated here and zeroed after each call.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

N_FFT = 400
HOP = 160
_HALF = N_FFT // 2


class LogMel:
    def __init__(self, mel_filters: np.ndarray, max_samples: int) -> None:
        self.mel_filters = np.ascontiguousarray(mel_filters, dtype=np.float32)
        self.max_samples = max_samples
        self._wave = np.zeros(max_samples + 2 * _HALF + HOP, np.float32)
        max_frames = 1 + max_samples // HOP
        self._windowed = np.zeros((max_frames, N_FFT), np.float32)
        self._spectrum = np.zeros((max_frames, N_FFT // 2 + 1), np.complex64)
        self._power = np.zeros((max_frames, N_FFT // 2 + 1), np.float32)
        self._window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)

    def __call__(self, audio: np.ndarray, pad_samples: int) -> np.ndarray:
        """Log-mel of ``audio`` followed by ``pad_samples`` of silence: (80, frames)."""
        n = len(audio)
        total = n + pad_samples
        if total > self.max_samples:
            raise ValueError(f"window of {total} samples exceeds the extractor's {self.max_samples}")
        wave = self._wave
        wave[_HALF : _HALF + n] = audio
        wave[_HALF + n : 2 * _HALF + total] = 0.0
        # reflect padding at the start, as torch.stft(center=True) does
        k = min(_HALF, n - 1)
        if k > 0:
            wave[_HALF - k : _HALF] = audio[1 : k + 1][::-1]
        frames_total = 1 + total // HOP
        item = wave.itemsize
        frames = as_strided(wave, shape=(frames_total, N_FFT), strides=(HOP * item, item), writeable=False)
        windowed = self._windowed[:frames_total]
        np.multiply(frames, self._window, out=windowed)
        spectrum = self._spectrum[:frames_total]
        np.fft.rfft(windowed, axis=-1, out=spectrum)
        power = self._power[:frames_total]
        np.abs(spectrum, out=power)
        np.square(power, out=power)
        # drop the last frame like faster-whisper (stft[..., :-1])
        mel = self.mel_filters @ power[:-1].T
        np.maximum(mel, 1e-10, out=mel)
        np.log10(mel, out=mel)
        np.maximum(mel, mel.max() - 8.0, out=mel)
        mel += 4.0
        mel /= 4.0
        # nothing of the waveform stays behind in scratch space
        wave[: 2 * _HALF + total] = 0.0
        windowed.fill(0.0)
        spectrum.fill(0.0)
        power.fill(0.0)
        return mel
