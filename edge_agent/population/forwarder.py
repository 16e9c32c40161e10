"""Device side: deliver queued contribution records from the outbox to the aggregator.

Records wait in the device's ciphertext outbox under ``AGGREGATOR_RECIPIENT``
(sealed at visit stop by ``record.queue_record``). ``forward_once`` sends them
in a shuffled batch - only record id, key id, suite and ciphertext, not the
outbox's creation time - and acks (deletes) those the aggregator accepted or
permanently rejected. Call it on a timer well away from visit stops (e.g. once
a day at a random minute) so arrival times say little about visit times.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge_agent.crypto import ca
from edge_agent.device.outbox import Outbox
from edge_agent.errors import EdgeAgentError
from edge_agent.population.record import AGGREGATOR_RECIPIENT
from edge_agent.population.service import MAX_ITEMS_PER_SUBMIT
from edge_agent.proto.edge_agent.v1 import population_pb2, population_pb2_grpc


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
