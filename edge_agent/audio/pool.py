"""Fixed, preallocated pools for raw audio.

Raw audio lives only in these pools. Each pool is one anonymous ``mmap`` region
(outside the malloc heap), page-aligned, excluded from core dumps and (where
permitted) locked in RAM. A slot is zeroed every time it is released, so the
only audio in memory is audio still in use. When a pool is closed (or dropped)
its region is zeroed and handed to the next pool of the same size
(:data:`edge_agent.hardening.REGIONS`): visits reuse the same locked pages.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_agent.hardening import pool_region


@dataclass
class PooledBuffer:
    """One slot of a pool; ``data`` is a view into the pool's single allocation."""

    pool: "BufferPool"
    slot: int
    data: np.ndarray

    def release(self) -> None:
        self.pool.release(self)


class BufferPool:
    def __init__(self, name: str, slots: int, slot_len: int, dtype: type) -> None:
        if slots < 1 or slot_len < 1:
            raise ValueError("pool needs at least one slot of one sample")
        self.name = name
        self.slot_len = slot_len
        self._region, self._give_back = pool_region(self, slots * slot_len * np.dtype(dtype).itemsize)
        self._store = self._region.array((slots, slot_len), dtype)
        self.protected = self._region.dontdump
        self._free: deque[int] = deque(range(slots))
        self._lock = threading.Condition()
        self.exhausted_count = 0  # acquisitions that found no free slot

    @property
    def slots(self) -> int:
        return self._store.shape[0]

    @property
    def nbytes(self) -> int:
        return self._store.nbytes

    def acquire(self, block: bool = False, timeout: float | None = None) -> PooledBuffer | None:
        """A free slot, or None when the pool is exhausted (counted)."""
        with self._lock:
            if not self._free and block:
                self._lock.wait_for(lambda: bool(self._free), timeout=timeout)
            if not self._free:
                self.exhausted_count += 1
                return None
            slot = self._free.popleft()
        return PooledBuffer(self, slot, self._store[slot])

    def release(self, buf: PooledBuffer) -> None:
        buf.data.fill(0)
        with self._lock:
            if buf.slot in self._free:
                return  # double release is harmless: it is already zeroed
            self._free.append(buf.slot)
            self._lock.notify_all()  # an acquirer and a reader waiting for room (wait_free) may both wait

    def wait_free(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` slots are free (True), or ``timeout`` seconds pass (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._free) >= count, timeout=timeout)

    def in_use(self) -> int:
        with self._lock:
            return self.slots - len(self._free)

    def all_zero(self) -> bool:
        return not self._store.any()

    def wipe(self) -> None:
        """Zero every slot (used at shutdown whatever their state)."""
        self._store.fill(0)

    def close(self) -> None:
        """Zero everything and hand the region to the next pool of this size (idempotent).

        The pool must not be used afterwards. Dropping the pool without ``close`` does the same.
        """
        if not self._give_back.alive:
            return
        self._store.fill(0)
        with self._lock:
            self._free.clear()
        self._store = self._store[:0]  # no slot of a region another pool may get next
        self._give_back()
