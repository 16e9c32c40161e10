"""A visit in which nothing was heard (microphone muted or unplugged, speech lost) is not a visit in which the
clinician asked no open question. Its contribution record said exactly that: every behaviour count 0, counted
towards n, pulling each "share of visits with the behaviour" cell down - a false statement to Quality & Safety,
while the clinician's own report said "nothing to report". Real server on loopback, real phone, real outbox.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edge_agent.crypto import seal
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.population import PopulationContributor
from edge_agent.phone import client as phone
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import AGGREGATOR_RECIPIENT
from tests.delivery_fixtures import Pki, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


class SilentVisit(ScriptedVisitRunner):
    """Capture ran, nothing was heard: the report has no timing and no behaviour counts."""

    def __init__(self) -> None:
        super().__init__()
        self._script_source = []


def test_a_visit_with_nothing_heard_adds_no_record(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    _, pub = seal.generate_keypair()
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=dt.date.today())
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), SilentVisit(), SpectralVoiceEnroller(),
                             contributor=PopulationContributor(ring, pub, "cardiology"))
    background = BackgroundServer(server)
    port = background.start()
    target = phone.Target("127.0.0.1", port, server.fingerprint)
    try:
        phone.start(pki.keys_a, target, room_code=pki.room_code())
        phone.stop(pki.keys_a, target)
        assert server.outbox is not None
        records = server.outbox.fetch(AGGREGATOR_RECIPIENT)
        [report] = phone.feedback(pki.keys_a, target)
    finally:
        background.stop()
    assert records == [], "an empty visit was counted in the population signal as one without any behaviour"
    text = report.feedback.contribution
    assert "nothing" in text.lower() and "population" in text.lower()  # the clinician is told why
