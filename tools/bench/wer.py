"""Word error rate with light normalisation (case, punctuation, hyphens)."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s']")
# As Whisper's English normaliser does: hesitations are not scored, spellings unified.
_FILLERS = {"um", "uh", "er", "ah", "hmm", "mm", "mmm", "mhm", "erm", "uhm"}
_SPELLINGS = {"okay": "ok", "mm-hmm": "mhm", "mm-hm": "mhm"}
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBERS = {word: str(i) for i, word in enumerate(_UNITS)} | {word: str(v) for word, v in _TENS.items()}


def normalise(text: str) -> list[str]:
    text = text.lower()
    for spelling, canonical in _SPELLINGS.items():
        text = text.replace(spelling, canonical)
    words = _PUNCT.sub(" ", text.replace("-", " ")).split()
    return [_NUMBERS.get(w, w) for w in words if w not in _FILLERS]


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
