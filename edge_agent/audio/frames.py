"""The unit of audio that flows from a source into the segmenter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge_agent.audio.pool import BufferPool, PooledBuffer


@dataclass
class AudioFrame:
    """``frame_samples`` of 16 kHz mono int16 audio held in a pool slot."""

    buf: PooledBuffer
    index: int  # frame number since the source started
    arrival: float  # time.monotonic() when the frame's last sample became available

    @property
    def samples(self) -> np.ndarray:
        return self.buf.data

    def release(self) -> None:
        self.buf.release()


class AudioSource(Protocol):
    """Anything that yields pool-backed 16 kHz mono int16 frames."""

    live: bool  # a live source cannot wait for the consumer (frames would be lost)
    description: str
    dropped_frames: int  # frames lost on a full capture queue; a wrapper must pass its source's count on

    def frames(self, pool: BufferPool) -> Iterator[AudioFrame]: ...

    def close(self) -> None: ...
