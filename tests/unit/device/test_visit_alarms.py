"""A production visit feeds the metrics and enforces the pools-zeroed check; alarms reach logs, metrics and doctor.

Real pipeline, real models, the daemon's own ObservedSource wrapper; faults are injected only
where they cannot happen on demand (a full capture queue, a buffer left dirty, a worker bug).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.asr.events import FinalTranscript
from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.ops.metrics import MetricsServer, Registry
from edge_agent.device.ops.notify import Heartbeat
from edge_agent.device.ops.observed_source import ObservedSource
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
from edge_agent.site import doctor
from tests.doubles.clock import ManualClock, publish_next


def _visit(runner: PipelineVisitRunner) -> Any:
    runner.start(VisitContext("v-alarm000000000", int(time.time()), 600, request_stop=lambda reason: None))
    assert runner.wait_capture_end(120)
    return runner.stop()


def test_capture_queue_drops_behind_the_daemon_wrapper_reach_metrics_and_the_report(
    session_with_speakers: Any, jfk_path: Path
) -> None:
    mic = FileSource(jfk_path)
    mic.dropped_frames = 7  # what MicSource counts when its capture queue was full (the pipeline fell behind)
    registry = Registry()
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: ObservedSource(mic, Heartbeat("capture", 5)),
                                 VisitPolicy(), metrics=registry)
    report = _visit(runner)
    assert registry.get("edge_agent_dropped_frames_total", cause="capture_queue") == 7
    assert report.quality.dropped_frames == 7 and runner.last_runs[0].dropped_frames_by_cause["capture_queue"] == 7
    # the rest of a real visit's figures are fed too
    assert registry.get("edge_agent_segments_total") >= 1 and registry.get("edge_agent_utterances_total") >= 1
    text = registry.render()
    assert "edge_agent_residency_seconds_count" in text and "edge_agent_final_latency_seconds_count" in text
    assert runner.last_pools_clean and registry.get("edge_agent_pools_not_zeroed_total") == 0


def test_a_worker_bug_mid_visit_is_counted_once_recorded_and_the_report_keeps_what_came_before(
    session_with_speakers: Any, jfk_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def buggy_live_view(event: object) -> None:
        if isinstance(event, FinalTranscript):
            raise RuntimeError("bug in a consumer of finals")

    registry = Registry()
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(jfk_path), VisitPolicy(),
                                 on_event=buggy_live_view, metrics=registry)
    with caplog.at_level(logging.ERROR, logger="edge_agent"):
        report = _visit(runner)
    assert registry.get("edge_agent_worker_errors_total") == 1  # one bug, one count (not pipeline + visit)
    assert len(runner.last_runs) == 1 and runner.last_runs[0].worker_errors == 1  # the faulted run's figures kept
    assert runner.last_pools_clean  # the audio was still wiped
    assert report.quality.audio_s > 0
    assert any(r.getMessage().startswith("ALARM: visit capture failed") for r in caplog.records)


class _BufferLeftDirty:
    """The real session, reporting that a pool slot still held audio after the run (cannot be provoked on demand)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.speakers = real.speakers

    def run(self, *args: Any, **kwargs: Any) -> tuple[Any, bool]:
        stats, _clean = self._real.run(*args, **kwargs)
        return stats, False


