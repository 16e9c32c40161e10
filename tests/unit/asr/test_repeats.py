"""Invented repeats at the end of finals, and finals that would continue from where they began.

tiny.en sometimes ends a final by saying its last words again, a copy the alignment
squeezes where no audio is (guards.unvoiced_repeat_start); WhisperCT2 drops it from
finals and the decoder counts it. Measured on real voices with tools/bench/repeats.py
(docs/realvoice.md 5.8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.asr.backend import AsrConfig, Decoded, DecodedWord, Sentence
from edge_agent.asr.decoder import DecoderConfig, SegmentDecoder
from edge_agent.asr.events import FinalTranscript, PipelineEvent
from edge_agent.asr.guards import trailing_repeat_lengths, truncate_repetition, unvoiced_repeat_start
from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio.file_source import FileSource
from edge_agent.cli.transcribe import summary_record
from edge_agent.device.pipeline import PipelineConfig, StreamingPipeline


def timed(*spec: tuple[str, float, float]) -> list[DecodedWord]:
    return [DecodedWord(text, start, end, 0.9) for text, start, end in spec]


def said(text: str, start: float, per_word: float) -> list[DecodedWord]:
    """Words of ``text`` one after another, ``per_word`` seconds each, from ``start``."""
    return [DecodedWord(w, start + i * per_word, start + (i + 1) * per_word, 0.9) for i, w in enumerate(text.split())]


# -- the guard --------------------------------------------------------------------------------------


def test_an_invented_repeat_is_found_where_its_copy_starts() -> None:
    # as Whisper gave it on a real voice (229-130880-0000): the copy aligned at 9.40-9.52 s of a 9.54 s window
    words = said("whose shapes were very whimsically sculpted.", 5.0, 0.4) + timed(
        ("After", 8.26, 8.52), ("our", 8.52, 8.78), ("position", 8.78, 9.06), ("fix,", 9.06, 9.40),
        ("after", 9.40, 9.40), ("our", 9.40, 9.40), ("position", 9.40, 9.40), ("fix,", 9.40, 9.52),
    )
    assert unvoiced_repeat_start(words) == 10  # case and punctuation aside: "After ... fix," == "after ... fix,"


def test_a_repeat_the_speaker_said_is_kept() -> None:
    words = said("take one tablet twice a day, take one tablet twice a day.", 0.0, 0.3)
    assert trailing_repeat_lengths([w.text for w in words]) == [6]
    assert unvoiced_repeat_start(words) is None
    # the boundary: a copy aligned at 0.06 s a word is kept, at 0.04 s dropped
    for per_word, expected in ((0.06, None), (0.04, 3)):
        copy = said("pain in chest", 0.9, per_word)
        assert unvoiced_repeat_start(said("pain in chest", 0.0, 0.3) + copy) == expected


def test_a_two_word_repeat_is_kept_even_without_audio() -> None:
    words = said("thank you", 0.0, 0.3) + said("thank you", 0.6, 0.0)
    assert unvoiced_repeat_start(words) is None


def test_words_that_do_not_repeat_are_untouched() -> None:
    squeezed_end = said("the pain started on", 0.0, 0.3) + said("monday last week", 1.2, 0.01)
    assert unvoiced_repeat_start(squeezed_end) is None
    # a repeat followed by other words is not a trailing repeat
    assert unvoiced_repeat_start(said("it hurts here it hurts here", 0.0, 0.0) + said("and there", 2.0, 0.3)) is None


def test_empty_and_short_word_lists() -> None:
    assert unvoiced_repeat_start([]) is None
    for n in range(1, 6):  # fewer than two copies of three words
        assert unvoiced_repeat_start(said("a b c a b c"[: 2 * n - 1], 0.0, 0.0)) is None
    assert unvoiced_repeat_start(said("a b c a b c", 0.0, 0.0)) == 3
    # punctuation-only words never make a repeat
    assert unvoiced_repeat_start(said("... ... ... ... ... ...", 0.0, 0.0)) is None


def test_a_loop_of_copies_is_cut_at_the_first_unvoiced_one() -> None:
    spoken = said("hold on now hold on now", 0.0, 0.3)  # said twice, aloud
    assert unvoiced_repeat_start(spoken + said("hold on now hold on now", 1.8, 0.01)) == 6
    assert unvoiced_repeat_start(said("hold on now", 0.0, 0.3) + said("hold on now " * 3, 0.9, 0.0)) == 3


def test_a_phrase_said_twice_and_then_more_words_is_not_a_loop() -> None:
    phrase, more = [11, 12, 13, 14, 15], [21, 22, 23]
    assert truncate_repetition(phrase * 2 + more) == phrase * 2 + more  # a repeat, then the turn goes on
    assert truncate_repetition(more + phrase * 2 + more) == more + phrase * 2 + more
    # the decode ends in the loop: cut as before
    assert truncate_repetition(phrase * 2) == phrase
    assert truncate_repetition(more + phrase * 2 + phrase[:3]) == more + phrase
    assert truncate_repetition(phrase * 3 + more) == phrase
    # shorter grams keep their rules
    assert truncate_repetition([7, 8] * 3 + more) == [7, 8]
    assert truncate_repetition([9] * 5 + more) == [9]
    assert truncate_repetition([9] * 4 + more) == [9] * 4 + more


# -- the continuation guard --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asr() -> WhisperCT2:
    return WhisperCT2(AsrConfig(), 16000 * 10)


def _scripted(asr: WhisperCT2, sentences: list[tuple[float, float, str]], n_samples: int) -> Decoded:
    parts = [Sentence(a, b, asr.tokenizer.encode(" " + text)) for a, b, text in sentences]
    tokens = [t for s in parts for t in s.tokens]
    return Decoded(asr.text_of(tokens), tokens, -0.2, 0.01, n_samples, None, sentences=parts)


def test_a_final_is_never_continued_from_where_its_last_decode_began(asr: WhisperCT2, monkeypatch: pytest.MonkeyPatch) -> None:
    """A continuation whose text closes at its first timestamp leaves the final's end where the
    continuation began: decoding from there again would give the same words again."""
    n = 16000 * 10
    calls: list[int] = []

    def decode_once(features: np.ndarray, n_samples: int, final: bool, context: list[int] | None) -> Decoded:
        calls.append(n - n_samples)  # samples from the window's start this decode began at
        if len(calls) == 1:
            return _scripted(asr, [(0.0, 2.0, "The pain started on Monday.")], n_samples)
        return _scripted(asr, [(0.0, 0.0, "It got worse at night.")], n_samples)

    monkeypatch.setattr(asr, "_decode_once", decode_once)
    decoded = asr.decode_features(np.zeros((80, 1300), np.float32), n, final=True)
    assert calls == [0, 32000], "one continuation from 2.0 s, none from where it began"
    assert decoded.text == "The pain started on Monday. It got worse at night."


def test_a_final_whose_text_closes_at_zero_is_not_decoded_again(asr: WhisperCT2, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def decode_once(features: np.ndarray, n_samples: int, final: bool, context: list[int] | None) -> Decoded:
        calls.append(n_samples)
        return _scripted(asr, [(0.0, 0.0, "Okay, thank you doctor.")], n_samples)

    monkeypatch.setattr(asr, "_decode_once", decode_once)
    decoded = asr.decode_features(np.zeros((80, 1300), np.float32), 16000 * 10, final=True)
    assert len(calls) == 1 and decoded.text == "Okay, thank you doctor."


# -- the wrapper on real voices ------------------------------------------------------------------------


def _voice(shared: Path, name: str, start: int, length: int) -> np.ndarray:
    audio, rate = sf.read(str(shared / "data" / "librispeech-voices" / "train-clean-100" / name), dtype="float32")
    assert rate == 16000
    return np.ascontiguousarray(audio[start : start + length])


def test_the_repeat_whisper_invents_on_a_real_voice_is_dropped_and_the_words_stay(
    asr: WhisperCT2, shared: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the first VAD segment (0-9.54 s) of this reader, found by tools/bench/repeats.py
    audio = _voice(shared, "229-130880-0000.flac", 0, 152640)
    final = asr.decode_audio(audio, final=True)
    text = final.text.lower()
    for word in ("observed", "cluster", "mountains", "feet", "whimsically", "sculpted", "after our position fix"):
        assert word in text, final.text
    assert text.count("position fix") == 1, final.text
    assert final.repeat_dropped == 4
    assert final.sentences and sum(len(s.tokens) for s in final.sentences) == len(final.tokens)
    # the same window without the guard: the copy is there (else this recording no longer tests the guard)
    monkeypatch.setattr(asr, "_drop_unvoiced_repeat", lambda decoded: None)
    unguarded = asr.decode_audio(audio, final=True)
    assert unguarded.text.lower().count("position fix") == 2, f"no invented repeat any more: {unguarded.text!r}"


def test_a_repeat_said_aloud_on_a_real_voice_is_kept(asr: WhisperCT2, shared: Path) -> None:
    # a real voice saying the same words twice: its 11.40-13.83 s, twice, 0.3 s apart
    once = _voice(shared, "307-127535-0000.flac", 182400, 38880)
    final = asr.decode_audio(np.concatenate([once, np.zeros(4800, np.float32), once]), final=True)
    assert final.text.lower().count("loan of the torch") == 2, final.text
    assert final.repeat_dropped == 0


def test_a_real_voice_saying_a_sentence_twice_and_going_on_keeps_every_word(asr: WhisperCT2, shared: Path) -> None:
    """truncate_repetition cut a phrase said twice at its second copy, and every word after it with it:
    "begged for a moment's loan of the torch," was all that was left of this final."""
    once = _voice(shared, "307-127535-0000.flac", 182400, 38880)
    then = _voice(shared, "307-127535-0000.flac", 228000, 31680)  # "Silver briefly agreed."
    gap = np.zeros(4800, np.float32)
    final = asr.decode_audio(np.concatenate([once, gap, once, gap, then]), final=True)
    text = final.text.lower()
    assert text.count("loan of the torch") == 2 and "briefly agreed" in text, final.text


def test_partials_are_not_guarded(asr: WhisperCT2, jfk_16k: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    guard = asr._drop_unvoiced_repeat
    monkeypatch.setattr(asr, "_drop_unvoiced_repeat", lambda decoded: seen.append(decoded.text) or guard(decoded))
    audio = np.ascontiguousarray(jfk_16k[: 16000 * 8], dtype=np.float32)
    assert asr.decode_audio(audio, final=False).text
    assert not seen
    assert asr.decode_audio(audio, final=True).text
    assert len(seen) == 1


# -- counted where the finals' numbers are -----------------------------------------------------------


class _Repeating:
    """A recogniser whose every final lost an invented copy of 4 words."""

    sample_rate = 16000
    hop = 160

    def decode_features(self, features: np.ndarray, n_samples: int, final: bool = True, context: list[int] | None = None) -> Decoded:
        return Decoded("the pain started on Monday.", [1, 2, 3], -0.2, 0.01, n_samples, None, repeat_dropped=4)

    def align_words(self, decoded: Decoded) -> list[DecodedWord]:
        return said(decoded.text, 0.0, 0.3)


def test_the_decoder_counts_the_finals_it_hands_out_without_a_repeat() -> None:
    decoder = SegmentDecoder(_Repeating(), DecoderConfig())  # type: ignore[arg-type]
    for segment in (1, 2):
        assert decoder.on_closed(segment, np.zeros((80, 400), np.float32), 16000 * 3).decoded.text
    assert (decoder.stats.repeats_dropped, decoder.stats.repeat_words_dropped) == (2, 8)


class _EveryFinalLostACopy:
    """The real recogniser, each of whose finals with text reports a dropped copy of 4 words."""

    def __init__(self, real: WhisperCT2) -> None:
        self._real = real

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._real, name)

    def decode_features(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        decoded = self._real.decode_features(*args, **kwargs)
        if kwargs.get("final") and decoded.text:
            decoded.repeat_dropped = 4
        return decoded


def test_dropped_repeats_reach_the_run_stats_and_the_summary(session, jfk_path: Path) -> None:  # type: ignore[no-untyped-def]
    events: list[PipelineEvent] = []
    stats = StreamingPipeline(PipelineConfig(), _EveryFinalLostACopy(session.engine), events.append,
                              max_segment_samples=session.engine.max_samples).run(FileSource(jfk_path))
    finals = [e for e in events if isinstance(e, FinalTranscript)]
    assert finals and stats.repeats_dropped >= 1
    assert stats.repeat_words_dropped == 4 * stats.repeats_dropped
    record = summary_record(stats, True)
    assert (record["repeats_dropped"], record["repeat_words_dropped"]) == (stats.repeats_dropped, stats.repeat_words_dropped)
