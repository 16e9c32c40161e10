"""systemd readiness and watchdog over ``$NOTIFY_SOCKET``, without libsystemd.

The protocol is one datagram of ``KEY=value`` lines to a Unix socket whose path
systemd puts in ``$NOTIFY_SOCKET`` (a leading '@' means the Linux abstract
namespace). Outside systemd the variable is unset and every call is a no-op.

The watchdog must prove the *pipeline* is alive, not just that a timer thread
runs: the pipeline ticks a :class:`Heartbeat`, and :class:`Watchdog` sends
``WATCHDOG=1`` only while every heartbeat is fresh. A stuck capture or ASR
thread therefore stops the petting and systemd restarts the service after
``WatchdogSec=``. An idle heartbeat (no visit running) counts as fresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages; silently does nothing when not run by systemd."""

    def __init__(self, address: str | None = None, env: Mapping[str, str] = os.environ) -> None:
        self.address = address if address is not None else env.get("NOTIFY_SOCKET", "")
        self._env = env
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def _target(self) -> str | bytes:
        if self.address.startswith("@"):
            return "\0" + self.address[1:]  # abstract namespace
        return self.address

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; returns whether it was sent."""
        if not self.enabled:
            return False
        for line in lines:
            if "=" not in line or "\n" in line:
                raise ValueError(f"sd_notify line must be KEY=value on one line: {line!r}")
        payload = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    # never block the daemon on a full receiver queue (a busy or hung systemd)
                    self._sock.setblocking(False)
                self._sock.sendto(payload, self._target())
                return True
            except OSError as exc:
                # systemd gone (shutdown) or a misconfigured socket: never crash the daemon over it
                log.warning("sd_notify failed: %s", type(exc))
                return False

    def ready(self, status: str = "") -> bool:
        """Models loaded and the server listening."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []), f"MAINPID={os.getpid()}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        # RELOADING=1 must be followed by READY=1 when the reload is done
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog_interval(self) -> float | None:
        """``WatchdogSec`` in seconds if systemd enabled it for this process, else None."""
        usec = self._env.get("WATCHDOG_USEC")
        pid = self._env.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            value = int(usec)
        except ValueError:
            return None
        return value / 1e6 if value > 0 else None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class Heartbeat:
    """Ticked by a working thread; fresh while ticks keep coming or while idle.

    ``tick()`` is a single float store (cheap enough for every audio frame).
    """

    def __init__(self, name: str, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.max_age_s = max_age_s
        self._clock = clock
        self._last = clock()
        self._idle = True

    def tick(self) -> None:
        self._last = self._clock()
        self._idle = False

    def idle(self) -> None:
        """Nothing to do (no visit): not being ticked is then not a fault."""
        self._idle = True
        self._last = self._clock()

    def age(self) -> float:
        return 0.0 if self._idle else self._clock() - self._last

    def fresh(self) -> bool:
        return self.age() <= self.max_age_s


class BusyHeartbeat(Heartbeat):
    """Fresh unless one blocking call (a Whisper decode, a speaker-model run) has run too long.

    Work that is waiting for input is not a fault, so between calls the beat is
    idle; a call that never returns (a hung CTranslate2 or ONNX kernel, a GPU
    that stopped answering) ages it until the watchdog stops petting systemd.
    Calls may overlap (enrolment runs beside a visit): the age is that of the
    longest-running call since work last completed.
    """

    def __init__(self, name: str, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, max_age_s, clock)
        self._active = 0
        self._count_lock = threading.Lock()
        self.calls = 0

    def begin(self) -> None:
        with self._count_lock:
            self.calls += 1
            self._active += 1
            if self._active == 1:
                self.tick()

    def end(self) -> None:
        with self._count_lock:
            self._active = max(0, self._active - 1)
            if self._active == 0:
                self.idle()
            else:
                self.tick()  # one call finished: the work is moving


class Watchdog:
    """Pets systemd every ``interval_s`` while all heartbeats are fresh.

    Run it as an asyncio task on the daemon's event loop (:meth:`run`): then a
    blocked event loop also stops the petting, which is what we want.
    """

    def __init__(
        self,
        notifier: SystemdNotifier,
        heartbeats: Sequence[Heartbeat],
        interval_s: float | None = None,
        on_stall: Callable[[Heartbeat], None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.heartbeats = list(heartbeats)
        wd = notifier.watchdog_interval()
        # systemd recommends petting at half the timeout
        self.interval_s = interval_s if interval_s is not None else (wd / 2 if wd else 0.0)
        self.on_stall = on_stall
        self.pets = 0
        self.stalls = 0
        self._stalled: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled and self.interval_s > 0

    def check_once(self) -> bool:
        """Pet if healthy; returns whether WATCHDOG=1 was sent."""
        stale = [hb for hb in self.heartbeats if not hb.fresh()]
        for hb in stale:
            if hb.name not in self._stalled:
                self._stalled.add(hb.name)
                self.stalls += 1
                log.error("%s heartbeat stalled for %.1f s; withholding watchdog so systemd restarts the service", hb.name, hb.age())
                self.notifier.status(f"{hb.name} stalled")
                if self.on_stall is not None:
                    self.on_stall(hb)
        if stale:
            return False
        self._stalled.clear()
        sent = self.notifier.watchdog()
        self.pets += int(sent)
        return sent

    async def run(self) -> None:
        if not self.enabled:
            return
        while True:
            self.check_once()
            await asyncio.sleep(self.interval_s)

    def start_thread(self, stop: threading.Event) -> threading.Thread | None:
        """For a daemon without an event loop; ``stop.set()`` ends it."""
        if not self.enabled:
            return None

        def loop() -> None:
            while not stop.is_set():
                self.check_once()
                stop.wait(self.interval_s)

        thread = threading.Thread(target=loop, name="systemd-watchdog", daemon=True)
        thread.start()
        return thread
