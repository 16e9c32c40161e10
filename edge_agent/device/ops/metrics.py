"""Counters, gauges and histograms for fleet health, served by prometheus-client on 127.0.0.1 only.

What can be exported is fixed in code: every metric is declared in
:data:`METRICS` with its type, help text and the closed set of values each
label may take. Setting a metric that is not declared, or a label value that
is not in its set, raises — so a clinician id, a room schedule or a word
cannot become a metric name, label or value by accident (values are numbers).
:class:`Registry` holds the numbers and is a prometheus-client *collector*:
the exposition format and the HTTP endpoint are the library's, the closed
set is ours.

Who feeds what (each from real work, never from a test only): the pipeline
(segments, utterances, discards by reason, dropped frames by cause, queue
depth, residency and final-latency histograms, worker errors), the visit
(visits, mic loss, the pools-zeroed check), the lifecycle (stops by reason,
outbox depth, reports held in memory), the watchdog (stalls).
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler, make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from edge_agent.errors import ConfigError

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz_")  # label names and values: no digits (no ids, no room numbers)
_METRIC_NAME = re.compile(r"edge_agent_[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str  # "counter" | "gauge"
    help: str
    labels: Mapping[str, frozenset[str]] | None = None  # label -> allowed values
    buckets: tuple[float, ...] = ()  # histograms only: upper bounds, ascending

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"metric name {self.name!r} must be edge_agent_ + lowercase letters, digits, underscores")
        if self.kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"metric kind {self.kind!r}")
        if (self.kind == "histogram") != bool(self.buckets) or list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"{self.name}: histograms, and only they, need ascending buckets")
        for label, values in (self.labels or {}).items():
            if not set(label) <= _NAME_OK:
                raise ValueError(f"label name {label!r}")
            for v in values:
                if not set(v) <= _NAME_OK:
                    raise ValueError(f"label value {v!r} of {self.name} must be lowercase letters/underscores")


_STOP_REASONS = frozenset({"stop", "button", "admin", "shutdown", "long_silence", "max_duration", "error"})
DISCARD_REASONS = frozenset(
    {"too_little_speech", "no_speech", "silence_hallucination", "repetition", "empty", "decode_failed"}
)
DROP_CAUSES = frozenset({"capture_queue", "frame_pool"})  # speech lost for want of a segment buffer: dropped_segments
_SECONDS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0)

METRICS: tuple[MetricDef, ...] = (
    MetricDef("edge_agent_visits_total", "counter", "Visits started.", {"trigger": frozenset({"phone", "button"})}),
    MetricDef("edge_agent_visits_stopped_total", "counter", "Visits stopped, by reason.", {"reason": _STOP_REASONS}),
    MetricDef("edge_agent_visit_active", "gauge", "1 while a visit is capturing audio."),
    MetricDef("edge_agent_button_presses_total", "counter", "Room button presses, by outcome.",
              {"outcome": frozenset({"started", "stopped", "refused", "contested"})}),
    MetricDef("edge_agent_segments_total", "counter", "Speech segments processed."),
    MetricDef("edge_agent_utterances_total", "counter", "Final utterances produced."),
    MetricDef("edge_agent_discarded_segments_total", "counter", "Segments that gave no text, by reason.", {"reason": DISCARD_REASONS}),
    MetricDef("edge_agent_dropped_frames_total", "counter", "Audio frames lost before the VAD, by cause.", {"cause": DROP_CAUSES}),
    MetricDef("edge_agent_dropped_segments_total", "counter", "Speech lost because no segment buffer was free."),
    MetricDef("edge_agent_worker_errors_total", "counter", "Unexpected failures inside the ASR worker (each one a bug)."),
    MetricDef("edge_agent_queue_depth", "gauge", "Closed segments waiting for the ASR worker."),
    MetricDef("edge_agent_residency_seconds", "histogram", "Raw-audio residency per segment: last sample to zeroed.",
              buckets=_SECONDS),
    MetricDef("edge_agent_final_latency_seconds", "histogram", "End of speech to final transcript, per segment.",
              buckets=_SECONDS),
    MetricDef("edge_agent_pools_not_zeroed_total", "counter", "Visits after which an audio pool slot still held data (alarm)."),
    MetricDef("edge_agent_outbox_items", "gauge", "Sealed reports waiting for delivery."),
    MetricDef("edge_agent_outbox_bytes", "gauge", "Size of the sealed reports waiting for delivery."),
    MetricDef("edge_agent_reports_held", "gauge", "Sealed reports the outbox refused, held in memory and retried."),
    MetricDef("edge_agent_reports_held_bytes", "gauge", "Size of the sealed reports held in memory."),
    MetricDef("edge_agent_reports_dropped_total", "counter",
              "Sealed reports lost: memory hold full while the outbox refused writes, or still held at exit.",
              {"reason": frozenset({"held_full", "exit"})}),
    MetricDef("edge_agent_outbox_quarantined_total", "counter",
              "Damaged or empty outbox files moved aside at start (a fresh outbox was started).",
              {"reason": frozenset({"empty", "damaged"})}),
    MetricDef("edge_agent_mic_lost_total", "counter", "Times the microphone disappeared during a visit."),
    MetricDef("edge_agent_watchdog_stalls_total", "counter", "Heartbeat stalls that withheld the systemd watchdog."),
)


class _Histogram:
    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


_Key = tuple[str, tuple[tuple[str, str], ...]]


class Registry:
    """Thread-safe numbers keyed by declared (name, label values); a prometheus-client collector."""

    def __init__(self, definitions: Iterable[MetricDef] = METRICS) -> None:
        self._defs = {d.name: d for d in definitions}
        self._values: dict[_Key, float] = {}
        self._histograms: dict[_Key, _Histogram] = {}
        self._lock = threading.Lock()
        for d in self._defs.values():
            if d.labels:
                continue
            if d.kind == "histogram":
                self._histograms[(d.name, ())] = _Histogram(d.buckets)
            else:
                self._values[(d.name, ())] = 0.0

    def _key(self, name: str, labels: Mapping[str, str]) -> _Key:
        d = self._defs.get(name)
        if d is None:
            raise KeyError(f"metric {name!r} is not declared in edge_agent.device.ops.metrics.METRICS")
        allowed = d.labels or {}
        if set(labels) != set(allowed):
            raise ValueError(f"metric {name} takes labels {sorted(allowed)}, got {sorted(labels)}")
        for label, value in labels.items():
            if value not in allowed[label]:
                raise ValueError(f"label {label}={value!r} of {name} is not one of {sorted(allowed[label])}")
        return name, tuple(sorted(labels.items()))

    @staticmethod
    def _number(value: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"metric value must be a finite number, got {type(value).__name__}")
        return float(value)

    def _kind(self, name: str, *kinds: str) -> None:
        if self._defs[name].kind not in kinds:
            raise ValueError(f"{name} is a {self._defs[name].kind}; use {'inc()' if self._defs[name].kind == 'counter' else 'the matching call'}")

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        amount = self._number(amount)
        key = self._key(name, labels)
        self._kind(name, "counter", "gauge")
        if self._defs[name].kind == "counter" and amount < 0:
            raise ValueError(f"counter {name} cannot decrease")
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        value = self._number(value)
        key = self._key(name, labels)
        self._kind(name, "gauge")
        with self._lock:
            self._values[key] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        value = self._number(value)
        key = self._key(name, labels)
        self._kind(name, "histogram")
        with self._lock:
            hist = self._histograms.setdefault(key, _Histogram(self._defs[name].buckets))
            hist.observe(value)

    def get(self, name: str, **labels: str) -> float:
        """A counter's or gauge's value; a histogram's observation count."""
        key = self._key(name, labels)
        with self._lock:
            if self._defs[name].kind == "histogram":
                hist = self._histograms.get(key)
                return float(hist.count if hist else 0)
            return self._values.get(key, 0.0)

    def histogram(self, name: str, **labels: str) -> tuple[tuple[float, ...], list[int], float, int]:
        """(upper bounds, count per bucket with +Inf last, sum, count) of a histogram."""
        key = self._key(name, labels)
        with self._lock:
            hist = self._histograms.get(key) or _Histogram(self._defs[name].buckets)
            return hist.buckets, list(hist.counts), hist.sum, hist.count

    def snapshot(self) -> dict[str, float]:
        """Flat ``name{label="v"}`` -> value (histograms: their count), for a health check or a test."""
        with self._lock:
            out = {_series(n, lab): v for (n, lab), v in self._values.items()}
            out.update({_series(n, lab) + "_count": float(h.count) for (n, lab), h in self._histograms.items()})
        return dict(sorted(out.items()))

    # ---- prometheus-client collector ------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = dict(self._values)
            hists = {k: (h.buckets, list(h.counts), h.sum) for k, h in self._histograms.items()}
        for d in self._defs.values():
            label_names = sorted(d.labels or {})
            family: Metric
            if d.kind == "histogram":
                family = HistogramMetricFamily(d.name, d.help, labels=label_names)
                for (name, lab), (bounds, counts, total) in sorted(hists.items()):
                    if name != d.name:
                        continue
                    cumulative, running = [], 0
                    for bound, n in zip([*(f"{b:g}" for b in bounds), "+Inf"], counts):
                        running += n
                        cumulative.append((bound, float(running)))
                    family.add_metric([v for _, v in lab], cumulative, total)
            else:
                # prometheus-client appends _total to counter names itself
                name_ = d.name.removesuffix("_total") if d.kind == "counter" else d.name
                family = (CounterMetricFamily if d.kind == "counter" else GaugeMetricFamily)(name_, d.help, labels=label_names)
                for (name, lab), value in sorted(values.items()):
                    if name == d.name:
                        family.add_metric([v for _, v in lab], value)
            yield family

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4 (prometheus-client's)."""
        from prometheus_client.exposition import generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry).decode()

    # ---- helpers fed by the device ------------------------------------------------------------

    def record_run(self, stats: Any) -> None:
        """Add what a finished pipeline run counted only at its end (drops by cause)."""
        for cause, n in stats.dropped_frames_by_cause.items():
            if n:
                self.inc("edge_agent_dropped_frames_total", n, cause=cause)
        if stats.dropped_segments:
            self.inc("edge_agent_dropped_segments_total", stats.dropped_segments)

    def record_outbox(self, items: int, size_bytes: int) -> None:
        self.set("edge_agent_outbox_items", items)
        self.set("edge_agent_outbox_bytes", size_bytes)


def _series(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


class MetricsServer:
    """``GET /metrics`` on a loopback address (prometheus-client's WSGI app); anything else is 404.

    Refuses non-loopback binds; writes no access log (it would carry peer addresses).
    """

    def __init__(self, registry: Registry, port: int, host: str = "127.0.0.1") -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"metrics may only listen on loopback (127.0.0.1 or ::1), not {host!r}")
        self.registry = registry
        collectors = CollectorRegistry(auto_describe=False)
        collectors.register(registry)
        metrics_app = make_wsgi_app(collectors)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") != "/metrics":
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"not found\n"]
            return metrics_app(environ, start_response)

        try:
            self._httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port} ({exc.strerror}); set metrics.port to a free port") from None
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
