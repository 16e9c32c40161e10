"""The per-visit contribution record: what a visit adds to the population signal, and nothing more.

Built on the device at visit stop, next to the clinician's own report, from
plain inputs (so it does not depend on the report class)::

    record = build_record(timing=..., label_counts=..., service_line="cardiology",
                          visit_date=date.today(), clinician_cert_id=ident.subject_id, keyring=ring)
    queue_record(outbox, record, aggregator_public_key)   # sealed, ciphertext only
    phone_text = render_contribution(record)              # shown next to the report

Contents (canonical JSON, sorted keys, no whitespace)::

    {"labels":{"advice":1,...},"period":"2026-Q4","pseudonym":"<32 hex>",
     "service_line":"cardiology","timing":{"talk_share":0.4,...},"v":1}

* timing values and label counts are bucket *lower edges* (metrics.py);
* ``period`` is the site's week/month/quarter, never a date or a time of day;
* ``pseudonym`` is the rotating keyed hash of the clinician certificate id
  (pseudonym.py); there is no clinician id, room, device id, visit id, text,
  or timestamp. The envelope that carries it has a fresh random id per record.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from edge_agent.crypto import seal
from edge_agent.population.errors import PopulationError
from edge_agent.population.metrics import LABEL_NAMES, METRICS, TIMING_NAMES
from edge_agent.population.periods import parse_period
from edge_agent.population.pseudonym import PSEUDONYM_HEX_LEN, PeriodKeyRing

# 2: label counts only for the labels coders agree on (edge_agent/behaviours/reliability.py)
# 3: no interruption count (its detector is withheld: edge_agent/feedback/observations.py)
RECORD_VERSION = 3
AGGREGATOR_RECIPIENT = "population-aggregator"  # outbox routing key; clinician ids start with "c-"
RECORD_ID_PREFIX = "r-"
MAX_RECORD_BYTES = 4096
_SERVICE_LINE_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
_PSEUDONYM_RE = re.compile(rf"^[0-9a-f]{{{PSEUDONYM_HEX_LEN}}}$")
_RECORD_ID_RE = re.compile(r"^r-[0-9a-f]{32}$")
_KEYS = frozenset({"v", "period", "service_line", "pseudonym", "timing", "labels"})


@dataclass(frozen=True)
class ContributionRecord:
    period: str
    service_line: str
    pseudonym: str
    timing: Mapping[str, float] = field(default_factory=dict)  # metric -> bucket lower edge (absent = not measured)
    labels: Mapping[str, int] = field(default_factory=dict)  # label -> bucket lower edge of the count
    version: int = RECORD_VERSION

    def to_dict(self) -> dict[str, object]:
        return {
            "v": self.version,
            "period": self.period,
            "service_line": self.service_line,
            "pseudonym": self.pseudonym,
            "timing": {k: self.timing[k] for k in sorted(self.timing)},
            "labels": {k: int(self.labels[k]) for k in sorted(self.labels)},
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: the exact bytes that are sealed (and that the phone can show)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def validate_service_line(service_line: str) -> str:
    if not isinstance(service_line, str) or not _SERVICE_LINE_RE.match(service_line):
        raise PopulationError(
            f"service line {service_line!r} must be 2-32 lowercase letters, digits or '-' (a department, never a person)"
        )
    return service_line


def build_record(
    timing: Mapping[str, float | None],
    label_counts: Mapping[str, int],
    service_line: str,
    visit_date: dt.date,
    clinician_cert_id: str,
    keyring: PeriodKeyRing,
) -> ContributionRecord:
    """Bucket one visit's metrics into a de-identified record (raises PopulationError on bad input).

    ``timing`` may omit metrics or give None/NaN for those not measured in the
    visit (e.g. no question asked -> no wait time); unknown keys are refused,
    so a typo cannot silently drop a metric. Missing labels count as 0.
    """
    validate_service_line(service_line)
    unknown = (set(timing) - set(TIMING_NAMES)) | (set(label_counts) - set(LABEL_NAMES))
    if unknown:
        raise PopulationError(f"unknown metric(s) {', '.join(sorted(unknown))}; see edge_agent/population/metrics.py")
    buckets: dict[str, float] = {}
    for name in TIMING_NAMES:
        value = timing.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        try:
            buckets[name] = METRICS[name].bucket(float(value))
        except (TypeError, ValueError):
            raise PopulationError(f"timing metric {name} is not a finite number: {value!r}") from None
    counts: dict[str, int] = {}
    for name in LABEL_NAMES:
        n = label_counts.get(name, 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise PopulationError(f"label count {name} must be a non-negative integer, got {n!r}")
        counts[name] = int(METRICS[name].bucket(float(n)))
    period, pseudonym = keyring.pseudonym(clinician_cert_id, visit_date)
    return ContributionRecord(period.label, service_line, pseudonym, MappingProxyType(buckets), MappingProxyType(counts))


def parse_record(data: bytes) -> ContributionRecord:
    """Strictly parse and validate record bytes (the aggregator's gate; raises PopulationError)."""
    if len(data) > MAX_RECORD_BYTES:
        raise PopulationError(f"contribution record of {len(data)} bytes is too large")
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise PopulationError("contribution record is not canonical JSON") from None
    if not isinstance(doc, dict) or set(doc) != _KEYS:
        raise PopulationError("contribution record has missing or extra fields")
    if doc["v"] != RECORD_VERSION:
        raise PopulationError(f"contribution record version {doc['v']!r} is not supported")
    if not isinstance(doc["period"], str):
        raise PopulationError("contribution record has a malformed period")
    parse_period(doc["period"])
    validate_service_line(doc["service_line"])
    if not isinstance(doc["pseudonym"], str) or not _PSEUDONYM_RE.match(doc["pseudonym"]):
        raise PopulationError("contribution record has a malformed pseudonym")
    timing, labels = doc["timing"], doc["labels"]
    if not isinstance(timing, dict) or not set(timing) <= set(TIMING_NAMES):
        raise PopulationError("contribution record has unknown timing metrics")
    if not isinstance(labels, dict) or set(labels) != set(LABEL_NAMES):
        raise PopulationError("contribution record must carry every label count")
    for name, v in (*timing.items(), *labels.items()):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) not in METRICS[name].edges:
            raise PopulationError(f"contribution record value for {name} is not a bucket edge")
    record = ContributionRecord(
        doc["period"], doc["service_line"], doc["pseudonym"],
        MappingProxyType({k: float(v) for k, v in timing.items()}),
        MappingProxyType({k: int(v) for k, v in labels.items()}),
    )
    if record.to_bytes() != data:
        raise PopulationError("contribution record is not in canonical form")
    return record


