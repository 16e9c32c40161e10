"""Audio from a file (wav/flac/ogg via libsndfile), as fast as possible or paced."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.framer import Framer
from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.pool import BufferPool
from edge_agent.errors import AudioInputError

_BLOCK = 4096
# libsndfile notes a WAV whose header promises more data than the file holds
_SHORT_DATA = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")
_PLACEHOLDER_LENGTH = 0x7FFF0000  # a data length this large is a streaming writer's "unknown" (a real one is < 2 GiB - 64 KiB)
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


def open_audio_file(path: Path) -> sf.SoundFile:
    """Open an audio file or raise a one-line AudioInputError."""
    if not path.exists():
        raise AudioInputError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioInputError(f"{path} is a directory, not an audio file")
    if path.is_file() and path.stat().st_size == 0:  # libsndfile would say "Format not recognised"
        raise AudioInputError(f"{path} is empty (0 bytes); the recording did not reach this file: export or copy it again")
    try:
        # libsndfile reports a file it may not open as "System error" and the advice would be another format
        os.close(os.open(path, os.O_RDONLY))
    except OSError as exc:
        raise AudioInputError(
            f"cannot open {path} ({exc.strerror}); give the user running edge-agent read access to it, or copy it somewhere readable"
        ) from None
    try:
        # bytes, not str: a name that is not UTF-8 (copied from a Latin-1 stick) cannot be re-encoded by soundfile
        handle = sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        reason = str(exc).split(":")[-1].strip() or "unreadable"
        raise AudioInputError(
            f"cannot read {path} as audio ({reason}); use a WAV, FLAC or OGG file"
        ) from None
    if handle.frames == 0 or handle.samplerate <= 0:
        handle.close()
        raise AudioInputError(f"{path} contains no audio samples (a header only); the recording did not reach this file: export or copy it again")
    if handle.samplerate < 8000:
        handle.close()
        raise AudioInputError(
            f"{path} is sampled at {handle.samplerate} Hz; speech needs at least 8000 Hz ({SAMPLE_RATE} preferred)"
        )
    return handle


class FileSource:
    """Streams a file through the same framing as a microphone.

    Any sample rate and channel count is accepted: samples are read as int16,
    channels averaged to mono and the rate converted to 16 kHz with soxr.
    """

    live = False
    dropped_frames = 0  # a file waits for the consumer: nothing is lost before the VAD

    def __init__(self, path: Path, realtime: bool = False, block_ms: int = 100) -> None:
        self.path = path
        self.realtime = realtime
        # paced like a microphone that delivers ``block_ms`` blocks: the frames of a block become
        # available together at its end (waking per 30 ms frame cost 9x the CPU of the work itself)
        self.block_ms = block_ms
        self._handle = open_audio_file(path)
        self.input_rate = self._handle.samplerate
        self.channels = self._handle.channels
        self.duration_s = self._handle.frames / self._handle.samplerate
        self.description = f"file {path.name} ({self.input_rate} Hz, {self.channels} ch)"
        self.started_at: float | None = None
        self.declared_s = self.duration_s
        info = self._handle.extra_info or ""
        short = _SHORT_DATA.search(info)
        align = _BLOCK_ALIGN.search(info)
        # A writer that cannot seek back (`sox ... -t wav -`, `arecord | ...`) leaves a placeholder length
        # (0x7ffff000, 0x7fffffff, 0xffffffff): the length is unknown, not promised, so the end of the data is no loss.
        if short and align and int(short.group(1)) < _PLACEHOLDER_LENGTH:
            self.declared_s = int(short.group(1)) / (int(align.group(1)) * self.input_rate)

    def frames(self, pool: BufferPool) -> Iterator[AudioFrame]:
        framer = Framer(pool, self.input_rate, _BLOCK)
        block = np.zeros((_BLOCK, self.channels), np.int16)
        # libsndfile does not scale float samples (-1..1) when asked for int16: a float WAV would read as zeros.
        # Read those as float32 and scale here, in an owned buffer that is zeroed like the others.
        floats = np.zeros((_BLOCK, self.channels), np.float32) if self._handle.subtype in _FLOAT_SUBTYPES else None
        mixed = np.zeros(_BLOCK, np.int32) if self.channels > 1 else None
        mono = np.zeros(_BLOCK, np.int16)
        declared = self._handle.frames
        read_total = 0
        self.started_at = time.monotonic()
        try:
            while True:
                try:
                    if floats is None:
                        n = len(self._handle.read(_BLOCK, dtype="int16", always_2d=True, out=block))
                    else:
                        n = len(self._handle.read(_BLOCK, dtype="float32", always_2d=True, out=floats))
                        np.clip(floats[:n], -1.0, 1.0, out=floats[:n])
                        np.multiply(floats[:n], 32767, out=block[:n], casting="unsafe")
                        floats[:n] = 0.0
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise AudioInputError(
                        f"{self.path} is corrupt after {read_total / self.input_rate:.1f} s ({str(exc).strip()}); the part "
                        "before it was processed: export or copy the recording again"
                    ) from None
                read_total += n
                last = n < _BLOCK
                if mixed is None:
                    mono[:n] = block[:n, 0]
                else:  # average the channels in int32 so the sum cannot wrap
                    np.sum(block[:n], axis=1, dtype=np.int32, out=mixed[:n])
                    np.floor_divide(mixed[:n], self.channels, out=mixed[:n])
                    mono[:n] = mixed[:n]
                    mixed[:n] = 0
                for frame in framer.push(mono[:n], last=last, block=True):
                    if self.realtime:
                        block_frames = max(1, self.block_ms * 16 // pool.slot_len)
                        ready = (frame.index // block_frames + 1) * block_frames
                        due = self.started_at + ready * pool.slot_len / SAMPLE_RATE
                        delay = due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        frame.arrival = time.monotonic()
                    yield frame
                if last:
                    break
        finally:
            block.fill(0)
            mono.fill(0)
            if floats is not None:
                floats.fill(0.0)
            if mixed is not None:
                mixed.fill(0)
            framer.close()
        if read_total < declared or self.declared_s > self.duration_s + 0.01:
            promised = max(declared / self.input_rate, self.declared_s)
            raise AudioInputError(
                f"{self.path} is truncated: its header promises {promised:.1f} s but only "
                f"{read_total / self.input_rate:.1f} s could be read (that part was processed); copy the file again"
            )

    def close(self) -> None:
        self._handle.close()
