"""Metrics: declared names, closed label values, numbers only, loopback-only endpoint."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.device.ops.metrics import METRICS, MetricDef, MetricsServer, Registry
from edge_agent.device.pipeline import RunStats
from edge_agent.errors import ConfigError


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
