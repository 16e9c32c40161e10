"""grpc.health.v1 on the device obeys the same rules as every other service.

The stock health servicer was added straight to the gRPC server, outside the per-call checks
(docs/security.md "Every call rechecks"): a revoked certificate (TLS alone does not look at the
CRL) was answered SERVING, and ``Watch`` streams were neither counted against the stream cap nor
ended by the server-side stream deadline, so any site certificate, revoked or not, could hold
every RPC slot of the room device with idle health watches. Real gRPC over mutual TLS.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_agent.crypto import ca
from edge_agent.mtls.server import ServerLimits
from edge_agent.phone.keys import load_key_file
from tests.delivery_fixtures import Pki, ServerThread, raw_channel, server_config


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def test_revoked_certificate_gets_no_health_answer(pki: Pki, tmp_path: Path) -> None:
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        keys = load_key_file(pki.issue_clinician_keys("gone"))
        ca.revoke(pki.authority, keys.pseudonym)
        time.sleep(1.1)  # the server re-reads a changed CRL at most once a second
        with raw_channel(keys, srv.port) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            with pytest.raises(grpc.RpcError) as refused:
                health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as refused:
                next(iter(health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with raw_channel(pki.clinician_a, srv.port) as ch:  # a valid certificate still gets its answer
            got = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="edge_agent.v1.EdgeAgent"), timeout=5)
            assert got.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        srv.stop()


def test_health_watches_count_against_the_stream_cap_and_end(pki: Pki, tmp_path: Path) -> None:
    limits = replace(ServerLimits(), max_streams=2, stream_deadline_s=2.0)
    srv = ServerThread(server_config(pki, tmp_path / "data", tls_limits=limits)).start()
    try:
        with raw_channel(pki.clinician_a, srv.port) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watches = [health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30) for _ in range(2)]
            for w in watches:
                assert next(w).status == health_pb2.HealthCheckResponse.SERVING
            third = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
            with pytest.raises(grpc.RpcError) as refused:
                next(third)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            t0 = time.monotonic()
            for w in watches:  # the server ends each watch at its stream deadline (OK); the client re-opens
                assert list(w) == []
            assert time.monotonic() - t0 < 10
    finally:
        srv.stop()