def test_pools_not_zeroed_is_an_alarm_in_the_log_the_metrics_and_doctor(
    session_with_speakers: Any, jfk_16k: np.ndarray, jfk_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The journal has the alarm at once; the endpoint (and so doctor) has it from the next publication boundary."""
    registry, clock = Registry(), ManualClock()
    server = MetricsServer(registry, 0, publish_s=3600, clock=clock)
    port = server.start()
    try:
        assert doctor.check_pipeline(port).ok
        runner = PipelineVisitRunner(_BufferLeftDirty(session_with_speakers), BehaviourClassifier(),  # type: ignore[arg-type]
                                     lambda: FileSource(jfk_path), VisitPolicy(), metrics=registry)
        with caplog.at_level(logging.ERROR, logger="edge_agent"):
            _visit(runner)
        assert not runner.last_pools_clean
        assert registry.get("edge_agent_pools_not_zeroed_total") == 1  # the live, in-process count
        assert any("ALARM: an audio buffer still held data" in r.getMessage() for r in caplog.records)
        assert doctor.check_pipeline(port).ok  # not published yet: a live count would date the visit
        publish_next(server.publisher, clock)
        check = doctor.check_pipeline(port)
        assert not check.ok and "raw audio still in a buffer" in check.message and "report this bug" in check.fix
        registry2 = Registry()
        registry2.inc("edge_agent_worker_errors_total")
        server2 = MetricsServer(registry2, 0, publish_s=3600, clock=clock)
        port2 = server2.start()
        try:
            assert doctor.check_pipeline(port2).ok  # a fresh daemon serves zeros until its first boundary
            publish_next(server2.publisher, clock)
            failed = doctor.check_pipeline(port2)
            assert not failed.ok and "1 speech-pipeline worker failure" in failed.message
        finally:
            server2.stop()
    finally:
        server.stop()
    assert "not checked" in doctor.check_pipeline(port).message  # the daemon is gone
    assert "metrics endpoint is off" in doctor.check_pipeline(None).message


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        return str(resp.read().decode())


def test_a_real_visit_is_invisible_on_the_endpoint_until_the_publication_boundary(
    session_with_speakers: Any, jfk_path: Path, tmp_path: Path
) -> None:
    """No schedule: during and right after a real visit the endpoint serves exactly what it served before;
    the visit's counts (visits, stops, segments, histograms, outbox depth) appear once the boundary has passed."""
    from edge_agent.crypto import seal
    from edge_agent.device.lifecycle import VisitManager
    from edge_agent.device.outbox import Outbox

    registry, clock = Registry(), ManualClock()
    server = MetricsServer(registry, 0, publish_s=86400, clock=clock)
    port = server.start()
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(jfk_path), VisitPolicy(),
                                 metrics=registry)
    outbox = Outbox(tmp_path / "outbox.db")
    manager = VisitManager(runner, outbox, metrics=registry)
    try:
        publish_next(server.publisher, clock)  # a publication with nothing in it yet
        before = _scrape(port)
        assert "edge_agent_visits_total" in before and "visit_active" not in before

        async def visit() -> tuple[str, str]:
            _priv, pub = seal.generate_keypair()
            ctx = await manager.start("c-mfrggzdfmztwq2lk", seal.load_public_key(pub), 60, None, None)
            assert await asyncio.to_thread(runner.wait_capture_end, 120)
            during = await asyncio.to_thread(_scrape, port)
            assert manager.active and registry.get("edge_agent_segments_total") >= 1  # the live registry is fed
            await manager.stop(ctx.visit_id, "c-mfrggzdfmztwq2lk")
            return during, await asyncio.to_thread(_scrape, port)

        clock.advance(9 * 3600)  # 09:00: the visit
        during, after = asyncio.run(visit())
        assert during == before and after == before
        assert registry.get("edge_agent_visits_stopped_total", reason="stop") == 1 and outbox.stats()[0] == 1
        clock.advance(3600)
        assert not server.publisher.publish_due() and _scrape(port) == before  # still the same day
        publish_next(server.publisher, clock)
        published = _scrape(port)
        assert 'edge_agent_visits_total{trigger="phone"} 1.0' in published
        assert 'edge_agent_visits_stopped_total{reason="stop"} 1.0' in published
        assert "edge_agent_outbox_items 1.0" in published
        values = server.publisher.published
        assert values.get("edge_agent_segments_total") >= 1 and values.get("edge_agent_utterances_total") >= 1
        assert values.get("edge_agent_residency_seconds") >= 1 and values.get("edge_agent_final_latency_seconds") >= 1
        at = next(float(line.split()[1]) for line in published.splitlines() if line.startswith("edge_agent_published_unix_seconds "))
        assert at == server.publisher.published_at
        assert server.publisher.published_at % 86400 == 0
    finally:
        server.stop()
        outbox.close()


