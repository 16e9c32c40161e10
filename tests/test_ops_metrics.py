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
    assert 'edge_agent_visits_total{trigger="button"} 2' in text
    assert "edge_agent_queue_depth 2" in text
    assert reg.snapshot()['edge_agent_visits_total{trigger="button"}'] == 2


def test_run_stats_feed_counts_and_residency() -> None:
    reg = Registry()
    stats = RunStats(segments=5, utterances=6, dropped_frames=1, residency_s=[0.1, 0.2, 0.9])
    reg.record_run(stats)
    assert reg.get("edge_agent_segments_total") == 5 and reg.get("edge_agent_dropped_frames_total") == 1
    assert 0.2 < reg.get("edge_agent_residency_p95_seconds") <= 0.9


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
            assert b"edge_agent_outbox_items 0" in resp.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        # bound to 127.0.0.1, not to every address
        addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1", "127.0.1.1"}
        for addr in addrs:
            with pytest.raises(OSError):
                socket.create_connection((addr, port), timeout=1).close()
    finally:
        server.stop()
