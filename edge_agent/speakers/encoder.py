"""GE2E speaker embeddings with onnxruntime (the numpy front-end feeds the ONNX model).

Every entry point takes :class:`SpeakerFeatures` (the mel frames a closed
segment left behind when its audio was zeroed) or, for callers that still hold
audio (enrolment, tests), a read-only float32 view at 16 kHz, turned into
features here and wiped after. Only embeddings (which cannot be turned back
into audio) leave this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.audio.speaker_frontend import HOP, PARTIAL_FRAMES, SAMPLE_RATE, MelFrontend, SpeakerFeatures, partial_slices
from edge_agent.models import manifest_entry, sha256_of, verify_model
from edge_agent.ort_session import open_session

MODEL_NAME = "speaker_ge2e.onnx"


def speaker_model_id(root: Path | None = None) -> str:
    """Which encoder made an embedding: name and sha256 prefix from the MANIFEST. Voiceprints carry it, because a
    voiceprint compared with another encoder's embeddings scores every voice wrongly, and confidently."""
    return f"{MODEL_NAME}@{manifest_entry(MODEL_NAME, root).sha256[:16]}"
EMBED_DIM = 256
# Below this many windows a segment is embedded in one batch: the LSTM costs ~4.6 ms per window
# alone, ~2 ms per window in batches of 4 or more (1 thread, this x86), so a coarse pass plus a
# small second pass would not save anything.
MIN_WINDOWS_TO_REFINE = 6


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
    """``vec`` / its norm as a new float32 array; no intermediate copy is left behind (voiceprints pass here)."""
    norm = float(np.linalg.norm(vec))
    out = vec / norm if norm > 0 else np.array(vec, copy=True)
    if out.dtype != np.float32:
        tmp, out = out, out.astype(np.float32)
        tmp.fill(0)
    return out


