"""The streaming decoding rules, driven directly: no threads, no VAD, the real Whisper model.

A segment is fed as the VAD would (growing windows every 0.5 s, then closed),
so the cadence of partials, the sentences committed inside a long turn, the
look-ahead reuse and the final from features can each be checked on their own.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from edge_agent.asr.backend import AsrConfig
from edge_agent.asr.decoder import DecoderConfig, SegmentDecoder, SegmentGoneError
from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.featurize import ArrayFeatures

_ASR: list[WhisperCT2] = []  # the module's recogniser (the views below featurise with its mel bands)


@pytest.fixture(scope="module")
def asr() -> WhisperCT2:
    # sized for a 16 s segment: the long turn below is fed as one segment (the VAD would split at 10 s)
    _ASR[:] = [WhisperCT2(AsrConfig(), 16 * SAMPLE_RATE)]
    return _ASR[0]


class _View:
    """An open segment as the pipeline shows it to the decoder: its features (computed as the stream featurizer
    does), never its audio; gone (closed) for every read when ``gone`` is set."""

    _cache: dict[tuple[int, int, float], ArrayFeatures] = {}

    def __init__(self, audio: np.ndarray, gone: set[int] | None) -> None:
        self.gone = gone
        key = (id(audio), len(audio), float(np.abs(audio[::997]).sum()))  # an id alone may be a freed array's
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = ArrayFeatures(audio, _ASR[0].mel_filters, _ASR[0].window_pad)
        self.feats = self._cache[key]

    def features(self, start: int, stop: int, final: bool) -> np.ndarray:
        if self.gone:
            raise SegmentGoneError
        return self.feats.features(start, stop, final)

    def energy(self, start: int, stop: int) -> np.ndarray:
        if self.gone:
            raise SegmentGoneError
        return self.feats.energy(start, stop)


def _window_of(audio: np.ndarray, gone: set[int] | None = None) -> _View:
    return _View(audio, gone)


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


class _Counting:
    """The real recogniser, counting decodes (each one runs the encoder and the decoder)."""

    def __init__(self, asr: WhisperCT2) -> None:
        self._asr = asr
        self.decodes = 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._asr, name)

    def decode_features(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.decodes += 1
        return self._asr.decode_features(*args, **kwargs)


def test_final_reuses_the_look_ahead_decode_of_its_exact_audio(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: int(3.5 * SAMPLE_RATE)], dtype=np.float32)
    counting = _Counting(asr)
    decoder = SegmentDecoder(counting, DecoderConfig(partials=False, commit_at_pause=False))
    decoder.on_update(0, 0.0, len(audio), True, _window_of(audio), len(audio), None)
    final = decoder.on_closed(0, _features(asr, audio), len(audio))
    assert decoder.stats.candidate_reused == 1 and "fellow" in final.decoded.text.lower()
    assert counting.decodes == 1  # the close decoded nothing
    # a segment that went on after the look-ahead is decoded afresh from its features
    decoder.on_update(1, 0.0, len(audio) // 2, True, _window_of(audio), len(audio) // 2, None)
    decoder.on_closed(1, _features(asr, audio), len(audio))
    assert decoder.stats.candidate_reused == 1 and counting.decodes == 3


def test_the_look_ahead_at_a_pause_is_a_final_at_once_and_the_close_decodes_nothing(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The VAD's final candidate (speech paused) becomes a committed piece before the segment closes,
    whether it then closes or the speaker goes on: the look-ahead decode is never thrown away."""
    pause = int(3.5 * SAMPLE_RATE)  # jfk pauses after "...fellow Americans,"
    audio = np.ascontiguousarray(jfk_16k[: int(7.0 * SAMPLE_RATE)], dtype=np.float32)
    counting = _Counting(asr)
    decoder = SegmentDecoder(counting, DecoderConfig(partials=True, commit_at_pause=True, pause_commit_agreement=0.0))
    pieces, partial = decoder.on_update(0, 0.0, pause, True, _window_of(audio), pause, None)
    assert partial is None and len(pieces) == 1 and "fellow" in pieces[0].decoded.text.lower()
    assert (pieces[0].start, pieces[0].stop) == (0, pause) and pieces[0].words
    assert decoder.committed_until(0) == pause
    # the speaker went on: the final covers only what came after the pause
    final = decoder.on_closed(0, _features(asr, audio), len(audio), segment_start=0)
    assert final.start == pause and "fellow" not in final.decoded.text.lower() and final.decoded.text
    assert decoder.stats.pause_commits == decoder.stats.candidate_reused == 1 and counting.decodes == 2
    # a segment that closes on the look-ahead's audio is not decoded again
    decoder.on_update(1, 0.0, pause, True, _window_of(audio), 10 * pause, None)
    final = decoder.on_closed(1, _features(asr, audio[:pause]), pause, segment_start=10 * pause - pause)
    assert final.decoded.rejected == "committed" and not final.words and final.start == pause
    assert decoder.stats.finals_without_rest == 1 and counting.decodes == 3


