"""A wall clock a test moves by hand (for the metrics publication boundary)."""

from __future__ import annotations

from typing import Any


class ManualClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def past_next_boundary(self, publish_s: int) -> int:
        """Move just past the next multiple of publish_s epoch seconds; returns that boundary."""
        boundary = (int(self.now) // publish_s + 1) * publish_s
        self.now = boundary + 0.001
        return boundary


def publish_next(publisher: Any, clock: ManualClock) -> int:
    """Move ``clock`` past the publisher's next boundary and publish there.

    The server's timer thread (which re-checks the clock at least every 30 s) may take the copy first;
    nothing changes in between, so either way the publication is the registry as of the boundary.
    """
    boundary = clock.past_next_boundary(publisher.publish_s)
    publisher.publish_due()
    assert publisher.published_at == boundary
    return boundary
