"""Mark a heartbeat busy while the device's blocking model calls run, so the watchdog sees a hang.

    session.engine = WatchedCalls(session.engine, asr_beat, ("decode",))

The proxy forwards every attribute; only the named methods are timed. Nothing
passes through it but references: no audio is copied or kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from edge_agent.device.ops.notify import BusyHeartbeat


class WatchedCalls:
    def __init__(self, target: Any, heartbeat: BusyHeartbeat, methods: Iterable[str]) -> None:
        self._target = target
        self._heartbeat = heartbeat
        self._methods = frozenset(methods)

    @property
    def watched_target(self) -> Any:
        return self._target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name not in self._methods or not callable(attr):
            return attr
        return self._timed(attr)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        beat = self._heartbeat

        def timed(*args: Any, **kwargs: Any) -> Any:
            beat.begin()
            try:
                return method(*args, **kwargs)
            finally:
                beat.end()

        return timed


def watch_model_calls(session: Any, heartbeat: BusyHeartbeat) -> None:
    """Time the Whisper decodes and speaker-model runs of a loaded TranscriptionSession."""
    session.engine = WatchedCalls(session.engine, heartbeat, ("decode",))
    encoder = getattr(getattr(session, "speakers", None), "encoder", None)
    if encoder is not None and hasattr(encoder, "session"):
        encoder.session = WatchedCalls(encoder.session, heartbeat, ("run",))