def test_a_look_ahead_that_contradicts_the_live_hypothesis_waits_for_the_close(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: int(3.5 * SAMPLE_RATE)], dtype=np.float32)
    decoder = SegmentDecoder(asr, DecoderConfig(commit_at_pause=True, pause_commit_agreement=0.6))
    # no partial was decoded for this window: nothing to agree with, so no commit at the pause
    pieces, _ = decoder.on_update(0, 0.0, len(audio), True, _window_of(audio), len(audio), None)
    assert not pieces and decoder.stats.pause_commits == 0
    final = decoder.on_closed(0, _features(asr, audio), len(audio))
    assert decoder.stats.candidate_reused == 1 and "fellow" in final.decoded.text.lower()
    # with a partial of the same words first, the pause commits
    agreed = SegmentDecoder(asr, DecoderConfig(commit_at_pause=True, pause_commit_agreement=0.6))
    _, partial = agreed.on_update(0, 0.0, len(audio), False, _window_of(audio), len(audio), None)
    assert partial is not None and "fellow" in partial.text.lower()
    pieces, _ = agreed.on_update(0, 0.0, len(audio), True, _window_of(audio), len(audio), None)
    assert len(pieces) == 1 and agreed.stats.pause_commits == 1


def test_a_segment_split_before_committed_audio_does_not_finalise_it_twice(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    pause = int(3.5 * SAMPLE_RATE)
    audio = np.ascontiguousarray(jfk_16k[: int(7.0 * SAMPLE_RATE)], dtype=np.float32)
    decoder = SegmentDecoder(asr, DecoderConfig(commit_at_pause=True, pause_commit_agreement=0.0))
    pieces, _ = decoder.on_update(0, 0.0, pause, True, _window_of(audio), pause, None)
    assert pieces
    # the VAD split the segment 0.2 s before the committed end (its quietest frame); the new
    # segment starts there, and its text starts after the committed piece
    split = pause - int(0.2 * SAMPLE_RATE)
    assert decoder.on_closed(0, _features(asr, audio[:split]), split, segment_start=0).decoded.rejected == "committed"
    rest = audio[split:]
    final = decoder.on_closed(1, _features(asr, rest), len(rest), segment_start=split)
    assert final.start == pause - split and "fellow" not in final.decoded.text.lower()


def test_a_window_that_decodes_to_nothing_is_not_decoded_at_every_update(asr) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(8 * SAMPLE_RATE) * 1e-4).astype(np.float32)
    decoder = SegmentDecoder(asr, DecoderConfig(partial_cpu_share=0.0))
    _feed(decoder, noise)  # 16 updates every 0.5 s
    # at most every 0.5 s while the window is under 2 s (an utterance's first words), then every 1.5 s
    assert decoder.stats.partial_decodes <= 4 + 4, decoder.stats
    assert decoder.stats.partials_over_budget >= 8


