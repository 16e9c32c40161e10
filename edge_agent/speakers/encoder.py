"""GE2E speaker embeddings with onnxruntime (the numpy front-end feeds the ONNX model).

Audio is taken as a (read-only) float32 view at 16 kHz; nothing of it is kept:
the front-end's scratch is zeroed after each call and only embeddings (which
cannot be turned back into audio) leave this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_agent.errors import ModelError
from edge_agent.models import verify_model
from edge_agent.speakers.frontend import HOP, PARTIAL_FRAMES, SAMPLE_RATE, MelFrontend, partial_slices, volume_gain

MODEL_NAME = "speaker_ge2e.onnx"
EMBED_DIM = 256
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class EncoderConfig:
    threads: int = 1  # intra-op threads; the ASR keeps the other core busy
    provider: str = "cpu"  # "cpu" | "cuda"
    batch: int = 16  # partial windows per ONNX call (bounds scratch memory)


@dataclass(frozen=True)
class Partials:
    """Embeddings of sliding windows over one stretch of audio."""

    embeds: np.ndarray  # (n, 256) float32, each L2-normalised
    starts: np.ndarray  # (n,) int64 first sample of each window
    stops: np.ndarray  # (n,) int64 one past the last sample (may exceed the audio: zero-padded)

    def __len__(self) -> int:
        return len(self.embeds)


def l2_normalise(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32) if norm > 0 else vec.astype(np.float32)


class SpeakerEncoder:
    """Loads the verified ONNX encoder once; embeds audio on demand."""

    def __init__(self, config: EncoderConfig | None = None, model_path: Path | None = None) -> None:
        self.config = config or EncoderConfig()
        provider = PROVIDERS.get(self.config.provider)
        if provider is None:
            raise ModelError(f"unknown speaker-model provider {self.config.provider!r}; use one of: {', '.join(PROVIDERS)}")
        if provider not in ort.get_available_providers():
            raise ModelError(
                f"provider {self.config.provider!r} requested for the speaker model but onnxruntime here offers only "
                f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu or set provider = \"cpu\""
            )
        t0 = time.perf_counter()
        path = model_path or verify_model(MODEL_NAME)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, self.config.threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"speaker model {path} cannot be loaded ({first}); rebuild it with scripts/build_speaker_model.py") from None
        self.frontend = MelFrontend()
        self.load_seconds = time.perf_counter() - t0
        self.embed_seconds = 0.0  # CPU-side wall time spent embedding, for the cost figure
        self.audio_seconds = 0.0  # audio embedded

    # -- core -------------------------------------------------------------------------------------
    def _run(self, mels: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(mels), self.config.batch):
            out.append(self.session.run(None, {"mels": mels[i : i + self.config.batch]})[0])
        return np.concatenate(out).astype(np.float32, copy=False)

    def _windows(self, audio: np.ndarray, wav_slices: list[slice], mel_slices: list[slice]) -> np.ndarray:
        total = max(len(audio), wav_slices[-1].stop)
        mel = self.frontend(audio, gain=volume_gain(audio), total_samples=total)
        return np.stack([mel[s] for s in mel_slices])

    def partials(self, audio: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> Partials:
        """Embeddings of Resemblyzer's 1.6 s windows, ``rate`` windows per second."""
        t0 = time.perf_counter()
        audio = _as_f32(audio)
        wav_slices, mel_slices = partial_slices(len(audio), rate, min_coverage)
        embeds = self._run(self._windows(audio, wav_slices, mel_slices))
        self.embed_seconds += time.perf_counter() - t0
        self.audio_seconds += len(audio) / SAMPLE_RATE
        return Partials(
            embeds,
            np.array([s.start for s in wav_slices], np.int64),
            np.array([s.stop for s in wav_slices], np.int64),
        )

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One L2-normalised 256-d embedding: the mean of the partial-window embeddings."""
        return l2_normalise(self.partials(audio).embeds.mean(axis=0))

    def window_embeddings(self, audio: np.ndarray, window_s: float = 1.6, step_s: float = 0.4) -> Partials:
        """Embeddings of windows of ``window_s`` every ``step_s`` (for change-point search).

        Windows shorter than the 1.6 s the encoder was trained on are noisier,
        so the default keeps 1.6 s and steps finely instead.
        """
        t0 = time.perf_counter()
        audio = _as_f32(audio)
        win = int(round(window_s * SAMPLE_RATE / HOP))
        step = max(1, int(round(step_s * SAMPLE_RATE / HOP)))
        n_frames = 1 + len(audio) // HOP
        starts = list(range(0, max(1, n_frames - win + 1), step))
        mel_slices = [slice(s, s + win) for s in starts]
        wav_slices = [slice(s * HOP, (s + win) * HOP) for s in starts]
        mels = self._windows(audio, wav_slices, mel_slices)
        embeds = self._run(mels)
        mels.fill(0.0)
        self.embed_seconds += time.perf_counter() - t0
        self.audio_seconds += len(audio) / SAMPLE_RATE
        return Partials(
            embeds,
            np.array([s.start for s in wav_slices], np.int64),
            np.array([s.stop for s in wav_slices], np.int64),
        )

    @property
    def seconds_per_audio_second(self) -> float:
        return self.embed_seconds / self.audio_seconds if self.audio_seconds else 0.0


def _as_f32(audio: np.ndarray) -> np.ndarray:
    """A float32 1-D view of ``audio`` (a copy only if the caller passed another dtype)."""
    if audio.ndim != 1:
        raise ValueError("speaker encoder expects mono audio (1-D)")
    return audio if audio.dtype == np.float32 else audio.astype(np.float32)


__all__ = ["EMBED_DIM", "PARTIAL_FRAMES", "EncoderConfig", "Partials", "SpeakerEncoder", "l2_normalise"]
