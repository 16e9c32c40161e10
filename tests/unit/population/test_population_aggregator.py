"""Aggregator: k/n suppression, OpenDP noise, budget ledger, differencing, unlinkable pseudonyms."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import sqlite3
from pathlib import Path

import pytest

from edge_agent.population import dp
from edge_agent.population.aggregator import RELEASED, SUPPRESSED, Aggregator, Policy
from edge_agent.population.errors import BudgetExhaustedError, ContributionRejected, PeriodOpenError
from edge_agent.population.metrics import ALL_METRIC_NAMES, METRICS
from edge_agent.population.record import seal_record
from tests.population_fixtures import AFTER_CLOSE, DURING, Site


def test_four_clinicians_never_released(tmp_path: Path) -> None:
    site = Site.make(tmp_path, Policy(epsilon_budget=10.0))
    site.department("cardiology", clinicians=4, visits_each=60)  # many visits, too few people
    for metric in ALL_METRIC_NAMES:
        for eps in (0.01, 0.5, 5.0, 10.0):
            res = site.agg.query("2026-Q4", "cardiology", metric, eps, now=AFTER_CLOSE)
            assert res.status == SUPPRESSED and res.value is None and res.noisy_clinicians is None
            assert "k=5" in res.reason
    cells = site.agg.report("2026-Q4", now=AFTER_CLOSE)
    assert cells and all(c.status == SUPPRESSED and c.value is None for c in cells)
    assert site.agg.budget("2026-Q4") == {}  # nothing spent, nothing released
    # suppressions are on record, not silently dropped
    recorded = site.agg.store.released()
    assert {r["metric"] for r in recorded} == set(ALL_METRIC_NAMES) and all(r["status"] == SUPPRESSED for r in recorded)


def test_five_clinicians_but_too_few_visits_suppressed(tmp_path: Path) -> None:
    for visits, status in ((19, SUPPRESSED), (20, RELEASED)):
        site = Site.make(tmp_path / str(visits))
        ids = site.department("oncology", clinicians=5, visits_each=3)
        site.contribute(ids[0], "oncology", visits - 15)
        assert site.agg.query("2026-Q4", "oncology", "talk_share", now=AFTER_CLOSE).status == status


def test_five_clinicians_released_with_noise(tmp_path: Path) -> None:
    values, true_means = [], []
    for run in range(4):
        site = Site.make(tmp_path / f"site{run}", seed=11)  # same data every run
        site.department("cardiology", clinicians=5, visits_each=4)
        res = site.agg.query("2026-Q4", "cardiology", "talk_share", 1.0, now=AFTER_CLOSE)
        assert res.status == RELEASED and res.value is not None
        assert res.sum_scale and res.sum_scale > 0 and res.count_scale and res.count_scale > 0
        assert "opendp" in res.mechanism and "Laplace" in res.mechanism
        assert res.epsilon == pytest.approx(1.0, abs=1e-6) and res.ci95 and res.ci95 > 0
        # sensitivity/epsilon: the sum's Laplace scale is hi / (eps/2)
        assert res.sum_scale == pytest.approx(METRICS["talk_share"].bounds[1] / 0.5, rel=1e-3)
        rows = site.agg.store.released()
        values.append((res.value, res.noisy_clinicians))
        with site.agg.store.transaction() as db:
            per, _, _ = site.agg._cell_values(site.agg.store.rows(db, "2026-Q4"), "cardiology", "talk_share")
        true_means.append(sum(per) / len(per))
        assert rows[-1]["value"] == res.value
    assert max(true_means) - min(true_means) < 1e-9  # same data (summed in another order: float rounding)
    # fresh noise in independent releases; a noisy mean may clip at a bound (then equal runs are no evidence
    # of reused noise: the unclipped sums below are checked for that)
    lo, hi = METRICS["talk_share"].bounds
    assert len(set(values)) >= 2 or {v for v, _ in values} <= {lo, hi}
    assert all(v != true_means[0] for v, _ in values)
    # below the clipping: the noisy sums themselves are never the true sum and never repeat
    sums = [dp.release_mean([0.4, 0.5, 0.45, 0.6, 0.55], (0.0, 0.95), 0.5).noisy_sum for _ in range(5)]
    assert len(set(sums)) == 5 and 2.5 not in sums


def test_repeat_is_free_and_identical_budget_enforced_and_persisted(tmp_path: Path) -> None:
    policy = Policy(epsilon_budget=1.0)
    site = Site.make(tmp_path, policy)
    site.department("cardiology", clinicians=6, visits_each=4)
    first = site.agg.query("2026-Q4", "cardiology", "talk_share", 0.4, now=AFTER_CLOSE)
    again = site.agg.query("2026-Q4", "cardiology", "talk_share", 0.4, now=AFTER_CLOSE)
    assert again.value == first.value and again.repeated and again.epsilon == 0.0  # no averaging possible
    assert site.agg.budget("2026-Q4")["cardiology"] == pytest.approx(0.4, abs=1e-6)
    site.agg.query("2026-Q4", "cardiology", "longest_monologue_s", 0.4, now=AFTER_CLOSE)
    with pytest.raises(BudgetExhaustedError) as exc:
        site.agg.query("2026-Q4", "cardiology", "empathy", 0.4, now=AFTER_CLOSE)
    msg = str(exc.value)
    assert "\n" not in msg and "privacy budget" in msg and "2026-Q4/cardiology" in msg
    # a different epsilon on an already released cell is a new release: refused too
    with pytest.raises(BudgetExhaustedError):
        site.agg.query("2026-Q4", "cardiology", "talk_share", 0.3, now=AFTER_CLOSE)
    site.agg.close()
    # the ledger is persisted: a restarted aggregator still refuses
    reopened = Aggregator(tmp_path / "agg.db", site.agg._key, policy)
    with pytest.raises(BudgetExhaustedError):
        reopened.query("2026-Q4", "cardiology", "empathy", 0.3, now=AFTER_CLOSE)
    cells = reopened.report("2026-Q4", metrics=("empathy", "talk_share"), epsilon=0.4, now=AFTER_CLOSE)
    refused = [c for c in cells if c.metric == "empathy"][0]
    assert refused.status == SUPPRESSED and refused.value is None and refused.reason.startswith("refused: privacy budget")
    assert [c for c in cells if c.metric == "talk_share"][0].value == first.value  # recorded answer, free


def test_open_period_is_not_released_and_closed_period_takes_no_more(tmp_path: Path) -> None:
    site = Site.make(tmp_path)
    ids = site.department("cardiology", clinicians=6, visits_each=4)
    with pytest.raises(PeriodOpenError) as exc:
        site.agg.query("2026-Q4", "cardiology", "talk_share", now=DURING)
    assert "still open" in str(exc.value)
    site.agg.query("2026-Q4", "cardiology", "talk_share", now=AFTER_CLOSE)  # closes (freezes) the period
    rec = site.record(ids[0], "cardiology")
    with pytest.raises(ContributionRejected):
        site.agg.ingest_envelope(seal_record(rec, site.public_key), now=DURING)


def test_differencing_one_clinician(tmp_path: Path) -> None:
    """Queries that differ by one clinician: suppression at the k edge, budget refusal otherwise."""
    # (a) 5 clinicians with X, 4 without: the "without" answer never exists.
    with_x = Site.make(tmp_path / "with", seed=5)
    with_x.department("cardiology", clinicians=4, visits_each=6)
    with_x.contribute("c-target", "cardiology", 6, talk_share=0.95)
    without_x = Site.make(tmp_path / "without", seed=5)
    without_x.department("cardiology", clinicians=4, visits_each=6)
    assert with_x.agg.query("2026-Q4", "cardiology", "talk_share", 0.5, now=AFTER_CLOSE).status == RELEASED
    assert without_x.agg.query("2026-Q4", "cardiology", "talk_share", 0.5, now=AFTER_CLOSE).status == SUPPRESSED
    # there is no filter to carve X out of a cell: a query names only period, service line, metric, epsilon
    assert list(Aggregator.query.__code__.co_varnames[1:6]) == ["period", "service_line", "metric", "epsilon", "now"]

    # (b) a live period (require_closed off): ask before and after X's visits arrive, and keep asking.
    site = Site.make(tmp_path / "live", Policy(require_closed=False, epsilon_budget=1.0), seed=6)
    site.department("cardiology", clinicians=6, visits_each=4)
    before = site.agg.query("2026-Q4", "cardiology", "talk_share", 0.5, now=DURING)
    site.contribute("c-target", "cardiology", 4, talk_share=0.95)
    after = site.agg.query("2026-Q4", "cardiology", "talk_share", 0.5, now=DURING)
    assert before.status == after.status == RELEASED and after.epsilon > 0  # the changed cell paid again
    site.contribute("c-target", "cardiology", 1, talk_share=0.95)
    with pytest.raises(BudgetExhaustedError):  # a third look (to average the noise away) is refused
        site.agg.query("2026-Q4", "cardiology", "talk_share", 0.5, now=DURING)
    with pytest.raises(BudgetExhaustedError):  # nor another metric of the live period
        site.agg.query("2026-Q4", "cardiology", "longest_monologue_s", 0.1, now=DURING)


def test_differencing_attack_success_bounded_by_epsilon() -> None:
    """The best two-look attack on X's value succeeds no more often than e^eps/(1+e^eps) allows."""
    rng = random.Random(3)
    others = [rng.uniform(0.3, 0.6) for _ in range(8)]
    trials, wins, eps_each = 300, 0, 0.5
    for _ in range(trials):
        secret = rng.random() < 0.5  # X's talk share is 0.95 (True) or 0.05 (False)
        before = dp.release_mean(others, (0.0, 0.95), eps_each)
        after = dp.release_mean([*others, 0.95 if secret else 0.05], (0.0, 0.95), eps_each)
        guess = (after.noisy_sum - before.noisy_sum) > 0.5
        wins += guess == secret
    bound = math.exp(2 * eps_each) / (1 + math.exp(2 * eps_each))  # 0.73 for a total eps of 1
    assert wins / trials < bound + 0.06


