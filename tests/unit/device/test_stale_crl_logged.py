"""A room device whose CRL ran past its next update refuses every call (right: revocation status is unknown),
but said so only to the phones: the journal had no line, so IT learnt that the room was down from clinicians.
Real server on loopback, real CA-signed CRL, real mutual TLS."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import grpc
import pytest

from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import Pki, ServerThread, raw_channel, server_config
from tests.unit.device.test_trust_recheck import _crl


def test_a_crl_running_out_is_said_once_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = Pki.make(tmp_path / "pki")
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    pki.crl.write_bytes(_crl(pki.authority, 5, soon))
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, srv.port))
        stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5)
        time.sleep(max(0.0, (soon - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.3)
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                with pytest.raises(grpc.RpcError) as exc:
                    stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5)
                assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        srv.stop()
    lines = [r.getMessage() for r in caplog.records if "revocation list" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert "crl.pem" in lines[0]
