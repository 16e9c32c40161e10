"""Metrics: declared names, closed label values, numbers only, loopback-only endpoint."""

from __future__ import annotations

import dataclasses
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.device.ops.metrics import METRICS, MetricDef, MetricsServer, Publisher, Registry
from edge_agent.device.pipeline import RunStats
from edge_agent.errors import ConfigError
from tests.doubles.clock import ManualClock


def test_render_is_prometheus_text() -> None:
    reg = Registry()
    reg.inc("edge_agent_visits_total", trigger="button")
    reg.inc("edge_agent_visits_total", trigger="button")
    reg.set("edge_agent_queue_depth", 2)
    text = reg.render()
    assert "# TYPE edge_agent_visits_total counter" in text
    assert 'edge_agent_visits_total{trigger="button"} 2.0' in text
    assert "edge_agent_queue_depth 2.0" in text
    assert reg.snapshot()['edge_agent_visits_total{trigger="button"}'] == 2


def test_run_stats_feed_drops_by_cause_once() -> None:
    reg = Registry()
    stats = RunStats(dropped_frames_by_cause={"capture_queue": 2, "frame_pool": 1}, dropped_segments=3)
    reg.record_run(stats)
    assert reg.get("edge_agent_dropped_frames_total", cause="capture_queue") == 2
    assert reg.get("edge_agent_dropped_frames_total", cause="frame_pool") == 1
    assert reg.get("edge_agent_dropped_segments_total") == 3
    assert stats.dropped_frames == 3


def test_histograms_render_cumulative_buckets() -> None:
    reg = Registry()
    for value in (0.1, 0.2, 0.9, 3.0):
        reg.observe("edge_agent_residency_seconds", value)
    text = reg.render()
    assert 'edge_agent_residency_seconds_bucket{le="0.25"} 2.0' in text
    assert 'edge_agent_residency_seconds_bucket{le="1"} 3.0' in text
    assert 'edge_agent_residency_seconds_bucket{le="+Inf"} 4.0' in text
    assert "edge_agent_residency_seconds_count 4.0" in text
    with pytest.raises(ValueError):
        reg.inc("edge_agent_residency_seconds")


@given(st.text(min_size=1, max_size=40))
def test_free_text_cannot_become_a_label_name_or_value(text: str) -> None:
    reg = Registry()
    allowed = {"phone", "button"}
    if text in allowed:
        return
    with pytest.raises(ValueError):
        reg.inc("edge_agent_visits_total", trigger=text)
    with pytest.raises(ValueError):
        reg.inc("edge_agent_visits_total", trigger="phone", clinician=text)
    with pytest.raises((KeyError, ValueError)):
        reg.inc(text)
    assert reg.render() == Registry().render()  # nothing was recorded


