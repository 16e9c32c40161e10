"""The room device, built and run in one place.

:func:`load_device` loads every model once (Whisper, speaker encoder, role
and behaviour classifiers) and makes the visit runner and the voice enroller;
the demo and the benchmarks use it too. :func:`run_daemon` is ``edge-agent
serve``: config -> logging -> ports free -> button/LED pins -> models -> mutual-TLS server, web, metrics (bound, not yet announced) -> "listening on" -> mDNS
-> watchdog -> signals. Order matters: READY=1 is sent only once
every model is loaded and the server listens; SIGTERM finishes the running
visit (its report is sealed and queued) before the process exits; SIGHUP
applies every key the config marks ``live`` through :class:`LiveTargets` and
names the others as needing a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edge_agent.asr.events import PipelineEvent
from edge_agent.audio.frames import AudioSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.crypto.errors import CertificateError
from edge_agent.device.config import EdgeConfig, KeySpec, load_config
from edge_agent.device.grpc.server import EdgeAgentServer, ServerConfig
from edge_agent.device.lifecycle import VisitManager
from edge_agent.device.listen_ports import check_listen_ports
from edge_agent.device.lost import EX_IOERR
from edge_agent.device.ops.button_control import ManagerVisitControl
from edge_agent.device.ops.gpio import Claim, RoomClaims, RoomPanel, VisitControl, open_panel, pin_factory
from edge_agent.device.ops.logs import configure_logging
from edge_agent.device.ops.metrics import MetricsServer, Registry
from edge_agent.device.ops.notify import BusyHeartbeat, Heartbeat, SystemdNotifier, Watchdog
from edge_agent.device.ops.observed_source import Indicator, ObservedSource
from edge_agent.device.ops.signals import ConfigReloader, SignalHandlers
from edge_agent.device.ops.watched_calls import watch_model_calls
from edge_agent.device.outbox import Outbox
from edge_agent.device.outbox import check_format as check_outbox_format
from edge_agent.device.pipeline import PipelineConfig
from edge_agent.device.presence import Presence, RoomCodes, load_allow_list
from edge_agent.device.session import TranscriptionSession
from edge_agent.device.visit import PipelineEnroller, PipelineVisitRunner, SourceFactory, VisitPolicy, file_factory
from edge_agent.errors import ConfigError, EdgeAgentError, ModelError, ServiceCrash
from edge_agent.mtls.auth import PeerAuthorizer
from edge_agent.speakers.attribution import AttributionConfig
from edge_agent.wording import a_or_an

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """What a device loads once: the models (inside the runner's session), the runner, the enroller."""

    runner: PipelineVisitRunner
    enroller: PipelineEnroller

    @property
    def session(self) -> TranscriptionSession:
        return self.runner.session


def load_device(
    source_factory: SourceFactory,
    pipeline: PipelineConfig | None = None,
    policy: VisitPolicy = VisitPolicy(),
    speakers: AttributionConfig | None = None,
    on_event: Callable[[PipelineEvent], None] | None = None,
    metrics: Registry | None = None,
) -> Device:
    """Load every model once (ASR, speaker, behaviours) and make the visit runner and enroller."""
    session = TranscriptionSession.load(pipeline or PipelineConfig(), speakers=True, attribution=speakers)
    runner = PipelineVisitRunner(session, BehaviourClassifier(), source_factory, policy, on_event=on_event, metrics=metrics)
    return Device(runner, PipelineEnroller(session))


@dataclass
class LiveTargets:
    """The running objects a SIGHUP may change; each ``live`` config key has exactly one home here.

    Keys that size memory or open sockets (``vad.max_segment_s``, ports, model
    paths, ...) are not ``live``: they are reported as needing a restart and
    keep their running value, so nothing is ever half-applied.
    """

    runner: PipelineVisitRunner
    visits: VisitManager
    outbox: Outbox
    auth: PeerAuthorizer
    claims: RoomClaims
    presence: Presence | None = None

    def apply(self, cfg: EdgeConfig, keys: list[KeySpec]) -> None:
        """``cfg`` is the running config with the changed live keys merged in (restart-only keys unchanged)."""
        sections = {k.section for k in keys}
        # what can be refused is checked before anything changes: a refused reload changes nothing
        reload_allowed = "presence" in sections and self.presence is not None
        # None is a valid result (the key emptied: every clinician), so whether to apply is its own flag
        allowed = load_allow_list(cfg.presence.allowed_clinicians) if reload_allowed else None  # a bad file: ConfigError
        if "server" in sections:
            try:
                self.auth.check_crl(cfg.server.crl)
            except CertificateError as exc:
                raise ConfigError(f"server.crl refused: {exc.message}") from None
        if "vad" in sections:
            try:  # a reload to the Silero engine opens its model first: a missing or damaged file refuses the reload
                self.runner.session.ensure_vad_model(cfg.pipeline.vad)
            except ModelError as exc:
                raise ConfigError(f"vad.engine refused: {exc.message}") from None
        if "logging" in sections:
            configure_logging(cfg.logging.level, cfg.logging.json)
        if "vad" in sections:
            # takes effect at the next visit; the running one keeps the segmenter it started with
            self.runner.session.config = replace(self.runner.session.config, vad=cfg.pipeline.vad)
        if "speakers" in sections and self.runner.session.speakers is not None:
            self.runner.session.speakers.config = cfg.speakers
        if "server" in sections:
            self.auth.use_crl(cfg.server.crl)
            self.visits.default_max_duration_s = cfg.server.max_visit_minutes * 60
            self.runner.policy = replace(self.runner.policy, long_silence_s=cfg.server.long_silence_stop_minutes * 60)
        if "outbox" in sections:
            self.outbox.config = cfg.outbox.outbox_config()
            self.visits.shutdown_grace_s = cfg.outbox.shutdown_grace_s
        if "gpio" in sections:
            self.claims.window_s = cfg.gpio.claim_window_s
        if reload_allowed and self.presence is not None:
            self.presence.allowed = allowed
        if "feedback" in sections:
            self.visits.quotes = cfg.feedback.quotes


class _LateIndicator:
    """The LED panel opens after the server starts; sources made before that see no LED."""

    def __init__(self) -> None:
        self.target: Indicator | None = None

    def on_capture_started(self) -> None:
        if self.target is not None:
            self.target.on_capture_started()

    def on_capture_stopped(self) -> None:
        if self.target is not None:
            self.target.on_capture_stopped()

    def on_mic_lost(self) -> None:
        if self.target is not None:
            self.target.on_mic_lost()


class _LateControl:
    """The button's way to the visit lifecycle: the pins are claimed before the server (and its lifecycle) starts,
    so a press while the device loads its models, or stops, is refused with a line instead of reaching nothing."""

    def __init__(self) -> None:
        self.target: VisitControl | None = None

    def _live(self) -> VisitControl:
        if self.target is None:
            raise EdgeAgentError("the device is starting or stopping; press the button again in a minute")
        return self.target

    def start_from_button(self, claim: Claim) -> str:
        return self._live().start_from_button(claim)

    def stop_from_button(self) -> None:
        self._live().stop_from_button()

    def is_active(self) -> bool:
        return self.target is not None and self.target.is_active()


@dataclass
class _Room:
    """What serve opens before the models load: the claimed pins, the button's late-bound control, the metrics."""

    panel: RoomPanel | None
    control: _LateControl
    claims: RoomClaims
    registry: Registry


def _microphone_factory(cfg: EdgeConfig, replay: Path | None, beat: Heartbeat, indicator: Indicator) -> SourceFactory:
    if replay is not None:
        from edge_agent.audio.file_source import open_audio_file

        open_audio_file(replay).close()  # a missing or unreadable recording is refused at start, not at the first visit
    replayed = file_factory(replay, realtime=True) if replay is not None else None

    def make() -> AudioSource:
        if replayed is not None:
            base = replayed()
        else:
            from edge_agent.audio.mic_source import MicSource

            base = MicSource(cfg.audio.device or None, sample_rate=cfg.audio.sample_rate, block_ms=cfg.audio.block_ms)
        return ObservedSource(base, beat, indicator)  # type: ignore[return-value]

    return make


def _server_config(cfg: EdgeConfig) -> ServerConfig:
    return ServerConfig(
        bundle=cfg.server.bundle,
        data_dir=cfg.outbox.path,
        room=cfg.server.room,
        crl=cfg.server.crl,
        host=cfg.server.host,
        port=cfg.server.port,
        outbox=cfg.outbox.outbox_config(),
        default_max_duration_s=cfg.server.max_visit_minutes * 60,
        room_code_secret=cfg.presence.code_secret,
        room_code_step_s=cfg.presence.code_step_s,
        allowed_clinicians=cfg.presence.allowed_clinicians,
        quotes=cfg.feedback.quotes,
        shutdown_grace_s=cfg.outbox.shutdown_grace_s,
    )


def check_production(cfg: EdgeConfig) -> None:
    """What a serving device must have, beyond a config that parses (one-line ConfigError otherwise)."""
    if cfg.server.crl is None or not str(cfg.server.crl):
        raise ConfigError("server.crl is not set: a device needs the site's revocation list; copy crl.pem and run 'edge-agent provision --crl'")
    if not cfg.server.crl.exists():
        raise ConfigError(f"CRL {cfg.server.crl} not found; copy crl.pem from the CA host and run 'edge-agent provision --crl'")
    _check_presence_way(cfg)


def _check_presence_way(cfg: EdgeConfig) -> None:
    if cfg.presence.code_secret is None and cfg.gpio.backend == "none":
        raise ConfigError("no way to prove presence: set presence.code_secret (room code) or a gpio.backend with a room button")


def check_presence(cfg: EdgeConfig) -> str:
    """serve's presence refusals at start: a way to prove presence, the room-code secret, the allow-list."""
    _check_presence_way(cfg)
    pres = cfg.presence
    codes = RoomCodes.load(pres.code_secret, pres.code_step_s) if pres.code_secret else None
    allowed = load_allow_list(pres.allowed_clinicians)
    how = f"room codes every {codes.step_s} s" if codes else f"room button ({cfg.gpio.backend})"
    who = "every clinician of the site" if allowed is None else f"allow-list of {len(allowed)} clinician id(s)"
    return f"{how}; {who}"


def check_population(cfg: EdgeConfig) -> str:
    """serve's population refusal at start: the period key and the aggregator's public key (nothing written)."""
    if not cfg.population.enabled:
        return "not checked: population.enabled is false"
    from edge_agent.device.population import PopulationContributor

    pop = cfg.population
    PopulationContributor.check_files(pop.period_key, pop.aggregator_public_key)
    if not pop.aggregator_address:
        return f"period key and aggregator public key read ({pop.service_line}); records wait in the outbox (no aggregator_address)"
    _check_contributor_bundle(pop.client_bundle, pop.service_line)
    return f"period key, aggregator public key and delivery certificate read ({pop.service_line})"


def _check_contributor_bundle(path: Path, service_line: str) -> None:
    """The delivery certificate must be a contributor's, bound to this room's service line: the aggregator refuses
    (for good: the forwarder then deletes them) every record of another line, so a mismatch would lose them all."""
    from edge_agent.crypto import ca

    where = f"population.client_bundle {path}"
    try:
        ident = ca.identity_of(ca.load_bundle(path, ca.ROLE_CONTRIBUTOR).cert)
    except EdgeAgentError as exc:  # its line already says what to do (issue one, chmod 600, ...)
        raise ConfigError(f"population.client_bundle: {exc.message}") from None
    if ident.role != ca.ROLE_CONTRIBUTOR:
        raise ConfigError(f"{where} holds {a_or_an(ident.role)} certificate, not a contributor's; "
                          f"{ca.issue_hint(ca.ROLE_CONTRIBUTOR)}")
    if ident.service_line != service_line:
        raise ConfigError(f"{where} is bound to service line {ident.service_line!r} but population.service_line is "
                          f"{service_line!r}: the aggregator would refuse every record; fix the setting or issue a "
                          "contributor certificate for this line")


def _web_config(cfg: EdgeConfig):  # type: ignore[no-untyped-def]
    from edge_agent.device.web.endpoint import WebEndpointConfig
    from edge_agent.device.web.sessions import SessionPolicy

    origins = (cfg.web.allowed_origin,) if cfg.web.allowed_origin else ()
    return WebEndpointConfig(origins, cfg.server.host, cfg.web.port, SessionPolicy(session_s=cfg.web.session_minutes * 60))


def check_web(cfg: EdgeConfig) -> str:
    """serve's browser-endpoint refusal at start: web.allowed_origin present and exactly https://HOST[:PORT]."""
    if not cfg.web.enabled:
        return "not checked: web.enabled is false"
    _web_config(cfg)
    return f"browser endpoint on port {cfg.web.port} for origin {cfg.web.allowed_origin}"


def check_gpio(cfg: EdgeConfig) -> str:
    """serve's GPIO refusal at start: the backend's driver opens (the pins themselves are claimed by serve)."""
    factory = pin_factory(cfg.gpio.backend)
    if factory is None:
        return "not checked: gpio.backend is none (visits start with a room code)"
    factory.close()
    return f"gpio.backend {cfg.gpio.backend} driver opens"


def start_checks(cfg: EdgeConfig) -> dict[str, Callable[[], str]]:
    """What serve refuses at start beyond certificates, models, outbox and ports, by doctor check name: each
    raises serve's own one-line ConfigError, or returns what it checked ('edge-agent doctor' shows them)."""
    return {"presence": lambda: check_presence(cfg), "gpio": lambda: check_gpio(cfg),
            "population": lambda: check_population(cfg), "web": lambda: check_web(cfg)}


RestartCheck = Callable[[EdgeConfig, list[str]], list[str]]


async def run_daemon(cfg: EdgeConfig, replay: Path | None = None, restart_check: RestartCheck | None = None) -> int:
    """Serve until SIGTERM; the exit status: 0, or EX_IOERR (74) when sealed reports were lost at stop.

    ``restart_check``: after a reload changed restart-only keys, what a restart with the new file would refuse
    (``edge-agent serve`` passes doctor's; the site package imports this one, so it comes in from the CLI)."""
    configure_logging(cfg.logging.level, cfg.logging.json)
    check_production(cfg)
    check_outbox_format(cfg.outbox.db_path)  # a newer release's outbox: refused (exit 78) before the models load
    check_web(cfg)  # a bad web origin: refused now, not after the gRPC port listens
    # every port it will listen on (server, web, metrics), before the models load and before anything listens: a busy
    # web or metrics port used to show only once the gRPC port was already accepting phones
    check_listen_ports(cfg)
    registry = Registry()
    claims = RoomClaims(cfg.gpio.claim_window_s)
    control = _LateControl()
    # the pins are claimed once, here, before anything listens or is announced: a missing driver or a pin another
    # process holds refuses the start before the journal could show the device ready
    panel = open_panel(cfg.gpio, control, claims,
                       on_outcome=lambda outcome: registry.inc("edge_agent_button_presses_total", outcome=outcome))
    try:
        return await _run_with_panel(cfg, replay, restart_check, _Room(panel, control, claims, registry))
    finally:
        if panel is not None:
            panel.close()


async def _run_with_panel(cfg: EdgeConfig, replay: Path | None, restart_check: RestartCheck | None,
                          room: _Room) -> int:
    panel, control, claims, registry = room.panel, room.control, room.claims, room.registry
    notifier = SystemdNotifier()
    capture_beat = Heartbeat("capture", max_age_s=10.0)
    indicator = _LateIndicator()
    if panel is not None:
        indicator.target = panel.indicator
    notifier.status("loading models")
    policy = VisitPolicy(long_silence_s=cfg.server.long_silence_stop_minutes * 60)
    make_source = _microphone_factory(cfg, replay, capture_beat, indicator)
    device = await asyncio.to_thread(load_device, make_source, cfg.pipeline, policy, cfg.speakers, None, registry)
    # capture proves frames arrive; this proves the ASR worker's model calls come back
    model_beat = BusyHeartbeat("asr", max_age_s=cfg.server.model_stall_seconds)
    watch_model_calls(device.session, model_beat)
    contributor = None
    if cfg.population.enabled:
        from edge_agent.device.population import PopulationContributor

        pop = cfg.population
        if pop.aggregator_address:
            _check_contributor_bundle(pop.client_bundle, pop.service_line)  # before any key is advanced on disk
        contributor = PopulationContributor.from_files(pop.period_key, pop.aggregator_public_key, pop.service_line)
    server = EdgeAgentServer(
        _server_config(cfg), device.runner, device.enroller, contributor, claims if cfg.gpio.backend != "none" else None, registry
    )
    # everything started from here on is stopped in the finally, also when a later step fails (a metrics port
    # taken, a web port taken): the listening gRPC server must not be left to the garbage collector. Nothing is
    # announced (journal "listening on", mDNS, READY=1) until every port is bound
    web = forwarder = rotation = advertiser = metrics = handlers = watchdog_task = None
    try:
        port = await server.start(announce=False)
        web = await _start_web(cfg, server)
        metrics = MetricsServer(registry, cfg.metrics.port, publish_s=cfg.metrics.publish_s) if cfg.metrics.enabled else None
        if metrics is not None:
            metrics.start()
        assert server.visits is not None and server.outbox is not None
        server.visits.on_status = notifier.status
        control.target = ManagerVisitControl(server.visits, asyncio.get_running_loop())
        forwarder = asyncio.create_task(_forward_population(cfg, server.outbox, server.visits)) if cfg.population.enabled else None
        if contributor is not None:
            from edge_agent.device.population import rotate_period_key

            rotation = asyncio.create_task(rotate_period_key(contributor))  # a finished period's key goes within the hour
        live = LiveTargets(device.runner, server.visits, server.outbox, server.auth, claims, server.presence)
        reloader = ConfigReloader(cfg, live.apply, restart_check=restart_check)
        handlers = SignalHandlers(on_terminate=server.stop, on_reload=reloader.reload, notifier=notifier)
        handlers.install()
        watchdog = Watchdog(notifier, [capture_beat, model_beat], on_stall=lambda _beat: registry.inc("edge_agent_watchdog_stalls_total"))
        watchdog_task = asyncio.create_task(watchdog.run())
        _install_fault_hooks()
        server.announce()
        if web is not None:
            web.announce()
        if cfg.server.advertise:
            from edge_agent.device.mdns import Advertiser

            advertiser = Advertiser(room=cfg.server.room, port=port, fingerprint=server.fingerprint)
            await advertiser.start()
        notifier.ready(f"listening on port {port}")
        log.info("device ready")
        await handlers.stopped.wait()
    finally:
        for task in (watchdog_task, forwarder, rotation):
            if task is not None:
                task.cancel()
        if handlers is not None:
            handlers.uninstall()
        control.target = None  # a press during the stop is refused, not sent to a stopped lifecycle
        if metrics is not None:
            metrics.stop()
        if advertiser is not None:
            await advertiser.stop()
        if web is not None:
            await web.stop()
        await server.stop()
        notifier.close()
    # the LOST line is already in the journal; the status makes `systemctl status` show the stop as failed too
    return EX_IOERR if server.reports_lost else 0


FAULT_ENV = "EDGE_AGENT_FAULT_INJECTION"


def _install_fault_hooks() -> None:
    """Test-only fault injection, off unless ``EDGE_AGENT_FAULT_INJECTION=hang-on-sigusr2`` is set
    (the live-systemd test sets it in a drop-in; the shipped unit never does).

    SIGUSR2 then blocks the event loop for good, as a deadlocked daemon would: nothing pets the
    watchdog any more, and systemd must kill and restart the service.
    """
    if os.environ.get(FAULT_ENV) != "hang-on-sigusr2":
        return
    import signal
    import time

    def hang() -> None:
        log.error("fault injection: event loop hung on purpose (test only)")
        while True:
            time.sleep(3600)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, hang)
    log.warning("fault injection enabled (test only): SIGUSR2 hangs the daemon")


