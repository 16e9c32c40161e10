"""gRPC aggregator service over mutual TLS with the site CA (reusing the device server's TLS,
limits and peer-certificate authorisation).

* ``SubmitContributions``: device certificates only. The peer identity is used
  to authorise and is then forgotten: nothing about the sender (device, room,
  address, arrival time) is stored or logged.
* ``QueryCell`` / ``Report``: admin certificates only (quality & safety).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_agent.crypto import ca
from edge_agent.device.grpc.auth import AuthError, PeerAuthorizer
from edge_agent.device.grpc.server import grpc_options
from edge_agent.device.grpc.service import MALFORMED, _safe_parser
from edge_agent.errors import ConfigError
from edge_agent.population.aggregator import Aggregator, CellResult
from edge_agent.population.errors import BudgetExhaustedError, ContributionRejected, PeriodOpenError, PopulationError
from edge_agent.population.metrics import ALL_METRIC_NAMES
from edge_agent.proto.edge_agent.v1 import population_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = population_pb2.DESCRIPTOR.services_by_name["PopulationAggregator"].full_name
MAX_ITEMS_PER_SUBMIT = 256
MAX_SEALED_BYTES = 8192
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _guard(fn: F) -> F:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if request is MALFORMED:
                raise PopulationError("request is not a valid edge_agent.v1 message")
            return await fn(self, request, context)
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
        except BudgetExhaustedError as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)
        except PeriodOpenError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, exc.message)
        except PopulationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - type only, never content
            log.error("%s failed unexpectedly: %s", fn.__name__, type(exc).__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the aggregator logged it")

    return wrapper  # type: ignore[return-value]


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


def register(server: grpc.aio.Server, servicer: PopulationService) -> None:
    service = population_pb2.DESCRIPTOR.services_by_name["PopulationAggregator"]
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, m.name),
            request_deserializer=_safe_parser(getattr(population_pb2, m.input_type.name)),
            response_serializer=getattr(population_pb2, m.output_type.name).SerializeToString,
        )
        for m in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


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
        self.bundle = ca.load_bundle(config.bundle)
        if ca.identity_of(self.bundle.cert).role != ca.ROLE_DEVICE:
            raise ConfigError(f"{config.bundle} is not a server bundle; issue one with 'edge-agent ca issue-device'")
        self.fingerprint = self.bundle.fingerprint
        self.aggregator = aggregator
        self.auth = PeerAuthorizer(self.bundle.ca_cert, config.crl)
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self.port = 0

    async def start(self) -> int:
        cfg = self.config
        server = grpc.aio.server(options=grpc_options(), maximum_concurrent_rpcs=cfg.max_concurrent_rpcs)
        register(server, PopulationService(self.aggregator, self.auth))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        creds = grpc.ssl_server_credentials(
            [(self.bundle.key_pem, self.bundle.cert_pem)], root_certificates=self.bundle.ca_pem, require_client_auth=True
        )
        try:
            self.port = server.add_secure_port(f"{cfg.host}:{cfg.port}", creds)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}; is another aggregator running? pick another port")
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("aggregator listening on %s:%d (mutual TLS)", cfg.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.config.grace_s)
            self._server = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
