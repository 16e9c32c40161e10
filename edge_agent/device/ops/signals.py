"""SIGTERM finishes the visit then exits; SIGHUP reloads the config.

:class:`SignalHandlers` installs handlers on the daemon's asyncio loop (so
the callbacks run on the loop, not inside a signal frame):

* SIGTERM / SIGINT -> ``on_terminate()`` (await it: stop the running visit,
  seal and queue its report), then ``stopped`` is set so ``serve`` returns. A
  second SIGTERM while finishing is logged and ignored: systemd's
  ``TimeoutStopSec`` then SIGKILL is the backstop, and a killed visit loses
  only plaintext that must never be persisted anyway.
* SIGHUP -> :class:`ConfigReloader`: re-read the TOML (+ environment). A bad
  file is logged and the running config kept. Changed ``live`` keys are merged
  into the running config and that is handed to ``apply_live``
  (``device.main.LiveTargets.apply``); the others keep their running value and
  are logged as needing a restart.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from edge_agent.device.config import EdgeConfig, KeySpec, all_keys, changed_keys, load_config
from edge_agent.device.ops.logs import Safe
from edge_agent.device.ops.notify import SystemdNotifier
from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)


class ConfigReloader:
    """Holds the running config; :meth:`reload` swaps in what may change live."""

    def __init__(
        self,
        current: EdgeConfig,
        apply_live: Callable[[EdgeConfig, list[KeySpec]], None],
        path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        restart_check: Callable[[EdgeConfig, list[str]], list[str]] | None = None,
    ) -> None:
        self.current = current
        self.apply_live = apply_live
        # what a restart with the file as it now is would refuse (doctor's checks for the restart-only keys that
        # changed): "takes effect after restart" alone sent IT into a restart that left the room without a device
        self.restart_check = restart_check
        self.path = path if path is not None else current.source
        self.env = env
        self.pending_restart: list[str] = []
        self._contents = _file_contents(current)


    def reload(self) -> tuple[list[str], list[str]]:
        """Returns (keys applied live, keys that need a restart). Never raises for a bad file."""
        try:
            new = load_config(self.path, os.environ if self.env is None else self.env)
        except EdgeAgentError as exc:
            log.error("config reload refused, keeping the running config: %s", exc)
            return [], []
        changed = changed_keys(self.current, new)
        # a live key naming a file IT edits in place (the allow-list): same path, new content is a change too
        contents = _file_contents(new)
        changed += [k for k in all_keys() if k.key in contents and k not in changed
                    and contents[k.key] != self._contents.get(k.key)]
        live = [k for k in changed if k.live]
        restart = [k.key for k in changed if not k.live]
        # the running config takes the live values only; restart-only keys keep their running value,
        # and that merged config is what is applied (a restart-only key is never half-applied)
        try:
            merged = _merge_live(self.current, new, live)
        except EdgeAgentError as exc:  # a live key the running restart-only values refuse: nothing applied
            log.error("config reload refused, keeping the running config: %s", exc)
            return [], []
        if live:
            try:
                self.apply_live(merged, live)
            except EdgeAgentError as exc:  # checked before any change (LiveTargets.apply): nothing was applied
                log.error("config reload refused, keeping the running config: %s", exc)
                return [], []
        self.current = merged
        self._contents = contents
        self.pending_restart = restart
        for key in (k.key for k in live):
            log.info("config reload: %s applied", Safe(key))
        for key in restart:
            log.warning("config reload: %s changed; it takes effect after 'systemctl restart edge-agent'", Safe(key))
        if restart and self.restart_check is not None:
            for problem in self.restart_check(new, restart):
                log.error("config reload: do not restart yet, the service would refuse to start: %s", Safe(problem))
        if not changed:
            log.info("config reload: nothing changed")
        return [k.key for k in live], restart


# live keys whose value is a file that is read when the key is applied (the CRL has a watcher of its own)
FILE_KEYS = ("presence.allowed_clinicians",)


def _file_contents(cfg: EdgeConfig) -> dict[str, bytes | None]:
    """Bytes of each set FILE_KEYS file (None: unreadable; applying the key then says why)."""
    out: dict[str, bytes | None] = {}
    for key in FILE_KEYS:
        section, name = key.split(".")
        path = getattr(_section_obj(cfg, section), name)
        if path is None or not str(path):
            continue
        try:
            out[key] = Path(path).read_bytes()
        except OSError:
            out[key] = None
    return out


def _merge_live(old: EdgeConfig, new: EdgeConfig, live: list[KeySpec]) -> EdgeConfig:
    from dataclasses import replace

    # one replace per section with all its live keys: keys tied by a rule (vad: tail <= candidate <= hangover)
    # are checked together, as the file was; one at a time, a valid file failed against the old values
    by_section: dict[str, dict[str, object]] = {}
    for spec in live:
        by_section.setdefault(spec.section, {})[spec.name] = getattr(_section_obj(new, spec.section), spec.name)
    merged = old
    for section, values in by_section.items():
        if section in ("vad", "asr"):
            inner = replace(getattr(merged.pipeline, section), **values)
            merged = replace(merged, pipeline=replace(merged.pipeline, **{section: inner}))
        else:
            merged = replace(merged, **{section: replace(getattr(merged, section), **values)})
    return merged


def _section_obj(cfg: EdgeConfig, section: str) -> object:
    if section in ("vad", "asr"):
        return getattr(cfg.pipeline, section)
    return getattr(cfg, section)


Callback = Callable[[], Awaitable[None] | None]


class SignalHandlers:
    def __init__(
        self,
        on_terminate: Callback,
        on_reload: Callable[[], object] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.on_terminate = on_terminate
        self.on_reload = on_reload
        self.notifier = notifier or SystemdNotifier(address="")
        self.stopped = asyncio.Event()
        self._terminating = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._spawn, self._terminate)
        if self.on_reload is not None:
            self._loop.add_signal_handler(signal.SIGHUP, self._spawn, self._reload)

    def uninstall(self) -> None:
        if self._loop is None:
            return
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._loop.remove_signal_handler(sig)

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.ensure_future(fn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _terminate(self) -> None:
        if self._terminating:
            log.warning("already finishing the visit before exit; wait (systemd kills after TimeoutStopSec)")
            return
        self._terminating = True
        self.notifier.stopping("finishing the current visit")
        log.info("stop requested: finishing the current visit before exit")
        try:
            result = self.on_terminate()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - exit anyway; the outbox keeps what was queued
            log.error("finishing the visit at stop failed: %s", exc)
        finally:
            self.stopped.set()

    async def _reload(self) -> None:
        assert self.on_reload is not None
        self.notifier.reloading()
        try:
            result = self.on_reload()  # on the loop: apply_live may touch loop-owned objects
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - a failed reload must never stop the daemon
            log.error("config reload failed: %s", exc)
        finally:
            self.notifier.notify("READY=1")
