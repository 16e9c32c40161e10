"""The device's side of the population signal: one de-identified record per visit, queued
sealed in the outbox, and delivered to the aggregator now and then.

At stop the visit lifecycle calls :class:`PopulationContributor` with the
clinician's stable subject id (the CA keeps it across re-issued certificates,
so a second phone is the same clinician, counted once with one budget) and the
coaching report; the sealed
record waits in the same ciphertext outbox under ``AGGREGATOR_RECIPIENT`` and
its readable text travels inside the clinician's own sealed report (so they see
exactly what their visit contributed). :func:`forward_once` sends queued records
in shuffled batches - only record id, key id, suite and ciphertext, not the
outbox's creation time - each below the aggregator's message limit, until the
backlog is drained, and acks those the aggregator accepted or permanently
rejected. It runs on a timer well away from visit stops, so arrival times say
little about visit times. :func:`rotate_period_key` advances the period key
every hour, so a finished period's key is erased even on a day without visits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge_agent.crypto import ca, seal
from edge_agent.crypto.errors import SealError
from edge_agent.device.outbox import Outbox
from edge_agent.errors import ConfigError, EdgeAgentError
from edge_agent.population.errors import PopulationError
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


def _advance(ring: PeriodKeyRing, today: dt.date) -> None:
    """Advance the period key; a file that cannot be rewritten is one log line, not a failure: the finished
    period's key is already erased from memory, and the hourly rotation rewrites the file once it can."""
    try:
        ring.advance(today)
    except PopulationError as exc:
        log.warning("period key not advanced on disk: %s", exc)


NOTHING_CONTRIBUTED = ("Nothing from this visit was added to the population signal: no speech was measured in it, "
                       "and a visit nobody was heard in says nothing about how it went.")


@dataclass
class PopulationContributor:
    keyring: PeriodKeyRing
    aggregator_public_key: bytes
    service_line: str

    @classmethod
    def from_files(cls, period_key: Path, aggregator_public_key: Path, service_line: str) -> "PopulationContributor":
        ring, raw = cls.check_files(period_key, aggregator_public_key)
        _advance(ring, dt.date.today())
        return cls(ring, raw, service_line)

    @staticmethod
    def check_files(period_key: Path, aggregator_public_key: Path) -> tuple[PeriodKeyRing, bytes]:
        """Read and check both keys, writing nothing (serve at start, and doctor); one-line refusals."""
        ring = PeriodKeyRing.load(period_key)
        # checked now: a bad key would otherwise only show as every visit's record being skipped
        where = f"population.aggregator_public_key {aggregator_public_key}"
        try:
            raw = Path(aggregator_public_key).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: {exc.strerror}; copy aggregator.pub from 'edge-agent aggregator keygen'") from None
        try:
            seal.load_public_key(raw)
        except SealError:
            raise ConfigError(f"{where} is not an aggregator public key (32 raw bytes); copy aggregator.pub again") from None
        return ring, raw

    def tick(self, today: dt.date | None = None) -> None:
        """Advance the period key to today's period (erasing a finished period's key), visit or no visit."""
        self.keyring.advance(today or dt.date.today())

    def __call__(self, outbox: Outbox, clinician_cert_id: str, feedback: feedback_pb2.Feedback) -> str:
        today = dt.date.today()
        _advance(self.keyring, today)  # a finished period's key is erased before anything else
        timing = population_timing(feedback)
        if not timing and not any(feedback.label_counts.values()):
            # nothing was heard or transcribed: "no open question in this visit" would be a false statement
            return NOTHING_CONTRIBUTED
        record = contribute_at_stop(
            outbox,
            self.keyring,
            self.aggregator_public_key,
            timing=timing,
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
    """Mutual-TLS channel to the aggregator with this device's contributor bundle (site CA).

    The server must present the aggregator's TLS name, which no room device's
    certificate carries: another site device cannot pose as the aggregator.
    """
    bundle = ca.load_bundle(bundle_path, ca.ROLE_CONTRIBUTOR)
    creds = grpc.ssl_channel_credentials(bundle.ca_pem, bundle.key_pem, bundle.cert_pem)
    return grpc.aio.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", ca.AGGREGATOR_TLS_NAME)])


BATCH_BYTES = 96 * 1024  # below the aggregator's 128 KiB receive limit, with room for framing
MAX_CALLS_PER_RUN = 256  # one run drains up to ~10^4 records; the rest wait for the next run


async def forward_once(outbox: Outbox, channel: grpc.aio.Channel, limit: int = MAX_ITEMS_PER_SUBMIT,
                       timeout_s: float = 30.0, batch_bytes: int = BATCH_BYTES, max_calls: int = MAX_CALLS_PER_RUN) -> ForwardResult:
    """Deliver the queued records in batches of at most ``limit`` items and ``batch_bytes`` bytes.

    Items the aggregator keeps refusing transiently stay queued but do not
    block the ones behind them: each call moves past the items it sent.
    """
    stub = population_pb2_grpc.PopulationAggregatorStub(channel)
    accepted = dropped = kept = 0
    after = 0
    for _ in range(max_calls):
        items = outbox.fetch(AGGREGATOR_RECIPIENT, after=after, limit=limit)
        if not items:
            break
        batch: list[population_pb2.SealedContribution] = []
        size = 0
        by_rid: dict[str, int] = {}
        for it in items:
            entry = population_pb2.SealedContribution(record_id=it.envelope.visit_id, recipient_key_id=it.envelope.recipient_key_id,
                                                      sealed=it.envelope.sealed, suite=it.envelope.suite)
            grows = entry.ByteSize() + 8  # field tag and length prefix
            if batch and size + grows > batch_bytes:
                break
            batch.append(entry)
            size += grows
            by_rid[it.envelope.visit_id] = it.id
            after = it.id
        random.SystemRandom().shuffle(batch)  # order says nothing about which room or visit came first
        try:
            resp = await stub.SubmitContributions(population_pb2.SubmitContributionsRequest(items=batch), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise EdgeAgentError(f"aggregator refused delivery ({exc.code().name}: {exc.details()}); records stay queued") from None
        done = [by_rid[r] for r in resp.accepted if r in by_rid]
        gone = [by_rid[r.record_id] for r in resp.rejected if r.permanent and r.record_id in by_rid]
        outbox.ack(AGGREGATOR_RECIPIENT, done + gone)
        accepted, dropped = accepted + len(done), dropped + len(gone)
        kept += len(batch) - len(done) - len(gone)
    return ForwardResult(accepted, dropped, kept)


async def rotate_period_key(contributor: PopulationContributor, interval_s: float = 3600.0,
                            today: Callable[[], dt.date] = dt.date.today) -> None:
    """Advance the period key every ``interval_s`` (a finished period's key is gone within that, visits or not)."""
    while True:
        try:
            await asyncio.to_thread(contributor.tick, today())
        except EdgeAgentError as exc:
            log.warning("period key not advanced: %s", exc)
        await asyncio.sleep(interval_s)