def test_values_are_numbers_only() -> None:
    reg = Registry()
    for bad in ("3", float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            reg.set("edge_agent_queue_depth", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reg.inc("edge_agent_segments_total", -1)
    with pytest.raises(ValueError):
        reg.set("edge_agent_segments_total", 4)


def test_declarations_themselves_are_constrained() -> None:
    with pytest.raises(ValueError):
        MetricDef("edge_agent_Room 4 visits", "counter", "free text in a name")
    with pytest.raises(ValueError):
        MetricDef("edge_agent_visits", "counter", "x", {"clinician": frozenset({"c-abc"})})
    for m in METRICS:
        assert "clinician" not in m.name and not (m.labels and "clinician" in m.labels)


def test_endpoint_serves_on_loopback_only() -> None:
    reg = Registry()
    with pytest.raises(ConfigError, match="loopback"):
        MetricsServer(reg, 0, host="0.0.0.0")
    server = MetricsServer(reg, 0)
    port = server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b"edge_agent_outbox_items 0.0" in resp.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        # bound to 127.0.0.1, not to every address
        addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1", "127.0.1.1"}
        for addr in addrs:
            with pytest.raises(OSError):
                socket.create_connection((addr, port), timeout=1).close()
    finally:
        server.stop()


def test_there_is_no_visit_active_gauge() -> None:
    """A gauge that is 1 exactly while a visit runs is the room's schedule by definition."""
    assert not [m.name for m in METRICS if "active" in m.name]
    reg = Registry()
    with pytest.raises(KeyError):
        reg.set("edge_agent_visit_active", 1)
    assert "visit_active" not in reg.render() and "visit_active" not in Publisher(reg).render()


def test_the_publisher_serves_zeros_then_the_values_frozen_at_each_boundary() -> None:
    reg, clock = Registry(), ManualClock(1_699_999_200.5)  # half a second after a boundary
    pub = Publisher(reg, 3600, clock)
    reg.inc("edge_agent_visits_total", trigger="button")
    reg.set("edge_agent_queue_depth", 3)
    reg.observe("edge_agent_residency_seconds", 0.2)
    zeros = pub.render()
    assert zeros == Publisher(Registry(), 3600, clock).render()  # before the first boundary: zeros, not values at start
    assert "edge_agent_queue_depth 0.0" in zeros and "edge_agent_residency_seconds_count 0.0" in zeros
    assert "edge_agent_published_unix_seconds 0.0" in zeros
    clock.advance(3599)
    assert not pub.publish_due() and pub.render() == zeros
    clock.past_next_boundary(3600)
    assert pub.render() == zeros  # a scrape after the boundary publishes nothing by itself: the timer does
    assert pub.publish_due() and pub.published_at == 1_700_002_800 and pub.published_at % 3600 == 0
    text = pub.render()
    assert 'edge_agent_visits_total{trigger="button"} 1.0' in text and "edge_agent_queue_depth 3.0" in text
    assert 'edge_agent_residency_seconds_bucket{le="0.25"} 1.0' in text and "edge_agent_residency_seconds_count 1.0" in text
    assert "edge_agent_published_unix_seconds 1.7000028e+09" in text
    reg.inc("edge_agent_visits_total", trigger="button")
    reg.set("edge_agent_queue_depth", 0)
    assert pub.render() == text and pub.published.get("edge_agent_visits_total", trigger="button") == 1  # frozen
    assert reg.get("edge_agent_visits_total", trigger="button") == 2  # the live registry keeps counting
    clock.advance(10 * 3600)  # a device asleep across boundaries publishes at the latest one
    assert pub.publish_due() and pub.published_at == 1_700_002_800 + 10 * 3600
    assert pub.published.snapshot()['edge_agent_visits_total{trigger="button"}'] == 2


def test_the_timer_freezes_at_the_boundary_without_a_scrape() -> None:
    """Real clock, real thread: the copy is taken at the boundary, not at the next read."""
    reg = Registry()
    server = MetricsServer(reg, 0, publish_s=1)
    server.start()
    try:
        first = server.publisher.published_at
        deadline = time.time() + 5
        while server.publisher.published_at == first and time.time() < deadline:
            time.sleep(0.02)
        at = server.publisher.published_at
        assert at > first and at % 1 == 0
        assert server.publisher.frozen_wall - at < 0.5  # woke at the boundary (loose: 2 shared cores)
        reg.inc("edge_agent_segments_total")
        assert server.publisher.published.get("edge_agent_segments_total") == 0  # after the boundary: next publication
        while server.publisher.published_at == at and time.time() < deadline + 2:
            time.sleep(0.02)
        assert server.publisher.published_at == at + 1
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            assert b"edge_agent_segments_total 1.0" in resp.read()
    finally:
        server.stop()


@pytest.mark.parametrize("bad", [0, -1, 604801, 1.5, True, "3600"])
def test_publish_s_is_validated(bad: object) -> None:
    from edge_agent.device.config import parse_config

    with pytest.raises(ConfigError, match="publish_s"):
        Publisher(Registry(), bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="metrics.publish_s"):
        parse_config({"metrics": {"publish_s": bad}})


def test_publish_s_defaults_to_daily_and_is_restart_only(tmp_path: Path) -> None:
    from edge_agent.device.config import MetricsSettings, load_config, parse_config
    from edge_agent.device.ops.signals import ConfigReloader

    assert parse_config({}).metrics.publish_s == 86400 == MetricsServer.__init__.__defaults__[1]  # type: ignore[index]
    assert parse_config({"metrics": {"publish_s": 2}}).metrics.publish_s == 2
    assert parse_config({"metrics": {"publish_s": 604800}}).metrics.publish_s == 604800
    field = next(f for f in dataclasses.fields(MetricsSettings) if f.name == "publish_s")
    assert not field.metadata.get("live") and "schedule" in field.metadata["doc"]
    path = tmp_path / "config.toml"
    path.write_text("[metrics]\npublish_s = 86400\n")
    applied: list[object] = []
    reloader = ConfigReloader(load_config(path, env={}), lambda cfg, keys: applied.append(keys), env={})
    path.write_text("[metrics]\npublish_s = 60\n")
    assert reloader.reload() == ([], ["metrics.publish_s"])  # a SIGHUP reports it as needing a restart
    assert reloader.current.metrics.publish_s == 86400 and not applied


def test_every_declared_metric_is_fed_by_device_code_and_only_the_publisher_is_served() -> None:
    """Each metric is fed from real work (a call in edge_agent/, not only in a test); the live registry is not a collector."""
    import edge_agent
    import edge_agent.device.ops.metrics as metrics_module

    root = Path(edge_agent.__file__).parent
    own = Path(metrics_module.__file__)
    sources = "\n".join(p.read_text() for p in root.rglob("*.py") if p != own and "_pb2" not in p.name)
    helpers = {"record_run": ("edge_agent_dropped_frames_total", "edge_agent_dropped_segments_total"),
               "record_outbox": ("edge_agent_outbox_items", "edge_agent_outbox_bytes")}
    for name, fed in helpers.items():
        assert f".{name}(" in sources, name
    via_helper = {m for fed in helpers.values() for m in fed}
    unfed = [m.name for m in METRICS if m.name not in via_helper and f'"{m.name}"' not in sources]
    assert not unfed, f"declared but never fed by device code: {unfed}"
    assert not hasattr(Registry, "collect")  # prometheus-client cannot be handed the live numbers
