"""A TCP relay on loopback that can lose an answer the way a Wi-Fi drop does (for the lost-start tests).

The phone connects to the relay, the relay to the room device; TLS runs end to end through it (the relay sees only
ciphertext, the device its real client certificate). :meth:`LossyLink.blackhole` marks the connections open now:
whatever the device sends on them from then on is thrown away (the request already went through; its answer never
arrives). :meth:`LossyLink.cut` then closes them, as the phone's Wi-Fi dropping would. :meth:`LossyLink.vanish`
drops only the phone's side: the device is told nothing and carries on (a phone gone out of range). Connections made
afterwards (the phone reconnecting) are relayed normally.

:func:`lose_next_answer` arms a :class:`StartHook` runner so that the next StartVisit's answer is lost that way.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.device.lifecycle import VisitContext


@dataclass
class _Pair:
    phone: socket.socket
    device: socket.socket
    lost: bool = False
    vanished: bool = False  # the phone's side is gone; the device's stays open and hears nothing


@dataclass
class LossyLink:
    device_port: int
    _listener: socket.socket = field(init=False)
    _pairs: list[_Pair] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _discarded: int = 0  # bytes the device sent that never reached the phone
    offline: bool = False  # new connections are dropped at once (the phone is still out of Wi-Fi range)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                phone, _ = self._listener.accept()
            except OSError:
                return
            if self.offline:
                phone.close()
                continue
            device = socket.create_connection(("127.0.0.1", self.device_port))
            pair = _Pair(phone, device)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, phone, device, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, device, phone, True), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and pair.lost:
                    with self._lock:
                        self._discarded += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst) if not pair.vanished else (pair.phone,):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def blackhole(self) -> None:
        """From now on nothing the device sends on the connections open now reaches the phone."""
        with self._lock:
            for pair in self._pairs:
                pair.lost = True

    def vanish(self) -> None:
        """The phone disappears from the connections open now; the device is not told (no FIN, no reset)."""
        with self._lock:
            pairs = list(self._pairs)
            for pair in pairs:
                pair.lost = pair.vanished = True
        for pair in pairs:
            try:
                pair.phone.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def discarded(self) -> int:
        with self._lock:
            return self._discarded

    def cut(self) -> None:
        """Drop the blackholed connections (the phone sees its connection fail)."""
        with self._lock:
            lost = [p for p in self._pairs if p.lost]
            self._pairs = [p for p in self._pairs if not p.lost]
        for pair in lost:
            for s in (pair.phone, pair.device):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.phone.close()
            pair.device.close()


class StartHook:
    """Mixed into a test runner: ``on_start`` runs while the device turns capture on (the start request has arrived)."""

    on_start: Callable[[], None] = staticmethod(lambda: None)

    def start(self, ctx: VisitContext) -> None:
        hook, self.on_start = self.on_start, lambda: None  # once
        hook()
        super().start(ctx)  # type: ignore[misc]


def lose_next_answer(runner: StartHook, link: LossyLink, active: Callable[[], bool], stay_offline: bool = False) -> None:
    """The next start's answer is thrown away, and its connection dropped once the device has started the visit;
    ``stay_offline``: the phone cannot reconnect either until the test sets ``link.offline = False``."""

    def drop_after_start() -> None:
        deadline = time.monotonic() + 20
        while not active() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the answer is written (into the void) right after the visit is recorded
        link.cut()

    def on_start() -> None:
        link.offline = stay_offline
        link.blackhole()
        threading.Thread(target=drop_after_start, daemon=True).start()

    runner.on_start = on_start
