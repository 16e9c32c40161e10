"""The device's side of the population signal: one de-identified record per visit, queued
sealed in the outbox, and delivered to the aggregator now and then.

At stop the visit lifecycle calls :class:`PopulationContributor` with the
clinician's pseudonymous certificate id and the coaching report; the sealed
record waits in the same ciphertext outbox under ``AGGREGATOR_RECIPIENT`` and
its readable text travels inside the clinician's own sealed report (so they see
exactly what their visit contributed). :func:`forward_once` sends queued records
in a shuffled batch - only record id, key id, suite and ciphertext, not the
outbox's creation time - and acks those the aggregator accepted or permanently
rejected. It runs on a timer well away from visit stops, so arrival times say
little about visit times.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge_agent.crypto import ca
from edge_agent.device.outbox import Outbox
from edge_agent.errors import EdgeAgentError
from edge_agent.population.metrics import TIMING_NAMES
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.record import AGGREGATOR_RECIPIENT, ContributionRecord, build_record, render_contribution, seal_record
from edge_agent.population.service import MAX_ITEMS_PER_SUBMIT
from edge_agent.proto.edge_agent.v1 import feedback_pb2, population_pb2, population_pb2_grpc

log = logging.getLogger(__name__)


def queue_record(outbox: Outbox, record: ContributionRecord, aggregator_public_key: bytes) -> int:
    """Seal and queue durably in the device outbox under the aggregator's routing key."""
    return outbox.put(AGGREGATOR_RECIPIENT, seal_record(record, aggregator_public_key))


def contribute_at_stop(
    outbox: Outbox,
    keyring: PeriodKeyRing,
    aggregator_public_key: bytes,
    timing: Mapping[str, float | None],
    label_counts: Mapping[str, int],
    service_line: str,
    visit_date: dt.date,
    clinician_cert_id: str,
) -> ContributionRecord:
    """What the device calls at visit stop: build, seal, queue; returns the record for the phone."""
    record = build_record(timing, label_counts, service_line, visit_date, clinician_cert_id, keyring)
    queue_record(outbox, record, aggregator_public_key)
    return record


@dataclass
class PopulationContributor:
    keyring: PeriodKeyRing
    aggregator_public_key: bytes
    service_line: str

    @classmethod
    def from_files(cls, period_key: Path, aggregator_public_key: Path, service_line: str) -> "PopulationContributor":
        ring = PeriodKeyRing.load(period_key)
        ring.advance(dt.date.today())
        return cls(ring, Path(aggregator_public_key).read_bytes(), service_line)

    def __call__(self, outbox: Outbox, clinician_cert_id: str, feedback: feedback_pb2.Feedback) -> str:
        today = dt.date.today()
        self.keyring.advance(today)  # a finished period's key is erased before anything else
        record = contribute_at_stop(
            outbox,
            self.keyring,
            self.aggregator_public_key,
            timing=population_timing(feedback),
            label_counts=dict(feedback.label_counts),
            service_line=self.service_line,
            visit_date=today,
            clinician_cert_id=clinician_cert_id,
        )
        return render_contribution(record)


def population_timing(feedback: feedback_pb2.Feedback) -> dict[str, float]:
    """The report's timing metrics under the population's names (the median wait stands for the list)."""
    timing = dict(feedback.timing)
    if "wait_after_question_median_s" in timing:
        timing["wait_after_question_s"] = timing.pop("wait_after_question_median_s")
    return {name: value for name, value in timing.items() if name in TIMING_NAMES}


@dataclass(frozen=True)
class ForwardResult:
    accepted: int
    dropped: int  # permanently rejected (e.g. a closed period)
    kept: int  # transiently rejected: stay queued


def aggregator_channel(bundle_path: Path, address: str) -> grpc.aio.Channel:
    """Mutual-TLS channel to the aggregator with this device's bundle (site CA)."""
    bundle = ca.load_bundle(bundle_path)
    creds = grpc.ssl_channel_credentials(bundle.ca_pem, bundle.key_pem, bundle.cert_pem)
    return grpc.aio.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", ca.DEVICE_TLS_NAME)])


async def forward_once(outbox: Outbox, channel: grpc.aio.Channel, limit: int = MAX_ITEMS_PER_SUBMIT,
                       timeout_s: float = 30.0) -> ForwardResult:
    items = outbox.fetch(AGGREGATOR_RECIPIENT, after=0, limit=limit)
    if not items:
        return ForwardResult(0, 0, 0)
    random.SystemRandom().shuffle(items)  # order says nothing about which room or visit came first
    by_rid = {it.envelope.visit_id: it.id for it in items}
    req = population_pb2.SubmitContributionsRequest(
        items=[population_pb2.SealedContribution(record_id=it.envelope.visit_id, recipient_key_id=it.envelope.recipient_key_id,
                                                 sealed=it.envelope.sealed, suite=it.envelope.suite) for it in items]
    )
    stub = population_pb2_grpc.PopulationAggregatorStub(channel)
    try:
        resp = await stub.SubmitContributions(req, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        raise EdgeAgentError(f"aggregator refused delivery ({exc.code().name}: {exc.details()}); records stay queued") from None
    done = [by_rid[r] for r in resp.accepted if r in by_rid]
    dropped = [by_rid[r.record_id] for r in resp.rejected if r.permanent and r.record_id in by_rid]
    outbox.ack(AGGREGATOR_RECIPIENT, done + dropped)
    return ForwardResult(len(done), len(dropped), len(items) - len(done) - len(dropped))
