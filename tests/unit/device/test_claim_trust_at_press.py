"""A claim is not a blank cheque: the press that turns capture on rechecks the claimer's certificate.

Issue 16 asks that every trust decision hold after the handshake. A claim stays valid for
``claim_window_s`` (5 minutes by default); a clinician revoked (or whose certificate ran out)
inside that window must not have a visit started for them by the press that follows.
Real device on loopback, real certificates, the real button path (gpiozero mock pins).
"""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.crypto import ca
from edge_agent.phone import client as phone
from edge_agent.phone.keys import load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2
from tests.button_device import button_device
from tests.doubles.scripted_runner import ScriptedVisitRunner


def test_press_after_the_claimer_was_revoked_starts_nothing(tmp_path: Path) -> None:
    runner = ScriptedVisitRunner()
    outcomes: list[str] = []
    with button_device(tmp_path, window_s=300, runner=runner, on_outcome=outcomes.append) as dev:
        pki, target, visits = dev.pki, dev.target, dev.server.visits
        assert visits is not None
        claim = phone.claim_room(pki.keys_a, target)
        ca.revoke(pki.authority, load_key_file(pki.keys_a).pseudonym)  # IT revokes A's lost phone
        time.sleep(1.3)  # the device re-reads its CRL at most once a second
        dev.press()
        assert outcomes == ["refused"]
        assert not visits.active and runner.started == 0, "a revoked clinician's claim started capture"
        # the claim is spent: B (valid) claiming now is not contested by the dead claim, and B's press works
        claim_b = phone.claim_room(pki.keys_b, target)
        assert not claim_b.contested
        dev.press()
        assert visits.active
        assert phone.claim_status(pki.keys_b, target, claim_b.claim_id).state == agent_pb2.CLAIM_STARTED
        del claim
