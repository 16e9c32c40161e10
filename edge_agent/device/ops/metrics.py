"""Counters, gauges and histograms for fleet health, served by prometheus-client on 127.0.0.1 only.

What can be exported is fixed in code: every metric is declared in
:data:`METRICS` with its type, help text and the closed set of values each
label may take. Setting a metric that is not declared, or a label value that
is not in its set, raises — so a clinician id, a room schedule or a word
cannot become a metric name, label or value by accident (values are numbers).
:class:`Registry` holds the live numbers; :class:`Publisher` is the
prometheus-client *collector* that serves a frozen copy of them (below): the
exposition format and the HTTP endpoint are the library's, the closed set and
the publication clock are ours.

Who feeds what (each from real work, never from a test only): the pipeline
(segments, utterances, discards by reason, dropped frames by cause, queue
depth, residency and final-latency histograms, worker errors), the visit
(visits, mic loss, the pools-zeroed check), the gRPC start (voiceprints by speaker-model check), the lifecycle (stops by reason,
outbox depth, reports held in memory), the watchdog (stalls).

Published on a coarse clock, never live. Almost every series moves only while a
visit runs or when it stops, so values scraped every few seconds would be the
room's schedule to the minute (and, with the rota, a clinician's working
pattern). The :class:`Registry` therefore stays in-process (the device's own
alarms and tests read it live); what leaves the process is a :class:`Publisher`
snapshot, frozen by a timer thread *at* each boundary — a multiple of
``metrics.publish_s`` in epoch seconds (default 86400: daily counts at 00:00 UTC,
the same instants on every device) — and served unchanged until the next one.
Counters, gauges and histograms are frozen together. Before the first boundary
after start the endpoint serves zeros, not the values as of start: a restart
happens at an arbitrary time, and the outbox depth at that instant would be a
count taken between boundaries. ``edge_agent_published_unix_seconds`` says which
boundary the numbers are as of (0 = none yet). There is deliberately no
"visit active" gauge: it would be a live schedule by definition (the
authenticated gRPC status keeps ``visit_active`` for the room's own clinicians).
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler, make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from edge_agent.errors import ConfigError
from edge_agent.wording import a_or_an

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
    {"too_little_speech", "no_speech", "silence_hallucination", "repetition", "empty", "decode_failed", "no_buffer"}
)
DROP_CAUSES = frozenset({"capture_queue", "frame_pool"})  # speech lost for want of a segment buffer: dropped_segments
_SECONDS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0)

METRICS: tuple[MetricDef, ...] = (
    MetricDef("edge_agent_visits_total", "counter", "Visits started.", {"trigger": frozenset({"phone", "button"})}),
    MetricDef("edge_agent_visits_stopped_total", "counter", "Visits stopped, by reason.", {"reason": _STOP_REASONS}),
    MetricDef("edge_agent_button_presses_total", "counter", "Room button presses, by outcome.",
              {"outcome": frozenset({"started", "stopped", "refused", "contested"})}),
    MetricDef("edge_agent_segments_total", "counter", "Speech segments processed."),
    MetricDef("edge_agent_utterances_total", "counter", "Final utterances produced."),
    MetricDef("edge_agent_discarded_segments_total", "counter", "Segments that gave no text, by reason.", {"reason": DISCARD_REASONS}),
    MetricDef("edge_agent_dropped_frames_total", "counter", "Audio frames lost before the VAD, by cause.", {"cause": DROP_CAUSES}),
    MetricDef("edge_agent_dropped_segments_total", "counter", "Speech segments lost: no free buffer, or a decode that failed twice (causes: edge_agent_discarded_segments_total)."),
    MetricDef("edge_agent_worker_errors_total", "counter", "Unexpected failures inside the ASR worker (each one a bug)."),
    MetricDef("edge_agent_failed_open_decodes_total", "counter",
              "Partial or sentence-commit decodes of an open segment that failed (its final still covers the audio)."),
    MetricDef("edge_agent_queue_depth", "gauge", "Closed segments waiting for the ASR worker."),
    MetricDef("edge_agent_residency_seconds", "histogram", "Raw-audio residency per segment: age of its oldest raw sample when zeroed.",
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
    MetricDef("edge_agent_reports_expired_total", "counter",
              "Sealed reports deleted undelivered at the outbox's retention limit (never collected by the phone)."),
    MetricDef("edge_agent_outbox_quarantined_total", "counter",
              "Damaged or empty outbox files moved aside at start (a fresh outbox was started).",
              {"reason": frozenset({"empty", "damaged"})}),
    MetricDef("edge_agent_mic_lost_total", "counter", "Times the microphone disappeared during a visit."),
    MetricDef("edge_agent_start_voiceprints_total", "counter",
              "Voiceprints sent with phone starts, by speaker-model check: matched (used), stale (another model: "
              "not used, the phone was told to re-enrol), unstated (no model id, a phone from before: used unchecked).",
              {"check": frozenset({"matched", "stale", "unstated"})}),
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
    """Thread-safe LIVE numbers keyed by declared (name, label values); in-process only (served via Publisher)."""

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
            raise ValueError(f"{name} is {a_or_an(self._defs[name].kind)}; use {'inc()' if self._defs[name].kind == 'counter' else 'the matching call'}")

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

    def freeze(self) -> Frozen:
        """A consistent copy of every value and histogram, taken under one lock."""
        with self._lock:
            values = dict(self._values)
            hists = {k: (h.buckets, tuple(h.counts), h.sum, h.count) for k, h in self._histograms.items()}
        return Frozen(self._defs, values, hists)

    def snapshot(self) -> dict[str, float]:
        """LIVE flat ``name{label="v"}`` -> value, for in-process checks and tests; never serve it (see Publisher)."""
        return self.freeze().snapshot()

    def render(self) -> str:
        """LIVE Prometheus text, for in-process checks and tests; what is served is :class:`Publisher`'s."""
        return self.freeze().render()

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


