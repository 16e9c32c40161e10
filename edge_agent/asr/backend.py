"""What the streaming decoder needs from a speech recogniser, and what it gets back.

:mod:`edge_agent.asr.whisper_ct2` is the implementation (faster-whisper on
CTranslate2, CPU or CUDA); :mod:`edge_agent.asr.decoder` only sees this
interface, so another engine plugs in without touching the streaming rules.

Two ways in: a raw window of an *open* segment (partials; the audio is still
growing and still in its pool slot), or the features of a *closed* segment
(finals; the raw audio was turned into features and zeroed as soon as the
segment closed, so raw-audio residency does not wait for the decoder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge_agent.errors import ConfigError

BUNDLED_MODEL = "tiny.en"
_DEVICES = ("cpu", "cuda", "auto")
_COMPUTE_TYPES = ("int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16", "bfloat16", "float32", "default", "auto")


@dataclass(frozen=True)
class AsrConfig:
    model: str = BUNDLED_MODEL  # "tiny.en" (bundled) or a CTranslate2 Whisper model directory
    device: str = "cpu"  # "cpu" | "cuda" (Jetson) | "auto"
    compute_type: str = "int8"
    cpu_threads: int = 1  # measured: a second thread adds CPU, not speed, for tiny.en windows
    beam_size: int = 1  # partials
    # finals: docs/architecture.md has the measured WER/CPU trade-off behind the beam and context
    final_beam_size: int = 2
    context_tokens: int = 64
    language: str = "en"
    pad_s: float = 3.0  # silence appended to each final's window (less makes short windows loop)
    partial_pad_s: float = 1.0  # ... and to each partial's (a partial only feeds the live view: ~15 % less CPU each)
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4

    def __post_init__(self) -> None:
        if self.device not in _DEVICES:
            raise ConfigError(f"asr.device is '{self.device}'; allowed values: {', '.join(_DEVICES)}")
        if self.compute_type not in _COMPUTE_TYPES:
            raise ConfigError(f"asr.compute_type is '{self.compute_type}'; allowed values: {', '.join(_COMPUTE_TYPES)}")
        if not 1 <= self.cpu_threads <= 64:
            raise ConfigError(f"asr.cpu_threads is {self.cpu_threads}; allowed: 1..64")
        if not 1 <= self.beam_size <= 10:
            raise ConfigError(f"asr.beam_size is {self.beam_size}; allowed: 1..10")
        if not 1 <= self.final_beam_size <= 10:
            raise ConfigError(f"asr.final_beam_size is {self.final_beam_size}; allowed: 1..10")


@dataclass
class DecodedWord:
    text: str
    start: float  # seconds from window start
    end: float
    probability: float
    tokens: list[int] = field(default_factory=list, compare=False, repr=False)  # the word's tokens, when aligned


@dataclass
class Sentence:
    """A timestamped sub-segment of a decode (the recogniser's own segmentation)."""

    start: float  # seconds from window start
    end: float
    tokens: list[int]


@dataclass
class Decoded:
    """One decode of a window; ``encoder_output`` allows aligning words later."""

    text: str
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    n_samples: int  # audio the window covers (not counting padding)
    encoder_output: Any = field(repr=False, default=None)
    sentences: list[Sentence] = field(default_factory=list)
    rejected: str = ""  # why the text was suppressed, if it was
    repeat_dropped: int = 0  # words of an invented trailing repeat a final's guard dropped (guards.unvoiced_repeat_start)
    # a final decoded again without context because, with it, Whisper skipped speech (guards.longest_unworded)
    skip_recovered: bool = False
    filled: int = 0  # stretches the decode skipped, decoded alone and put in (WhisperCT2._fill_unworded)
    # (tokens, words) of the last word alignment, reused while the tokens are the same
    aligned: tuple[tuple[int, ...], list[DecodedWord]] | None = field(default=None, repr=False, compare=False)


class Recognizer(Protocol):
    """A speech recogniser the streaming decoder can drive (thread-confined: one caller at a time)."""

    sample_rate: int
    hop: int  # samples per feature frame
    mel_filters: np.ndarray  # (bins, 201) filters over the 400-point power spectrum (the stream featurizer's)

    def window_pad(self, final: bool) -> int:
        """Samples of silence the features of a decode window end with (final or partial)."""
        ...

    def window_features(self, audio: np.ndarray, final: bool = True) -> np.ndarray:
        """Features of a raw window (float32, 16 kHz) of an open segment, plus trailing silence
        (less of it for a partial); a new array the caller zeroes after decoding."""
        ...

    def features(self, audio: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Features of a whole closed segment (plus trailing silence) into ``out``; returns the view used."""
        ...

    def decode_features(self, features: np.ndarray, n_samples: int, final: bool = True, context: list[int] | None = None) -> Decoded:
        """Decode features (a slice of :meth:`features`) that stand for ``n_samples`` of audio."""
        ...

    def combine(self, committed: list[int], tail: Decoded, features: np.ndarray, n_samples: int) -> Decoded:
        """One result for a whole segment from committed tokens plus a tail decode."""
        ...

    def align_words(self, decoded: Decoded) -> list[DecodedWord]: ...

    def text_of(self, tokens: list[int]) -> str: ...

    def feature_shape(self, max_samples: int) -> tuple[int, int]:
        """(bins, frames) the features of ``max_samples`` of audio need (pools are sized from it)."""
        ...
