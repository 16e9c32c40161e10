"""The room-device gRPC server: mutual TLS only, limits, health, visit services.

    server = EdgeAgentServer(ServerConfig(bundle=..., data_dir=..., room="Room 4"), runner, enroller)
    port = await server.start()
    ...
    await server.stop()

``serve_forever(config)`` is what ``edge-agent serve`` runs (SIGTERM/SIGINT stop it
cleanly: a running visit is stopped and its report sealed and queued first).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_agent.crypto import ca
from edge_agent.errors import ConfigError
from edge_agent.proto.edge_agent.v1 import agent_pb2
from edge_agent.server.auth import PeerAuthorizer
from edge_agent.server.outbox import Outbox, OutboxConfig
from edge_agent.server.runner import ScriptedVisitRunner, SpectralVoiceEnroller, VisitRunner, VoiceEnroller
from edge_agent.server.service import PROTOCOL_VERSION, AdminService, EdgeAgentService, Limits, RoomClaimsLike, register
from edge_agent.server.visits import DEFAULT_MAX_DURATION_S, Contributor, VisitManager

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    agent_pb2.DESCRIPTOR.services_by_name["EdgeAgent"].full_name,
    agent_pb2.DESCRIPTOR.services_by_name["EdgeAgentAdmin"].full_name,
)
MAX_RECEIVE_BYTES = 128 * 1024  # biggest legal request: one 64 KiB enrolment chunk
MAX_SEND_BYTES = 2 * 1024 * 1024  # one outbox item is at most 1 MiB


@dataclass(frozen=True)
class ServerConfig:
    bundle: Path  # device bundle: key + device cert + site CA (from `edge-agent ca issue-device`)
    data_dir: Path  # holds outbox.db only
    room: str = "room"
    crl: Path | None = None  # crl.pem from the CA; reloaded when it changes
    host: str = "0.0.0.0"
    port: int = 50443  # 0 = ephemeral (tests)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    default_max_duration_s: int = DEFAULT_MAX_DURATION_S
    limits: Limits = field(default_factory=Limits)
    max_concurrent_rpcs: int = 64
    grace_s: float = 5.0


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


class EdgeAgentServer:
    def __init__(
        self,
        config: ServerConfig,
        runner: VisitRunner | None = None,
        enroller: VoiceEnroller | None = None,
        contributor: Contributor | None = None,
        claims: RoomClaimsLike | None = None,
    ) -> None:
        self.config = config
        self.contributor = contributor
        self.claims = claims
        self.bundle = ca.load_bundle(config.bundle)
        if ca.identity_of(self.bundle.cert).role != ca.ROLE_DEVICE:
            raise ConfigError(f"{config.bundle} is not a device bundle; issue one with 'edge-agent ca issue-device'")
        self.fingerprint = self.bundle.fingerprint
        self.runner = runner if runner is not None else ScriptedVisitRunner()
        self.enroller = enroller if enroller is not None else SpectralVoiceEnroller()
        self.auth = PeerAuthorizer(self.bundle.ca_cert, config.crl)
        self.outbox: Outbox | None = None
        self.visits: VisitManager | None = None
        self._server: grpc.aio.Server | None = None
        self.agent_service: EdgeAgentService | None = None  # also served to browsers (edge_agent.device.web)
        self._health: health.aio.HealthServicer | None = None
        self._purge_task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        cfg = self.config
        self.outbox = Outbox(Path(cfg.data_dir) / "outbox.db", cfg.outbox)
        self.outbox.purge_expired()
        self.visits = VisitManager(self.runner, self.outbox, cfg.default_max_duration_s, self.contributor)
        server = grpc.aio.server(options=grpc_options(), maximum_concurrent_rpcs=cfg.max_concurrent_rpcs)
        not_after = int(self.bundle.cert.not_valid_after_utc.timestamp())
        self.agent_service = EdgeAgentService(cfg.room, self.auth, self.visits, self.outbox, self.enroller, cfg.limits, self.claims)
        register(
            server,
            self.agent_service,
            AdminService(cfg.room, self.auth, self.visits, self.outbox, not_after),
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        creds = grpc.ssl_server_credentials(
            [(self.bundle.key_pem, self.bundle.cert_pem)],
            root_certificates=self.bundle.ca_pem,
            require_client_auth=True,  # mutual TLS; there is no insecure port at all
        )
        try:
            self.port = server.add_secure_port(f"{cfg.host}:{cfg.port}", creds)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}; is another edge-agent running? pick another port")
        await server.start()
        self._server = server
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._purge_task = asyncio.create_task(self._purge_loop())
        log.info("listening on %s:%d (mutual TLS, protocol v%d)", cfg.host, self.port, PROTOCOL_VERSION)
        return self.port

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(3600)
            try:
                assert self.outbox is not None and self.visits is not None
                await asyncio.to_thread(self.outbox.purge_expired)
                await self.visits.retry_unqueued()
            except Exception as exc:  # noqa: BLE001 - housekeeping must never take the daemon down
                log.warning("outbox housekeeping failed: %s", exc)

    async def stop(self) -> None:
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self.visits is not None:
            await self.visits.shutdown()
        if self._purge_task is not None:
            self._purge_task.cancel()
        if self._server is not None:
            await self._server.stop(self.config.grace_s)
            self._server = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def serve_forever(
    config: ServerConfig,
    runner: VisitRunner | None = None,
    enroller: VoiceEnroller | None = None,
    ready: "asyncio.Future[int] | None" = None,
    advertise: bool = False,
) -> None:
    """Run until SIGTERM/SIGINT. With ``advertise`` the device announces itself by mDNS."""
    server = EdgeAgentServer(config, runner, enroller)
    port = await server.start()
    advertiser = None
    if advertise:
        from edge_agent.server.mdns import Advertiser

        advertiser = Advertiser(room=config.room, port=port, fingerprint=server.fingerprint)
        await advertiser.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set_result(port)
    try:
        await stop.wait()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await server.stop()


def run(
    bundle: str | Path,
    data_dir: str | Path,
    room: str = "room",
    crl: str | Path | None = None,
    host: str = "0.0.0.0",
    port: int = 50443,
    advertise: bool = True,
    runner: VisitRunner | None = None,
    enroller: VoiceEnroller | None = None,
) -> None:
    """Blocking entry point for ``edge-agent serve`` (plain arguments; the CLI maps the config file onto them)."""
    config = ServerConfig(bundle=Path(bundle), data_dir=Path(data_dir), room=room, crl=Path(crl) if crl else None, host=host, port=port)
    asyncio.run(serve_forever(config, runner, enroller, advertise=advertise))