# ---- sealing and queueing ---------------------------------------------------------------


def new_record_id() -> str:
    """A random, single-use id (stands in for the visit id the sealing API binds)."""
    return RECORD_ID_PREFIX + secrets.token_hex(16)


def is_record_id(value: str) -> bool:
    return bool(_RECORD_ID_RE.match(value))


def is_pseudonym(value: str) -> bool:
    return isinstance(value, str) and bool(_PSEUDONYM_RE.match(value))


def seal_record(record: ContributionRecord, aggregator_public_key: bytes) -> seal.Envelope:
    """HPKE-seal the record to the aggregator: visit id = random record id, seq = 0."""
    return seal.seal(record.to_bytes(), aggregator_public_key, new_record_id(), 0)


# ---- showing the clinician what was contributed ---------------------------------------------


def render_contribution(record: ContributionRecord) -> str:
    """Plain text of exactly what this visit contributed (the phone shows it beside the report)."""
    lines = [
        "What this visit added to the population signal (de-identified):",
        f"  service line : {record.service_line}",
        f"  period       : {record.period} (no date, no time of day)",
        f"  pseudonym    : {record.pseudonym[:8]}... (changes every period; cannot be traced back to you)",
        "  timing (coarse buckets):",
    ]
    for name in TIMING_NAMES:
        text = METRICS[name].label(record.timing[name]) if name in record.timing else "not measured"
        lines.append(f"    {name:<24} {text}")
    lines.append("  behaviours (how often, bucketed):")
    for name in LABEL_NAMES:
        lines.append(f"    {name:<24} {METRICS[name].label(float(record.labels.get(name, 0)))}")
    lines.append("  Not included: your name or id, room, device, visit id, time of day, any words.")
    lines.append("  Released only as service-line averages of >= 5 clinicians and >= 20 visits, with noise.")
    return "\n".join(lines)