def test_an_update_whose_segment_was_zeroed_meanwhile_is_dropped(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: 2 * SAMPLE_RATE], dtype=np.float32)
    decoder = SegmentDecoder(asr, DecoderConfig())
    with pytest.raises(SegmentGoneError):
        decoder.on_update(0, 0.0, len(audio), False, _window_of(audio, gone={0}), len(audio), None)
    decoder.forget()
    assert decoder.on_update(0, 0.0, len(audio), False, _window_of(audio), len(audio), None)[1] is not None


class _Windows(_Counting):
    """The real recogniser, recording the audio length of every partial decode."""

    def __init__(self, asr: WhisperCT2) -> None:
        super().__init__(asr)
        self.partial_windows: list[int] = []

    def decode_features(self, features, n_samples, final=True, context=None):  # type: ignore[no-untyped-def]
        if not final:
            self.partial_windows.append(n_samples)
        return super().decode_features(features, n_samples, final=final, context=context)


def test_partials_of_a_long_window_decode_a_bounded_tail_and_keep_the_earlier_words(asr, shared) -> None:  # type: ignore[no-untyped-def]
    # 15 s of continuous reading as one window: sentence commits off, so without the cap every
    # partial would re-decode all of it (its cost growing with the segment)
    audio, rate = sf.read(str(shared / "data" / "librispeech-voices" / "test-other" / "1688" / "1688-142285-0000.flac"), dtype="float32")
    assert rate == SAMPLE_RATE
    audio = np.ascontiguousarray(audio[: 15 * SAMPLE_RATE])
    recorder = _Windows(asr)
    cfg = DecoderConfig(partial_window_s=4.0, partial_tail_s=2.0, commit_after_s=1e9, commit_margin_s=1e9)
    decoder = SegmentDecoder(recorder, cfg)  # type: ignore[arg-type]
    partials, committed, _ = _feed(decoder, audio)
    assert not committed
    # never more than the cap decoded by one partial (the first partials decode the whole window)
    assert recorder.partial_windows and max(recorder.partial_windows) <= 4.0 * SAMPLE_RATE
    assert decoder.stats.tail_partials >= 4 and decoder.stats.partial_window_max_s <= 4.0
    # the stated cadence: a partial at least every 1.5 s of speech (plus the 0.5 s update step)
    decoded_at = [0] + [length for length, _ in partials]
    gaps = np.diff(decoded_at + [len(audio)]) / SAMPLE_RATE
    assert max(gaps) <= 2.0 + 1e-6, gaps

    def words(text: str) -> list[str]:
        return [w.strip(".,!?;:\"'").lower() for w in text.split()]

    # the last partial still holds the turn's opening words as the last whole-window partial
    # (the longest decode) read them, kept since, and most of what a single decode of all says
    early = words([p for length, p in partials if length <= 4 * SAMPLE_RATE][-1].text)[:4]
    last = words(partials[-1][1].text)
    assert " ".join(early) in " ".join(last), (early, last)
    whole = words(asr.decode_audio(audio[: partials[-1][0]], final=False).text)
    shared_words = sum(min(last.count(w), whole.count(w)) for w in set(whole))
    assert shared_words >= 0.8 * len(whole), (last, whole)
    # the stable prefix still only grows
    stables = [" ".join(words(p.stable)) for _, p in partials]
    assert all(b.startswith(a) for a, b in zip(stables, stables[1:]))


def test_partial_window_zero_decodes_the_whole_window_as_before(asr, jfk_16k: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    audio = np.ascontiguousarray(jfk_16k[: 8 * SAMPLE_RATE], dtype=np.float32)
    recorder = _Windows(asr)
    decoder = SegmentDecoder(recorder, DecoderConfig(partial_window_s=0.0, commit_after_s=1e9))  # type: ignore[arg-type]
    partials, _, _ = _feed(decoder, audio)
    assert decoder.stats.tail_partials == 0
    assert partials and max(recorder.partial_windows) >= 7 * SAMPLE_RATE  # the last decodes held the whole 8 s
