"""gRPC aggregator service over mutual TLS with the site CA (the same server,
limits and peer-certificate authorisation as the room device: ``edge_agent.mtls``).

* ``SubmitContributions``: device certificates only. The peer identity is used
  to authorise and is then forgotten: nothing about the sender (device, room,
  address, arrival time) is stored or logged.
* ``QueryCell`` / ``Report``: admin certificates only (quality & safety).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from edge_agent.crypto import ca
from edge_agent.mtls.auth import PeerAuthorizer
from edge_agent.mtls.server import MutualTlsServer, TlsEndpoint, guarded, register
from edge_agent.population.aggregator import Aggregator, CellResult
from edge_agent.population.errors import BudgetExhaustedError, ContributionRejected, PeriodOpenError, PopulationError
from edge_agent.population.metrics import ALL_METRIC_NAMES
from edge_agent.proto.edge_agent.v1 import population_pb2

log = logging.getLogger(__name__)

MAX_ITEMS_PER_SUBMIT = 256
MAX_SEALED_BYTES = 8192


def _status_of(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, BudgetExhaustedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, PeriodOpenError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return None


_guard = guarded(_status_of, invalid=PopulationError, who="the aggregator")


def cell_to_proto(c: CellResult) -> population_pb2.CellRelease:
    return population_pb2.CellRelease(
        period=c.period, service_line=c.service_line, metric=c.metric, status=c.status,
        has_value=c.value is not None, value=c.value or 0.0, ci95=c.ci95 or 0.0,
        noisy_clinicians=c.noisy_clinicians or 0, epsilon=c.epsilon, epsilon_requested=c.epsilon_requested,
        sum_scale=c.sum_scale or 0.0, count_scale=c.count_scale or 0.0, mechanism=c.mechanism, unit=c.unit,
        reason=c.reason, repeated=c.repeated,
    )


class PopulationService:
    def __init__(self, aggregator: Aggregator, auth: PeerAuthorizer) -> None:
        self.agg = aggregator
        self.auth = auth

    @_guard
    async def SubmitContributions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.auth.require(context, ca.ROLE_DEVICE)
        if len(request.items) > MAX_ITEMS_PER_SUBMIT:
            raise PopulationError(f"at most {MAX_ITEMS_PER_SUBMIT} contributions per call")
        resp = population_pb2.SubmitContributionsResponse()
        for item in request.items:
            if len(item.sealed) > MAX_SEALED_BYTES:
                resp.rejected.add(record_id=item.record_id[:40], reason="sealed record too large", permanent=True)
                continue
            try:
                await asyncio.to_thread(self.agg.ingest, item.record_id, bytes(item.recipient_key_id), bytes(item.sealed),
                                        item.suite)
                resp.accepted.append(item.record_id)
            except ContributionRejected as exc:
                resp.rejected.add(record_id=item.record_id[:40], reason=exc.message, permanent=exc.permanent)
        return resp

    @_guard
    async def QueryCell(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.auth.require(context, ca.ROLE_ADMIN)
        eps = request.epsilon or None
        result = await asyncio.to_thread(self.agg.query, request.period, request.service_line, request.metric, eps)
        return cell_to_proto(result)

    @_guard
    async def Report(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.auth.require(context, ca.ROLE_ADMIN)
        metrics = tuple(request.metrics) or ALL_METRIC_NAMES
        unknown = [m for m in metrics if m not in ALL_METRIC_NAMES]
        if unknown:
            raise PopulationError(f"unknown metric(s): {', '.join(unknown[:5])}")
        cells = await asyncio.to_thread(self.agg.report, request.period, metrics, request.epsilon or None)
        return population_pb2.ReportResponse(cells=[cell_to_proto(c) for c in cells],
                                             epsilon_budget=self.agg.policy.epsilon_budget)


@dataclass(frozen=True)
class AggregatorServerConfig:
    bundle: Path  # server bundle issued by the site CA (`edge-agent ca issue-device --room aggregator`)
    host: str = "0.0.0.0"
    port: int = 50453  # 0 = ephemeral (tests)
    crl: Path | None = None
    max_concurrent_rpcs: int = 32
    grace_s: float = 5.0


class AggregatorServer:
    def __init__(self, config: AggregatorServerConfig, aggregator: Aggregator) -> None:
        self.config = config
        self.tls = MutualTlsServer(
            TlsEndpoint(config.bundle, config.host, config.port, config.crl, config.max_concurrent_rpcs, config.grace_s), "aggregator"
        )
        self.fingerprint = self.tls.fingerprint
        self.aggregator = aggregator
        self.auth = self.tls.auth
        self.port = 0

    async def start(self) -> int:
        service = PopulationService(self.aggregator, self.auth)
        self.port = await self.tls.start(lambda server: register(server, population_pb2, {"PopulationAggregator": service}))
        log.info("aggregator listening on %s:%d (mutual TLS)", self.config.host, self.port)
        return self.port

    async def stop(self) -> None:
        await self.tls.stop()

    async def wait(self) -> None:
        await self.tls.wait()