class SpeakerEncoder:
    """Loads the verified ONNX encoder once; embeds audio on demand."""

    def __init__(self, config: EncoderConfig | None = None, model_path: Path | None = None) -> None:
        self.config = config or EncoderConfig()
        t0 = time.perf_counter()
        path = model_path or verify_model(MODEL_NAME)
        # the identity voiceprints made with this encoder carry (equal to speaker_model_id() for the bundled model)
        self.model_id = f"{MODEL_NAME if model_path is None else path.name}@{sha256_of(path)[:16]}"
        self.session = open_session(path, self.config.threads, self.config.provider, "speaker model",
                                    "python -m tools.training.build_speaker_model")
        self.frontend = MelFrontend()
        self.load_seconds = time.perf_counter() - t0
        # CPU time of the calling thread spent embedding (with one intra-op thread, the ONNX work
        # runs on it): compared with the process's CPU time for the cost figure, like for like
        self.embed_seconds = 0.0
        self.audio_seconds = 0.0  # audio embedded

    # -- core -------------------------------------------------------------------------------------
    def _run(self, mels: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(mels), self.config.batch):
            out.append(self.session.run(None, {"mels": mels[i : i + self.config.batch]})[0])
        return np.concatenate(out).astype(np.float32, copy=False)

    def features(self, audio: np.ndarray) -> SpeakerFeatures:
        """Features of a stretch of audio (the caller wipes them when done)."""
        return SpeakerFeatures.of(_as_f32(audio), self.frontend)

    def _with_features(self, source: SpeakerFeatures | np.ndarray) -> tuple[SpeakerFeatures, bool]:
        if isinstance(source, SpeakerFeatures):
            return source, False
        return self.features(source), True

    def partials(self, source: SpeakerFeatures | np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> Partials:
        """Embeddings of Resemblyzer's 1.6 s windows, ``rate`` windows per second."""
        t0 = time.thread_time()
        feats, owned = self._with_features(source)
        try:
            wav_slices, mel_slices = partial_slices(feats.n_samples, rate, min_coverage)
            windows = np.stack([feats.mel[s] for s in mel_slices])
            try:
                embeds = self._run(windows)
            finally:
                windows.fill(0.0)
        finally:
            if owned:
                feats.wipe()
        self.embed_seconds += time.thread_time() - t0
        self.audio_seconds += feats.n_samples / SAMPLE_RATE
        return Partials(
            embeds,
            np.array([s.start for s in wav_slices], np.int64),
            np.array([s.stop for s in wav_slices], np.int64),
        )

    def embed(self, source: SpeakerFeatures | np.ndarray) -> np.ndarray:
        """One L2-normalised 256-d embedding: the mean of the partial-window embeddings."""
        return l2_normalise(self.partials(source).embeds.mean(axis=0))

    def window_embeddings(self, source: SpeakerFeatures | np.ndarray, window_s: float = 1.6, step_s: float = 0.4) -> Partials:
        """Embeddings of windows of ``window_s`` every ``step_s`` (for change-point search).

        Windows shorter than the 1.6 s the encoder was trained on are noisier,
        so the default keeps 1.6 s and steps finely instead.
        """
        return self.refined_window_embeddings(source, step_s, _every_gap, coarse_every=1, window_s=window_s)

    def refined_window_embeddings(
        self,
        source: SpeakerFeatures | np.ndarray,
        step_s: float,
        fine_gaps: Callable[[np.ndarray], np.ndarray],
        coarse_every: int = 2,
        window_s: float = 1.6,
    ) -> Partials:
        """Windows every ``coarse_every * step_s`` first, then the ones in between where ``fine_gaps`` asks.

        ``fine_gaps(coarse embeds)`` returns one bool per gap between
        consecutive coarse windows: True where the speaker may change there.
        Stretches that clearly hold one voice keep only the coarse windows;
        around a possible change the windows are exactly those of
        :meth:`window_embeddings`.
        """
        t0 = time.thread_time()
        feats, owned = self._with_features(source)
        n = feats.n_samples
        mel = feats.mel
        win = int(round(window_s * SAMPLE_RATE / HOP))
        step = max(1, int(round(step_s * SAMPLE_RATE / HOP)))
        n_frames = 1 + n // HOP
        starts = np.arange(0, max(1, n_frames - win + 1), step)
        coarse = np.zeros(len(starts), bool)
        coarse[::coarse_every] = True
        coarse[-1] = True  # keep the tail covered
        if len(starts) < MIN_WINDOWS_TO_REFINE:
            coarse[:] = True  # one batch: a second small ONNX run would cost more than it saves
        try:
            embeds = np.zeros((len(starts), EMBED_DIM), np.float32)
            embeds[coarse] = self._embed_at(mel, starts[coarse], win)
            chosen = coarse.copy()
            if not coarse.all():
                gaps = np.asarray(fine_gaps(embeds[coarse]), bool)
                # fine window i lies in the gap after the last coarse window before it
                gap_of = np.cumsum(coarse) - 1
                fine = ~coarse & gaps[np.minimum(gap_of, len(gaps) - 1)]
                if fine.any():
                    embeds[fine] = self._embed_at(mel, starts[fine], win)
                    chosen |= fine
        finally:
            if owned:
                feats.wipe()
        self.embed_seconds += time.thread_time() - t0
        self.audio_seconds += n / SAMPLE_RATE
        kept = starts[chosen]
        result = Partials(embeds[chosen], kept * HOP, (kept + win) * HOP)
        embeds.fill(0.0)
        return result

    def _embed_at(self, mel: np.ndarray, starts: np.ndarray, win: int) -> np.ndarray:
        windows = np.stack([mel[s : s + win] for s in starts])
        try:
            return self._run(windows)
        finally:
            windows.fill(0.0)

    @property
    def seconds_per_audio_second(self) -> float:
        return self.embed_seconds / self.audio_seconds if self.audio_seconds else 0.0


def _every_gap(coarse: np.ndarray) -> np.ndarray:
    return np.ones(max(0, len(coarse) - 1), bool)


def _as_f32(audio: np.ndarray) -> np.ndarray:
    """A float32 1-D view of ``audio`` (a copy only if the caller passed another dtype)."""
    if audio.ndim != 1:
        raise ValueError("speaker encoder expects mono audio (1-D)")
    return audio if audio.dtype == np.float32 else audio.astype(np.float32)


__all__ = ["EMBED_DIM", "PARTIAL_FRAMES", "EncoderConfig", "Partials", "SpeakerEncoder", "l2_normalise"]
