"""The device's population forwarder does not write the room's visit schedule into the journal.

Every forwarding run logged "population records delivered=N" at info level. With a short
``population.forward_interval_minutes`` each visit's record goes out within minutes of its stop,
so those lines (their journal timestamps and N) replay when visits ended; at the daily default
they still count a room's visits per day. docs/security.md: lines written per visit appear only
at debug level because their timestamps would be the room's schedule. Real aggregator over mutual
TLS on loopback, the daemon's own forwarding loop, the device's log handler.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import replace
from pathlib import Path

from edge_agent.crypto import ca, seal
from edge_agent.device.config import EdgeConfig
from edge_agent.device.main import _forward_population
from edge_agent.device.outbox import Outbox
from edge_agent.device.population import contribute_at_stop
from edge_agent.population.aggregator import Aggregator, Policy
from edge_agent.population.certs import issue_contributor
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import AGGREGATOR_RECIPIENT
from edge_agent.population.service import AggregatorServer, AggregatorServerConfig
from tests.journal import device_journal
from tests.population_fixtures import visit_inputs


def test_delivery_counts_are_not_logged_at_info(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test Clinic")
    ca.issue_aggregator(authority, tmp_path / "server.pem", ips=("127.0.0.1",))
    issue_contributor(authority, tmp_path / "device-client.pem", "cardiology")
    priv, pub = seal.generate_keypair()
    today = dt.date.today()
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=today)
    outbox = Outbox(tmp_path / "outbox.db")
    timing, labels = visit_inputs(random.Random(4))
    contribute_at_stop(outbox, ring, pub, timing, labels, "cardiology", today, "c-clinician00001")  # one visit just stopped
    agg = Aggregator(tmp_path / "agg.db", priv, Policy(require_closed=False))

    async def scenario() -> None:
        server = AggregatorServer(AggregatorServerConfig(tmp_path / "server.pem", host="127.0.0.1", port=0), agg)
        port = await server.start()
        cfg = EdgeConfig()
        cfg = replace(cfg, population=replace(cfg.population, enabled=True, service_line="cardiology",
                                              aggregator_address=f"127.0.0.1:{port}", client_bundle=tmp_path / "device-client.pem",
                                              forward_interval_minutes=1.0))
        task = asyncio.create_task(_forward_population(cfg, outbox))
        try:
            for _ in range(200):
                if not outbox.fetch(AGGREGATOR_RECIPIENT):
                    break
                await asyncio.sleep(0.05)
            assert not outbox.fetch(AGGREGATOR_RECIPIENT), "the forwarder did not deliver the record"
            await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()

    try:
        with device_journal("info") as out:
            asyncio.run(scenario())
    finally:
        outbox.close()
        agg.close()
    assert "delivered=" not in out.getvalue(), out.getvalue()
