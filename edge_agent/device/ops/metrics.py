"""Counters and gauges for fleet health, in Prometheus text on 127.0.0.1 only.

What can be exported is fixed in code: every metric is declared in
:data:`METRICS` with its type, help text and the closed set of values each
label may take. Setting a metric that is not declared, or a label value that
is not in its set, raises — so a clinician id, a room schedule or a word
cannot become a metric name, label or value by accident (values are numbers).

The same numbers are available as a plain dict (:meth:`Registry.snapshot`) for
a health RPC.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_agent.errors import ConfigError

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz_")  # label names and values: no digits (no ids, no room numbers)
_METRIC_NAME = re.compile(r"edge_agent_[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str  # "counter" | "gauge"
    help: str
    labels: Mapping[str, frozenset[str]] | None = None  # label -> allowed values

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"metric name {self.name!r} must be edge_agent_ + lowercase letters, digits, underscores")
        if self.kind not in ("counter", "gauge"):
            raise ValueError(f"metric kind {self.kind!r}")
        for label, values in (self.labels or {}).items():
            if not set(label) <= _NAME_OK:
                raise ValueError(f"label name {label!r}")
            for v in values:
                if not set(v) <= _NAME_OK:
                    raise ValueError(f"label value {v!r} of {self.name} must be lowercase letters/underscores")


_STOP_REASONS = frozenset({"stop", "button", "admin", "shutdown", "long_silence", "max_duration", "error"})

METRICS: tuple[MetricDef, ...] = (
    MetricDef("edge_agent_visits_total", "counter", "Visits started.", {"trigger": frozenset({"phone", "button"})}),
    MetricDef("edge_agent_visits_stopped_total", "counter", "Visits stopped, by reason.", {"reason": _STOP_REASONS}),
    MetricDef("edge_agent_visit_active", "gauge", "1 while a visit is capturing audio."),
    MetricDef("edge_agent_button_presses_total", "counter", "Room button presses, by outcome.",
              {"outcome": frozenset({"started", "stopped", "refused"})}),
    MetricDef("edge_agent_segments_total", "counter", "Speech segments processed."),
    MetricDef("edge_agent_utterances_total", "counter", "Final utterances produced."),
    MetricDef("edge_agent_dropped_frames_total", "counter", "Audio frames dropped because the pipeline fell behind."),
    MetricDef("edge_agent_dropped_segments_total", "counter", "Speech segments dropped because no buffer was free."),
    MetricDef("edge_agent_queue_depth", "gauge", "Segments waiting for ASR."),
    MetricDef("edge_agent_residency_p95_seconds", "gauge", "95th percentile raw-audio residency of the last visit."),
    MetricDef("edge_agent_residency_max_seconds", "gauge", "Longest raw-audio residency of the last visit."),
    MetricDef("edge_agent_outbox_items", "gauge", "Sealed reports waiting for delivery."),
    MetricDef("edge_agent_outbox_bytes", "gauge", "Size of the sealed reports waiting for delivery."),
    MetricDef("edge_agent_mic_lost_total", "counter", "Times the microphone disappeared during a visit."),
    MetricDef("edge_agent_watchdog_stalls_total", "counter", "Heartbeat stalls that withheld the systemd watchdog."),
)


class Registry:
    """Thread-safe numbers keyed by declared (name, label values)."""

    def __init__(self, definitions: Iterable[MetricDef] = METRICS) -> None:
        self._defs = {d.name: d for d in definitions}
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        for d in self._defs.values():
            if not d.labels:
                self._values[(d.name, ())] = 0.0

    def _key(self, name: str, labels: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
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

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        amount = self._number(amount)
        key = self._key(name, labels)
        if self._defs[name].kind == "counter" and amount < 0:
            raise ValueError(f"counter {name} cannot decrease")
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        value = self._number(value)
        key = self._key(name, labels)
        if self._defs[name].kind != "gauge":
            raise ValueError(f"{name} is a counter; use inc()")
        with self._lock:
            self._values[key] = value

    def get(self, name: str, **labels: str) -> float:
        key = self._key(name, labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def snapshot(self) -> dict[str, float]:
        """Flat ``name{label="v"}`` -> value, for a health RPC or a test."""
        with self._lock:
            return {_series(n, lab): v for (n, lab), v in sorted(self._values.items())}

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines = []
        with self._lock:
            items = sorted(self._values.items())
        for d in self._defs.values():
            lines.append(f"# HELP {d.name} {d.help}")
            lines.append(f"# TYPE {d.name} {d.kind}")
            for (name, lab), value in items:
                if name == d.name:
                    lines.append(f"{_series(name, lab)} {value:g}")
        return "\n".join(lines) + "\n"

    # ---- helpers fed by the daemon --------------------------------------------------------

    def record_run(self, stats: Any) -> None:
        """Add a finished visit's pipeline ``RunStats`` (counts and residency only)."""
        self.inc("edge_agent_segments_total", stats.segments)
        self.inc("edge_agent_utterances_total", stats.utterances)
        self.inc("edge_agent_dropped_frames_total", stats.dropped_frames)
        self.inc("edge_agent_dropped_segments_total", stats.dropped_segments)
        self.set("edge_agent_residency_p95_seconds", stats.residency_p95())
        self.set("edge_agent_residency_max_seconds", stats.residency_max())

    def record_outbox(self, items: int, size_bytes: int) -> None:
        self.set("edge_agent_outbox_items", items)
        self.set("edge_agent_outbox_bytes", size_bytes)


def _series(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


class MetricsServer:
    """``GET /metrics`` on a loopback address; anything else is 404. Refuses non-loopback binds."""

    def __init__(self, registry: Registry, port: int, host: str = "127.0.0.1") -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"metrics may only listen on loopback (127.0.0.1 or ::1), not {host!r}")
        self.registry = registry
        reg = registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = reg.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - no access log (it has peer addresses)
                return

        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port} ({exc.strerror}); set metrics.port to a free port") from None
        self._httpd.daemon_threads = True
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
