"""Numpy mel front-end of Resemblyzer's GE2E speaker encoder (no librosa at run time).

Reproduces ``librosa.feature.melspectrogram`` as Resemblyzer calls it: 16 kHz,
n_fft 400 (= window), hop 160, periodic Hann, ``center=True`` with constant
(zero) padding (librosa >= 0.10), power 2, 40 Slaney-normalised mel bands over
0–8000 Hz, no log. Checked against librosa to ~1e-7 by
``tools/training/build_speaker_model.py``, which stores a reference array that the
tests compare with.

Everything that holds audio-derived samples (padded wave, windowed frames,
spectrum) lives in scratch buffers owned here and zeroed after each call, so a
segment's audio is never left behind in memory we cannot account for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.audio import SAMPLE_RATE  # the GE2E front-end runs at the pipeline's rate
from edge_agent.audio.stft import HOP, N_FFT, ScratchPowerSpectrum

N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s partial windows
TARGET_DBFS = -30.0


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa htk=False): linear below 1 kHz, log above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = freq >= min_log_hz
    mels = np.where(log_t, min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised triangular filters, as librosa.filters.mel."""
    fmin, fmax = 0.0, sr / 2.0
    fftfreqs = np.linspace(0, sr / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, None]
    return weights.astype(np.float32)


def volume_gain(audio: np.ndarray, target_dbfs: float = TARGET_DBFS) -> float:
    """Gain that raises ``audio`` to ``target_dbfs`` RMS (increase only, as Resemblyzer).

    Returned as a factor rather than applied, so the caller's buffer is never
    modified or copied; the mel power scales by gain**2.
    """
    if len(audio) == 0:
        return 1.0
    squares = np.square(audio, dtype=np.float64)  # every sample's magnitude: audio, so zeroed below
    try:
        rms = float(np.sqrt(np.mean(squares)))
    finally:
        squares.fill(0.0)
    if rms < 1e-7:  # digital silence: no meaningful level to normalise to
        return 1.0
    change_db = target_dbfs - 20.0 * np.log10(rms)
    return float(10 ** (change_db / 20.0)) if change_db > 0 else 1.0


class MelFrontend:
    """Mel spectrogram frames (n_frames, 40) float32 from 16 kHz float32 audio.

    ``n_frames = 1 + (len(audio) + pad_to) // HOP`` as librosa with
    ``center=True``. Scratch buffers grow on demand and are zeroed after use.
    """

    def __init__(self, max_samples: int = 16 * SAMPLE_RATE) -> None:
        self.filters = mel_filterbank()
        self._stft = ScratchPowerSpectrum(max_samples, grow=True)

    def scratch_buffers(self) -> tuple[np.ndarray, ...]:
        return self._stft.scratch_buffers()

    def wipe(self) -> None:
        self._stft.wipe()

    def __call__(self, audio: np.ndarray, gain: float = 1.0, total_samples: int | None = None) -> np.ndarray:
        """Mel frames of ``audio * gain`` zero-padded to ``total_samples`` (default: its length)."""
        power = self._stft.power(audio, total_samples or 0, reflect_start=False)
        try:
            mel = power @ self.filters.T  # (n_frames, 40): mel energies, not audio
        finally:
            self._stft.clear()
        if gain != 1.0:
            mel *= np.float32(gain * gain)
        return mel.astype(np.float32, copy=False)


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> tuple[list[slice], list[slice]]:
    """Resemblyzer's partial windows (wave slices, mel slices) over ``n_samples``.

    Windows are 160 frames (1.6 s), one every ``1/rate`` s; a last window is
    kept if at least ``min_coverage`` of it has audio (the rest is zero-padded).
    """
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round((SAMPLE_RATE / rate) / HOP))
    if not 0 < frame_step <= PARTIAL_FRAMES:
        raise ValueError(f"partial rate {rate} out of range")
    wav_slices, mel_slices = [], []
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    for i in range(0, steps, frame_step):
        mel_slices.append(slice(i, i + PARTIAL_FRAMES))
        wav_slices.append(slice(i * HOP, (i + PARTIAL_FRAMES) * HOP))
    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < min_coverage and len(mel_slices) > 1:
        mel_slices.pop()
        wav_slices.pop()
    return wav_slices, mel_slices


ENERGY_HOP = HOP  # 10 ms energies: two neighbours make any 20 ms window on a 10 ms grid


@dataclass
class SpeakerFeatures:
    """What speaker attribution needs from a stretch of speech, computed once so the
    raw audio can be zeroed at once: GE2E mel frames of the gain-normalised audio
    (zero-padded one partial window past the end, as the encoder's windows need)
    and the energy of every 10 ms (to snap change points into pauses).

    Neither is audio: a 40-band mel spectrogram and an energy envelope. They are
    still a picture of someone's speech, so :meth:`wipe` zeroes them after use.
    """

    mel: np.ndarray  # (frames, 40) float32
    energy: np.ndarray  # (n_samples // ENERGY_HOP,) float32
    n_samples: int

    @classmethod
    def of(cls, audio: np.ndarray, frontend: MelFrontend) -> SpeakerFeatures:
        if audio.ndim != 1:
            raise ValueError("speaker features need mono audio (1-D)")
        n = len(audio)
        mel = frontend(audio, gain=volume_gain(audio), total_samples=n + PARTIAL_FRAMES * HOP)
        k = n // ENERGY_HOP
        energy = np.einsum("ij,ij->i", audio[: k * ENERGY_HOP].reshape(k, ENERGY_HOP), audio[: k * ENERGY_HOP].reshape(k, ENERGY_HOP))
        return cls(mel, energy.astype(np.float32, copy=False), n)

    def wipe(self) -> None:
        self.mel.fill(0.0)
        self.energy.fill(0.0)
