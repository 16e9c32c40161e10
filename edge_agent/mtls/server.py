"""A gRPC server that speaks mutual TLS only, with the limits every edge-agent
service shares, and the pieces that keep handlers from ever crashing.

Both the room device (``device/grpc/server.py``) and the population aggregator
(``population/service.py``) are one :class:`MutualTlsServer` with their own
services registered on it.

Exhaustion limits (docs/security.md, "Denial of service bounds"), all here so
both servers have them:

* :class:`ConnectionGate` owns the public TCP port. gRPC listens only on a
  unix socket in a private directory (so does the device's browser endpoint,
  ``device/web/endpoint.py``, behind a gate of its own with the same limits);
  the gate accepts a connection only while
  the peer address has fewer than ``max_connections_per_peer`` open and the
  server fewer than ``max_connections``, closes one that sends nothing within
  ``first_byte_timeout_s``, and relays bytes unchanged (TLS stays end to end:
  the gate never sees plaintext or keys). gRPC Python has no accept hook, so
  this is the one place such caps can live.
* gRPC's own handshake timeout (``handshake_timeout_s``; gRPC's default is
  120 s) ends a TLS handshake that stalls after its first bytes, and
  ``max_connection_age_s`` closes every connection eventually.
* :func:`register` gives every streaming RPC a server-side deadline (a
  server stream ends after ``stream_deadline_s``; a client stream is ended when
  no message comes for ``client_stream_idle_s`` or it runs past
  ``client_stream_deadline_s``) and caps concurrent streams below the RPC cap,
  so streams can never take every slot from unary calls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import shutil
import socket
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from edge_agent.crypto import ca
from edge_agent.errors import ConfigError
from edge_agent.mtls.auth import AuthError, PeerAuthorizer
from edge_agent.wording import a_or_an

log = logging.getLogger(__name__)

MAX_RECEIVE_BYTES = 128 * 1024  # biggest legal request: one 64 KiB enrolment chunk
MAX_SEND_BYTES = 2 * 1024 * 1024  # one outbox item is at most 1 MiB

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class ServerLimits:
    """Bounds against exhaustion by clients that never authenticate or never finish."""

    handshake_timeout_s: float = 5.0  # TLS + HTTP/2 settings must complete within this after the first byte
    first_byte_timeout_s: float = 5.0  # a TCP connection that sends nothing is closed after this
    max_connections: int = 256  # open TCP connections, all peers together (each costs 2 fds in the gate + 1 in gRPC)
    max_connections_per_peer: int = 16  # per remote address (a phone needs 1-2)
    max_connection_age_s: float = 3600.0  # every connection is closed (GOAWAY) after this; clients reconnect
    max_connection_age_grace_s: float = 960.0  # time given to calls in flight at that point (> stream_deadline_s)
    stream_deadline_s: float = 900.0  # a server stream (e.g. followed feedback) ends after this; the client re-opens it
    client_stream_deadline_s: float = 120.0  # a client stream (voice enrolment) must finish within this
    client_stream_idle_s: float = 10.0  # ... and send its next message within this
    max_streams: int = 32  # concurrent streaming RPCs of any kind (below the RPC cap)


def grpc_options(limits: ServerLimits | None = None) -> list[tuple[str, int]]:
    limits = limits or ServerLimits()
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
        ("grpc.server_handshake_timeout_ms", int(limits.handshake_timeout_s * 1000)),
        ("grpc.max_connection_age_ms", int(limits.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(limits.max_connection_age_grace_s * 1000)),
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
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


class StreamTimeout(Exception):
    """A client stream went quiet or ran too long (answered DEADLINE_EXCEEDED)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamGuard:
    """Deadlines and a concurrency cap for every streaming RPC of one server."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.open = 0

    def _full(self) -> bool:
        return self.open >= self.limits.max_streams

    async def _refuse(self, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many open streams on this server; try again in a minute")

    def timed_requests(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The client's messages, each within ``client_stream_idle_s`` and all within ``client_stream_deadline_s``."""
        limits = self.limits

        async def gen() -> AsyncIterator[Any]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limits.client_stream_deadline_s
            it = requests.__aiter__()
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise StreamTimeout(f"stream took longer than {limits.client_stream_deadline_s:.0f} s; send less or retry")
                wait = min(limits.client_stream_idle_s, left)
                try:
                    message = await asyncio.wait_for(it.__anext__(), wait)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if wait < limits.client_stream_idle_s:
                        raise StreamTimeout(f"stream took longer than {limits.client_stream_deadline_s:.0f} s; send less or retry") from None
                    raise StreamTimeout(f"nothing received for {limits.client_stream_idle_s:.0f} s; the stream was ended, start again") from None
                yield message

        return gen()

    def wrap(self, behaviour: Callable[..., Any], client_streaming: bool, server_streaming: bool) -> Callable[..., Any]:
        if not client_streaming and not server_streaming:
            return behaviour  # unary handlers are bounded by their own work (a stop must never be cut mid-seal)
        guard = self
        if server_streaming:

            async def server_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                if guard._full():
                    await guard._refuse(context)
                    return
                guard.open += 1
                source = request
                if client_streaming:
                    source = guard.timed_requests(request)
                inner = behaviour(source, context).__aiter__()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + guard.limits.stream_deadline_s
                try:
                    while True:
                        left = deadline - loop.time()
                        if left <= 0:
                            return  # ends OK: a following client simply opens the stream again
                        try:
                            item = await asyncio.wait_for(inner.__anext__(), left)
                        except (StopAsyncIteration, TimeoutError):
                            return
                        yield item
                finally:
                    guard.open -= 1
                    await inner.aclose()

            return server_stream

        async def client_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            if guard._full():
                await guard._refuse(context)
            guard.open += 1
            try:
                return await behaviour(guard.timed_requests(requests), context)
            finally:
                guard.open -= 1

        return client_stream


