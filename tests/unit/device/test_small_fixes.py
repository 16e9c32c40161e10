"""Issue 16, the smaller findings: each one on a real device on loopback (or the real daemon pieces)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from edge_agent.crypto import ca
from edge_agent.device.ops.logs import configure_logging
from edge_agent.phone import client as phone
from edge_agent.phone.keys import load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import ROOT, Pki, ServerThread, raw_channel, server_config


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def test_outbox_files_hold_no_routing_metadata_after_ack_issue16(pki: Pki, tmp_path: Path) -> None:
    """outbox.db-wal kept the clinician pseudonym and visit ids after an ack."""
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        visits = []
        for _ in range(3):
            visits.append(phone.start(pki.keys_a, srv.target, room_code=srv.room_code()))
            phone.stop(pki.keys_a, srv.target)
        assert len(phone.feedback(pki.keys_a, srv.target)) == 3  # delivered and acked
        raw = b"".join(f.read_bytes() for f in (tmp_path / "data").glob("outbox.db*"))
        assert load_key_file(pki.keys_a).pseudonym.encode() not in raw
        assert not [v for v in visits if v.encode() in raw]
    finally:
        srv.stop()


def test_data_directory_is_private_outside_systemd_issue16(pki: Pki, tmp_path: Path) -> None:
    """The data directory was created 0755 when systemd's StateDirectory did not make it."""
    old = os.umask(0o022)  # a shell's usual umask, not the unit's UMask=0077
    try:
        srv = ServerThread(server_config(pki, tmp_path / "var" / "edge-agent")).start()
        srv.stop()
    finally:
        os.umask(old)
    assert (tmp_path / "var" / "edge-agent").stat().st_mode & 0o777 == 0o700


def test_cursor_beyond_any_id_is_invalid_argument_issue16(pki: Pki, tmp_path: Path) -> None:
    """StreamFeedback(cursor=2^64-1) returned INTERNAL."""
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, srv.port))
        with pytest.raises(grpc.RpcError) as exc:
            list(stub.StreamFeedback(agent_pb2.StreamFeedbackRequest(cursor=2**64 - 1), timeout=10))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cursor" in (exc.value.details() or "")
        assert list(stub.StreamFeedback(agent_pb2.StreamFeedbackRequest(cursor=2**63 - 1), timeout=10)) == []
    finally:
        srv.stop()


def test_journal_carries_no_visit_schedule_issue16(pki: Pki, tmp_path: Path) -> None:
    """Journal lines at visit start and stop gave each room's schedule."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        srv = ServerThread(server_config(pki, tmp_path / "data")).start()
        try:
            phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
            phone.stop(pki.keys_a, srv.target)
            # the audio pipeline's end-of-run summary is written once per visit too
            logging.getLogger("edge_agent.device.pipeline").info("audio run ended: segments=%d", 3)
        finally:
            srv.stop()
        text = stream.getvalue()
        assert "listening on" in text  # the handler works
        for line in ("visit started", "visit stopped", "audio run ended"):
            assert line not in text
        configure_logging("debug", stream=stream)
        logging.getLogger("edge_agent.device.pipeline").info("audio run ended: segments=%d", 3)
        assert "audio run ended" in stream.getvalue()  # someone debugging on purpose still sees it
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)


def test_failed_handshakes_leave_no_line_per_attempt_issue16(pki: Pki, tmp_path: Path) -> None:
    """gRPC core logged one line per failed handshake (journal flooding; a timestamp per attempt)."""
    rogue = ca.init_ca(tmp_path / "rogue")
    ca.issue_clinician(rogue, tmp_path / "rogue.pem")
    port_file = tmp_path / "port"
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.scripted_server", "--bundle", str(pki.device), "--data-dir", str(tmp_path / "data"),
         "--crl", str(pki.crl), "--room", "Room 4", "--port", "0", "--port-file", str(port_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        while not port_file.exists():
            assert proc.poll() is None
            time.sleep(0.05)
        port = int(port_file.read_text())
        bundle = ca.load_bundle(tmp_path / "rogue.pem")
        for _ in range(3):  # trusts the device, presents a certificate of another CA: the device refuses it
            creds = grpc.ssl_channel_credentials(pki.authority.cert_pem, bundle.key_pem, bundle.cert_pem)
            channel = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", ca.DEVICE_TLS_NAME)])
            with pytest.raises(grpc.RpcError):
                agent_pb2_grpc.EdgeAgentStub(channel).GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=3)
            channel.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "andshake" not in err.decode()
