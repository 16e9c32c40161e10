"""Aggregator over real mutual TLS on 127.0.0.1: device outbox -> forwarder -> aggregator -> admin queries."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path

import grpc
import pytest

from edge_agent.crypto import ca, seal
from edge_agent.device.outbox import Outbox
from edge_agent.device.population import aggregator_channel, contribute_at_stop, forward_once
from edge_agent.population.aggregator import Aggregator, Policy
from edge_agent.population.certs import issue_contributor
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import AGGREGATOR_RECIPIENT
from edge_agent.population.service import AggregatorServer, AggregatorServerConfig
from edge_agent.proto.edge_agent.v1 import population_pb2, population_pb2_grpc
from tests.population_fixtures import visit_inputs


def _stub(bundle: Path, port: int) -> tuple[grpc.aio.Channel, population_pb2_grpc.PopulationAggregatorStub]:
    ch = aggregator_channel(bundle, f"127.0.0.1:{port}")
    return ch, population_pb2_grpc.PopulationAggregatorStub(ch)


def test_delivery_and_queries_over_mtls(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test Clinic")
    ca.issue_aggregator(authority, tmp_path / "server.pem", ips=("127.0.0.1",))
    issue_contributor(authority, tmp_path / "device-client.pem", "cardiology")
    ca.issue_admin(authority, tmp_path / "admin.pem")
    ca.issue_quality(authority, tmp_path / "quality.pem")
    ca.issue_clinician(authority, tmp_path / "clin.pem")
    priv, pub = seal.generate_keypair()
    today = dt.date.today()
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=today)
    period = ring.period.label
    outbox = Outbox(tmp_path / "outbox.db")
    rng = random.Random(2)
    for c in range(6):
        for _ in range(4):
            timing, labels = visit_inputs(rng)
            contribute_at_stop(outbox, ring, pub, timing, labels, "cardiology", today, f"c-clin{c}")
    agg = Aggregator(tmp_path / "agg.db", priv, Policy(require_closed=False, epsilon_budget=1.0))
    agg.load_roster(period, [ring.pseudonym(f"c-clin{c}", today)[1] for c in range(6)])  # IT's roster of real clinicians

    async def scenario() -> None:
        server = AggregatorServer(AggregatorServerConfig(tmp_path / "server.pem", host="127.0.0.1", port=0), agg)
        port = await server.start()
        try:
            ch, _ = _stub(tmp_path / "device-client.pem", port)
            result = await forward_once(outbox, ch)
            assert (result.accepted, result.dropped, result.kept) == (24, 0, 0)
            assert outbox.fetch(AGGREGATOR_RECIPIENT) == []  # acked and deleted on the device
            dev_stub = population_pb2_grpc.PopulationAggregatorStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as exc:  # a device cannot read releases
                await dev_stub.QueryCell(population_pb2.QueryCellRequest(period=period, service_line="cardiology", metric="talk_share"))
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await ch.close()

            ch, it_admin = _stub(tmp_path / "admin.pem", port)
            with pytest.raises(grpc.aio.AioRpcError) as exc:  # IT's admin certificate runs devices, not Q&S queries
                await it_admin.QueryCell(population_pb2.QueryCellRequest(period=period, service_line="cardiology", metric="talk_share"))
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await ch.close()

            ch, admin = _stub(tmp_path / "quality.pem", port)
            cell = await admin.QueryCell(population_pb2.QueryCellRequest(period=period, service_line="cardiology",
                                                                          metric="talk_share", epsilon=0.6))
            assert cell.status == "released" and cell.has_value and cell.sum_scale > 0 and cell.epsilon > 0
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await admin.QueryCell(population_pb2.QueryCellRequest(period=period, service_line="cardiology",
                                                                       metric="empathy", epsilon=0.6))
            assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "privacy budget" in exc.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await admin.QueryCell(population_pb2.QueryCellRequest(period=period, service_line="cardiology", metric="salary"))
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            small = await admin.QueryCell(population_pb2.QueryCellRequest(period=period, service_line="oncology", metric="talk_share"))
            assert small.status == "suppressed" and not small.has_value
            with pytest.raises(grpc.aio.AioRpcError) as exc:  # Q&S cannot inject contributions
                await admin.SubmitContributions(population_pb2.SubmitContributionsRequest())
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await ch.close()

            ch, clin = _stub(tmp_path / "clin.pem", port)
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await clin.Report(population_pb2.ReportRequest(period=period))
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await ch.close()
        finally:
            await server.stop()

    asyncio.run(scenario())
    agg.close()
    outbox.close()
