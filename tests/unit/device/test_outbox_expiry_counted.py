"""Reports that reach the outbox's retention limit undelivered are deleted: that loss is counted and said.

The retention purge (hourly, at start, and the admin PurgeExpired RPC) deleted sealed reports nobody had
collected with no log line and no metric: the one way the outbox loses a clinician's report was silent.
Real server on loopback over mutual TLS, real outbox file, the real phone client.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.outbox import OutboxConfig
from edge_agent.phone import client as phone
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import Pki, raw_channel, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


def test_reports_expired_undelivered_are_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = Pki.make(tmp_path / "pki")
    registry = Registry()
    config = server_config(pki, tmp_path / "data", outbox=OutboxConfig(retention_s=1.0))
    server = EdgeAgentServer(config, ScriptedVisitRunner(), SpectralVoiceEnroller(), metrics=registry)
    background = BackgroundServer(server)
    port = background.start()
    target = phone.Target("127.0.0.1", port, server.fingerprint)
    try:
        for _ in range(2):
            phone.start(pki.keys_a, target, room_code=pki.room_code())
            phone.stop(pki.keys_a, target)
        time.sleep(1.5)  # past retention, never collected
        admin = agent_pb2_grpc.EdgeAgentAdminStub(raw_channel(pki.admin, port))
        with caplog.at_level(logging.INFO):
            assert admin.PurgeExpired(agent_pb2.PurgeExpiredRequest(), timeout=10).purged == 2
    finally:
        background.stop()
    assert registry.get("edge_agent_reports_expired_total") == 2
    said = [r.getMessage() for r in caplog.records if "expired" in r.getMessage() and "report" in r.getMessage()]
    assert said and "2" in said[0], [r.getMessage() for r in caplog.records]
    assert not any("c-" in line or "s-" in line for line in said)  # nothing in the line names a clinician
