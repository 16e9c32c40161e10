"""Units of the ASR stage: features, agreement, hallucination guards, pools."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.asr.agreement import LocalAgreement
from edge_agent.asr.features import LogMel
from edge_agent.asr.guards import compression_ratio, is_silence_hallucination, truncate_repetition
from edge_agent.audio.pool import BufferPool
from tools.bench.wer import wer


def test_logmel_matches_faster_whisper_and_leaves_no_audio(jfk_16k: np.ndarray) -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    reference = FeatureExtractor()
    ours = LogMel(reference.mel_filters, 16000 * 12)
    clip = jfk_16k[: 16000 * 6]
    expected = reference(clip, padding=16000 * 3)
    got = ours(clip, 16000 * 3)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4
    for scratch in ours.scratch_buffers():
        assert not scratch.any(), "feature scratch buffers must be zeroed after use"


def test_local_agreement_commits_only_what_two_hypotheses_share() -> None:
    la = LocalAgreement()
    assert la.update("and so") == ("", "and so")
    assert la.update("And so my fella") == ("And so", "my fella")
    assert la.update("And so my fellow American") == ("And so my", "fellow American")
    # a later hypothesis that disagrees never retracts committed words
    stable, _ = la.update("Hand so")
    assert stable == "And so my"


def test_repetition_loop_is_cut_at_second_copy() -> None:
    phrase = [11, 12, 13, 14, 15]
    assert truncate_repetition(phrase * 3) == phrase
    assert truncate_repetition([1, 2, 3, 4, 5, 6]) == [1, 2, 3, 4, 5, 6]
    assert truncate_repetition([9, 9, 9]) == [9, 9, 9]  # "no no no" is speech
    assert compression_ratio("And so my fellow Americans. " * 8) > 2.4


def test_silence_hallucinations_need_evidence() -> None:
    assert is_silence_hallucination("Thank you.", no_speech_prob=0.5, avg_logprob=-0.3)
    assert not is_silence_hallucination("Thank you.", no_speech_prob=0.01, avg_logprob=-0.1)
    assert not is_silence_hallucination("The pain started on Monday.", 0.9, -2.0)


def test_wer_normalises_case_and_punctuation() -> None:
    assert wer("Ask not, what!", "ask not what") == 0.0
    assert wer("a b c d", "a x c") == pytest.approx(0.5)


def test_pool_zeroes_on_release_and_counts_exhaustion() -> None:
    pool = BufferPool("t", 2, 480, np.int16)
    a = pool.acquire()
    b = pool.acquire()
    assert a is not None and b is not None
    assert pool.acquire() is None and pool.exhausted_count == 1
    a.data[:] = 1234
    assert not pool.all_zero()
    a.release()
    b.release()
    assert pool.all_zero() and pool.in_use() == 0


def test_a_language_the_english_only_model_cannot_speak_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """asr.language = "de" with the bundled tiny.en used to be dropped silently (decoded as English anyway)."""
    from edge_agent.asr.backend import AsrConfig
    from edge_agent.asr.whisper_ct2 import WhisperCT2
    from edge_agent.errors import ConfigError

    with pytest.raises(ConfigError, match=r"asr\.language is 'de'.*English-only"):
        WhisperCT2(AsrConfig(language="de"), 16000 * 10)
    assert WhisperCT2(AsrConfig(language="en"), 16000 * 10).tokenizer.language_code == "en"


def test_a_regional_english_code_is_english_and_a_made_up_code_is_refused() -> None:
    """A site's "en-GB" (or "en_US") is English to Whisper; it must not stop the device from loading."""
    from edge_agent.asr.backend import AsrConfig
    from edge_agent.asr.whisper_ct2 import WhisperCT2
    from edge_agent.errors import ConfigError

    assert WhisperCT2(AsrConfig(language="en-GB"), 16000 * 10).tokenizer.language_code == "en"
    assert WhisperCT2(AsrConfig(language="en_US"), 16000 * 10).tokenizer.language_code == "en"
    with pytest.raises(ConfigError, match=r"asr\.language is 'klingon', which is not a language Whisper knows"):
        WhisperCT2(AsrConfig(language="klingon"), 16000 * 10)
