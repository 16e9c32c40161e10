"""The room-device daemon: config, logging, models, mutual-TLS server, mDNS,
button/LED, metrics, systemd notify/watchdog, and signals, wired together.

``edge-agent serve`` runs :func:`run_daemon`. Order matters: READY=1 is sent
only once every model is loaded and the server listens; SIGTERM finishes the
running visit (its report is sealed and queued) before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from edge_agent.audio.frames import AudioSource
from edge_agent.commands.serve import build_device
from edge_agent.config import EdgeConfig
from edge_agent.ops.logs import configure_logging
from edge_agent.ops.notify import BusyHeartbeat, Heartbeat, SystemdNotifier, Watchdog
from edge_agent.ops.observed_source import Indicator, ObservedSource
from edge_agent.ops.signals import ConfigReloader, SignalHandlers
from edge_agent.ops.watched_calls import watch_model_calls
from edge_agent.visit import VisitPolicy

log = logging.getLogger(__name__)


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


async def run_daemon(cfg: EdgeConfig, replay: Path | None = None) -> None:
    from edge_agent.ops.button_control import ManagerVisitControl
    from edge_agent.ops.gpio import RoomClaims, open_panel
    from edge_agent.ops.metrics import MetricsServer, Registry
    from edge_agent.server.app import EdgeAgentServer, ServerConfig

    configure_logging(cfg.logging.level, cfg.logging.json)
    notifier = SystemdNotifier()
    capture_beat = Heartbeat("capture", max_age_s=10.0)
    indicator = _LateIndicator()

    def make_source() -> AudioSource:
        if replay is not None:
            from edge_agent.audio.file_source import FileSource

            base: AudioSource = FileSource(replay, realtime=True)
        else:
            from edge_agent.audio.mic_source import MicSource

            base = MicSource(cfg.audio.device or None, sample_rate=cfg.audio.sample_rate, block_ms=cfg.audio.block_ms)
        return ObservedSource(base, capture_beat, indicator)  # type: ignore[return-value]

    claims = RoomClaims(cfg.gpio.claim_window_s)
    notifier.status("loading models")
    policy = VisitPolicy(long_silence_s=cfg.server.long_silence_stop_minutes * 60)
    parts = await asyncio.to_thread(build_device, make_source, cfg.pipeline, policy, None, cfg.speakers)
    # capture proves frames arrive; this proves the ASR worker's model calls come back
    model_beat = BusyHeartbeat("asr", max_age_s=cfg.server.model_stall_seconds)
    watch_model_calls(parts.runner.session, model_beat)
    server = EdgeAgentServer(
        ServerConfig(
            bundle=cfg.server.bundle,
            data_dir=cfg.outbox.path,
            room=cfg.server.room,
            crl=cfg.server.crl,
            host=cfg.server.host,
            port=cfg.server.port,
            outbox=cfg.outbox.outbox_config(),
            default_max_duration_s=cfg.server.max_visit_minutes * 60,
        ),
        parts.runner,
        parts.enroller,
        _population_contributor(cfg),
        claims if cfg.gpio.backend != "none" else None,
    )
    port = await server.start()
    web = await _start_web(cfg, server)
    loop = asyncio.get_running_loop()
    forwarder = asyncio.create_task(_forward_population(cfg, server)) if cfg.population.enabled else None
    advertiser = None
    if cfg.server.advertise:
        from edge_agent.server.mdns import Advertiser

        advertiser = Advertiser(room=cfg.server.room, port=port, fingerprint=server.fingerprint)
        await advertiser.start()
    assert server.visits is not None
    panel = open_panel(cfg.gpio, ManagerVisitControl(server.visits, loop, cfg.server.max_visit_minutes * 60), claims)
    if panel is not None:
        indicator.target = panel.indicator
    registry = Registry()
    metrics = MetricsServer(registry, cfg.metrics.port) if cfg.metrics.enabled else None
    if metrics is not None:
        metrics.start()

    running = {"cfg": cfg}

    def apply_live(new: EdgeConfig, keys: list) -> None:  # type: ignore[type-arg]
        configure_logging(new.logging.level, new.logging.json)
        claims.window_s = new.gpio.claim_window_s
        parts.runner.session.config = replace(parts.runner.session.config, vad=new.pipeline.vad)
        running["cfg"] = new

    handlers = SignalHandlers(on_terminate=server.stop, on_reload=ConfigReloader(cfg, apply_live).reload, notifier=notifier)
    handlers.install()
    watchdog = Watchdog(notifier, [capture_beat, model_beat])
    watchdog_task = asyncio.create_task(watchdog.run())
    notifier.ready(f"listening on port {port}")
    log.info("device ready")
    try:
        await handlers.stopped.wait()
    finally:
        watchdog_task.cancel()
        if forwarder is not None:
            forwarder.cancel()
        handlers.uninstall()
        if panel is not None:
            panel.close()
        if metrics is not None:
            metrics.stop()
        if advertiser is not None:
            await advertiser.stop()
        if web is not None:
            await web.stop()
        await server.stop()
        notifier.close()


async def _start_web(cfg: EdgeConfig, server):  # type: ignore[no-untyped-def]
    """The phone web app's browser endpoint (docs/phone.md), on the same loop and servicer as gRPC."""
    if not cfg.web.enabled:
        return None
    from edge_agent.device.web.endpoint import DeviceWebEndpoint, WebEndpointConfig
    from edge_agent.device.web.sessions import SessionPolicy

    web = DeviceWebEndpoint(server, WebEndpointConfig((cfg.web.allowed_origin,) if cfg.web.allowed_origin else (), cfg.server.host,
                                                      cfg.web.port, SessionPolicy(session_s=cfg.web.session_minutes * 60)))
    await web.start()
    return web


def _population_contributor(cfg: EdgeConfig):  # type: ignore[no-untyped-def]
    if not cfg.population.enabled:
        return None
    from edge_agent.population.device import PopulationContributor

    pop = cfg.population
    return PopulationContributor.from_files(pop.period_key, pop.aggregator_public_key, pop.service_line)


async def _forward_population(cfg: EdgeConfig, server) -> None:  # type: ignore[no-untyped-def]
    """Send queued contribution records to the aggregator now and then; failures keep them queued."""
    from edge_agent.errors import EdgeAgentError
    from edge_agent.population.forwarder import aggregator_channel, forward_once

    pop = cfg.population
    while True:
        if pop.aggregator_address and server.outbox is not None:
            try:
                async with aggregator_channel(pop.client_bundle, pop.aggregator_address) as channel:
                    result = await forward_once(server.outbox, channel)
                log.info("population records delivered=%d dropped=%d kept=%d", result.accepted, result.dropped, result.kept)
            except EdgeAgentError as exc:
                log.warning("population delivery postponed: %s", exc)
            except Exception as exc:  # noqa: BLE001 - never let housekeeping take the daemon down
                log.warning("population delivery failed (%s); records stay queued", type(exc).__name__)
        await asyncio.sleep(pop.forward_interval_minutes * 60)
