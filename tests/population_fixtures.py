"""Helpers (no tests) for tests/unit/population: real key files, real sealing, real SQLite, real OpenDP."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from edge_agent.crypto import seal
from edge_agent.population.aggregator import Aggregator, Policy
from edge_agent.population.metrics import LABEL_NAMES
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import ContributionRecord, build_record, seal_record

VISIT_DAY = dt.date(2026, 11, 3)  # in 2026-Q4
AFTER_CLOSE = dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc).timestamp()  # 2026-Q4 closed (end + 14 days)
DURING = dt.datetime(2026, 11, 5, tzinfo=dt.timezone.utc).timestamp()


def visit_inputs(rng: random.Random) -> tuple[dict[str, float], dict[str, int]]:
    timing = {
        "opening_uninterrupted_s": rng.uniform(3, 40), "talk_share": rng.uniform(0.3, 0.7),
        "longest_monologue_s": rng.uniform(10, 90), "wait_after_question_s": rng.uniform(0.2, 3), "speech_rate_wpm": rng.uniform(110, 190),
    }
    labels = {name: rng.randint(0, 3) for name in LABEL_NAMES}
    return timing, labels


@dataclass
class Site:
    root: Path
    ring: PeriodKeyRing
    agg: Aggregator
    public_key: bytes
    rng: random.Random

    @classmethod
    def make(cls, root: Path, policy: Policy | None = None, seed: int = 7) -> Site:
        priv, pub = seal.generate_keypair()
        ring = PeriodKeyRing.create(root / "period.key", today=dt.date(2026, 10, 1))
        return cls(root, ring, Aggregator(root / "agg.db", priv, policy), pub, random.Random(seed))

    def record(self, clinician: str, service_line: str, day: dt.date = VISIT_DAY, talk_share: float | None = None) -> ContributionRecord:
        timing, labels = visit_inputs(self.rng)
        if talk_share is not None:
            timing["talk_share"] = talk_share
        rec = build_record(timing, labels, service_line, day, clinician, self.ring)
        self.agg.load_roster(rec.period, [rec.pseudonym])  # a real clinician of the site (IT's roster)
        return rec

    def contribute(self, clinician: str, service_line: str, visits: int, day: dt.date = VISIT_DAY, now: float = DURING,
                   talk_share: float | None = None) -> None:
        for _ in range(visits):
            rec = self.record(clinician, service_line, day, talk_share)
            assert self.agg.ingest_envelope(seal_record(rec, self.public_key), now=now)

    def department(self, service_line: str, clinicians: int, visits_each: int, prefix: str = "c-") -> list[str]:
        ids = [f"{prefix}{service_line[:4]}{i:03d}" for i in range(clinicians)]
        for cid in ids:
            self.contribute(cid, service_line, visits_each)
        return ids