_HistValue = tuple[tuple[float, ...], tuple[int, ...], float, int]


class Frozen:
    """The registry's numbers at one instant: immutable, renders like the live registry did."""

    def __init__(self, defs: Mapping[str, MetricDef], values: Mapping[_Key, float], hists: Mapping[_Key, _HistValue]) -> None:
        self._defs = dict(defs)
        self._values = dict(values)
        self._hists = dict(hists)

    @classmethod
    def zeros(cls, definitions: Iterable[MetricDef] = METRICS) -> Frozen:
        return Registry(definitions).freeze()

    def get(self, name: str, **labels: str) -> float:
        """A counter's or gauge's value; a histogram's observation count (label values as in the registry)."""
        key = (name, tuple(sorted(labels.items())))
        if name in self._defs and self._defs[name].kind == "histogram":
            hist = self._hists.get(key)
            return float(hist[3] if hist else 0)
        return self._values.get(key, 0.0)

    def snapshot(self) -> dict[str, float]:
        """Flat ``name{label="v"}`` -> value (histograms: their count)."""
        out = {_series(n, lab): v for (n, lab), v in self._values.items()}
        out.update({_series(n, lab) + "_count": float(h[3]) for (n, lab), h in self._hists.items()})
        return dict(sorted(out.items()))

    def collect(self) -> Iterator[Metric]:
        for d in self._defs.values():
            label_names = sorted(d.labels or {})
            family: Metric
            if d.kind == "histogram":
                family = HistogramMetricFamily(d.name, d.help, labels=label_names)
                for (name, lab), (bounds, counts, total, _n) in sorted(self._hists.items()):
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
                for (name, lab), value in sorted(self._values.items()):
                    if name == d.name:
                        family.add_metric([v for _, v in lab], value)
            yield family

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4 (prometheus-client's)."""
        return _render(self)


def _render(collector: Any) -> str:
    from prometheus_client.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


DEFAULT_PUBLISH_S = 86400
PUBLISHED_AT = MetricDef(
    "edge_agent_published_unix_seconds", "gauge",
    "Publication boundary (epoch seconds, a multiple of metrics.publish_s) the other values are as of; 0 = none yet.",
)


class Publisher:
    """What leaves the process: the registry frozen at each multiple of ``publish_s`` epoch seconds.

    A daemon thread (:meth:`start`) sleeps until the next boundary and freezes the
    registry there, so the published numbers are the registry's *at* the boundary,
    not at the first scrape after it (that would include visits after it). Until
    the first boundary after start it serves zeros (see the module docstring).
    :meth:`publish_due` is the same step for a test driving ``clock`` by hand.
    """

    def __init__(self, registry: Registry, publish_s: int = DEFAULT_PUBLISH_S, clock: Callable[[], float] = time.time) -> None:
        if isinstance(publish_s, bool) or not isinstance(publish_s, int) or not 1 <= publish_s <= 604800:
            raise ConfigError(f"metrics.publish_s must be a whole number of seconds from 1 to 604800, got {publish_s!r}")
        self.registry = registry
        self.publish_s = publish_s
        self._clock = clock
        self._published = Frozen.zeros(registry._defs.values())
        self.published_at = 0  # the boundary the served numbers are as of; 0 = none yet
        self.frozen_wall = 0.0  # clock() when that copy was taken (in-process only; a test checks it is the boundary)
        self._next = self.next_boundary(clock())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def next_boundary(self, now: float) -> int:
        """The first multiple of publish_s strictly after ``now``."""
        return (int(now) // self.publish_s + 1) * self.publish_s

    def publish_due(self) -> bool:
        """Freeze the registry if a boundary has passed since the last publication; True if it did."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                return False
            frozen = self.registry.freeze()
            self._published, self.published_at = frozen, int(now) // self.publish_s * self.publish_s
            self.frozen_wall = now
            self._next = self.published_at + self.publish_s
            return True

    @property
    def published(self) -> Frozen:
        return self._published

    def seconds_to_next(self) -> float:
        return max(0.0, self._next - self._clock())

    def _run(self) -> None:
        # wakes at the boundary (Event.wait is monotonic; re-checked at least every 30 s so a wall-clock step is followed)
        while not self._stop.wait(min(self.seconds_to_next(), 30.0)):
            self.publish_due()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-publish", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- prometheus-client collector: only ever the published copy --------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            published, published_at = self._published, self.published_at
        yield from published.collect()
        at = GaugeMetricFamily(PUBLISHED_AT.name, PUBLISHED_AT.help)
        at.add_metric([], float(published_at))
        yield at

    def render(self) -> str:
        return _render(self)


def _series(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


class MetricsServer:
    """``GET /metrics`` on a loopback address (prometheus-client's WSGI app); anything else is 404.

    Serves :class:`Publisher`'s copy, never the live registry. Refuses non-loopback
    binds; writes no access log (it would carry peer addresses).
    """

    def __init__(self, registry: Registry, port: int, host: str = "127.0.0.1", publish_s: int = DEFAULT_PUBLISH_S,
                 clock: Callable[[], float] = time.time) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"metrics may only listen on loopback (127.0.0.1 or ::1), not {host!r}")
        self.registry = registry
        self.publisher = Publisher(registry, publish_s, clock)
        collectors = CollectorRegistry(auto_describe=False)
        collectors.register(self.publisher)
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
        self.publisher.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self.publisher.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
