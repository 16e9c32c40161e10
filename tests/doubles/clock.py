"""A wall clock a test moves by hand (for the metrics publication boundary)."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def past_next_boundary(self, publish_s: int) -> None:
        """Move just past the next multiple of publish_s epoch seconds."""
        self.now = (int(self.now) // publish_s + 1) * publish_s + 0.001
