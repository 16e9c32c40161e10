"""A TCP relay on loopback that can lose an answer the way a Wi-Fi drop does (for the lost-start tests).

The phone connects to the relay, the relay to the room device; TLS runs end to end through it (the relay sees only
ciphertext, the device its real client certificate). :meth:`LossyLink.blackhole` marks the connections open now:
whatever the device sends on them from then on is thrown away (the request already went through; its answer never
arrives). :meth:`LossyLink.cut` then closes them, as the phone's Wi-Fi dropping would. Connections made afterwards
(the phone reconnecting) are relayed normally.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Pair:
    phone: socket.socket
    device: socket.socket
    lost: bool = False


@dataclass
class LossyLink:
    device_port: int
    _listener: socket.socket = field(init=False)
    _pairs: list[_Pair] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _discarded: int = 0  # bytes the device sent that never reached the phone

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
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def blackhole(self) -> None:
        """From now on nothing the device sends on the connections open now reaches the phone."""
        with self._lock:
            for pair in self._pairs:
                pair.lost = True

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
