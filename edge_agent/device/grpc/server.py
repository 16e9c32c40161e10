"""The room-device gRPC server: the visit and admin services on one mutual-TLS server.

    server = EdgeAgentServer(ServerConfig(bundle=..., data_dir=..., room="Room 4"), runner, enroller)
    port = await server.start()
    ...
    await server.stop()

``device/main.py`` builds it with the real pipeline's runner and enroller;
``stop()`` stops a running visit normally first, so its report is sealed and queued.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from edge_agent.crypto import ca
from edge_agent.device.grpc.service import PROTOCOL_VERSION, AdminService, EdgeAgentService, Limits, RoomClaimsLike
from edge_agent.device.held import DEFAULT_MAX_HELD_BYTES, DEFAULT_SHUTDOWN_GRACE_S
from edge_agent.device.lifecycle import DEFAULT_MAX_DURATION_S, Contributor, VisitManager, VisitRunner, VoiceEnroller
from edge_agent.device.lost import report_lost
from edge_agent.device.ops.logs import Safe
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.outbox import Outbox, OutboxConfig
from edge_agent.device.presence import Presence, RoomCodes, load_allow_list
from edge_agent.errors import ConfigError
from edge_agent.mtls.server import MutualTlsServer, ServerLimits, TlsEndpoint, register
from edge_agent.proto.edge_agent.v1 import agent_pb2

log = logging.getLogger(__name__)


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
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES  # sealed reports kept in memory while the outbox refuses them
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S  # at stop, refused reports are retried this long, then lost
    tls_limits: ServerLimits = field(default_factory=ServerLimits)
    # presence (docs/security.md): without a room-code secret phones start visits only by claim + button
    room_code_secret: Path | None = None
    room_code_step_s: int = 28 * 86400
    allowed_clinicians: Path | None = None  # allow-list file; None = every clinician of the site
    quotes: bool = False  # feedback.quotes: verbatim words in reports (default off: paraphrase only)

    def endpoint(self) -> TlsEndpoint:
        return TlsEndpoint(self.bundle, self.host, self.port, self.crl, self.max_concurrent_rpcs, self.grace_s,
                           self.tls_limits, state_dir=Path(self.data_dir))


def make_data_dir(path: Path) -> None:
    """The outbox directory, private to the service user (0700) even outside systemd's StateDirectory."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix" and path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:  # a file in the way, a read-only or foreign-owned parent: IT fixes the path, not a bug
        raise ConfigError(
            f"outbox.path {path} cannot be used as the outbox directory ({exc.strerror}); "
            "give a directory the service user owns (the unit's StateDirectory, /var/lib/edge-agent)"
        ) from None


def check_certified_room(cert: x509.Certificate, room: str) -> str:
    """The room the device certificate names ('' for none); ConfigError when server.room says another."""
    certified = ca.room_of(cert)
    if certified and certified != room:
        raise ConfigError(
            f"server.room is {room!r} but the device certificate was issued for {certified!r}; "
            "set server.room to match or issue a certificate for this room"
        )
    return certified


def _log_certificate_dates(cert: x509.Certificate) -> None:
    """Serving on: phones refuse a device whose certificate is out of its dates, so the journal must say why."""
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc <= now:
        log.error("the device certificate expired on %s; phones will refuse this device: issue a new bundle "
                  "('edge-agent ca issue-device') and run 'edge-agent provision'", Safe(f"{cert.not_valid_after_utc:%Y-%m-%d}"))
    elif cert.not_valid_before_utc > now:
        log.error("the device certificate is not valid until %s (is the clock behind?); phones will refuse this device "
                  "until then: check time sync (timedatectl)", Safe(f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))


