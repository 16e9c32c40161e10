"""The population aggregator: opens sealed contributions, stores them, releases fixed cells.

A cell is (period, service line, metric); there are no other filters, so no
two queries can differ by one chosen clinician. A cell is released only when

1. the period is closed (default: ``grace_days`` after it ended, so the data
   are frozen and a release cannot be "re-taken" after one more clinician's
   records arrive), unless ``require_closed=False``;
2. at least ``k`` distinct pseudonyms and ``n`` visits contribute to it,
   counting only pseudonyms on the period's roster (``require_roster``): the
   site's real clinicians, so records for invented clinicians never count;
3. the period's privacy budget has room for the query's epsilon.

The answer is an OpenDP release (dp.py) of the mean of per-clinician values.
Every answer, released or suppressed, is recorded; asking the same cell again
with the same epsilon over the same data returns the recorded answer for free
(averaging repeated answers is therefore impossible). Budget refusal raises
:class:`BudgetExhaustedError`, never an un-noised answer.

Budget accounting (unit of privacy = one clinician in one period):
* each clinician's records in a period count in exactly one service line, the
  one where they have most visits (ties: first name) - a per-clinician choice,
  so service lines of a frozen period are disjoint in clinicians and their
  budgets compose in parallel: ledger part = the service line;
* while a period is open (only with ``require_closed=False``) that assignment
  can still move, so spending is charged to the whole period (part ``*``).
A clinician's total loss in a period is at most ``spent['*'] + spent[their line]``,
which every query keeps <= ``epsilon_budget``.

Intake integrity (the service passes the submitting certificate's identity):
a contributor certificate may only submit records of the service line the CA
bound it to, and at most ``contributor_records_per_day`` x days-in-period new
records per period (a compromised device can neither spread into other service
lines nor flood one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.crypto import seal
from edge_agent.crypto.errors import SealError
from edge_agent.population import dp
from edge_agent.population.errors import BudgetExhaustedError, ContributionRejected, PeriodOpenError, PopulationError
from edge_agent.population.metrics import ALL_METRIC_NAMES, METRICS
from edge_agent.population.periods import DEFAULT_GRANULARITY, parse_period, period_of
from edge_agent.population.record import ContributionRecord, is_pseudonym, is_record_id, parse_record, validate_service_line
from edge_agent.population.store import WHOLE_PERIOD, Store
from edge_agent.wording import a_or_an

EPS_SLACK = 1e-6  # OpenDP's privacy maps round up by ~1e-8; never more than this over the budget
RELEASED, SUPPRESSED = "released", "suppressed"


@dataclass(frozen=True)
class Policy:
    k: int = 5  # distinct clinicians per cell
    n: int = 20  # visits per cell
    epsilon_budget: float = 1.0  # per period, per clinician
    epsilon_per_query: float | None = None  # default: budget / number of metrics (one full report = the budget)
    granularity: str = DEFAULT_GRANULARITY
    grace_days: int = 14  # late deliveries accepted this long after a period ends (= outbox retention)
    require_closed: bool = True
    service_lines: tuple[str, ...] | None = None  # allowed lines (None: any well-formed name)
    require_roster: bool = True  # count only pseudonyms on the period's roster of real clinicians
    contributor_records_per_day: int = 60  # per contributor certificate: quota = this x days in the period

    def __post_init__(self) -> None:
        if self.k < 2 or self.n < self.k:
            raise PopulationError("policy needs k >= 2 and n >= k")
        if not 0 < self.epsilon_budget <= 10:
            raise PopulationError("epsilon budget must be in (0, 10]")

    def last_closed_period(self, today: dt.date) -> str:
        """The latest period whose late deliveries are over on ``today`` (the one a report can release): records are
        filed under period_of(visit day), and a period closes ``grace_days`` after its end."""
        current = period_of(today - dt.timedelta(days=self.grace_days), self.granularity)
        return period_of(current.start - dt.timedelta(days=1), self.granularity).label

    @property
    def default_epsilon(self) -> float:
        return self.epsilon_per_query or self.epsilon_budget / len(ALL_METRIC_NAMES)


@dataclass(frozen=True)
class Contributor:
    """The submitting certificate, as the service saw it (used for the checks, never stored)."""

    serial: int
    service_line: str


@dataclass(frozen=True)
class CellResult:
    period: str
    service_line: str
    metric: str
    status: str  # RELEASED | SUPPRESSED
    value: float | None = None
    ci95: float | None = None
    noisy_clinicians: int | None = None
    epsilon: float = 0.0  # charged by this answer (0 for suppressed and for repeats)
    epsilon_requested: float = 0.0
    sum_scale: float | None = None
    count_scale: float | None = None
    mechanism: str = ""
    unit: str = ""
    reason: str = ""
    repeated: bool = False  # the recorded answer of an identical earlier query

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Aggregator:
    def __init__(self, db_path: Path, private_key: X25519PrivateKey, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.store = Store(db_path)
        self._key = private_key
        self.key_id = seal.key_id(private_key)
        self._salt: bytes | None = None

    def close(self) -> None:
        self.store.close()

    # ---- intake -------------------------------------------------------------------------

    def open_contribution(self, record_id: str, recipient_key_id: bytes, sealed: bytes, suite: str = seal.SUITE_NAME) -> ContributionRecord:
        if not is_record_id(record_id):
            raise ContributionRejected("record id must be 'r-' and 32 hex digits")
        env = seal.Envelope(suite, record_id, 0, bytes(recipient_key_id), bytes(sealed), 0)
        try:
            plain = seal.open_envelope(env, self._key, expected_visit_id=record_id, expected_seq=0)
        except SealError as exc:
            raise ContributionRejected(f"contribution does not open: {exc}") from None
        try:
            record = parse_record(plain)
        except PopulationError as exc:
            raise ContributionRejected(str(exc)) from None
        if parse_period(record.period).granularity != self.policy.granularity:
            raise ContributionRejected(f"period {record.period} is not {a_or_an(self.policy.granularity)}; fix the site's period setting")
        if self.policy.service_lines is not None and record.service_line not in self.policy.service_lines:
            raise ContributionRejected(f"service line {record.service_line!r} is not configured at the aggregator")
        return record

    def ingest(self, record_id: str, recipient_key_id: bytes, sealed: bytes, suite: str = seal.SUITE_NAME,
               now: float | None = None, contributor: Contributor | None = None) -> bool:
        """Open, validate and store one sealed record; True if new, False if a re-delivery.

        ``contributor`` is the submitting certificate (serial, bound service line):
        its service line must match and its quota for the period must have room.
        """
        record = self.open_contribution(record_id, recipient_key_id, sealed, suite)
        if self._closed_by_time(record.period, now):
            raise ContributionRejected(f"period {record.period} is closed; late contribution dropped")
        sender = quota = None
        if contributor is not None:
            if record.service_line != contributor.service_line:
                raise ContributionRejected(
                    f"this contributor certificate is bound to service line {contributor.service_line!r}, "
                    f"not {record.service_line!r}; record dropped")
            sender = hmac.new(self._sender_salt(), f"{contributor.serial}/{record.period}".encode(), hashlib.sha256).hexdigest()[:32]
            p = parse_period(record.period)
            quota = self.policy.contributor_records_per_day * (p.end - p.start).days
        try:
            return self.store.add(record_id, record.period, record.service_line, record.pseudonym, record.to_bytes().decode(),
                                  sender, quota)
        except PopulationError as exc:
            raise ContributionRejected(str(exc)) from None

    def _sender_salt(self) -> bytes:
        if self._salt is None:
            self._salt = self.store.secret("sender-salt")
        return self._salt

    # ---- roster -------------------------------------------------------------------------

    def load_roster(self, period: str, pseudonyms: list[str]) -> int:
        """Add pseudonyms of real clinicians for ``period`` (from ``roster_for_period`` on IT's host); returns how many were new."""
        self._check_period(period)
        bad = [p for p in pseudonyms if not is_pseudonym(p)]
        if bad:
            raise PopulationError(f"roster has {len(bad)} malformed pseudonym(s); make it again with 'edge-agent aggregator roster'")
        return self.store.add_roster(period, list(pseudonyms))

    def ingest_envelope(self, env: seal.Envelope, now: float | None = None) -> bool:
        return self.ingest(env.visit_id, env.recipient_key_id, env.sealed, env.suite, now)

    # ---- periods ------------------------------------------------------------------------

    def _closed_by_time(self, period: str, now: float | None) -> bool:
        p = parse_period(period)
        today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc).date()
        return today >= p.end + dt.timedelta(days=self.policy.grace_days)

    def close_period(self, period: str) -> None:
        """Freeze a period now (IT decides no more late records will come)."""
        self._check_period(period)
        with self.store.transaction() as db:
            self.store.close_period(db, period)

    def _check_period(self, period: str) -> None:
        if parse_period(period).granularity != self.policy.granularity:
            raise PopulationError(f"period {period} is not {a_or_an(self.policy.granularity)}; this site reports per {self.policy.granularity}")

    # ---- queries ------------------------------------------------------------------------

    def budget(self, period: str) -> dict[str, float]:
        """Privacy loss spent per ledger part of a period."""
        with self.store.transaction() as db:
            return self.store.spent(db, period)

    def query(self, period: str, service_line: str, metric: str, epsilon: float | None = None,
              now: float | None = None) -> CellResult:
        """Answer one cell (released with noise, or suppressed); raises on budget/open period."""
        self._check_period(period)
        validate_service_line(service_line)
        if metric not in METRICS:
            raise PopulationError(f"unknown metric {metric!r}; choose one of {', '.join(ALL_METRIC_NAMES)}")
        eps = float(self.policy.default_epsilon if epsilon is None else epsilon)
        if not 0 < eps <= self.policy.epsilon_budget:
            raise PopulationError(f"epsilon {eps} must be in (0, {self.policy.epsilon_budget}] (the period budget)")
        with self.store.transaction() as db:
            frozen = self.store.is_closed(db, period)
            if not frozen and self._closed_by_time(period, now):
                self.store.close_period(db, period)
                frozen = True
            if not frozen and self.policy.require_closed:
                p = parse_period(period)
                raise PeriodOpenError(
                    f"period {period} is still open; releases start on {p.end + dt.timedelta(days=self.policy.grace_days)} "
                    "(after late deliveries), or close it with close_period"
                )
            rows = self.store.rows(db, period)
            no_roster = False
            if self.policy.require_roster:
                roster = self.store.roster(db, period)
                no_roster = not roster
                rows = [r for r in rows if r[2] in roster]  # invented pseudonyms never count towards k, n or values
            values, visits, version = self._cell_values(rows, service_line, metric)
            hit = self.store.cached(db, period, service_line, metric, eps, version)
            if hit is not None:
                hit.update(epsilon=0.0, repeated=True)
                return CellResult(**hit)  # type: ignore[arg-type]
            m = METRICS[metric]
            if len(values) < self.policy.k or visits < self.policy.n:
                reason = (f"no roster of the site's clinicians for {period}; IT loads one ('edge-agent aggregator roster')"
                          if no_roster else f"fewer than k={self.policy.k} clinicians or n={self.policy.n} visits")
                result = CellResult(
                    period, service_line, metric, SUPPRESSED, epsilon_requested=eps, unit=m.release_unit, reason=reason,
                )
                self.store.record_release(db, period, service_line, metric, eps, version, SUPPRESSED, result.to_dict())
                return result
            part = service_line if frozen else WHOLE_PERIOD
            spent = self.store.spent(db, period)
            others = max((v for p, v in spent.items() if p != WHOLE_PERIOD), default=0.0)
            have = spent.get(WHOLE_PERIOD, 0.0) + (spent.get(service_line, 0.0) if frozen else others)
            if have + eps > self.policy.epsilon_budget + EPS_SLACK:
                raise BudgetExhaustedError(
                    f"privacy budget for {period}/{service_line} is spent ({have:.3f} of {self.policy.epsilon_budget:g}; "
                    f"this query needs {eps:.3f}); no further release for this period"
                )
            rel = dp.release_mean(values, m.bounds, eps)
            self.store.charge(db, period, part, rel.epsilon)
            result = CellResult(
                period, service_line, metric, RELEASED, value=rel.value, ci95=rel.ci95, noisy_clinicians=rel.noisy_count,
                epsilon=rel.epsilon, epsilon_requested=eps, sum_scale=rel.sum_scale, count_scale=rel.count_scale,
                mechanism=rel.mechanism, unit=m.release_unit,
            )
            self.store.record_release(db, period, service_line, metric, eps, version, RELEASED, result.to_dict())
            return result

    def _cell_values(self, rows: list[tuple[str, str, str, dict[str, object]]], service_line: str,
                     metric: str) -> tuple[list[float], int, str]:
        """Per-clinician means for the cell, its visit count, and a version of the data used."""
        lines: dict[str, Counter[str]] = defaultdict(Counter)
        for _, sl, pseud, _ in rows:
            lines[pseud][sl] += 1
        primary = {p: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for p, c in lines.items()}
        m = METRICS[metric]
        section = "labels" if m.kind == "label" else "timing"
        per: dict[str, list[float]] = defaultdict(list)
        digest = hashlib.sha256()
        for rid, sl, pseud, body in rows:
            if sl != service_line or primary[pseud] != service_line:
                continue
            values = body[section]
            assert isinstance(values, dict)
            if metric in values:
                per[pseud].append(m.representative(float(values[metric])))
                digest.update(rid.encode() + b"\n")
        means = [sum(v) / len(v) for _, v in sorted(per.items())]
        return means, sum(len(v) for v in per.values()), digest.hexdigest()

    def report(self, period: str, metrics: tuple[str, ...] = ALL_METRIC_NAMES, epsilon: float | None = None,
               service_lines: tuple[str, ...] | None = None, now: float | None = None) -> list[CellResult]:
        """Every (service line, metric) cell of a period; budget refusals come back as suppressed rows.

        Service lines: the configured list (so a row's presence reveals nothing),
        else those present in the data.
        """
        self._check_period(period)
        lines = service_lines or self.policy.service_lines or tuple(self.store.service_lines(period))
        eps = epsilon or self.policy.epsilon_per_query or self.policy.epsilon_budget / len(metrics)
        out: list[CellResult] = []
        for sl in lines:
            for metric in metrics:
                try:
                    out.append(self.query(period, sl, metric, eps, now))
                except BudgetExhaustedError as exc:
                    out.append(CellResult(period, sl, metric, SUPPRESSED, epsilon_requested=eps,
                                          unit=METRICS[metric].release_unit, reason=f"refused: {exc}"))
        return out
