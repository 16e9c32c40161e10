"""LocalAgreement-2: commit the words two consecutive hypotheses agree on.

Partials then grow monotonically at the front (committed words never change)
and only the unstable tail may flicker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NORM = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _NORM.sub("", word.lower())


@dataclass
class LocalAgreement:
    """``last_hypothesis``: the newest hypothesis's words."""

    committed: list[str] = field(default_factory=list)
    _previous: list[str] = field(default_factory=list)

    @property
    def last_hypothesis(self) -> list[str]:
        return list(self._previous)

    def update(self, hypothesis: str) -> tuple[str, str]:
        """Feed a new hypothesis; returns (stable text, unstable tail)."""
        words = hypothesis.split()
        agree = 0
        for a, b in zip(self._previous, words):
            if _norm(a) != _norm(b):
                break
            agree += 1
        consistent = [_norm(w) for w in words[: len(self.committed)]] == [_norm(w) for w in self.committed]
        if agree >= len(self.committed) and consistent:
            # take the newest spelling/punctuation of the agreed words; a hypothesis that rewrites
            # words already committed never changes them (the stable prefix only grows)
            self.committed = words[:agree]
        self._previous = words
        tail = words[len(self.committed) :]
        return " ".join(self.committed), " ".join(tail)
