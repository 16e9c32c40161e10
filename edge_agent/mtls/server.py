"""A gRPC server that speaks mutual TLS only, with the limits every edge-agent
service shares, and the pieces that keep handlers from ever crashing.

Both the room device (``device/grpc/server.py``) and the population aggregator
(``population/service.py``) are one :class:`MutualTlsServer` with their own
services registered on it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_agent.crypto import ca
from edge_agent.errors import ConfigError
from edge_agent.mtls.auth import AuthError, PeerAuthorizer

log = logging.getLogger(__name__)

MAX_RECEIVE_BYTES = 128 * 1024  # biggest legal request: one 64 KiB enrolment chunk
MAX_SEND_BYTES = 2 * 1024 * 1024  # one outbox item is at most 1 MiB

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def grpc_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.max_concurrent_streams", 16),  # per connection
        ("grpc.max_metadata_size", 16 * 1024),
        ("grpc.keepalive_time_ms", 30_000),  # server pings idle long streams (phones on Wi-Fi)
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),  # clients may ping every 10 s, not faster
        ("grpc.http2.max_ping_strikes", 3),
        ("grpc.max_connection_idle_ms", 10 * 60_000),
        ("grpc.so_reuseport", 0),  # a second daemon on the same port must fail, not share it
    ]


class Malformed:
    """Stands in for a request whose bytes are not a valid message (answered INVALID_ARGUMENT)."""


MALFORMED = Malformed()


def safe_parser(cls: Any) -> Callable[[bytes], Any]:
    # gRPC answers a deserializer exception with INTERNAL; a client's garbage is INVALID_ARGUMENT.
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception:  # noqa: BLE001 - DecodeError and friends
            return MALFORMED

    return parse


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def register(server: grpc.aio.Server, messages: ModuleType, servicers: dict[str, object]) -> list[str]:
    """Add services (by name in ``messages``' descriptor) with tolerant request parsers.

    Used instead of the generated ``add_*_to_server`` so that undecodable bytes
    reach the handler as :data:`MALFORMED` rather than becoming INTERNAL.
    Returns the services' full names (for the health service).
    """
    names = []
    for name, servicer in servicers.items():
        service = messages.DESCRIPTOR.services_by_name[name]
        handlers = {}
        for method in service.methods:
            make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
            handlers[method.name] = make(
                getattr(servicer, method.name),
                request_deserializer=safe_parser(getattr(messages, method.input_type.name)),
                response_serializer=getattr(messages, method.output_type.name).SerializeToString,
            )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
        names.append(service.full_name)
    return names


class Invalid(Exception):
    """A request field is invalid (INVALID_ARGUMENT)."""


StatusOf = Callable[[Exception], "grpc.StatusCode | None"]


def guarded(status_of: StatusOf, invalid: type[Exception] = Invalid, who: str = "the device") -> Callable[[F], F]:
    """Decorator for unary/client-stream handlers: every failure becomes a status, never a crash.

    ``status_of`` maps the service's own errors (each carrying ``message``) to
    a code; a malformed request, an :class:`AuthError` or ``invalid`` are
    handled for every service alike. Anything unexpected is logged by type
    only (never request content) and answered INTERNAL.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                if request is MALFORMED:
                    raise invalid("request is not a valid edge_agent.v1 message")
                return await fn(self, request, context)
            except AuthError as exc:
                await context.abort(exc.code, exc.message)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped below; last line of defence
                code = status_of(exc)
                if code is not None:
                    await context.abort(code, getattr(exc, "message", str(exc)))
                if isinstance(exc, invalid):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, getattr(exc, "message", str(exc)))
                log.error("%s failed unexpectedly: %s", fn.__name__, type(exc).__name__)
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error; {who} logged it")

        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass(frozen=True)
class TlsEndpoint:
    bundle: Path  # server bundle from the site CA (key + certificate + CA)
    host: str
    port: int  # 0 = ephemeral (tests)
    crl: Path | None = None
    max_concurrent_rpcs: int = 64
    grace_s: float = 5.0


class MutualTlsServer:
    """Bundle, caller authorisation, gRPC server, health: the part every service shares.

    ``what`` names the program in one-line errors ("edge-agent", "aggregator").
    """

    def __init__(self, endpoint: TlsEndpoint, what: str) -> None:
        self.endpoint = endpoint
        self.what = what
        self.bundle = ca.load_bundle(endpoint.bundle)
        if ca.identity_of(self.bundle.cert).role != ca.ROLE_DEVICE:
            raise ConfigError(f"{endpoint.bundle} is not a server bundle; issue one with 'edge-agent ca issue-device'")
        self.fingerprint = self.bundle.fingerprint
        self.auth = PeerAuthorizer(self.bundle.ca_cert, endpoint.crl)
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None

    @property
    def not_after_unix_s(self) -> int:
        return int(self.bundle.cert.not_valid_after_utc.timestamp())

    async def start(self, add_services: Callable[[grpc.aio.Server], Iterable[str]]) -> int:
        ep = self.endpoint
        server = grpc.aio.server(options=grpc_options(), maximum_concurrent_rpcs=ep.max_concurrent_rpcs)
        names = list(add_services(server))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        creds = grpc.ssl_server_credentials(
            [(self.bundle.key_pem, self.bundle.cert_pem)],
            root_certificates=self.bundle.ca_pem,
            require_client_auth=True,  # mutual TLS; there is no insecure port at all
        )
        try:
            self.port = server.add_secure_port(f"{ep.host}:{ep.port}", creds)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise ConfigError(f"cannot listen on {ep.host}:{ep.port}; is another {self.what} running? pick another port")
        await server.start()
        self._server = server
        for name in ("", *names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def enter_graceful_shutdown(self) -> None:
        if self._health is not None:
            await self._health.enter_graceful_shutdown()

    async def stop(self) -> None:
        await self.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.endpoint.grace_s)
            self._server = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
