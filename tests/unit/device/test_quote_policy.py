"""The site's quote policy reaches the report builder, not only the sealing backstop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.crypto import seal
from edge_agent.device.lifecycle import VisitManager
from edge_agent.device.outbox import Outbox
from tests.doubles.scripted_runner import ScriptedVisitRunner

PSEUDONYM = "c-mfrggzdfmztwq2lk"


def test_the_runner_builds_the_report_under_the_live_quote_policy(tmp_path: Path) -> None:
    runner = ScriptedVisitRunner()

    async def two_visits() -> int:
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(runner, outbox)
        _priv, pub = seal.generate_keypair()
        for quotes in (False, True):  # feedback.quotes is live: a reload between visits takes effect at the next stop
            manager.quotes = quotes
            ctx = await manager.start(PSEUDONYM, seal.load_public_key(pub), 60, None, None)
            await manager.stop(ctx.visit_id, PSEUDONYM)
        items, _size = outbox.stats()
        outbox.close()
        return items

    assert asyncio.run(two_visits()) == 2
    assert runner.quotes_seen == [False, True]
