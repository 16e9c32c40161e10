"""Issue 16, population signal integrity: real aggregator over mutual TLS on loopback, real site CA, real period keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from pathlib import Path

import grpc
import pytest

from edge_agent.crypto import ca, seal
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.outbox import Outbox
from edge_agent.device.population import PopulationContributor, aggregator_channel, contribute_at_stop, forward_once, rotate_period_key
from edge_agent.errors import ConfigError
from edge_agent.phone import client as phone
from edge_agent.phone.keys import init_key_file, load_key_file
from edge_agent.population.aggregator import Aggregator, Policy
from edge_agent.population.certs import issue_contributor
from edge_agent.population.commands import aggregator_roster_load, roster_for_period
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import AGGREGATOR_RECIPIENT, parse_record
from edge_agent.population.service import AggregatorServer, AggregatorServerConfig
from edge_agent.proto.edge_agent.v1 import population_pb2, population_pb2_grpc
from tests.delivery_fixtures import Pki, ServerThread, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller
from tests.population_fixtures import visit_inputs


class Site:
    """A site CA with an aggregator, its keys and a period key file (IT's copy)."""

    def __init__(self, root: Path, policy: Policy, granularity: str = "quarter") -> None:
        self.root = root
        self.authority = ca.init_ca(root / "ca", site="Test Clinic")
        ca.issue_aggregator(self.authority, root / "aggregator.pem", ips=("127.0.0.1",))
        ca.issue_quality(self.authority, root / "quality.pem")
        ca.issue_admin(self.authority, root / "admin.pem")
        issue_contributor(self.authority, root / "cardiology.pem", "cardiology")
        self.private, self.public = seal.generate_keypair()
        seal_priv = seal.private_key_bytes(self.private)
        (root / "aggregator.key").write_bytes(seal_priv)
        self.today = dt.date.today()
        self.ring = PeriodKeyRing.create(root / "period.key", granularity, today=self.today)
        self.period = self.ring.period.label
        self.policy = policy
        self.agg = Aggregator(root / "agg.db", self.private, policy)

    def serve(self, scenario) -> None:  # type: ignore[no-untyped-def]
        async def run() -> None:
            server = AggregatorServer(AggregatorServerConfig(self.root / "aggregator.pem", host="127.0.0.1", port=0,
                                                             crl=self.root / "ca" / ca.CRL), self.agg)
            port = await server.start()
            try:
                await scenario(port)
            finally:
                await server.stop()

        asyncio.run(run())


def _queue(outbox: Outbox, site: Site, people: list[str], visits_each: int, service_line: str = "cardiology") -> None:
    rng = random.Random(3)
    for person in people:
        for _ in range(visits_each):
            timing, labels = visit_inputs(rng)
            contribute_at_stop(outbox, site.ring, site.public, timing, labels, service_line, site.today, person)


async def _query(port: int, bundle: Path, period: str, metric: str = "talk_share") -> population_pb2.CellRelease:
    async with aggregator_channel(bundle, f"127.0.0.1:{port}") as ch:
        return await population_pb2_grpc.PopulationAggregatorStub(ch).QueryCell(
            population_pb2.QueryCellRequest(period=period, service_line="cardiology", metric=metric, epsilon=0.5))


def test_forged_records_for_invented_clinicians_release_nothing_issue16(tmp_path: Path) -> None:
    """One device certificate, 20 forged records for 5 invented clinicians: the cell used to be released."""
    site = Site(tmp_path, Policy(require_closed=False, epsilon_budget=1.0, k=5, n=20))
    for _ in range(2):
        ca.issue_clinician(site.authority, tmp_path / f"real{_}.pem")  # the site has two real clinicians
    outbox = Outbox(tmp_path / "outbox.db")
    _queue(outbox, site, [f"c-invented{i}" for i in range(5)], 4)
    roster = roster_for_period(tmp_path / "ca", tmp_path / "period.key", tmp_path / "roster.json")
    assert roster["clinicians"] == 2 and roster["period"] == site.period
    assert b"c-" not in (tmp_path / "roster.json").read_bytes()  # pseudonyms only, no certificate ids
    site.agg.close()
    assert aggregator_roster_load(tmp_path / "roster.json", tmp_path / "agg.db", tmp_path / "aggregator.key")["added"] == 2
    site.agg = Aggregator(tmp_path / "agg.db", site.private, site.policy)

    async def scenario(port: int) -> None:
        async with aggregator_channel(tmp_path / "cardiology.pem", f"127.0.0.1:{port}") as ch:
            assert (await forward_once(outbox, ch)).accepted == 20  # stored (bucketed, opened) ...
        cell = await _query(port, tmp_path / "quality.pem", site.period)
        assert cell.status == "suppressed" and not cell.has_value  # ... but invented pseudonyms never count

    site.serve(scenario)
    outbox.close()


def test_contributor_is_bound_to_its_service_line_and_quota_issue16(tmp_path: Path) -> None:
    site = Site(tmp_path, Policy(require_closed=False, granularity="week", contributor_records_per_day=1), granularity="week")
    outbox = Outbox(tmp_path / "outbox.db")
    _queue(outbox, site, ["c-someone"], 1, service_line="oncology")  # not this device's line
    _queue(outbox, site, ["c-someone"], 9)  # one week: a quota of 7

    async def scenario(port: int) -> None:
        async with aggregator_channel(tmp_path / "cardiology.pem", f"127.0.0.1:{port}") as ch:
            result = await forward_once(outbox, ch)
        assert (result.accepted, result.dropped, result.kept) == (7, 3, 0)
        # the other roles cannot submit at all
        for bundle in ("quality.pem", "admin.pem"):
            async with aggregator_channel(tmp_path / bundle, f"127.0.0.1:{port}") as ch:
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await population_pb2_grpc.PopulationAggregatorStub(ch).SubmitContributions(population_pb2.SubmitContributionsRequest())
                assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED

    site.serve(scenario)
    bodies = [r[3] for r in site.agg.store.rows(site.agg.store._db, site.period)]
    assert len(bodies) == 7 and {b["service_line"] for b in bodies} == {"cardiology"}
    outbox.close()


def test_admin_cannot_spend_the_budget_and_no_device_can_pose_as_the_aggregator_issue16(tmp_path: Path) -> None:
    site = Site(tmp_path, Policy(require_closed=False))

    async def scenario(port: int) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await _query(port, tmp_path / "admin.pem", site.period)
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await _query(port, tmp_path / "quality.pem", site.period)).status == "suppressed"

    site.serve(scenario)
    assert site.agg.budget(site.period) == {}  # nothing spent by anyone but Q&S (and a suppression costs nothing)
    # a room device's certificate cannot run the aggregator ...
    ca.issue_device(site.authority, "Room 4", tmp_path / "room4.pem", ips=("127.0.0.1",))
    with pytest.raises(ConfigError, match="issue-aggregator"):
        AggregatorServer(AggregatorServerConfig(tmp_path / "room4.pem", host="127.0.0.1", port=0), site.agg)
    # ... and a forwarder that reaches a room device instead of the aggregator refuses it (TLS name)
    pki = Pki.make(tmp_path / "pki")
    issue_contributor(pki.authority, tmp_path / "pki-contrib.pem", "cardiology")
    room = ServerThread(server_config(pki, tmp_path / "room-data")).start()
    try:
        outbox = Outbox(tmp_path / "outbox.db")
        _queue(outbox, site, ["c-x"], 1)

        async def misdirected() -> None:
            async with aggregator_channel(tmp_path / "pki-contrib.pem", f"127.0.0.1:{room.port}") as ch:
                with pytest.raises(Exception, match="UNAVAILABLE"):
                    await forward_once(outbox, ch, timeout_s=5)

        asyncio.run(misdirected())
        assert len(outbox.fetch(AGGREGATOR_RECIPIENT)) == 1  # nothing acked to the wrong server
        outbox.close()
    finally:
        room.stop()
    site.agg.close()