async def _start_web(cfg: EdgeConfig, server: EdgeAgentServer):  # type: ignore[no-untyped-def]
    """The phone web app's browser endpoint (docs/phone.md), on the same loop and servicer as gRPC (not announced)."""
    if not cfg.web.enabled:
        return None
    from edge_agent.device.web.endpoint import DeviceWebEndpoint

    web = DeviceWebEndpoint(server, _web_config(cfg))
    await web.start(announce=False)
    return web


async def _forward_population(cfg: EdgeConfig, outbox: Outbox, visits: VisitManager | None = None) -> None:
    """Send queued contribution records to the aggregator now and then; failures keep them queued."""
    from edge_agent.device.population import aggregator_channel, forward_once
    from edge_agent.errors import EdgeAgentError

    pop = cfg.population
    while True:
        if pop.aggregator_address:
            try:
                async with aggregator_channel(pop.client_bundle, pop.aggregator_address) as channel:
                    result = await forward_once(outbox, channel)
                if visits is not None and (result.accepted or result.dropped):
                    await asyncio.to_thread(visits.record_outbox)  # the gauges must not keep counting delivered records
                # debug only: with a short interval each visit's record goes out minutes after its stop, so these
                # lines' timestamps and counts would be the room's schedule (docs/security.md)
                log.debug("population records delivered=%d dropped=%d kept=%d", result.accepted, result.dropped, result.kept)
                if result.dropped:
                    log.warning("the aggregator refused %d population records for good (see its log); they were dropped", result.dropped)
            except EdgeAgentError as exc:
                log.warning("population delivery postponed: %s", exc)
            except Exception as exc:  # noqa: BLE001 - never let housekeeping take the daemon down
                log.warning("population delivery failed (%s); records stay queued", type(exc))
        await asyncio.sleep(pop.forward_interval_minutes * 60)


def serve(config_path: Path | None, replay: Path | None, restart_check: RestartCheck | None = None) -> int:
    """``edge-agent serve``: load the config (file < EDGE_AGENT_* environment) and run until SIGTERM; the exit status."""
    try:
        return asyncio.run(run_daemon(load_config(config_path, os.environ), replay, restart_check))
    except EdgeAgentError:
        raise
    except Exception as exc:
        # the last line goes to the journal: a foreign exception's message may quote data (a transcript word, an
        # id), so it is logged through the redacting handler (type and frames) and the line names the type only
        from edge_agent.device.ops.logs import is_configured

        if is_configured():
            log.critical("the daemon stopped on an unexpected error", exc_info=exc)
        raise ServiceCrash(f"internal error ({type(exc).__name__}); the daemon stopped; report it with the journal "
                          "lines above (journalctl -u edge-agent)") from None