def test_a_visit_refused_because_the_microphone_is_missing_is_logged_on_the_device(
    session_with_speakers: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Mic unplugged before the visit: the phone is told, and IT finds the reason in the journal too."""
    import asyncio

    from edge_agent.audio.mic_source import MicSource
    from edge_agent.crypto import seal
    from edge_agent.device.lifecycle import VisitError, VisitManager
    from edge_agent.device.outbox import Outbox, OutboxConfig

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: MicSource("no-such-microphone"), VisitPolicy())
    outbox = Outbox(tmp_path / "outbox.db", OutboxConfig())
    try:
        _, public = seal.generate_keypair()
        with caplog.at_level(logging.WARNING, logger="edge_agent"), pytest.raises(VisitError, match="capture could not start") as refused:
            asyncio.run(VisitManager(runner, outbox).start("c-aaaaaaaaaaaaaaaa", public, 600, None, None))
    finally:
        outbox.close()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("could not start" in m and "no-such-microphone" in m and "audio.device" in m for m in logged), logged
    # the phone's line is the clinician's: what to do (check the cable, call IT), not IT's config key
    told = str(refused.value)
    assert "room microphone is not connected" in told and "call IT" in told, told
    assert "audio.device" not in told and "input devices" not in told, told


def test_a_reloaded_long_silence_limit_reaches_the_running_visit(session_with_speakers: Any, tmp_path: Path) -> None:
    """server.long_silence_stop_minutes is 'live' (docs/config.md): a SIGHUP lowering it during a silent visit
    must end that visit; the watcher used to keep the limit the visit started with."""
    import threading
    from dataclasses import replace

    import soundfile as sf

    silent = tmp_path / "room.wav"
    sf.write(str(silent), np.zeros(16000 * 30, np.float32), 16000)
    stopped = threading.Event()
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(silent, realtime=True),
                                 VisitPolicy(long_silence_s=600))
    runner.start(VisitContext("v-reload00000000", int(time.time()), 600, request_stop=lambda reason: stopped.set()))
    try:
        time.sleep(1.0)
        runner.policy = replace(runner.policy, long_silence_s=1.0)  # what LiveTargets.apply does on SIGHUP
        assert stopped.wait(5), "the running visit kept the old long-silence limit"
    finally:
        runner.abort()


def test_a_worker_bug_during_an_open_segment_leaves_no_audio_and_the_stop_says_what_happened(
    session_with_speakers: Any, jfk_path: Path, tmp_path: Path
) -> None:
    """The bug hits while a segment is still open (a consumer of partials): the segment the VAD closes after
    the fault still went through the closer into the decoder's queue, whose worker was gone, so its features
    stayed in the pool (the pools-not-zeroed alarm). And the stop of a visit with nothing heard before the
    fault answered 'no visit is running' (the runner was asked to abort a visit its stop had already ended)."""
    from edge_agent.asr.events import PartialTranscript
    from edge_agent.crypto import seal
    from edge_agent.device.lifecycle import VisitError, VisitManager
    from edge_agent.device.outbox import Outbox
    from edge_agent.device.visit import file_factory

    def buggy_live_view(event: object) -> None:
        if isinstance(event, PartialTranscript):
            raise RuntimeError("bug in a consumer of partials")

    registry = Registry()
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), file_factory(jfk_path, realtime=True), VisitPolicy(),
                                 on_event=buggy_live_view, metrics=registry)

    async def visit() -> VisitError | None:
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(runner, outbox)
        _priv, pub = seal.generate_keypair()
        ctx = await manager.start("c-mfrggzdfmztwq2lk", seal.load_public_key(pub), 60, None, None)
        assert await asyncio.to_thread(runner.wait_capture_end, 60)
        try:
            await manager.stop(ctx.visit_id, "c-mfrggzdfmztwq2lk")
            return None
        except VisitError as exc:
            return exc
        finally:
            outbox.close()

    error = asyncio.run(visit())
    assert registry.get("edge_agent_worker_errors_total") == 1
    assert runner.last_runs == [] or runner.last_runs[0].worker_errors == 1
    assert registry.get("edge_agent_pools_not_zeroed_total") == 0, "features of a segment closed after the fault stayed in the pool"
    assert error is not None and error.kind == "failed", error  # not 'no visit is running'
