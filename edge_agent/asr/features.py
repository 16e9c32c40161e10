"""Whisper log-mel features computed in owned, reusable scratch buffers.

faster-whisper's own extractor makes several full copies of the waveform
(float cast, padding, framing) that we could not zero. This one reproduces the
same features (periodic Hann, n_fft 400, hop 160, reflect-centred STFT, 80 mel
bands, Whisper's log compression) while every array that holds audio is
preallocated here and zeroed after each call.
"""

from __future__ import annotations

import numpy as np

from edge_agent.audio.featurize import normalise_log_mel
from edge_agent.audio.stft import HOP, N_FFT, ScratchPowerSpectrum

__all__ = ["HOP", "N_FFT", "LogMel"]


class LogMel:
    def __init__(self, mel_filters: np.ndarray, max_samples: int) -> None:
        self.mel_filters = np.ascontiguousarray(mel_filters, dtype=np.float32)
        self.max_samples = max_samples
        self._stft = ScratchPowerSpectrum(max_samples)

    def scratch_buffers(self) -> tuple[np.ndarray, ...]:
        return self._stft.scratch_buffers()

    def __call__(self, audio: np.ndarray, pad_samples: int) -> np.ndarray:
        """Log-mel of ``audio`` followed by ``pad_samples`` of silence: (80, frames)."""
        # reflect padding at the start, as torch.stft(center=True) does
        power = self._stft.power(audio, len(audio) + pad_samples, reflect_start=True)
        try:
            # drop the last frame like faster-whisper (stft[..., :-1])
            mel = self.mel_filters @ power[:-1].T
        finally:
            self._stft.clear()  # nothing of the waveform stays behind in scratch space
        np.maximum(mel, 1e-10, out=mel)
        np.log10(mel, out=mel)
        return normalise_log_mel(mel)
