"""Sealed reports the outbox refused (disk or outbox full), held in memory until it takes them.

Nothing readable is held: each entry is an HPKE envelope sealed to the clinician
and the clinician's pseudonym (the routing key the outbox would store anyway).
The ciphertext is copied into a ``bytearray`` so it can be zeroed when it is
written, dropped, or the process exits.

Bounded by bytes (``max_bytes``), not by count: the old ``deque(maxlen=16)``
silently dropped the oldest report once a 17th came. Here a report is refused
only when holding it would pass the byte bound; the lifecycle then refuses new
visits (so no further report is made that could not be kept) and counts and
logs the one it could not keep. Every drop is counted and logged, never silent.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace

from edge_agent.crypto.seal import Envelope
from edge_agent.hardening import zero_bytes

DEFAULT_MAX_HELD_BYTES = 16 * 1024 * 1024  # ~4000 typical reports (4 KiB each)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
# At stop, held reports are retried this long before they are given up as lost (outbox.shutdown_grace_s): IT may
# free space meanwhile. The maximum stays well under the unit's TimeoutStopSec, which also covers building the
# running visit's report and the gRPC drain; past it systemd kills the daemon and the loss would go unreported.
DEFAULT_SHUTDOWN_GRACE_S = 30.0
MAX_SHUTDOWN_GRACE_S = 50.0
SHUTDOWN_RETRY_S = 1.0  # how often, during that grace, the write is tried again


@dataclass
class HeldReport:
    clinician: str
    envelope: Envelope  # .sealed is a bytearray owned here

    @property
    def size(self) -> int:
        return len(self.envelope.sealed)

    def zero(self) -> None:
        sealed = self.envelope.sealed
        if isinstance(sealed, bytearray):
            zero_bytes(sealed)


class HeldReports:
    """FIFO of held reports with a byte bound and an exponential retry back-off."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_HELD_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: deque[HeldReport] = deque()
        self._bytes = 0
        self.since: float | None = None  # monotonic time the first report of the current episode was held
        self.backoff_s = BACKOFF_FIRST_S
        self.next_try = 0.0  # monotonic

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def fits(self, size: int) -> bool:
        return self._bytes + size <= self.max_bytes

    @property
    def full(self) -> bool:
        """No room for another typical report: the lifecycle refuses new visits."""
        return not self.fits(64 * 1024)

    def add(self, clinician: str, env: Envelope) -> HeldReport | None:
        """Hold a copy (zeroable) of ``env``; None if it would pass the byte bound."""
        if not self.fits(len(env.sealed)):
            return None
        held = HeldReport(clinician, replace(env, sealed=bytearray(env.sealed)))
        self._items.append(held)
        self._bytes += held.size
        if self.since is None:
            self.since = time.monotonic()
            self.backoff_s = BACKOFF_FIRST_S
            self.next_try = self.since + self.backoff_s
        return held

    def first(self) -> HeldReport | None:
        return self._items[0] if self._items else None

    def pop_written(self, held: HeldReport) -> None:
        """``held`` (the first) is now in the outbox: forget and zero it."""
        assert self._items and self._items[0] is held
        self._items.popleft()
        self._bytes -= held.size
        held.zero()

    def failed(self, now: float | None = None) -> None:
        """A retry failed: wait twice as long (up to a minute) before the next."""
        now = time.monotonic() if now is None else now
        self.next_try = now + self.backoff_s
        self.backoff_s = min(BACKOFF_MAX_S, self.backoff_s * 2)

    def soon(self, delay_s: float, now: float | None = None) -> None:
        """Space was freed (an ack): retry after ``delay_s``, with the back-off reset."""
        now = time.monotonic() if now is None else now
        self.backoff_s = BACKOFF_FIRST_S
        self.next_try = min(self.next_try, now + delay_s) if self._items else now + delay_s

    def cleared(self) -> float | None:
        """Call when empty: how long the episode lasted (None if there was none)."""
        if self._items or self.since is None:
            return None
        lasted = time.monotonic() - self.since
        self.since = None
        return lasted

    def drop_all(self) -> tuple[int, int]:
        """Zero and forget everything; (reports, bytes) dropped."""
        count, size = len(self._items), self._bytes
        for held in self._items:
            held.zero()
        self._items.clear()
        self._bytes = 0
        self.since = None
        return count, size