def register(server: grpc.aio.Server, messages: ModuleType, servicers: dict[str, object],
             guard: StreamGuard | None = None) -> list[str]:
    """Add services (by name in ``messages``' descriptor) with tolerant request parsers.

    Used instead of the generated ``add_*_to_server`` so that undecodable bytes
    reach the handler as :data:`MALFORMED` rather than becoming INTERNAL, and
    so that every streaming method gets the deadlines and the cap of ``guard``.
    Returns the services' full names (for the health service).
    """
    guard = guard or StreamGuard(ServerLimits())
    names = []
    for name, servicer in servicers.items():
        service = messages.DESCRIPTOR.services_by_name[name]
        handlers = {}
        for method in service.methods:
            make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
            handlers[method.name] = make(
                guard.wrap(getattr(servicer, method.name), method.client_streaming, method.server_streaming),
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
            except StreamTimeout as exc:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, exc.message)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped below; last line of defence
                code = status_of(exc)
                if code is not None:
                    await context.abort(code, getattr(exc, "message", str(exc)))
                if isinstance(exc, invalid):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, getattr(exc, "message", str(exc)))
                log.error("%s failed unexpectedly: %s", fn.__name__, type(exc))
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
    limits: ServerLimits = field(default_factory=ServerLimits)
    state_dir: Path | None = None  # remembers the highest CRL number seen (a restart must not accept an older CRL)


class ConnectionGate:
    """The public TCP port: per-peer and total connection caps and a first-byte timeout, relaying to gRPC.

    Bytes are copied unchanged in both directions; TLS is between the client
    and gRPC, so the gate sees only ciphertext.
    """

    def __init__(self, host: str, port: int, upstream: str, limits: ServerLimits, label_peers: bool = False) -> None:
        self.host = host
        self.port = port
        self.upstream = upstream  # path of the server's unix socket (gRPC's, or the browser endpoint's)
        self.limits = limits
        # label_peers: each upstream connection comes from a unix socket bound to a random abstract name, so the
        # server behind the gate can ask peer_of(name) for the client's real address (per-address rate limits)
        self.label_peers = label_peers
        self._peer_names: dict[bytes, str] = {}
        self.per_peer: Counter[str] = Counter()
        self.total = 0
        self.refused = 0  # connections closed at once by a cap (for tests and metrics)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_port=False, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        addr = str(peer[0]) if peer else "?"
        if self.total >= self.limits.max_connections or self.per_peer[addr] >= self.limits.max_connections_per_peer:
            self.refused += 1
            _abort(writer)
            if task is not None:
                self._tasks.discard(task)
            return
        self.total += 1
        self.per_peer[addr] += 1
        up_writer: asyncio.StreamWriter | None = None
        name: bytes | None = None
        try:
            try:
                first = await asyncio.wait_for(reader.read(65536), self.limits.first_byte_timeout_s)
            except (TimeoutError, OSError):
                return
            if not first:
                return
            try:
                up_reader, up_writer, name = await self._open_upstream(addr)
            except OSError:
                return
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass
        finally:
            if name is not None:
                self._peer_names.pop(name, None)
            self.total -= 1
            self.per_peer[addr] -= 1
            if self.per_peer[addr] <= 0:
                del self.per_peer[addr]
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            if task is not None:
                self._tasks.discard(task)


    async def _open_upstream(self, addr: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes | None]:
        if not self.label_peers:
            reader, writer = await asyncio.open_unix_connection(self.upstream)
            return reader, writer, None
        name = b"\0edge-agent-gate-" + secrets.token_hex(12).encode()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            sock.setblocking(False)
            self._peer_names[name] = addr  # known before the server can accept the connection
            await asyncio.get_running_loop().sock_connect(sock, self.upstream)
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except BaseException:
            self._peer_names.pop(name, None)
            sock.close()
            raise
        return reader, writer, name

    def peer_of(self, name: object) -> str | None:
        """The client address behind an upstream connection (``getpeername()`` on the server side), if labelled."""
        return self._peer_names.get(name) if isinstance(name, bytes) else None


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:  # RST instead of FIN: no TIME_WAIT kept for a refused peer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ConnectionError):
        writer.close()


