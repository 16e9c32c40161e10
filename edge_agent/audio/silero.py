"""Silero VAD v6 as a streaming frame scorer (the ONNX model inside the faster-whisper wheel).

The model scores 512-sample chunks (32 ms at 16 kHz), each preceded by the last
64 samples of the chunk before it, and carries an LSTM state (h, c) from chunk to
chunk; it is run here one chunk per call, as the audio arrives. The framer's
frames (10-30 ms) are buffered into chunks, and each frame gets the probability
of the newest chunk that ended in it (or, when no chunk ended in it, the one
before: at 30 ms frames one frame in 16 completes none).

Privacy: the only audio this module holds is the unscored remainder of the last
frame (< 512 samples) and the 64-sample context, both in two preallocated
arrays that are overwritten in place and zeroed by :meth:`SileroStream.close`
(and by :meth:`SileroStream.reset`), so at most ~36 ms of audio is resident here
at any time and none after the run. onnxruntime is handed that input array
itself: no per-call copy of audio is made here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.audio import SAMPLE_RATE
from edge_agent.errors import ModelError
from edge_agent.hardening import locked_zeros
from edge_agent.ort_session import open_session

CHUNK = 512  # samples per model call at 16 kHz (the model's fixed input)
CONTEXT = 64  # samples of the previous chunk prepended to each call
STATE_SHAPE = (1, 1, 128)
_INT16_SCALE = np.float32(1.0 / 32768.0)
WHAT = "Silero VAD model"
REINSTALL = "pip install --force-reinstall --no-deps faster-whisper==1.2.1 (the model ships in its wheel)"


def default_model_path() -> Path:
    """The Silero VAD v6 ONNX file bundled with faster-whisper (no download)."""
    import faster_whisper  # the ASR dependency; imported here so webrtc-only users never pay for it

    return Path(os.path.dirname(faster_whisper.__file__)) / "assets" / "silero_vad_v6.onnx"


class SileroModel:
    """The loaded ONNX session, shared by every run of a process; per-run state lives in :class:`SileroStream`."""

    def __init__(self, path: Path | None = None, provider: str = "cpu") -> None:
        t0 = time.perf_counter()
        self.path = path or default_model_path()
        if not self.path.is_file():
            raise ModelError(f"{WHAT} {self.path} is missing; reinstall it: {REINSTALL}")
        # one intra-op thread: a chunk is ~0.2 ms of work, more threads only add wake-ups
        self.session = open_session(self.path, 1, provider, WHAT, REINSTALL)
        names = ({i.name for i in self.session.get_inputs()}, {o.name for o in self.session.get_outputs()})
        if names != ({"input", "h", "c"}, {"speech_probs", "hn", "cn"}):
            raise ModelError(f"{WHAT} {self.path} is not Silero VAD v6 (inputs/outputs {sorted(names[0])}/{sorted(names[1])}); "
                             f"reinstall it: {REINSTALL}")
        self.load_seconds = time.perf_counter() - t0

    def stream(self) -> "SileroStream":
        return SileroStream(self.session)


class SileroStream:
    """One run's scorer: feeds frames, returns a speech probability per frame."""

    def __init__(self, session: Any) -> None:
        self._session = session
        # [context | chunk]: the model input, reused for every call (no per-call audio arrays)
        self._input = locked_zeros((1, CONTEXT + CHUNK), np.float32)  # raw audio (scaled): locked, like the pools
        # samples of the current frame not yet scored; at most CHUNK - 1 remain between calls,
        # plus one frame (<= 30 ms = 480 samples) appended before scoring
        self._pending = locked_zeros(CHUNK + SAMPLE_RATE * 30 // 1000, np.float32)
        self._n = 0
        self._h = np.zeros(STATE_SHAPE, np.float32)
        self._c = np.zeros(STATE_SHAPE, np.float32)
        self._prob = 0.0
        self.chunks = 0  # model calls made

    def score(self, samples: np.ndarray) -> float:
        """Speech probability for one int16 frame (<= 30 ms), given every frame before it in this run."""
        n = len(samples)
        if self._n + n > len(self._pending):
            raise ValueError(f"frame of {n} samples is longer than the Silero scorer accepts (30 ms)")
        np.multiply(samples, _INT16_SCALE, out=self._pending[self._n : self._n + n], dtype=np.float32)
        self._n += n
        while self._n >= CHUNK:
            self._input[0, CONTEXT:] = self._pending[:CHUNK]
            out, self._h, self._c = self._session.run(None, {"input": self._input, "h": self._h, "c": self._c})
            self._prob = float(out.reshape(-1)[0])
            self.chunks += 1
            # the next call's context is this chunk's end; the remainder moves to the front
            self._input[0, :CONTEXT] = self._input[0, -CONTEXT:]
            rest = self._n - CHUNK
            self._pending[:rest] = self._pending[CHUNK : self._n]
            self._pending[rest : self._n] = 0
            self._n = rest
        return self._prob

    def reset(self) -> None:
        """Forget the run: state, context and unscored samples (a new visit starts from silence)."""
        self._pending[:] = 0
        self._input[:] = 0
        self._n = 0
        self._h = np.zeros(STATE_SHAPE, np.float32)
        self._c = np.zeros(STATE_SHAPE, np.float32)
        self._prob = 0.0

    def close(self) -> None:
        """Zero every buffer that held audio (end of run).

        One call on the zeroed input follows: onnxruntime reuses its intermediate
        tensors (the last chunk's spectrum) for same-shaped calls, so they then hold
        silence's, not the run's last 36 ms (best effort: the arena is not ours).
        """
        self.reset()
        self._session.run(None, {"input": self._input, "h": self._h, "c": self._c})
        self._h = np.zeros(STATE_SHAPE, np.float32)
        self._c = np.zeros(STATE_SHAPE, np.float32)

    def holds_audio(self) -> bool:
        """True while any sample of audio is still in this scorer's buffers (privacy check)."""
        return bool(np.any(self._pending) or np.any(self._input))
