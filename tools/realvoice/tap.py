"""The audio a file source delivered, kept by a measurement tool so that it can cut out the VAD's segments.

The device's VAD keeps no audio (segments are ranges of feature frames); tools that study what the VAD
cut (decoding a segment offline, attributing it) take their own copy here. Never used by the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.vad import SpeechSegment


class Tap:
    def __init__(self) -> None:
        self._audio = np.zeros(16000 * 60, np.float32)
        self._n = 0

    def frames(self, frames: Iterable[AudioFrame]) -> Iterator[AudioFrame]:
        """``frames`` unchanged, each one's samples copied (float, [-1, 1]) as it passes."""
        for frame in frames:
            k = len(frame.samples)
            if self._n + k > len(self._audio):
                self._audio = np.concatenate([self._audio, np.zeros(len(self._audio), np.float32)])
            self._audio[self._n : self._n + k] = frame.samples.astype(np.float32) / 32768.0
            self._n += k
            yield frame

    def audio(self, seg: SpeechSegment) -> np.ndarray:
        """A copy of the segment's audio."""
        return self._audio[seg.start_sample : seg.start_sample + seg.length].copy()
