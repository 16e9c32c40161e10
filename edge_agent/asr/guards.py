"""Defences against Whisper's well-known failure modes on short or silent input."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

from edge_agent.asr.backend import DecodedWord

_MAX_LOOP = 32  # longest repeated phrase looked for, in tokens
# A final's trailing copy of the words before it is invented when Whisper aligns it at under this
# many seconds a word: no audio holds it (real speech is ~0.2-0.5 s a word; see unvoiced_repeat_start)
REPEAT_MIN_WORDS = 3
UNVOICED_S_PER_WORD = 0.05
_NOT_WORD = re.compile(r"[^\w']+")

# Phrases Whisper produces from silence or noise (learned from subtitle data).
SILENCE_HALLUCINATIONS = frozenset(
    {
        "you",
        "thank you",
        "thank you.",
        "thanks for watching",
        "thanks for watching!",
        "thank you for watching",
        "thank you for watching.",
        "please subscribe",
        "bye",
        "bye.",
        "so",
        "okay.",
        "the end",
        "...",
        "",
    }
)


def truncate_repetition(tokens: list[int]) -> list[int]:
    """Cut a decoded token list at the start of a repeating loop.

    A loop is an n-gram immediately repeated: 5 copies for a single token ("no no
    no" is speech), 3 for n = 2..3; a phrase of n >= 4 tokens 3 times, or twice
    with nothing after it but the start of a third copy (the decode ends in the
    loop). Twice and then other words is kept: a real voice saying a sentence
    twice decodes to identical tokens, and cutting there lost the second copy and
    every word after it (tools/bench/repeats.py --doubled, docs/realvoice.md 5.8).
    """
    n_tokens = len(tokens)
    for start in range(n_tokens):
        for n in range(1, min(_MAX_LOOP, (n_tokens - start) // 2) + 1):
            needed = 5 if n == 1 else 3 if n <= 3 else 2
            if start + n * needed > n_tokens:
                continue
            gram = tokens[start : start + n]
            if all(tokens[start + k * n : start + (k + 1) * n] == gram for k in range(1, needed)):
                after = tokens[start + 2 * n : start + 3 * n]
                if n < 4 or after == gram or (after == gram[: len(after)] and start + 3 * n >= n_tokens):
                    return tokens[: start + n]
    return tokens


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def is_silence_hallucination(text: str, no_speech_prob: float, avg_logprob: float) -> bool:
    normalised = text.strip().lower().strip("!?. ")
    if normalised in SILENCE_HALLUCINATIONS or text.strip().lower() in SILENCE_HALLUCINATIONS:
        return no_speech_prob > 0.15 or avg_logprob < -0.6
    return False


def has_no_speech(no_speech_prob: float, avg_logprob: float, no_speech_threshold: float, logprob_threshold: float) -> bool:
    """Whisper's own rule: confident 'no speech' and an unconfident decode."""
    return no_speech_prob > no_speech_threshold and avg_logprob < logprob_threshold


def _normalised(text: str) -> str:
    return _NOT_WORD.sub("", text.lower()).strip("'")


def trailing_repeat_lengths(texts: Sequence[str]) -> list[int]:
    """Lengths k >= REPEAT_MIN_WORDS (shortest first) for which the last k words repeat the k
    words just before them, case and punctuation aside."""
    norm = [_normalised(t) for t in texts]
    n = len(norm)
    return [k for k in range(REPEAT_MIN_WORDS, n // 2 + 1)
            if all(norm[n - k : n]) and norm[n - k : n] == norm[n - 2 * k : n - k]]


def unvoiced_repeat_start(words: Sequence[DecodedWord]) -> int | None:
    """Index of the first word of an invented repeat at the end of ``words``, else None.

    tiny.en sometimes ends a final by saying its last words again: a trailing run of
    >= REPEAT_MIN_WORDS words equal (case and punctuation aside) to the words just
    before it, which the alignment squeezes together (under UNVOICED_S_PER_WORD on
    average: no audio supports it), often at the very end of the window. A repeat
    the speaker really said has its own audio, so normal word durations, and is kept;
    so are shorter repeats ("no, no"). A loop of several such copies returns the
    start of the first unvoiced one.
    """
    end, found = len(words), None
    while True:
        for k in trailing_repeat_lengths([w.text for w in words[:end]]):
            copy = words[end - k : end]
            if sum(w.end - w.start for w in copy) / k < UNVOICED_S_PER_WORD:
                end = found = end - k
                break
        else:
            return found


# Whisper conditioned on the previous finals sometimes ends its text early or starts it late, skipping
# seconds of clear speech (measured on real voices: 4.2 s lost after "...of steel.", a clause before
# "He should..."), and its timestamps still claim the whole window. The aligned words show it: the
# alignment stretches the word next to the skip over it. A word covers at most this much audio...
WORD_SPAN_BASE_S = 0.5
WORD_SPAN_PER_CHAR_S = 0.07
# ... and a stretch this long that no word covers is speech the decode skipped (the VAD closes a
# segment on 0.45 s of silence, so a stretch this long inside one holds sound)
SKIPPED_SPEECH_S = 1.2


def unworded_stretch(words: Sequence[DecodedWord], duration: float) -> tuple[float, float]:
    """(start, end) in seconds of the longest stretch of a window that no aligned word covers.

    Each word covers the end of its aligned span, at most WORD_SPAN_BASE_S plus WORD_SPAN_PER_CHAR_S
    per character: a word stretched over speech that was skipped leaves the stretch uncovered.
    """
    best, reached = (0.0, duration if not words else 0.0), 0.0
    for w in words:
        span = WORD_SPAN_BASE_S + WORD_SPAN_PER_CHAR_S * len(w.text)
        start = max(w.start, w.end - span)
        if start - reached > best[1] - best[0]:
            best = (reached, start)
        reached = max(reached, w.end)
    if words and duration - reached > best[1] - best[0]:
        best = (reached, duration)
    return best


def longest_unworded(words: Sequence[DecodedWord], duration: float) -> float:
    """Seconds of :func:`unworded_stretch`."""
    start, end = unworded_stretch(words, duration)
    return end - start