def test_forwarder_drains_a_backlog_in_batches_under_the_message_limit_issue16(tmp_path: Path) -> None:
    """256 records per call (~152 kB) against a 128 KiB limit, retried forever: past ~220 queued, nothing got through."""
    site = Site(tmp_path, Policy(require_closed=False))
    outbox = Outbox(tmp_path / "outbox.db")
    _queue(outbox, site, [f"c-p{i}" for i in range(30)], 20)  # 600 records

    async def scenario(port: int) -> None:
        async with aggregator_channel(tmp_path / "cardiology.pem", f"127.0.0.1:{port}") as ch:
            result = await forward_once(outbox, ch)
        assert (result.accepted, result.dropped, result.kept) == (600, 0, 0)

    site.serve(scenario)
    assert outbox.fetch(AGGREGATOR_RECIPIENT) == []
    outbox.close()
    site.agg.close()


def test_reissued_phone_is_the_same_clinician_to_the_population_issue16(tmp_path: Path) -> None:
    """A re-issued or second phone counted one clinician twice (and doubled their epsilon)."""
    pki = Pki.make(tmp_path / "pki")
    first = load_key_file(pki.keys_a).pseudonym
    ca.issue_clinician(pki.authority, tmp_path / "second.pem", renew=first)  # IT re-issues for the same clinician
    init_key_file(tmp_path / "second.pem", tmp_path / "second.json")
    priv, pub = seal.generate_keypair()
    ring = PeriodKeyRing.create(tmp_path / "period.key", today=dt.date.today())
    contributor = PopulationContributor(ring, pub, "cardiology")
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), ScriptedVisitRunner(), SpectralVoiceEnroller(), contributor=contributor)
    background = BackgroundServer(server)
    port = background.start()
    target = phone.Target("127.0.0.1", port, server.fingerprint)
    try:
        code = pki.room_code()
        for keys in (pki.keys_a, tmp_path / "second.json", pki.keys_b):
            phone.start(keys, target, room_code=code)
            phone.stop(keys, target)
        assert server.outbox is not None
        items = server.outbox.fetch(AGGREGATOR_RECIPIENT)
    finally:
        background.stop()
    pseudonyms = [parse_record(seal.open_envelope(i.envelope, priv, expected_visit_id=i.envelope.visit_id, expected_seq=0)).pseudonym
                  for i in items]
    assert len(pseudonyms) == 3 and pseudonyms[0] == pseudonyms[1] != pseudonyms[2]


def test_period_key_advances_without_visits_issue16(tmp_path: Path) -> None:
    """The period key advanced only at start-up and at visit stop: a quiet room kept a finished period's key."""
    ring = PeriodKeyRing.create(tmp_path / "period.key", "quarter", today=dt.date(2026, 12, 20))
    old_state = json.loads((tmp_path / "period.key").read_text())["state"]
    contributor = PopulationContributor(ring, bytes(32), "cardiology")

    async def one_day() -> None:
        task = asyncio.create_task(rotate_period_key(contributor, interval_s=3600, today=lambda: dt.date(2027, 1, 2)))
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(one_day())
    doc = json.loads((tmp_path / "period.key").read_text())
    assert doc["period"] == "2027-Q1" and doc["state"] != old_state
    with pytest.raises(Exception, match="destroyed"):
        ring.pseudonym("c-anyone", dt.date(2026, 12, 20))
