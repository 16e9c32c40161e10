"""Turns int16 mono blocks of any rate into fixed 16 kHz int16 pool frames.

Shared by the file and microphone sources. Audio stays int16 from the device
to the pool frame (no float round trip); it becomes float only once, when the
VAD copies a frame into a speech segment. All scratch space is allocated once
and zeroed when the framer closes; resampler outputs are zeroed right after use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import soxr

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.pool import BufferPool
from edge_agent.hardening import locked_zeros


class Framer:
    def __init__(self, pool: BufferPool, input_rate: int, max_block: int) -> None:
        self.pool = pool
        self.frame_samples = pool.slot_len
        self._resampler = (
            soxr.ResampleStream(input_rate, SAMPLE_RATE, 1, dtype="int16", quality="HQ")
            if input_rate != SAMPLE_RATE
            else None
        )
        ratio = SAMPLE_RATE / input_rate
        self._carry = locked_zeros(self.frame_samples + int(max_block * ratio) * 2 + 4096, np.int16)  # raw audio: locked
        self._carried = 0
        self._next_index = 0

    def push(self, mono: np.ndarray, last: bool = False, block: bool = True) -> Iterator[AudioFrame]:
        """Add a mono int16 block (any stride); yield every complete frame.

        A frame that finds no free pool slot is lost; the pool counts it
        (``BufferPool.exhausted_count``), so it is counted once.
        """
        if self._resampler is not None:
            resampled = self._resampler.resample_chunk(mono, last=last)
            self._append(resampled)
            resampled.fill(0)
        else:
            self._append(mono)
        while self._carried >= self.frame_samples:
            yield from self._emit(block)
        if last and self._carried:
            self._carry[self._carried : self.frame_samples] = 0
            self._carried = self.frame_samples
            yield from self._emit(block)

    def _append(self, block: np.ndarray) -> None:
        n = len(block)
        if self._carried + n > len(self._carry):
            raise ValueError(f"audio block of {n} samples exceeds the framer's block size")
        self._carry[self._carried : self._carried + n] = block
        self._carried += n

    def _emit(self, block: bool) -> Iterator[AudioFrame]:
        fs = self.frame_samples
        remaining = self._carried - fs
        buf = self.pool.acquire(block=block, timeout=None if block else 0)
        index = self._next_index
        self._next_index += 1
        if buf is not None:
            buf.data[...] = self._carry[:fs]
        # Shift the remainder down one frame-sized chunk at a time: source and
        # destination never overlap, so numpy makes no hidden temporary copy.
        for off in range(0, remaining, fs):
            k = min(fs, remaining - off)
            self._carry[off : off + k] = self._carry[off + fs : off + fs + k]
        self._carry[remaining : self._carried] = 0
        self._carried = remaining
        if buf is not None:
            yield AudioFrame(buf, index, time.monotonic())

    def close(self) -> None:
        self._carry.fill(0)
        self._carried = 0
