"""A room device on loopback with its button panel on gpiozero mock pins (the only faked part: the hardware)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from edge_agent.device.config import GpioSettings
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.button_control import ManagerVisitControl
from edge_agent.device.ops.gpio import RoomClaims, open_panel
from edge_agent.phone import client as phone
from tests.delivery_fixtures import Pki, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


@dataclass
class ButtonDevice:
    pki: Pki
    server: EdgeAgentServer
    target: phone.Target
    button: Any  # the mock pin of the room button

    def press(self, settle_s: float = 0.5) -> None:
        import time

        self.button.drive_low()
        self.button.drive_high()
        time.sleep(settle_s)


@contextmanager
def button_device(
    tmp_path: Path, window_s: int, runner: ScriptedVisitRunner | None = None, on_outcome: Callable[[str], None] | None = None
) -> Iterator[ButtonDevice]:
    pki = Pki.make(tmp_path)
    claims = RoomClaims(window_s=window_s)
    server = EdgeAgentServer(server_config(pki, tmp_path / "state"), runner or ScriptedVisitRunner(), SpectralVoiceEnroller(),
                             claims=claims)
    background = BackgroundServer(server)
    port = background.start()
    factory = MockFactory()
    settings = GpioSettings(backend="mock", button_pin=17, led_pin=27, red_led_pin=22)
    assert background.loop is not None and server.visits is not None
    extra = {"on_outcome": on_outcome} if on_outcome is not None else {}
    panel = open_panel(settings, ManagerVisitControl(server.visits, background.loop), claims, factory=factory, bounce_s=None, **extra)
    assert panel is not None
    try:
        yield ButtonDevice(pki, server, phone.Target("127.0.0.1", port, server.fingerprint), factory.pin(17))
    finally:
        panel.close()
        background.stop()