class EdgeAgentServer:
    def __init__(
        self,
        config: ServerConfig,
        runner: VisitRunner,
        enroller: VoiceEnroller,
        contributor: Contributor | None = None,
        claims: RoomClaimsLike | None = None,
        metrics: Registry | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.contributor = contributor
        self.claims = claims
        make_data_dir(config.data_dir)  # before anything (the CRL number record) is written there
        self.tls = MutualTlsServer(config.endpoint(), "edge-agent")
        certified = check_certified_room(self.tls.bundle.cert, config.room)
        if not certified:
            log.warning("the device certificate names no room (issued before rooms were attested); phones will refuse it: re-issue it")
        _log_certificate_dates(self.tls.bundle.cert)
        codes = RoomCodes.load(config.room_code_secret, config.room_code_step_s) if config.room_code_secret else None
        self.presence = Presence(codes, load_allow_list(config.allowed_clinicians))
        self.fingerprint = self.tls.fingerprint
        self.auth = self.tls.auth
        self.runner = runner
        self.enroller = enroller
        self.outbox: Outbox | None = None
        self.visits: VisitManager | None = None
        self.agent_service: EdgeAgentService | None = None
        self._purge_task: asyncio.Task[None] | None = None
        self.port = 0
        self.reports_lost = 0  # sealed reports given up at stop (the daemon then exits EX_IOERR)

    async def start(self, announce: bool = True) -> int:
        """Open the outbox and listen; ``announce=False`` leaves the "listening on" line to :meth:`announce` (serve
        says it only once nothing else can refuse the start: a journal must not show a device ready, then gone)."""
        cfg = self.config
        self.outbox = Outbox(Path(cfg.data_dir) / "outbox.db", cfg.outbox)
        self._report_quarantine(self.outbox)
        self.visits = VisitManager(self.runner, self.outbox, cfg.default_max_duration_s, self.contributor, self.metrics,
                                   cfg.max_held_bytes, cfg.shutdown_grace_s)
        self.visits.purge_expired()  # what expired while the device was off is counted and said too
        self.visits.quotes = cfg.quotes
        self.visits.record_outbox()  # a restart's queue shows at once, not after the next change
        agent = EdgeAgentService(cfg.room, self.auth, self.visits, self.outbox, self.enroller, cfg.limits, self.claims, self.presence,
                                 self.metrics)
        self.agent_service = agent  # also served to browsers (edge_agent.device.web), same authorisation
        admin = AdminService(cfg.room, self.auth, self.visits, self.outbox, self.tls.not_after_unix_s)
        self.port = await self.tls.start(lambda server: register(server, agent_pb2, {"EdgeAgent": agent, "EdgeAgentAdmin": admin}, self.tls.streams))
        self._purge_task = asyncio.create_task(self._purge_loop())
        if announce:
            self.announce()
        return self.port

    def announce(self) -> None:
        log.info("listening on %s:%d (mutual TLS, protocol v%d)", self.config.host, self.port, PROTOCOL_VERSION)

    def _report_quarantine(self, outbox: Outbox) -> None:
        q = outbox.quarantined
        if q is None:
            return
        log.error("the outbox was unusable (%s): moved aside as %s (0600, never written again) and a fresh outbox started "
                  "with the %d intact queued reports recovered from it; any others on its damaged pages will not be "
                  "delivered; `edge-agent doctor` shows this until IT removes the file", Safe(q.reason), q.moved_to, q.recovered)
        if self.metrics is not None:
            self.metrics.inc("edge_agent_outbox_quarantined_total", reason="empty" if q.reason == "empty file" else "damaged")

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(3600)
            try:
                assert self.outbox is not None and self.visits is not None
                await asyncio.to_thread(self.visits.purge_expired)
                self.visits.space_freed()
                await asyncio.to_thread(self.visits.record_outbox)
            except Exception as exc:  # noqa: BLE001 - housekeeping must never take the daemon down
                log.warning("outbox housekeeping failed: %s", exc)

    async def stop(self) -> None:
        await self.tls.enter_graceful_shutdown()
        if self.visits is not None:
            await self.visits.shutdown()
        if self._purge_task is not None:
            self._purge_task.cancel()
        await self.tls.stop()
        lost, why = (await self.visits.close()) if self.visits is not None else (0, None)  # held reports: retried, then given up
        if self.outbox is not None:
            self.outbox.close()  # first: closing deletes the WAL, giving back what failed writes took (room for the note)
            self.outbox = None
        if lost:
            self.reports_lost += lost
            await asyncio.to_thread(report_lost, Path(self.config.data_dir), lost, why, "exit")

    async def wait(self) -> None:
        await self.tls.wait()
