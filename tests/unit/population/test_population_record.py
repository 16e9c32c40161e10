"""Contribution records: buckets, canonical bytes with no identifier, strict parsing, rotating pseudonyms."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from pathlib import Path

import pytest

from edge_agent.crypto import ca, seal
from edge_agent.device.outbox import Outbox
from edge_agent.device.population import contribute_at_stop
from edge_agent.population.errors import PeriodKeyGoneError, PopulationError
from edge_agent.population.metrics import LABEL_NAMES, METRICS, TIMING_NAMES
from edge_agent.population.periods import parse_period, period_of
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import (
    AGGREGATOR_RECIPIENT,
    build_record,
    parse_record,
    render_contribution,
    seal_record,
)
from tests.population_fixtures import visit_inputs

TRANSCRIPT = "So the chest pain started on Tuesday after I walked the dog near Maple Street"


def test_periods_round_trip() -> None:
    for gran in ("week", "month", "quarter"):
        p = period_of(dt.date(2026, 11, 3), gran)
        assert parse_period(p.label) == p
        assert p.start <= dt.date(2026, 11, 3) < p.end
    assert period_of(dt.date(2026, 11, 3), "quarter").label == "2026-Q4"
    assert period_of(dt.date(2026, 1, 1), "week").label == "2026-W01"
    with pytest.raises(PopulationError):
        parse_period("2026-11-03")


def test_buckets_are_coarse() -> None:
    ts = METRICS["talk_share"]
    assert [ts.bucket(v) for v in (0.0, 0.07, 0.43, 0.49999, 0.5, 0.99, 1.0)] == [0.0, 0.0, 0.4, 0.4, 0.5, 0.9, 0.9]
    assert ts.label(0.4) == "40-50 %"
    assert METRICS["closed_question"].bucket(4) == 3.0 and METRICS["closed_question"].label(3.0) == "3-5"
    assert "interruptions" not in METRICS  # its detector is withheld from clinicians, so from the population too
    assert METRICS["empathy"].bucket(17) == 6.0 and METRICS["empathy"].label(6.0) == "6 or more"


def test_record_bytes_hold_no_identifier(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    clin = ca.issue_clinician(authority, tmp_path / "clin.pem")
    ca.issue_device(authority, "Room 4B", tmp_path / "dev.pem")
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=dt.date(2026, 10, 1))
    timing, labels = visit_inputs(random.Random(1))
    visit_id = "v-5f2c0d9e1a"
    rec = build_record(timing, labels, "cardiology", dt.date(2026, 11, 3), clin.subject_id, ring)
    data = rec.to_bytes()
    # the pseudonym is random-looking hex: short probes like "4b" would match it by chance
    low = data.lower().replace(rec.pseudonym.lower().encode(), b"")
    assert clin.subject_id.encode() not in data and clin.subject_id.split("-")[1].encode() not in low
    for forbidden in (b"room", b"4b", visit_id.encode(), b"visit", b"2026-11", b"tuesday", b"11-03", b"clinician"):
        assert forbidden not in low, forbidden
    doc = json.loads(data)
    tokens = set(doc) | set(doc["timing"]) | set(doc["labels"]) | {doc["period"], doc["service_line"], doc["pseudonym"]}
    schema = {"v", "period", "service_line", "pseudonym", "timing", "labels", *TIMING_NAMES, *LABEL_NAMES}
    assert tokens - schema == {"2026-Q4", "cardiology", rec.pseudonym}  # every other string is the fixed schema
    for word in TRANSCRIPT.lower().split():
        assert word not in tokens
        if not any(word in s for s in schema):
            assert word.encode() not in low, word
    doc = json.loads(data)
    assert set(doc) == {"v", "period", "service_line", "pseudonym", "timing", "labels"}
    assert doc["period"] == "2026-Q4" and doc["service_line"] == "cardiology"
    assert set(doc["timing"]) == set(TIMING_NAMES) and set(doc["labels"]) == set(LABEL_NAMES)
    assert all(v in METRICS[k].edges for k, v in {**doc["timing"], **doc["labels"]}.items())
    assert parse_record(data) == rec
    # the sealed envelope carries a random record id, not the visit id
    env = seal_record(rec, seal.generate_keypair()[1])
    assert env.visit_id.startswith("r-") and visit_id not in env.visit_id and data not in env.sealed


def test_strict_parse_refuses_smuggled_values(tmp_path: Path) -> None:
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=dt.date(2026, 10, 1))
    rec = build_record({"talk_share": 0.44}, {}, "cardiology", dt.date(2026, 11, 3), "c-abc", ring)
    doc = json.loads(rec.to_bytes())
    bad_docs = [
        {**doc, "room": "4B"},
        {**doc, "timing": {**doc["timing"], "talk_share": 0.4371}},  # precise value instead of a bucket edge
        {**doc, "service_line": "Dr Smith"},
        {**doc, "pseudonym": "c-abc"},
        {**doc, "period": "2026-11-03"},
    ]
    for bad in bad_docs:
        with pytest.raises(PopulationError):
            parse_record(json.dumps(bad, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(PopulationError):
        parse_record(json.dumps(doc, indent=1).encode())  # not canonical
    with pytest.raises(PopulationError):
        build_record({"talk_sahre": 0.4}, {}, "cardiology", dt.date(2026, 11, 3), "c-abc", ring)
    with pytest.raises(PopulationError):
        build_record({}, {"empathy": -1}, "cardiology", dt.date(2026, 11, 3), "c-abc", ring)


def test_pseudonyms_rotate_and_old_keys_are_destroyed(tmp_path: Path) -> None:
    path = tmp_path / "period.key"
    ring = PeriodKeyRing.create(path, today=dt.date(2026, 10, 1))
    assert os.stat(path).st_mode & 0o777 == 0o600
    device_b = tmp_path / "device_b.key"
    ring.export(device_b)
    q4, p_q4 = ring.pseudonym("c-alice", dt.date(2026, 11, 3))
    _, p_q4_again = ring.pseudonym("c-alice", dt.date(2026, 12, 30))
    _, other = ring.pseudonym("c-bob", dt.date(2026, 11, 3))
    assert p_q4 == p_q4_again and p_q4 != other  # stable within a period, distinct per clinician
    # another room device of the site computes the same pseudonym (distinct clinicians counted right)
    assert PeriodKeyRing.load(device_b).pseudonym("c-alice", dt.date(2026, 10, 20))[1] == p_q4
    state_q4 = json.loads(path.read_text())["state"]
    q1, p_q1 = ring.pseudonym("c-alice", dt.date(2027, 1, 5))
    assert q1.label == "2027-Q1" and p_q1 != p_q4
    # the Q4 state is gone from the key file; Q4 pseudonyms can no longer be made
    assert json.loads(path.read_text())["state"] != state_q4
    assert state_q4.encode() not in path.read_bytes()
    with pytest.raises(PeriodKeyGoneError):
        ring.pseudonym("c-alice", dt.date(2026, 12, 31))
    with pytest.raises(PeriodKeyGoneError):
        PeriodKeyRing.load(path).pseudonym("c-alice", dt.date(2026, 11, 3))
    # the device that has not advanced yet follows the same ratchet
    assert PeriodKeyRing.load(device_b).pseudonym("c-alice", dt.date(2027, 2, 1))[1] == p_q1


def test_render_and_queue_at_stop(tmp_path: Path) -> None:
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=dt.date(2026, 10, 1))
    outbox = Outbox(tmp_path / "outbox.db")
    priv, pub = seal.generate_keypair()
    timing, labels = visit_inputs(random.Random(3))
    rec = contribute_at_stop(outbox, ring, pub, timing, labels, "primary-care", dt.date(2026, 11, 3), "c-alice")
    text = render_contribution(rec)
    assert "primary-care" in text and "2026-Q4" in text and "c-alice" not in text and rec.pseudonym not in text
    assert METRICS["talk_share"].label(rec.timing["talk_share"]) in text
    items = outbox.fetch(AGGREGATOR_RECIPIENT)
    assert len(items) == 1 and rec.to_bytes() not in outbox.path.read_bytes()
    assert seal.open_envelope(items[0].envelope, priv) == rec.to_bytes()
    outbox.close()
