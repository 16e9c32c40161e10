"""Defences against Whisper's well-known failure modes on short or silent input."""

from __future__ import annotations

import zlib

_MAX_LOOP = 32  # longest repeated phrase looked for, in tokens

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

    A loop is an n-gram immediately repeated: 2 copies for n >= 4 tokens (a
    phrase), 3 for n = 2..3, 5 for a single token ("no no no" is speech).
    """
    n_tokens = len(tokens)
    for start in range(n_tokens):
        for n in range(1, min(_MAX_LOOP, (n_tokens - start) // 2) + 1):
            needed = 5 if n == 1 else 3 if n <= 3 else 2
            if start + n * needed > n_tokens:
                continue
            gram = tokens[start : start + n]
            if all(tokens[start + k * n : start + (k + 1) * n] == gram for k in range(1, needed)):
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