def test_pseudonyms_unlinkable_across_periods_and_no_key_at_aggregator(tmp_path: Path) -> None:
    site = Site.make(tmp_path, Policy(granularity="quarter"))
    site.contribute("c-alice", "cardiology", 3, day=dt.date(2026, 11, 3))
    site.contribute("c-alice", "cardiology", 3, day=dt.date(2027, 1, 10), now=dt.datetime(2027, 1, 11).timestamp())
    site.agg.close()
    db = sqlite3.connect(tmp_path / "agg.db")
    rows = db.execute("SELECT period, pseudonym FROM contributions").fetchall()
    by_period = {p: {x for q, x in rows if q == p} for p, _ in rows}
    assert len(by_period["2026-Q4"]) == 1 and len(by_period["2027-Q1"]) == 1
    assert by_period["2026-Q4"] != by_period["2027-Q1"]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # roster: pseudonyms only; quota: per-period counts under a salted tag, never linked to a record; meta: that salt
    assert tables == {"contributions", "ledger", "releases", "closed", "sqlite_sequence", "roster", "quota", "meta"}
    assert {c[1] for c in db.execute("PRAGMA table_info(contributions)")} == {"rid", "period", "service_line", "pseudonym", "body"}
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("agg.db*"))
    key_state = json.loads((tmp_path / "period.key").read_text())["state"]
    assert key_state.encode() not in raw and bytes.fromhex(key_state) not in raw
    assert b"c-alice" not in raw
    # the Q4 key is gone from the device too: nobody can recompute the Q4 pseudonym
    with pytest.raises(Exception, match="destroyed"):
        site.ring.pseudonym("c-alice", dt.date(2026, 11, 3))