class CheckedHealth:
    """grpc.health.v1 under the same rules as every service: each call rechecks the caller's certificate
    (validity, CRL; TLS alone does not look at the CRL), and ``Watch`` goes through the stream guard like
    any stream (counted against the cap, ended at the stream deadline, ended on revocation)."""

    RECHECK_S = 5.0

    def __init__(self, auth: PeerAuthorizer) -> None:
        self._auth = auth
        self._status: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._closing = False

    async def set(self, service: str, status: int) -> None:
        if self._closing:
            return
        async with self._changed:
            self._status[service] = status
            self._changed.notify_all()

    async def enter_graceful_shutdown(self) -> None:
        async with self._changed:
            for name in self._status:
                self._status[name] = health_pb2.HealthCheckResponse.NOT_SERVING
            self._closing = True
            self._changed.notify_all()

    @guarded(lambda exc: None)
    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._auth.identify(context)
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such service on this server")
        return health_pb2.HealthCheckResponse(status=status)

    @guarded(lambda exc: None)
    async def List(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._auth.identify(context)
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=st) for name, st in self._status.items()})

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            self._auth.identify(context)
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
            return
        if request is MALFORMED:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid grpc.health.v1 message")
            return
        last = None
        while True:
            status = self._status.get(request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), self.RECHECK_S)
                except TimeoutError:
                    pass
            try:
                self._auth.identify(context)  # revoked or expired mid-watch: end it
            except AuthError as exc:
                await context.abort(exc.code, exc.message)
                return


class MutualTlsServer:
    """Bundle, caller authorisation, gRPC server, health: the part every service shares.

    ``what`` names the program in one-line errors ("edge-agent", "aggregator");
    ``roles`` are the certificate roles the server's own bundle may have.
    """

    def __init__(self, endpoint: TlsEndpoint, what: str, roles: tuple[str, ...] = (ca.ROLE_DEVICE,)) -> None:
        self.endpoint = endpoint
        self.what = what
        self.bundle = ca.load_bundle(endpoint.bundle, roles[0])
        role = ca.identity_of(self.bundle.cert).role
        if role not in roles:
            raise ConfigError(f"{endpoint.bundle} is {a_or_an(role)} bundle, not {a_or_an(what)} server's; {ca.issue_hint(roles[0])}")
        self.fingerprint = self.bundle.fingerprint
        self.auth = PeerAuthorizer(self.bundle.ca_cert, endpoint.crl, endpoint.state_dir)
        self.streams = StreamGuard(endpoint.limits)
        self.port = 0
        self.gate: ConnectionGate | None = None
        self._socket_dir: Path | None = None
        self._server: grpc.aio.Server | None = None
        self._health: CheckedHealth | None = None

    @property
    def not_after_unix_s(self) -> int:
        return int(self.bundle.cert.not_valid_after_utc.timestamp())

    async def start(self, add_services: Callable[[grpc.aio.Server], Iterable[str]]) -> int:
        ep = self.endpoint
        server = grpc.aio.server(options=grpc_options(ep.limits), maximum_concurrent_rpcs=ep.max_concurrent_rpcs)
        names = list(add_services(server))
        self._health = CheckedHealth(self.auth)
        register(server, health_pb2, {"Health": self._health}, self.streams)
        creds = grpc.ssl_server_credentials(
            [(self.bundle.key_pem, self.bundle.cert_pem)],
            root_certificates=self.bundle.ca_pem,
            require_client_auth=True,  # mutual TLS; there is no insecure port at all
        )
        # gRPC listens on a unix socket only this process can reach; the gate owns the TCP port.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="edge-agent-grpc-"))
        upstream = str(self._socket_dir / "grpc.sock")
        try:
            bound = server.add_secure_port(f"unix:{upstream}", creds)
        except RuntimeError:
            bound = 0
        if not bound:
            raise ConfigError(f"cannot create the {self.what} socket in {self._socket_dir}; check /tmp")
        gate = ConnectionGate(ep.host, ep.port, upstream, ep.limits)
        try:
            self.port = await gate.start()
        except (OSError, OverflowError):  # OverflowError: a port outside 0..65535
            self.port = 0
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            raise ConfigError(f"cannot listen on {ep.host}:{ep.port}; is another {self.what} running? pick another port") from None
        self.gate = gate
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
        if self.gate is not None:
            await self.gate.stop()
            self.gate = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
