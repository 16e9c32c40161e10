"""Enrolment audio through the browser endpoint leaves no whole-body copy behind.

The gRPC port copies each enrolment chunk straight into one zeroed, locked region
(docs/security.md "What the device keeps"). The gRPC-Web adapter reads the whole
POST body first; that body is the clinician's voice, framed. This test drives the
real adapter (the method table the endpoint serves, the real EnrollVoice servicer
and a real sign-in over TLS) with a body whose frames the test owns and zeroes,
then reads this process's own memory for a byte string that spans two frames:
only a copy of the whole body can hold it (never one chunk, one protobuf message
or the enrolment region), so any hit is a copy the adapter made and left unzeroed.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from edge_agent.device.web.endpoint import method_table
from edge_agent.device.web.grpcweb import SESSION_HEADER, GrpcWebApp, frame
from edge_agent.proto.edge_agent.v1 import agent_pb2
from tests.delivery_fixtures import Pki
from tests.memory_probe import hits_in_memory
from tests.phone_web_fixtures import Device
from tests.unit.phone.test_phone_web_device import ORIGIN, WebClient, _keys


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def test_web_enrolment_body_is_zeroed_after_the_call(pki: Pki, tmp_path: Path) -> None:
    device = Device.start(pki, tmp_path / "data", ORIGIN)
    try:
        web = WebClient(pki, device.both.web.port)
        assert web.login(*_keys(pki.clinician_a)) == (0, "")
        endpoint = device.both.web
        assert endpoint.sessions is not None
        app = GrpcWebApp(method_table(device.server, endpoint.sessions), (ORIGIN,), endpoint.sessions.peer_for)

        rng = np.random.default_rng(7)
        pcm = np.asarray(rng.standard_normal(16000 * 4) * 3000, dtype="<i2")
        raw = pcm.view(np.uint8)
        step = 32768
        frames = []
        for i in range(0, raw.size, step):
            msg = agent_pb2.EnrollVoiceChunk(sample_rate=16000 if i == 0 else 0, pcm_s16le=raw[i : i + step].tobytes())
            frames.append(frame(msg.SerializeToString()))
            msg.Clear()
        body = bytearray(sum(len(f) for f in frames))
        cut, at = [], 0
        for f in frames:
            body[at : at + len(f)] = f
            at += len(f)
            cut.append(at)
        frames.clear()
        # 32 bytes either side of the first frame boundary: only in a copy of the whole body
        needle = bytes(memoryview(body)[cut[0] - 32 : cut[0] + 32])
        pieces = [bytearray(memoryview(body)[i : i + 10000]) for i in range(0, len(body), 10000)]  # uvicorn hands the body in pieces
        body[:] = bytes(len(body))
        pcm.fill(0)

        sent: list[dict] = []

        async def run() -> None:
            queue = list(pieces)

            async def receive() -> dict:
                if not queue:
                    return {"type": "http.disconnect"}
                piece = queue.pop(0)
                return {"type": "http.request", "body": piece, "more_body": bool(queue)}

            async def send(message: dict) -> None:
                sent.append(message)

            headers = [(b"origin", ORIGIN.encode()), (b"content-type", b"application/grpc-web+proto"),
                       (SESSION_HEADER.encode(), web.token.encode())]
            scope = {"type": "http", "method": "POST", "path": "/edge_agent.v1.EdgeAgent/EnrollVoice",
                     "headers": headers, "client": ("127.0.0.1", 0)}
            await app(scope, receive, send)

        device.call(run())
        trailer = bytes(sent[-1]["body"])
        assert b"grpc-status: 0" in trailer, trailer
        for p in pieces:
            p[:] = bytes(len(p))
        pieces.clear()
        gc.collect()
        hits = hits_in_memory(needle)
        assert not hits, (f"{len(hits)} unzeroed copies of the framed enrolment body left in memory "
                          f"(first at {hits[0]:#x})")
    finally:
        device.stop()


def test_the_memory_probe_sees_a_live_copy() -> None:
    """The probe itself: a copy that is still alive is found (so an empty result means something)."""
    secret = bytearray(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    needle = bytes(memoryview(secret)[100:164])
    try:
        assert hits_in_memory(needle), "the probe cannot read this process's memory"
    finally:
        secret[:] = bytes(len(secret))


def test_no_session_no_body_buffered(pki: Pki, tmp_path: Path) -> None:
    """Without a valid session the device answers UNAUTHENTICATED at once instead of first taking in (and
    holding) a body of up to 2.9 MB: 64 such requests from anyone who can reach the port were ~190 MB."""
    import time

    device = Device.start(pki, tmp_path / "data", ORIGIN)
    try:
        with device.raw_web_tls(pki.authority.cert_pem) as tls:
            head = (f"POST /edge_agent.v1.EdgeAgent/EnrollVoice HTTP/1.1\r\nHost: edge-agent\r\nOrigin: {ORIGIN}\r\n"
                    "Content-Type: application/grpc-web+proto\r\nContent-Length: 2800000\r\n"
                    f"{SESSION_HEADER}: not-a-session\r\n\r\n")
            tls.sendall(head.encode() + b"\x00" * 4096)  # and then nothing more
            tls.settimeout(3)
            got, t0 = b"", time.monotonic()
            try:
                while b"grpc-status: " not in got:
                    piece = tls.recv(4096)
                    if not piece:
                        break
                    got += piece
            except TimeoutError:
                pass
            assert b"grpc-status: 16" in got, f"no answer after {time.monotonic() - t0:.1f} s: the device is waiting for the body"
    finally:
        device.stop()
