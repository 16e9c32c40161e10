"""Wrap an audio source so the LED and the watchdog follow the frames actually read.

    source = ObservedSource(MicSource(cfg.audio.device), heartbeat, panel.indicator if panel else None)

* first frame read -> ``indicator.on_capture_started()`` (LED on); the source
  ends or is stopped -> ``on_capture_stopped()``; it fails (microphone
  unplugged: ``AudioInputError``) -> ``on_mic_lost()`` and the error propagates
  so the runner can log it and retry. The LED is therefore lit exactly while
  frames are being read, not while a visit is merely "on".
* every frame ticks the capture heartbeat; the heartbeat is set idle when the
  source ends, so a finished visit is not mistaken for a stuck one.

No audio is touched: frames pass through by reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from edge_agent.device.ops.notify import Heartbeat
from edge_agent.errors import AudioInputError


class Indicator(Protocol):
    def on_capture_started(self) -> None: ...

    def on_capture_stopped(self) -> None: ...

    def on_mic_lost(self) -> None: ...


class ObservedSource:
    def __init__(self, source: Any, heartbeat: Heartbeat | None = None, indicator: Indicator | None = None) -> None:
        self.source = source
        self.heartbeat = heartbeat
        self.indicator = indicator
        self.live = source.live
        self.description = source.description

    def frames(self, pool: Any) -> Iterator[Any]:
        started = False
        lost = False
        try:
            for frame in self.source.frames(pool):
                if not started:
                    started = True
                    if self.indicator is not None:
                        self.indicator.on_capture_started()
                if self.heartbeat is not None:
                    self.heartbeat.tick()
                yield frame
        except AudioInputError:
            lost = True
            if self.indicator is not None:
                self.indicator.on_mic_lost()
            raise
        finally:
            if self.heartbeat is not None:
                self.heartbeat.idle()
            if self.indicator is not None and not lost:
                self.indicator.on_capture_stopped()

    @property
    def dropped_frames(self) -> int:
        """The wrapped source's count of frames lost on a full capture queue (the pipeline reports it)."""
        return int(self.source.dropped_frames)

    def stop(self) -> None:
        if hasattr(self.source, "stop"):
            self.source.stop()

    def close(self) -> None:
        self.source.close()
