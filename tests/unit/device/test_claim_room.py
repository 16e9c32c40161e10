"""Room button + phone claim over real mutual TLS: the press starts a visit sealed to the claimer."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError
from edge_agent.proto.edge_agent.v1 import agent_pb2
from tests.button_device import button_device
from tests.delivery_fixtures import Pki, ServerThread, server_config


def test_claim_then_button_press_delivers_to_the_claimer(tmp_path: Path) -> None:
    with button_device(tmp_path, window_s=60) as dev:
        pki, target, visits = dev.pki, dev.target, dev.server.visits
        assert visits is not None
        # no claim yet: a press is refused, no visit starts
        dev.press(0.3)
        assert not visits.active, "a press without a claim must never start capture"
        claim = phone.claim_room(pki.keys_a, target)
        assert claim.valid_for_s == 60 and not claim.contested
        assert phone.claim_status(pki.keys_a, target, claim.claim_id).state == agent_pb2.CLAIM_PENDING
        dev.press()  # press: start for clinician A
        assert visits.active
        status = phone.claim_status(pki.keys_a, target, claim.claim_id)  # the claimer's phone confirms the start
        assert status.state == agent_pb2.CLAIM_STARTED and status.visit_id.startswith("v-")
        dev.press()  # press again: stop, report sealed to A
        reports_a = phone.feedback(pki.keys_a, target, follow=False)
        reports_b = phone.feedback(pki.keys_b, target, follow=False)
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
    with button_device(tmp_path, window_s=60) as dev:
        pki, target, visits = dev.pki, dev.target, dev.server.visits
        assert visits is not None
        phone.claim_room(pki.keys_a, target)  # no claim_status afterwards
        dev.press()  # start
        dev.press()  # stop
        assert not visits.active
        phone.claim_room(pki.keys_a, target)  # again, and this time the clinician stops it from the phone
        dev.press()
        assert visits.active
        phone.stop(pki.keys_a, target)  # "no visit started from this phone" before: the phone never learnt its id
        assert not visits.active
        phone.start(pki.keys_a, target, room_code=pki.room_code())  # a later visit, started from the phone
        phone.stop(pki.keys_a, target)
        reports = phone.feedback(pki.keys_a, target, follow=False)
    assert len(reports) == 3
