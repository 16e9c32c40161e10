"""Issue 16, unauthenticated exhaustion: handshake timeout, connection caps, LimitNOFILE, stream deadlines and caps.

The fd test runs the real server in a child process at the 1,024 file-descriptor default, as the finding did.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_agent.mtls.server import ServerLimits
from edge_agent.phone import client as phone
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import ROOT, Pki, ServerThread, closed_within, raw_channel, server_config, silent_connection


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def _limited_server(pki: Pki, data: Path, nofile: int = 1024) -> tuple[subprocess.Popen[bytes], int]:
    port_file = data / "port"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.scripted_server", "--bundle", str(pki.device), "--data-dir", str(data),
         "--crl", str(pki.crl), "--room", "Room 4", "--port", "0", "--port-file", str(port_file)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    return proc, int(port_file.read_text())




@pytest.fixture
def room_for_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2500:
        pytest.skip(f"this test needs 2500 file descriptors; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2500), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_silent_connections_do_not_starve_legitimate_calls_issue16(pki: Pki, tmp_path: Path, room_for_fds: None) -> None:
    """1,100 silent TCP connections at the 1,024 fd default made legitimate calls time out."""
    proc, port = _limited_server(pki, tmp_path / "data")
    socks: list[socket.socket] = []
    try:
        for _ in range(1100):
            socks.append(silent_connection(port, "127.0.0.2"))
        time.sleep(1.0)
        target = phone.Target("127.0.0.1", port, None)
        t0 = time.monotonic()
        assert phone.device_info(pki.keys_a, target).room == "Room 4"
        assert time.monotonic() - t0 < 5.0
        # the gate closes every silent connection: the ones over the per-peer cap at once, the rest after 5 s
        closed_at = [closed_within(s, 10.0) for s in socks[-20:]]
        assert max(closed_at) < 1.0
        assert closed_within(socks[0], 10.0) < 8.0
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(20)


def test_silent_and_stalled_handshakes_are_closed_after_about_5_s_issue16(pki: Pki, tmp_path: Path) -> None:
    """No handshake timeout: gRPC's default kept a stalled handshake for 120 s."""
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        silent = silent_connection(srv.port, "127.0.0.3")
        stalled = socket.create_connection(("127.0.0.1", srv.port))
        stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
        t_silent = closed_within(silent, 15.0)
        t_stalled = closed_within(stalled, 15.0)
        assert 3.0 < t_silent < 8.0, t_silent
        assert t_stalled < 8.0, t_stalled
        assert phone.device_info(pki.keys_a, srv.target).room == "Room 4"
    finally:
        srv.stop()


def test_units_raise_the_file_descriptor_limit() -> None:
    for unit in ("edge-agent.service", "edge-agent-aggregator.service"):
        lines = (ROOT / "systemd" / unit).read_text().splitlines()
        values = [ln.split("=", 1)[1] for ln in lines if ln.startswith("LimitNOFILE=")]
        assert len(values) == 1, f"{unit}: one LimitNOFILE (systemd uses the last)"
        assert int(values[0]) >= 3 * ServerLimits().max_connections + 1024, unit


def test_followed_stream_ends_at_its_server_deadline(pki: Pki, tmp_path: Path) -> None:
    limits = ServerLimits(stream_deadline_s=1.5)
    srv = ServerThread(replace(server_config(pki, tmp_path / "data"), tls_limits=limits)).start()
    try:
        t0 = time.monotonic()
        assert phone.feedback(pki.keys_a, srv.target, follow=True) == []  # ends OK; the phone opens it again
        assert 1.0 < time.monotonic() - t0 < 6.0
    finally:
        srv.stop()


def test_idle_enrolment_is_ended_and_frees_the_only_slot_issue16(pki: Pki, tmp_path: Path) -> None:
    """One idle EnrollVoice stream held the only enrolment slot."""
    limits = ServerLimits(client_stream_idle_s=1.0)
    srv = ServerThread(replace(server_config(pki, tmp_path / "data"), tls_limits=limits)).start()
    release = threading.Event()
    try:
        stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_b, srv.port))

        def idle() -> Iterator[agent_pb2.EnrollVoiceChunk]:
            yield agent_pb2.EnrollVoiceChunk(sample_rate=16000, pcm_s16le=bytes(3200))
            release.wait(20)  # then nothing: the slot must not be held

        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as exc:
            stub.EnrollVoice(idle(), timeout=15)
        assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "nothing received" in (exc.value.details() or "")
        assert time.monotonic() - t0 < 5.0
        release.set()
        pcm = (np.sin(np.arange(16000 * 2) / 7.0) * 8000).astype(np.int16).tobytes()
        assert len(phone.enroll(pki.keys_a, srv.target, pcm, 16000)) == 32  # the slot is free again
    finally:
        release.set()
        srv.stop()


def test_streams_are_capped_below_the_rpc_cap(pki: Pki, tmp_path: Path) -> None:
    assert ServerLimits().max_streams < server_config(pki, tmp_path / "x").max_concurrent_rpcs
    limits = ServerLimits(max_streams=2)
    srv = ServerThread(replace(server_config(pki, tmp_path / "data"), tls_limits=limits)).start()
    try:
        streams = []
        for bundle in (pki.clinician_a, pki.clinician_b):
            stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(bundle, srv.port))
            call = stub.StreamFeedback(agent_pb2.StreamFeedbackRequest(follow=True), timeout=20)
            streams.append(call)
        time.sleep(0.5)
        third = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, srv.port)).StreamFeedback(
            agent_pb2.StreamFeedbackRequest(follow=True), timeout=10)
        with pytest.raises(grpc.RpcError) as exc:
            list(third)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "too many open streams" in (exc.value.details() or "")
        assert phone.device_info(pki.keys_a, srv.target).room == "Room 4"  # unary calls still get through
        for call in streams:
            call.cancel()
        time.sleep(0.3)  # let the device see the cancellations before it stops
    finally:
        srv.stop()
