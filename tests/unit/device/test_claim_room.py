"""Room button + phone claim over real mutual TLS: the press starts a visit sealed to the claimer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.device.config import GpioSettings
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.button_control import ManagerVisitControl
from edge_agent.device.ops.gpio import RoomClaims, open_panel
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError
from edge_agent.proto.edge_agent.v1 import agent_pb2
from tests.delivery_fixtures import Pki, ServerThread, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


def test_claim_then_button_press_delivers_to_the_claimer(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    claims = RoomClaims(window_s=60)
    server = EdgeAgentServer(server_config(pki, tmp_path / "state"), ScriptedVisitRunner(), SpectralVoiceEnroller(), claims=claims)
    background = BackgroundServer(server)
    port = background.start()
    target = phone.Target("127.0.0.1", port, server.fingerprint)
    factory = MockFactory()
    settings = GpioSettings(backend="mock", button_pin=17, led_pin=27, red_led_pin=22)
    assert background.loop is not None and server.visits is not None
    panel = open_panel(settings, ManagerVisitControl(server.visits, background.loop), claims, factory=factory, bounce_s=None)
    assert panel is not None
    button = factory.pin(17)
    try:
        # no claim yet: a press is refused, no visit starts
        button.drive_low()
        button.drive_high()
        time.sleep(0.3)
        assert not server.visits.active, "a press without a claim must never start capture"
        claim = phone.claim_room(pki.keys_a, target)
        assert claim.valid_for_s == 60 and not claim.contested
        assert phone.claim_status(pki.keys_a, target, claim.claim_id).state == agent_pb2.CLAIM_PENDING
        button.drive_low()  # press: start for clinician A
        button.drive_high()
        time.sleep(0.5)
        assert server.visits.active
        status = phone.claim_status(pki.keys_a, target, claim.claim_id)  # the claimer's phone confirms the start
        assert status.state == agent_pb2.CLAIM_STARTED and status.visit_id.startswith("v-")
        button.drive_low()  # press again: stop, report sealed to A
        button.drive_high()
        time.sleep(0.5)
        reports_a = phone.feedback(pki.keys_a, target, follow=False)
        reports_b = phone.feedback(pki.keys_b, target, follow=False)
    finally:
        panel.close()
        background.stop()
    assert len(reports_a) == 1 and reports_b == []


def test_claim_without_a_button_is_refused(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path)
    srv = ServerThread(server_config(pki, tmp_path / "state")).start()
    try:
        with pytest.raises(ClientError, match="no start button"):
            phone.claim_room(pki.keys_a, srv.target)
    finally:
        srv.stop()


def test_report_of_a_button_visit_opens_without_the_phone_watching_the_claim(tmp_path: Path) -> None:
    """`phone claim --no-wait` (or a phone that lost the network while waiting), then the button: the phone never
    read the started claim's visit id. Its report was refused as "a visit this phone did not start or claim" and,
    first in the queue, blocked every later report of that clinician on every collection."""
    pki = Pki.make(tmp_path)
    claims = RoomClaims(window_s=60)
    server = EdgeAgentServer(server_config(pki, tmp_path / "state"), ScriptedVisitRunner(), SpectralVoiceEnroller(), claims=claims)
    background = BackgroundServer(server)
    port = background.start()
    target = phone.Target("127.0.0.1", port, server.fingerprint)
    factory = MockFactory()
    settings = GpioSettings(backend="mock", button_pin=17, led_pin=27, red_led_pin=22)
    assert background.loop is not None and server.visits is not None
    panel = open_panel(settings, ManagerVisitControl(server.visits, background.loop), claims, factory=factory, bounce_s=None)
    assert panel is not None
    button = factory.pin(17)
    try:
        phone.claim_room(pki.keys_a, target)  # no claim_status afterwards
        for _ in range(2):  # press: start; press: stop
            button.drive_low()
            button.drive_high()
            time.sleep(0.5)
        assert not server.visits.active
        phone.claim_room(pki.keys_a, target)  # again, and this time the clinician stops it from the phone
        button.drive_low()
        button.drive_high()
        time.sleep(0.5)
        assert server.visits.active
        phone.stop(pki.keys_a, target)  # "no visit started from this phone" before: the phone never learnt its id
        assert not server.visits.active
        phone.start(pki.keys_a, target, room_code=pki.room_code())  # a later visit, started from the phone
        phone.stop(pki.keys_a, target)
        reports = phone.feedback(pki.keys_a, target, follow=False)
    finally:
        panel.close()
        background.stop()
    assert len(reports) == 3
