"""A claim is not a blank cheque: the press that turns capture on rechecks the claimer's certificate.

Issue 16 asks that every trust decision hold after the handshake. A claim stays valid for
``claim_window_s`` (5 minutes by default); a clinician revoked (or whose certificate ran out)
inside that window must not have a visit started for them by the press that follows.
Real device on loopback, real certificates, the real button path (gpiozero mock pins).
"""

from __future__ import annotations

import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from edge_agent.crypto import ca
from edge_agent.device.config import GpioSettings
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.button_control import ManagerVisitControl
from edge_agent.device.ops.gpio import RoomClaims, open_panel
from edge_agent.phone import client as phone
from edge_agent.phone.keys import load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2
from tests.delivery_fixtures import Pki, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


def test_press_after_the_claimer_was_revoked_starts_nothing(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    claims = RoomClaims(window_s=300)
    runner = ScriptedVisitRunner()
    server = EdgeAgentServer(server_config(pki, tmp_path / "state"), runner, SpectralVoiceEnroller(), claims=claims)
    background = BackgroundServer(server)
    port = background.start()
    target = phone.Target("127.0.0.1", port, server.fingerprint)
    factory = MockFactory()
    settings = GpioSettings(backend="mock", button_pin=17, led_pin=27, red_led_pin=22)
    assert background.loop is not None and server.visits is not None
    outcomes: list[str] = []
    panel = open_panel(settings, ManagerVisitControl(server.visits, background.loop), claims, factory=factory, bounce_s=None,
                       on_outcome=outcomes.append)
    assert panel is not None
    button = factory.pin(17)
    try:
        claim = phone.claim_room(pki.keys_a, target)
        ca.revoke(pki.authority, load_key_file(pki.keys_a).pseudonym)  # IT revokes A's lost phone
        time.sleep(1.3)  # the device re-reads its CRL at most once a second
        button.drive_low()
        button.drive_high()
        time.sleep(0.5)
        assert outcomes == ["refused"]
        assert not server.visits.active and runner.started == 0, "a revoked clinician's claim started capture"
        # the claim is spent: B (valid) claiming now is not contested by the dead claim, and B's press works
        claim_b = phone.claim_room(pki.keys_b, target)
        assert not claim_b.contested
        button.drive_low()
        button.drive_high()
        time.sleep(0.5)
        assert server.visits.active
        assert phone.claim_status(pki.keys_b, target, claim_b.claim_id).state == agent_pb2.CLAIM_STARTED
        del claim
    finally:
        panel.close()
        background.stop()