def test_clinician_counts_in_one_service_line_only(tmp_path: Path) -> None:
    site = Site.make(tmp_path)
    site.department("cardiology", clinicians=5, visits_each=4)
    ids = site.department("medicine", clinicians=4, visits_each=5)
    site.contribute("c-card000", "medicine", 1)  # a cardiologist's single visit in medicine
    res = site.agg.query("2026-Q4", "medicine", "talk_share", now=AFTER_CLOSE)
    assert res.status == SUPPRESSED  # the cardiologist is counted in cardiology only: still 4 in medicine
    assert len(ids) == 4


def test_tampered_or_foreign_contributions_rejected(tmp_path: Path) -> None:
    site = Site.make(tmp_path)
    rec = site.record("c-alice", "cardiology")
    env = seal_record(rec, site.public_key)
    with pytest.raises(ContributionRejected):
        site.agg.ingest(env.visit_id, env.recipient_key_id, env.sealed[:-1] + bytes([env.sealed[-1] ^ 1]), now=DURING)
    with pytest.raises(ContributionRejected):
        site.agg.ingest("r-" + "0" * 32, env.recipient_key_id, env.sealed, now=DURING)  # id is bound into the seal
    assert site.agg.ingest_envelope(env, now=DURING) is True
    assert site.agg.ingest_envelope(env, now=DURING) is False  # re-delivery is idempotent
