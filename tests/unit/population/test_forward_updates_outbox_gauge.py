"""Delivering population records empties part of the outbox: the outbox gauges must say so.

The daemon's forwarder acknowledged (deleted) delivered records but never refreshed
``edge_agent_outbox_items`` / ``_bytes``: /metrics and doctor kept counting records already at the aggregator
until the next visit stop or phone ack (a day later in a quiet room). Real aggregator over mutual TLS on
loopback, real outbox file, the daemon's own forwarding loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.device.config import parse_config
from edge_agent.device.lifecycle import VisitManager
from edge_agent.device.main import _forward_population
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.outbox import Outbox
from edge_agent.population.aggregator import Policy
from edge_agent.population.record import AGGREGATOR_RECIPIENT
from tests.doubles.scripted_runner import ScriptedVisitRunner
from tests.unit.population.test_population_integrity import Site, _queue


def test_outbox_gauges_follow_the_forwarder(tmp_path: Path) -> None:
    site = Site(tmp_path, Policy(require_closed=False))
    outbox = Outbox(tmp_path / "outbox.db")
    _queue(outbox, site, ["c-a", "c-b"], 3)
    registry = Registry()

    async def scenario(port: int) -> None:
        visits = VisitManager(ScriptedVisitRunner(), outbox, metrics=registry)
        visits.record_outbox()
        assert registry.get("edge_agent_outbox_items") == 6
        cfg = parse_config({"population": {"enabled": True, "service_line": "cardiology",
                                           "aggregator_address": f"127.0.0.1:{port}",
                                           "client_bundle": str(tmp_path / "cardiology.pem")}})
        task = asyncio.create_task(_forward_population(cfg, outbox, visits))
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                if not outbox.fetch(AGGREGATOR_RECIPIENT) and registry.get("edge_agent_outbox_items") == 0:
                    break
        finally:
            task.cancel()
        assert outbox.fetch(AGGREGATOR_RECIPIENT) == []
        assert registry.get("edge_agent_outbox_items") == 0 and registry.get("edge_agent_outbox_bytes") == 0

    site.serve(scenario)
    outbox.close()
    site.agg.close()
