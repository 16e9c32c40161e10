"""Word error rate with light normalisation (case, punctuation, hyphens)."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s']")
_NUMBER_WORDS = {"mm-hmm": "mhm", "mm-hm": "mhm", "okay": "ok", "ok": "ok"}


def normalise(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    words = _PUNCT.sub(" ", text).split()
    return [_NUMBER_WORDS.get(w, w) for w in words]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref = normalise(reference)
    hyp = normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)
