"""Turns float blocks of any rate/channel count into fixed int16 pool frames.

Shared by the file and microphone sources. All scratch space is allocated once
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


class Framer:
    def __init__(self, pool: BufferPool, input_rate: int, max_block: int) -> None:
        self.pool = pool
        self.frame_samples = pool.slot_len
        self._resampler = (
            soxr.ResampleStream(input_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            if input_rate != SAMPLE_RATE
            else None
        )
        ratio = SAMPLE_RATE / input_rate
        self._carry = np.zeros(self.frame_samples + int(max_block * ratio) * 2 + 4096, np.float32)
        self._carried = 0
        self._scratch = np.zeros(self.frame_samples, np.float32)
        self._next_index = 0
        self.dropped_frames = 0

    def push(self, mono: np.ndarray, last: bool = False, block: bool = True) -> Iterator[AudioFrame]:
        """Add a mono float32 block in [-1, 1]; yield every complete frame."""
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
        np.multiply(self._carry[:fs], 32767.0, out=self._scratch)
        np.clip(self._scratch, -32768.0, 32767.0, out=self._scratch)
        remaining = self._carried - fs
        buf = self.pool.acquire(block=block, timeout=None if block else 0)
        index = self._next_index
        self._next_index += 1
        if buf is None:
            self.dropped_frames += 1
        else:
            buf.data[...] = self._scratch
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
        self._scratch.fill(0)
        self._carried = 0
