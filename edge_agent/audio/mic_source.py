"""Live microphone capture through PortAudio (sounddevice).

The PortAudio callback copies each block into pool frames and hands them to the
consumer through a bounded queue; it never blocks. If the consumer falls
behind, frames are dropped and counted rather than buffered without bound.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.framer import Framer
from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.pool import BufferPool
from edge_agent.errors import AudioInputError


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:
        raise AudioInputError(
            "PortAudio library not found; install it with: apt-get install libportaudio2"
        ) from None
    return sounddevice


def list_input_devices() -> list[str]:
    sd = _sounddevice()
    return [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]


def _query_input(sd: Any, device: str | int | None) -> dict[str, Any] | None:
    try:
        if device is None or device == "":
            return dict(sd.query_devices(kind="input"))
        key: str | int = int(device) if str(device).isdigit() else device
        return dict(sd.query_devices(key, kind="input"))
    except (ValueError, sd.PortAudioError):
        return None


# what a clinician starting a visit reads (phone, web app); IT's line, with the key and the device list, goes to the
# journal and to `edge-agent doctor`
MIC_MISSING = "the room microphone is not connected; check its cable is plugged in, or call IT"
MIC_UNUSABLE = "the room microphone cannot record; call IT"


def resolve_input_device(device: str | int | None) -> tuple[int, dict[str, Any]]:
    """Find an input device by index, exact name or name substring.

    PortAudio lists devices once, when it is initialised: a microphone plugged in (or back in) after that was never
    found, and a daemon refused every visit until it was restarted. Not found, the list is read again once; only
    called before a stream opens (a visit's capture, a command's), so no open stream is cut off by it.
    """
    sd = _sounddevice()
    info = _query_input(sd, device)
    if info is None:
        sd._terminate()  # noqa: SLF001 - sounddevice's documented way to refresh the device list
        sd._initialize()  # noqa: SLF001
        info = _query_input(sd, device)
    if info is None:
        names = ", ".join(list_input_devices()) or "none"
        wanted = "default input" if device in (None, "") else f"'{device}'"
        raise AudioInputError(
            f"microphone {wanted} not found (input devices: {names}); connect it, or set audio.device to one of those",
            clinician=MIC_MISSING,
        )
    return int(info["index"]), info


class MicSource:
    live = True

    def __init__(
        self,
        device: str | int | None = None,
        sample_rate: int = SAMPLE_RATE,
        block_ms: int = 100,
        queue_frames: int = 64,
        duration_s: float | None = None,
        lossless: bool = False,
    ) -> None:
        """``lossless`` makes the callback wait for the consumer instead of
        dropping frames: only for replay devices that deliver faster than real
        time (the ALSA file plugin in tests), never for a real microphone."""
        sd = _sounddevice()
        self._sd = sd
        self.device_index, info = resolve_input_device(device)
        self.device_name = str(info["name"])
        # Prefer 16 kHz straight from the device (ALSA's plug layer usually
        # converts); otherwise capture at the device's own rate and resample.
        self.input_rate = sample_rate
        try:
            sd.check_input_settings(self.device_index, channels=1, dtype="int16", samplerate=sample_rate)
        except (ValueError, sd.PortAudioError):
            self.input_rate = int(info["default_samplerate"])
            try:
                sd.check_input_settings(self.device_index, channels=1, dtype="int16", samplerate=self.input_rate)
            except (ValueError, sd.PortAudioError) as exc:
                raise AudioInputError(
                    f"microphone '{self.device_name}' cannot deliver mono 16-bit audio at "
                    f"{sample_rate} Hz or {self.input_rate} Hz ({exc}); choose another audio.device",
                    clinician=MIC_UNUSABLE,
                ) from None
        self.block = max(1, self.input_rate * block_ms // 1000)
        self.description = f"microphone '{self.device_name}' ({self.input_rate} Hz)"
        self._queue: queue.Queue[AudioFrame] = queue.Queue(maxsize=queue_frames)
        self._stream: Any = None
        self._error: str | None = None
        self._stopped = threading.Event()
        self._finished = threading.Event()
        self.dropped_frames = 0  # frames lost on a full capture queue (the pipeline fell behind)
        self.overflows = 0
        self.lossless = lossless
        self.live = not lossless
        self.duration_s = duration_s

    def frames(self, pool: BufferPool) -> Iterator[AudioFrame]:
        framer = Framer(pool, self.input_rate, self.block * 4)

        def callback(indata: np.ndarray, n: int, _time: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            # int16 from PortAudio straight into the framer (it copies into its own buffer)
            for frame in framer.push(indata[:n, 0], block=self.lossless):
                if self.lossless:
                    self._put_waiting(frame)
                    continue
                try:
                    self._queue.put_nowait(frame)
                except queue.Full:
                    frame.release()
                    self.dropped_frames += 1

        def finished() -> None:
            if not self._stopped.is_set():
                self._error = f"microphone '{self.device_name}' stopped delivering audio (unplugged?)"
            self._finished.set()

        try:
            self._stream = self._sd.InputStream(
                device=self.device_index,
                samplerate=self.input_rate,
                channels=1,
                dtype="int16",
                blocksize=self.block,
                callback=callback,
                finished_callback=finished,
            )
            self._stream.start()
        except self._sd.PortAudioError as exc:
            framer.close()
            raise AudioInputError(f"cannot open microphone '{self.device_name}': {exc}") from None
        delivered = 0
        max_frames = None if self.duration_s is None else int(self.duration_s * SAMPLE_RATE / pool.slot_len)
        try:
            while max_frames is None or delivered < max_frames:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if self._finished.is_set() or self._stopped.is_set():
                        break
                    continue
                delivered += 1
                yield item
        finally:
            self._stopped.set()
            self._drain()  # unblocks a lossless callback waiting for space
            self.close()
            self._drain()
            framer.close()
        if self._error:
            raise AudioInputError(self._error)

    def _put_waiting(self, frame: AudioFrame) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue
        frame.release()

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            item.release()

    def stop(self) -> None:
        """End capture cleanly (visit stop); the frames iterator then finishes."""
        self._stopped.set()
        if self._stream is not None:
            self._stream.stop()

    def close(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            try:
                self._stream.close()
            except self._sd.PortAudioError:
                pass
            self._stream = None
