"""A final never loses speech that Whisper, conditioned on the previous finals, skipped.

Found on real continuous speech (five LibriSpeech readers back to back, no pauses, through
`edge-agent transcribe`): with the last finals' 64 tokens as context, Whisper ended a
segment's text after its first sentence ("Has got a little too much of steel.") while its
timestamps still claimed the whole 8.2 s window, so the continuation never started and the
next 4 s ("And on, Margaret, said Mr. Hale, as he returned...") were in no final, no
``discarded`` event and no count. Across that 6-minute run 5.4 % of the offline words were
deleted this way; with the context-free retry, 2.1 %.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.asr.backend import AsrConfig, DecodedWord
from edge_agent.asr.decoder import DecoderConfig, SegmentDecoder
from edge_agent.asr.guards import SKIPPED_SPEECH_S, longest_unworded
from edge_agent.asr.whisper_ct2 import WhisperCT2

# the last 64 tokens of the finals before the window, as the pipeline had them (earlier readers' text)
CONTEXT = (
    " working days. I don't think it was his worth. Accomplishments are position that knows the attracted poly,"
    " though these doubtless possess the greater influence than she suspected. There's iron they say, in all our"
    " blood, and a grain or two perhaps is good, but his, he makes me harshly feel."
)


def _w(text: str, start: float, end: float) -> DecodedWord:
    return DecodedWord(text, start, end, 0.9)


def test_the_longest_unworded_stretch() -> None:
    ended_early = [_w("Has", 0.0, 1.1), _w("got", 1.1, 1.32), _w("steel.", 2.8, 3.98)]
    assert longest_unworded(ended_early, 8.19) == pytest.approx(4.21)
    # the first word's alignment stretched over the clause skipped before it
    started_late = [_w("He", 0.0, 2.36), _w("should", 2.36, 3.34), _w("make", 3.34, 3.6)]
    assert longest_unworded(started_late, 3.7) >= SKIPPED_SPEECH_S
    # ordinary speech: short pauses, a long last word, a tail after it
    fluent = [_w("I", 0.24, 0.4), _w("have", 0.4, 0.62), _w("a", 0.62, 0.7), _w("headache.", 0.7, 1.6),
              _w("Since", 2.0, 2.3), _w("Monday.", 2.3, 3.1)]
    assert longest_unworded(fluent, 3.3) < SKIPPED_SPEECH_S
    assert longest_unworded([], 2.0) == 2.0


@pytest.fixture(scope="module")
def asr() -> WhisperCT2:
    return WhisperCT2(AsrConfig(), 16000 * 10 + 480)


def _junction(shared: Path) -> np.ndarray:
    """Reader 1688: the end of one utterance and the start of the next, joined without a pause
    (the utterances' own silence trimmed as `sox ... silence 1 0.02 -40d reverse ...` trimmed it)."""
    files = sorted(glob.glob(str(shared / "data" / "librispeech-voices" / "test-other" / "1688" / "*.flac")))
    first, rate = sf.read(files[0], dtype="float32")
    second, _ = sf.read(files[1], dtype="float32")
    assert rate == 16000
    joined = np.concatenate([first[3 : 3 + 239935], second[1661 : 1661 + 199455]])
    start = 153777  # where the VAD's max-length split put the segment's start
    return np.ascontiguousarray(joined[start : start + 131040])


def test_a_final_that_skipped_speech_under_context_is_decoded_again(asr: WhisperCT2, shared: Path) -> None:
    audio = _junction(shared)
    context = asr.tokenizer.encode(CONTEXT)[-64:]
    final = asr.decode_audio(audio, final=True, context=context)
    text = final.text.lower()
    assert "steel" in text and "margaret" in text and "hale" in text, final.text
    assert final.skip_recovered
    assert longest_unworded(asr.align_words(final), len(audio) / 16000) < SKIPPED_SPEECH_S
    # partials keep their own rule (greedy, no retry: the final covers the audio)
    assert not asr.decode_audio(audio, final=False).skip_recovered


def test_recovered_finals_are_counted(asr: WhisperCT2, shared: Path) -> None:
    audio = _junction(shared)
    decoder = SegmentDecoder(asr, DecoderConfig(partials=False))
    decoder._context.extend(asr.tokenizer.encode(CONTEXT)[-64:])
    mel = asr.window_features(audio, True)
    final = decoder.on_closed(1, mel, len(audio), 0)
    assert "margaret" in final.decoded.text.lower(), final.decoded.text
    assert decoder.stats.skips_recovered == 1


def test_another_voice_between_two_sentences_is_not_skipped(asr: WhisperCT2, shared: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A real-voice visit not in the committed set (readers 3331 and 2033, `tools.realvoice.generate
    --seed 5 --first 4 --visits 1 --duration 90`): one VAD segment holds the patient's "Point him out to
    me.", the clinician's "Put her feet in the fender.", then the patient again. Whisper, with or without
    context, went from "me." straight to "He who recited...": the clinician's sentence was in no final."""
    from tools.realvoice.generate import main as generate

    monkeypatch.setenv("EDGE_AGENT_SHARED", str(shared))
    generate(["--out", str(tmp_path), "--seed", "5", "--first", "4", "--visits", "1", "--duration", "90", "--conditions", "close"])
    visit, rate = sf.read(str(tmp_path / "visit04_cross_3331_2033_close.flac"), dtype="float32")
    assert rate == 16000
    audio = np.ascontiguousarray(visit[929280 : 929280 + 138240])  # the VAD's segment 11 (58.08-66.72 s)
    final = asr.decode_audio(audio, final=True)
    text = final.text.lower()
    assert "point him out" in text and "fender" in text and "who recited the first time" in text, final.text
    assert text.index("point him out") < text.index("fender") < text.index("who recited"), final.text
    assert final.filled >= 1
    assert sum(len(s.tokens) for s in final.sentences) == len(final.tokens)
