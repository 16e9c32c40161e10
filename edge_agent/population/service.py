"""gRPC aggregator service over mutual TLS with the site CA (the same server,
limits and peer-certificate authorisation as the room device: ``edge_agent.mtls``).

* ``SubmitContributions``: contributor certificates only (a room device's
  client identity, bound by the CA to one service line). The peer identity
  authorises, checks the service line and counts against the certificate's
  quota; nothing else about the sender (device, room, address, arrival time)
  is stored or logged, and no record is linked to it.
* ``QueryCell`` / ``Report``: quality certificates only (Quality & Safety).
  IT's admin certificates, which run room devices, cannot spend the budget.
* The aggregator's own certificate has the role ``aggregator`` and the TLS name
  ``edge-agent-aggregator``, which no room device carries.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from edge_agent.crypto import ca
from edge_agent.mtls.auth import PeerAuthorizer
from edge_agent.mtls.server import MutualTlsServer, ServerLimits, TlsEndpoint, guarded, register
from edge_agent.population.aggregator import Aggregator, CellResult, Contributor
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
        ident = self.auth.require(context, ca.ROLE_CONTRIBUTOR)
        if not ident.service_line:
            raise PopulationError("this contributor certificate names no service line; issue a new one with 'edge-agent aggregator issue-contributor'")
        sender = Contributor(ident.serial, ident.service_line)
        if len(request.items) > MAX_ITEMS_PER_SUBMIT:
            raise PopulationError(f"at most {MAX_ITEMS_PER_SUBMIT} contributions per call")
        resp = population_pb2.SubmitContributionsResponse()
        for item in request.items:
            if len(item.sealed) > MAX_SEALED_BYTES:
                resp.rejected.add(record_id=item.record_id[:40], reason="sealed record too large", permanent=True)
                continue
            try:
                await asyncio.to_thread(self.agg.ingest, item.record_id, bytes(item.recipient_key_id), bytes(item.sealed),
                                        item.suite, None, sender)
                resp.accepted.append(item.record_id)
            except ContributionRejected as exc:
                resp.rejected.add(record_id=item.record_id[:40], reason=exc.message, permanent=exc.permanent)
        return resp

    @_guard
    async def QueryCell(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.auth.require(context, ca.ROLE_QUALITY)
        eps = request.epsilon or None
        result = await asyncio.to_thread(self.agg.query, request.period, request.service_line, request.metric, eps)
        return cell_to_proto(result)

    @_guard
    async def Report(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.auth.require(context, ca.ROLE_QUALITY)
        metrics = tuple(request.metrics) or ALL_METRIC_NAMES
        unknown = [m for m in metrics if m not in ALL_METRIC_NAMES]
        if unknown:
            raise PopulationError(f"unknown metric(s): {', '.join(unknown[:5])}")
        cells = await asyncio.to_thread(self.agg.report, request.period, metrics, request.epsilon or None)
        return population_pb2.ReportResponse(cells=[cell_to_proto(c) for c in cells],
                                             epsilon_budget=self.agg.policy.epsilon_budget)


@dataclass(frozen=True)
class AggregatorServerConfig:
    bundle: Path  # server bundle issued by the site CA (`edge-agent ca issue-aggregator`)
    host: str = "0.0.0.0"
    port: int = 50453  # 0 = ephemeral (tests)
    crl: Path | None = None
    max_concurrent_rpcs: int = 32
    grace_s: float = 5.0
    limits: ServerLimits = field(default_factory=ServerLimits)
    state_dir: Path | None = None  # remembers the highest CRL number seen


class AggregatorServer:
    def __init__(self, config: AggregatorServerConfig, aggregator: Aggregator) -> None:
        self.config = config
        self.tls = MutualTlsServer(
            TlsEndpoint(config.bundle, config.host, config.port, config.crl, config.max_concurrent_rpcs, config.grace_s,
                        config.limits, config.state_dir),
            "aggregator", roles=(ca.ROLE_AGGREGATOR,),
        )
        self.fingerprint = self.tls.fingerprint
        self.aggregator = aggregator
        self.auth = self.tls.auth
        self.port = 0

    async def start(self) -> int:
        service = PopulationService(self.aggregator, self.auth)
        self.port = await self.tls.start(lambda server: register(server, population_pb2, {"PopulationAggregator": service}, self.tls.streams))
        log.info("aggregator listening on %s:%d (mutual TLS)", self.config.host, self.port)
        return self.port

    async def stop(self) -> None:
        await self.tls.stop()

    async def wait(self) -> None:
        await self.tls.wait()
