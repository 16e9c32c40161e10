"""The device's browser endpoint: gRPC-Web over HTTPS on a second port, same servicer.

    endpoint = DeviceWebEndpoint(server, WebEndpointConfig(allowed_origins=("https://phones.example:8443",)))
    await endpoint.start()   # after server.start(), on the same event loop

It runs uvicorn inside the gRPC server's asyncio loop, so visits, the outbox
and the feedback notifications are the very objects the gRPC port uses. TLS
uses the device bundle (the certificate phones pin by its fingerprint). The TCP
port belongs to a :class:`~edge_agent.mtls.server.ConnectionGate` with the gRPC
port's limits; uvicorn listens on a private unix socket behind it. Only
the ``EdgeAgent`` service and the sign-in handshake are served; admin RPCs stay
on the mutual-TLS port.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.web.grpcweb import GrpcWebApp, Method, WebContext
from edge_agent.device.web.sessions import SessionPolicy, WebSessions
from edge_agent.errors import ConfigError
from edge_agent.mtls.auth import AuthError
from edge_agent.mtls.memfile import pem_memfile
from edge_agent.mtls.server import MALFORMED, ConnectionGate, Invalid
from edge_agent.mtls.server import safe_parser as _safe_parser
from edge_agent.proto.edge_agent.v1 import agent_pb2, web_pb2
from edge_agent.protocol import MAX_ENROLL_SECONDS

log = logging.getLogger(__name__)

# the body of one EnrollVoice POST: up to 30 s at 48 kHz s16 plus 5 bytes of framing per chunk
ENROLL_MAX_BODY = MAX_ENROLL_SECONDS * 48000 * 2 + 5 * (MAX_ENROLL_SECONDS * 48000 * 2 // 1024 + 1)


@dataclass(frozen=True)
class WebEndpointConfig:
    allowed_origins: tuple[str, ...]  # the phone web app's site origin(s), exact, e.g. "https://phones.clinic.example:8443"
    host: str = "0.0.0.0"
    port: int = 50444  # 0 = ephemeral (tests)
    session: SessionPolicy = field(default_factory=SessionPolicy)

    def __post_init__(self) -> None:
        if not self.allowed_origins:
            raise ConfigError("the browser endpoint needs web.allowed_origin (the phone web app's https origin); "
                              "set it, or set web.enabled = false")
        for origin in self.allowed_origins:
            if not origin.startswith("https://") or origin.count("/") != 2:
                raise ConfigError(f"web allowed origin {origin!r} must be exactly https://HOST[:PORT] (no path)")


class WebAuthService:
    """Challenge and Login; errors become statuses with one-line messages, as on the gRPC port."""

    def __init__(self, sessions: WebSessions) -> None:
        self._sessions = sessions

    async def Challenge(self, request: Any, context: WebContext) -> web_pb2.WebChallengeResponse:
        return await _answer(context, lambda: self._sessions.challenge(bytes(request.phone_nonce), context.client), request)

    async def Login(self, request: Any, context: WebContext) -> web_pb2.WebLoginResponse:
        return await _answer(context, lambda: self._sessions.login(request), request)


async def _answer(context: WebContext, make: Callable[[], Any], request: Any) -> Any:
    if request is MALFORMED:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid edge_agent.v1 message")
    try:
        return await asyncio.to_thread(make)  # ECDSA and X.509 parsing off the loop
    except AuthError as exc:
        await context.abort(exc.code, exc.message)
    except Invalid as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def method_table(server: EdgeAgentServer, sessions: WebSessions) -> dict[str, Method]:
    """Every EdgeAgent RPC, bound to the gRPC server's own servicer, plus the sign-in handshake."""
    agent = server.agent_service
    assert agent is not None, "start the gRPC server first"
    table: dict[str, Method] = {}
    service = agent_pb2.DESCRIPTOR.services_by_name["EdgeAgent"]
    for m in service.methods:
        table[f"/{service.full_name}/{m.name}"] = Method(
            handler=getattr(agent, m.name),
            parse=_safe_parser(getattr(agent_pb2, m.input_type.name)),
            serialize=getattr(agent_pb2, m.output_type.name).SerializeToString,
            client_streaming=m.client_streaming,
            server_streaming=m.server_streaming,
            max_body=ENROLL_MAX_BODY if m.client_streaming else 128 * 1024,
        )
    auth = WebAuthService(sessions)
    web = web_pb2.DESCRIPTOR.services_by_name["EdgeAgentWebAuth"]
    for m in web.methods:
        table[f"/{web.full_name}/{m.name}"] = Method(
            handler=getattr(auth, m.name), parse=_safe_parser(getattr(web_pb2, m.input_type.name)),
            serialize=getattr(web_pb2, m.output_type.name).SerializeToString, max_body=16 * 1024, authenticated=False,
        )
    return table


