"""faster-whisper internals that edge_agent/asr/whisper_ct2.py relies on: this breaks first if they change.

The streaming decoder sizes encoder windows to the audio and keeps features in
buffers it zeroes, so it cannot use ``WhisperModel.transcribe``. Each
attribute and signature it does use is checked here against the installed
faster-whisper, and one real decode goes through the very calls the device makes.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from edge_agent.asr.backend import AsrConfig
from edge_agent.asr.whisper_ct2 import BUCKET_FRAMES, N_MELS, WhisperCT2, bucket_frames


def test_the_internals_we_call_still_exist_with_the_arguments_we_pass() -> None:
    import faster_whisper
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens, merge_punctuations

    major = int(faster_whisper.__version__.split(".")[0])
    assert major == 1, f"faster-whisper {faster_whisper.__version__}: re-check whisper_ct2.py against its internals"
    assert list(inspect.signature(WhisperModel.find_alignment).parameters)[:5] == [
        "self", "tokenizer", "text_tokens", "encoder_output", "num_frames",
    ]
    assert list(inspect.signature(Tokenizer).parameters)[:5] == ["tokenizer", "multilingual", "task", "language", "kwargs"] or \
        list(inspect.signature(Tokenizer).parameters)[:4] == ["tokenizer", "multilingual", "task", "language"]
    assert list(inspect.signature(get_suppressed_tokens).parameters) == ["tokenizer", "suppress_tokens"]
    assert list(inspect.signature(merge_punctuations).parameters) == ["alignment", "prepended", "appended"]
    for name in ("sot_sequence", "sot_prev", "timestamp_begin", "eot"):
        assert hasattr(Tokenizer, name), name


@pytest.fixture(scope="module")
def whisper() -> WhisperCT2:
    return WhisperCT2(AsrConfig(), 16000 * 15)


def test_a_decode_through_the_device_calls(whisper: WhisperCT2, jfk_16k: np.ndarray) -> None:
    model = whisper.model
    assert hasattr(model, "model") and hasattr(model.model, "encode") and hasattr(model.model, "generate")
    assert np.asarray(model.feature_extractor.mel_filters).shape == (N_MELS, 201)
    audio = np.ascontiguousarray(jfk_16k[: 16000 * 8], dtype=np.float32)
    decoded = whisper.decode_audio(audio, final=True)
    assert "fellow americans" in decoded.text.lower()
    words = whisper.align_words(decoded)
    assert words and words[0].start < 1.0 and all(w.start <= w.end <= 8.0 for w in words)
    assert decoded.sentences and decoded.sentences[0].tokens


def test_encoder_inputs_come_in_whole_seconds(whisper: WhisperCT2) -> None:
    """A bounded set of encoder shapes: oneDNN caches one primitive per shape (memory grew without it)."""
    shapes = {bucket_frames(f) for f in range(1, whisper.feature_shape(whisper.max_samples)[1] + 1)}
    assert all(s % BUCKET_FRAMES == 0 for s in shapes)
    assert len(shapes) <= 20
