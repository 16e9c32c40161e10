"""The streaming decoding rules, driven directly: no threads, no VAD, the real Whisper model.

A segment is fed as the VAD would (growing windows every 0.5 s, then closed),
so the cadence of partials, the sentences committed inside a long turn, the
look-ahead reuse and the final from features can each be checked on their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from edge_agent.asr.backend import AsrConfig
from edge_agent.asr.decoder import DecoderConfig, SegmentDecoder, SegmentGoneError
from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio import SAMPLE_RATE


@pytest.fixture(scope="module")
def asr() -> WhisperCT2:
    # sized for a 16 s segment: the long turn below is fed as one segment (the VAD would split at 10 s)
    return WhisperCT2(AsrConfig(), 16 * SAMPLE_RATE)


def _window_of(audio: np.ndarray, gone: set[int] | None = None):  # type: ignore[no-untyped-def]
    @contextlib.contextmanager
    def window(start: int, stop: int) -> Iterator[np.ndarray]:
        if gone:
            raise SegmentGoneError
        view = audio[start:stop]
        view.flags.writeable = False
        yield view

    return window


def _feed(decoder: SegmentDecoder, audio: np.ndarray, step_s: float = 0.5):  # type: ignore[no-untyped-def]
    """Grow segment 0 over ``audio`` as the VAD would; returns (length, partial) and committed pieces."""
    partials, committed = [], []
    step = int(step_s * SAMPLE_RATE)
    for length in range(step, len(audio) + 1, step):
        if not decoder.wants_update(0, length, False):
            continue
        pieces, partial = decoder.on_update(0, 0.0, length, False, _window_of(audio), length, None)
        committed += pieces
        if partial is not None:
            partials.append((length, partial, len(committed)))
    return [(length, partial) for length, partial, _ in partials], committed, [n for _, _, n in partials]


def _features(asr, audio: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    bins, frames = asr.feature_shape(len(audio))
    out = np.zeros((bins, frames), np.float32)
    return asr.features(audio, out)


def test_partials_keep_a_stated_cadence_even_with_no_cpu_budget(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: 8 * SAMPLE_RATE], dtype=np.float32)
    starved = SegmentDecoder(asr, DecoderConfig(partial_cpu_share=0.0, partial_max_gap_s=1.5), cpu_clock=lambda: 0.0)
    partials, _, _ = _feed(starved, audio)
    decoded_at = [0] + [length for length, _ in partials]
    # a partial at least every 1.5 s of speech (plus the 0.5 s step the VAD reports in)
    gaps = np.diff(decoded_at + [len(audio)]) / SAMPLE_RATE
    assert starved.stats.partial_decodes >= 4 and max(gaps) <= 2.0 + 1e-6, gaps
    assert "fellow" in " ".join(p.text for _, p in partials).lower()


def test_a_long_turn_commits_sentence_finals_before_it_ends(asr, shared) -> None:  # type: ignore[no-untyped-def]
    audio, rate = sf.read(str(shared / "data" / "librispeech-voices" / "test-other" / "1688" / "1688-142285-0000.flac"), dtype="float32")
    assert rate == SAMPLE_RATE
    decoder = SegmentDecoder(asr, DecoderConfig())
    partials, committed, epochs = _feed(decoder, audio)
    assert committed, "15 s of reading should finalise at least one sentence before the segment closes"
    first = committed[0]
    assert first.decoded.text and first.words and 0 < first.stop < len(audio)
    assert all(a.stop <= b.start for a, b in zip(committed, committed[1:]))  # pieces follow each other
    final = decoder.on_closed(0, _features(asr, audio), len(audio))
    assert final.start == committed[-1].stop  # the final covers only the rest
    # between commits the stable prefix only grows (a commit replaces it with the sentence's final text)
    def norm(text: str) -> str:
        return " ".join(text.lower().replace(".", "").replace(",", "").split())

    pairs = zip(partials, partials[1:], epochs, epochs[1:])
    assert all(norm(b.stable).startswith(norm(a.stable)) for (_, a), (_, b), ea, eb in pairs if ea == eb)


def test_final_reuses_the_look_ahead_decode_of_its_exact_audio(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: int(3.5 * SAMPLE_RATE)], dtype=np.float32)
    decoder = SegmentDecoder(asr, DecoderConfig(partials=False))
    decoder.on_update(0, 0.0, len(audio), True, _window_of(audio), len(audio), None)
    final = decoder.on_closed(0, _features(asr, audio), len(audio))
    assert decoder.stats.candidate_reused == 1 and "fellow" in final.decoded.text.lower()
    # a segment that went on after the look-ahead is decoded afresh from its features
    decoder.on_update(1, 0.0, len(audio) // 2, True, _window_of(audio), len(audio) // 2, None)
    decoder.on_closed(1, _features(asr, audio), len(audio))
    assert decoder.stats.candidate_reused == 1


def test_an_update_whose_segment_was_zeroed_meanwhile_is_dropped(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: 2 * SAMPLE_RATE], dtype=np.float32)
    decoder = SegmentDecoder(asr, DecoderConfig())
    with pytest.raises(SegmentGoneError):
        decoder.on_update(0, 0.0, len(audio), False, _window_of(audio, gone={0}), len(audio), None)
    decoder.forget()
    assert decoder.on_update(0, 0.0, len(audio), False, _window_of(audio), len(audio), None)[1] is not None