class _Uvicorn(uvicorn.Server):
    handshake_timeout_s = 5.0

    # the daemon owns SIGTERM/SIGINT (a running visit is sealed first); uvicorn must not take them
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn has no TLS handshake timeout setting and asyncio's default is 60 s: hand the gate's limit
        # (ServerLimits.handshake_timeout_s, as gRPC's) to the one create_server call uvicorn makes for our socket
        loop = asyncio.get_running_loop()
        loop.create_server = functools.partial(loop.create_server, ssl_handshake_timeout=self.handshake_timeout_s)  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server


class _GatedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with the client address the connection gate saw (the socket is a unix one)."""

    gate: ConnectionGate

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        try:
            name = sock.getpeername() if sock is not None else None
        except OSError:
            name = None
        addr = self.gate.peer_of(name)
        self.client = (addr, 0) if addr else None


class DeviceWebEndpoint:
    def __init__(self, server: EdgeAgentServer, config: WebEndpointConfig) -> None:
        self.config = config
        self.server = server
        self.port = 0
        self.sessions: WebSessions | None = None
        self.gate: ConnectionGate | None = None
        self._socket_dir: Path | None = None
        self._uvicorn: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, announce: bool = True) -> int:
        """The TCP port belongs to the same :class:`ConnectionGate` as the gRPC port's (per-address and total caps,
        silent connections closed after 5 s); uvicorn listens on a unix socket in a private directory behind it."""
        cfg = self.config
        limits = self.server.tls.endpoint.limits
        self.sessions = WebSessions(self.server.tls.bundle, self.server.config.room, self.server.auth, cfg.session)
        app = GrpcWebApp(method_table(self.server, self.sessions), cfg.allowed_origins, self.sessions.peer_for)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="edge-agent-web-"))
        upstream = str(self._socket_dir / "web.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(upstream)
        sock.listen(128)
        sock.setblocking(False)
        gate = ConnectionGate(cfg.host, cfg.port, upstream, limits, label_peers=True)
        try:
            self.port = await gate.start()
        except OSError as exc:
            sock.close()
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port} for phones' browsers ({exc.strerror}); pick another web.port") from None
        self.gate = gate
        protocol = type("GatedH11", (_GatedH11,), {"gate": gate})
        b = self.server.tls.bundle
        with pem_memfile(b.key_pem + b.cert_pem, "edge-agent-web-tls") as path:
            # log_config=None: uvicorn's default installs its own stderr handler (no redaction, no id scrubbing)
            # and stops its loggers propagating; its lines go through the device's redacting handler instead
            config = uvicorn.Config(app, ssl_certfile=path, lifespan="off", log_level="warning", log_config=None, access_log=False,
                                    server_header=False, date_header=False, http=protocol, ws="none",
                                    limit_concurrency=64, timeout_keep_alive=30,
                                    timeout_graceful_shutdown=1)  # open feedback streams would hold shutdown forever
            config.load()  # reads the key now, while the memory file exists
        self._uvicorn = _Uvicorn(config)
        self._uvicorn.handshake_timeout_s = limits.handshake_timeout_s
        self._task = asyncio.create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
                raise ConfigError("browser endpoint did not start")
            await asyncio.sleep(0.01)
        if announce:
            self.announce()
        return self.port

    def announce(self) -> None:
        log.info("browser endpoint (gRPC-Web, HTTPS) on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        if self.gate is not None:
            await self.gate.stop()
            self.gate = None
        if self._uvicorn is not None and self._task is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
            self._uvicorn = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


class DeviceWithWeb:
    """A gRPC server and its browser endpoint as one start/stop pair (for BackgroundServer, demo and tests)."""

    def __init__(self, server: EdgeAgentServer, web: WebEndpointConfig) -> None:
        self.server = server
        self.web = DeviceWebEndpoint(server, web)

    @property
    def fingerprint(self) -> str:
        return self.server.fingerprint

    async def start(self) -> int:
        port = await self.server.start()
        await self.web.start()
        return port

    async def stop(self) -> None:
        await self.web.stop()
        await self.server.stop()
