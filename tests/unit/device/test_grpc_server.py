"""Real server, real mutual TLS on 127.0.0.1, real files: lifecycle, authorisation, validation."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_agent.crypto import ca
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import Pki, ServerThread, pki, raw_channel, server_config, srv  # noqa: F401 (pytest fixtures)


def _code(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    exc = excinfo.value
    if isinstance(exc, ClientError):
        return exc.code
    return exc.code().name  # type: ignore[attr-defined]


def _stub(bundle: Path, port: int) -> agent_pb2_grpc.EdgeAgentStub:
    return agent_pb2_grpc.EdgeAgentStub(raw_channel(bundle, port))


def test_full_visit_phone_decrypts_and_outbox_is_ciphertext(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:
    keys = load_key_file(pki.keys_a)
    keys.voiceprints = {"": [0.25] * 32}  # model not known (as before phones kept it): used unchecked
    keys.save()
    info = phone.device_info(pki.keys_a, srv.target)
    assert info.room == "Room 4" and not info.visit_active
    visit = phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
    assert phone.device_info(pki.keys_a, srv.target).visit_active
    ctx = srv.runner.contexts[-1]
    assert ctx.voiceprint is not None and abs(float(ctx.voiceprint[0]) - 0.25) < 1e-6
    vp_array = ctx.voiceprint
    stopped = phone.stop(pki.keys_a, srv.target)
    assert stopped.visit_id == visit and stopped.cursor > 0
    # Per-visit state is wiped at stop: runner state gone, voiceprint zeroed in place.
    assert not srv.runner.holds_visit_state and ctx.voiceprint is None and not vp_array.any()
    # The outbox holds ciphertext only.
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir())
    for plain in (b"Any fever?", b"interruptions", b"talk_share", b"let the patient finish"):
        assert plain not in stored
    reports = phone.feedback(pki.keys_a, srv.target)
    assert len(reports) == 1 and reports[0].visit_id == visit
    text = reports[0].render()
    assert "Interruptions: 1" in text and "Try:" in text
    assert "Any fever?" not in text and "You said" not in text  # feedback.quotes is off by default: no verbatim words
    # Acknowledged: deleted from the device.
    assert phone.feedback(pki.keys_a, srv.target) == []
    assert srv.server is not None and srv.server.outbox is not None and srv.server.outbox.stats() == (0, 0)


def test_second_start_is_refused_with_reason(pki: Pki, srv: ServerThread) -> None:
    phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
    with pytest.raises(ClientError, match="already running") as exc:
        phone.start(pki.keys_b, srv.target, room_code=srv.room_code())
    assert _code(exc) == "FAILED_PRECONDITION"
    phone.stop(pki.keys_a, srv.target)


def test_clinician_isolation(pki: Pki, srv: ServerThread) -> None:
    visit = phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
    with pytest.raises(ClientError) as exc:
        phone.stop(pki.keys_b, srv.target, visit_id=visit)
    assert _code(exc) == "PERMISSION_DENIED"
    stopped = phone.stop(pki.keys_a, srv.target)
    # B sees nothing of A's and cannot delete A's item by id.
    assert phone.feedback(pki.keys_b, srv.target) == []
    stub_b = _stub(pki.clinician_b, srv.port)
    assert stub_b.Ack(agent_pb2.AckRequest(ids=[stopped.cursor])).deleted == 0
    assert [r.item_id for r in phone.feedback(pki.keys_a, srv.target)] == [stopped.cursor]


def test_wrong_ca_is_refused_both_ways(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:
    other = ca.init_ca(tmp_path / "other_ca")
    ca.issue_clinician(other, tmp_path / "rogue.pem")
    with pytest.raises(grpc.RpcError) as exc:
        _stub(tmp_path / "rogue.pem", srv.port).GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5)
    assert _code(exc) == "UNAVAILABLE"  # the TLS handshake fails; no handler ever runs
    # A phone of this site refuses a device from another CA, and a device with the wrong fingerprint.
    with pytest.raises(ClientError, match="fingerprint"):
        phone.device_info(pki.keys_a, phone.Target("127.0.0.1", srv.port, "00" * 32))


class _SwappingProxy:
    """A TCP relay that sends its first connection to one port and every later one to another:
    a device of the same site CA swapped in between the phone's certificate check and its gRPC call."""

    def __init__(self, first_port: int, then_port: int) -> None:
        import socket

        self._ports = [first_port, then_port]
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            port = self._ports[min(self.connections, 1)]
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: object, dst: object) -> None:
        try:
            while data := src.recv(65536):  # type: ignore[attr-defined]
                dst.sendall(data)  # type: ignore[attr-defined]
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(2)  # type: ignore[attr-defined]
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


def test_channel_is_pinned_to_the_verified_device_certificate(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:
    ca.issue_device(pki.authority, "Room 5", tmp_path / "room5.pem", ips=("127.0.0.1",))
    room5 = ServerThread(replace(server_config(pki, tmp_path / "data5"), bundle=tmp_path / "room5.pem", room="Room 5")).start()
    try:
        # Control: through a relay that does not swap, the phone works.
        honest = _SwappingProxy(srv.port, srv.port)
        assert phone.device_info(pki.keys_a, phone.Target("127.0.0.1", honest.port, srv.server.fingerprint)).room == "Room 4"
        honest.close()
        # Room 4 answers the certificate check, room 5 (same CA, valid name) the gRPC call: refused.
        proxy = _SwappingProxy(srv.port, room5.port)
        with pytest.raises(ClientError) as exc:
            phone.device_info(pki.keys_a, phone.Target("127.0.0.1", proxy.port, srv.server.fingerprint))
        assert _code(exc) == "UNAVAILABLE"
        assert proxy.connections >= 2  # the check went to room 4, the refused call to room 5
        proxy.close()
    finally:
        room5.stop()


def test_expired_certificate_is_refused(pki: Pki, srv: ServerThread) -> None:
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    keys = pki.issue_clinician_keys("expired", valid_from=old, days=365)
    with pytest.raises(grpc.RpcError) as exc:
        agent_pb2_grpc.EdgeAgentStub(raw_channel(load_key_file(keys), srv.port)).GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5)
    assert _code(exc) == "UNAVAILABLE"


def test_revoked_certificate_is_refused_without_restart(pki: Pki, srv: ServerThread) -> None:
    keys = pki.issue_clinician_keys("soon_revoked")
    assert phone.device_info(keys, srv.target).room == "Room 4"
    ca.revoke(pki.authority, load_key_file(keys).pseudonym)
    time.sleep(1.1)  # the server re-reads a changed CRL at most once a second
    with pytest.raises(ClientError, match="revoked") as exc:
        phone.device_info(keys, srv.target)
    assert _code(exc) == "UNAUTHENTICATED"
    assert phone.device_info(pki.keys_a, srv.target).room == "Room 4"


def test_admin_operations_need_admin_certificate(pki: Pki, srv: ServerThread) -> None:
    admin = agent_pb2_grpc.EdgeAgentAdminStub(raw_channel(pki.admin, srv.port))
    as_clinician = agent_pb2_grpc.EdgeAgentAdminStub(raw_channel(pki.clinician_a, srv.port))
    with pytest.raises(grpc.RpcError) as exc:
        as_clinician.GetStatus(agent_pb2.GetStatusRequest())
    assert _code(exc) == "PERMISSION_DENIED"
    with pytest.raises(grpc.RpcError) as exc:
        _stub(pki.admin, srv.port).StartVisit(agent_pb2.StartVisitRequest(consent=True, sealing_public_key=os.urandom(32)))
    assert _code(exc) == "PERMISSION_DENIED"
    phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
    status = admin.GetStatus(agent_pb2.GetStatusRequest())
    assert status.visit_active and status.room == "Room 4"
    pseudonym = load_key_file(pki.keys_a).pseudonym
    assert pseudonym.encode() not in status.SerializeToString()
    assert admin.ForceStopVisit(agent_pb2.ForceStopVisitRequest()).stopped
    # The report of a force-stopped visit still reaches its clinician, and only them.
    assert len(phone.feedback(pki.keys_a, srv.target)) == 1
    assert admin.GetStatus(agent_pb2.GetStatusRequest()).outbox_items == 0


def test_field_validation_codes(pki: Pki, srv: ServerThread) -> None:
    stub = _stub(pki.clinician_a, srv.port)
    pub = load_key_file(pki.keys_a).sealing_public
    bad_requests = [
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=False, sealing_public_key=pub), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=b"short"), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=bytes(32)), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, max_duration_s=5), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, voiceprint_values=[float("nan")]), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, voiceprint=b"x", voiceprint_values=[1.0]), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, voiceprint=os.urandom(20_000)), "INVALID_ARGUMENT"),
        # a damaged voiceprint (a phone's storage, a truncated copy) is the request's fault, not a capture failure
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, voiceprint=b"junk!"), "INVALID_ARGUMENT"),
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, voiceprint=bytes(1039)), "INVALID_ARGUMENT"),
        (stub.StopVisit, agent_pb2.StopVisitRequest(visit_id=""), "INVALID_ARGUMENT"),
        (stub.StopVisit, agent_pb2.StopVisitRequest(visit_id="v-../../etc"), "INVALID_ARGUMENT"),
        (stub.StopVisit, agent_pb2.StopVisitRequest(visit_id="v-nosuchvisit"), "NOT_FOUND"),
        (stub.Ack, agent_pb2.AckRequest(ids=[]), "INVALID_ARGUMENT"),
        (stub.Ack, agent_pb2.AckRequest(ids=[0]), "INVALID_ARGUMENT"),
        (stub.Ack, agent_pb2.AckRequest(ids=list(range(1, 1002))), "INVALID_ARGUMENT"),
        # Over the 128 KiB receive limit: refused by gRPC before any handler allocates it.
        (stub.StartVisit, agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, voiceprint=os.urandom(200_000)), "RESOURCE_EXHAUSTED"),
    ]
    for method, request, want in bad_requests:
        with pytest.raises(grpc.RpcError) as exc:
            method(request, timeout=10)
        assert _code(exc) == want, (request, exc.value.details())  # type: ignore[attr-defined]
        assert exc.value.details()  # type: ignore[attr-defined]  # a message, not an empty status
    assert stub.Ack(agent_pb2.AckRequest(ids=[2**64 - 1])).deleted == 0
    health = health_pb2_grpc.HealthStub(raw_channel(pki.clinician_a, srv.port))
    assert health.Check(health_pb2.HealthCheckRequest(service="edge_agent.v1.EdgeAgent")).status == health_pb2.HealthCheckResponse.SERVING


def test_enrolment_returns_voiceprint_and_validates(pki: Pki, srv: ServerThread) -> None:
    import numpy as np

    t = np.arange(16000 * 2) / 16000
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()
    vp = phone.enroll(pki.keys_a, srv.target, pcm, 16000)
    assert len(vp) == 32 and abs(sum(v * v for v in vp) - 1.0) < 1e-6
    assert load_key_file(pki.keys_a).voiceprint == vp
    stub = _stub(pki.clinician_a, srv.port)
    cases = [
        [agent_pb2.EnrollVoiceChunk(sample_rate=16000, pcm_s16le=pcm[:1000])],  # too short
        [agent_pb2.EnrollVoiceChunk(sample_rate=100, pcm_s16le=pcm)],  # bad rate
        [],  # nothing
        [agent_pb2.EnrollVoiceChunk(sample_rate=16000, pcm_s16le=pcm[:40000]), agent_pb2.EnrollVoiceChunk(sample_rate=8000, pcm_s16le=pcm[:10])],
    ]
    for chunks in cases:
        with pytest.raises(grpc.RpcError) as exc:
            stub.EnrollVoice(iter(chunks), timeout=10)
        assert _code(exc) == "INVALID_ARGUMENT"
    too_long = (agent_pb2.EnrollVoiceChunk(sample_rate=8000, pcm_s16le=b"\0" * 60000) for _ in range(20))
    with pytest.raises(grpc.RpcError) as exc:
        stub.EnrollVoice(too_long, timeout=10)
    assert _code(exc) == "INVALID_ARGUMENT"


def test_automatic_stops_queue_the_report(pki: Pki, tmp_path: Path) -> None:
    s = ServerThread(server_config(pki, tmp_path / "data", default_max_duration_s=1)).start()
    try:
        phone.start(pki.keys_a, s.target, room_code=s.room_code())  # 0 = device default (1 s here)
        time.sleep(1.6)
        assert not phone.device_info(pki.keys_a, s.target).visit_active
        assert s.server is not None and s.server.visits is not None and s.server.visits.last_stop is not None
        assert s.server.visits.last_stop.reason == "max duration"
        phone.start(pki.keys_b, s.target, room_code=s.room_code())
        s.runner.contexts[-1].request_stop("long silence")  # as the pipeline would, from its thread
        time.sleep(0.5)
        assert s.server.visits.last_stop.reason == "long silence"
        assert len(phone.feedback(pki.keys_a, s.target)) == 1
        assert len(phone.feedback(pki.keys_b, s.target)) == 1
    finally:
        s.stop()


def test_resume_from_cursor_exactly_once(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:
    keys = pki.issue_clinician_keys("resumer")
    visits = []
    for _ in range(5):
        visits.append(phone.start(keys, srv.target, room_code=srv.room_code()))
        phone.stop(keys, srv.target)
    first = phone.feedback(keys, srv.target, max_reports=2, ack=False)  # stream dropped after 2
    rest = phone.feedback(keys, srv.target, ack=False)
    got = [r.visit_id for r in first + rest]
    assert got == visits  # all, in order, none twice
    assert phone.feedback(keys, srv.target, ack=False) == []


def test_follow_stream_delivers_promptly(pki: Pki, srv: ServerThread) -> None:
    keys = pki.issue_clinician_keys("follower")
    arrived: list[float] = []
    done = threading.Event()

    def follow() -> None:
        phone.feedback(keys, srv.target, follow=True, max_reports=1, on_report=lambda r: arrived.append(time.monotonic()))
        done.set()

    th = threading.Thread(target=follow, daemon=True)
    th.start()
    phone.start(keys, srv.target, room_code=srv.room_code())
    time.sleep(0.3)
    t0 = time.monotonic()
    phone.stop(keys, srv.target)
    assert done.wait(10)
    assert arrived and arrived[0] - t0 < 2.0


def test_outbox_full_at_stop_is_reported_and_retried(pki: Pki, tmp_path: Path) -> None:
    from edge_agent.device.outbox import OutboxConfig

    s = ServerThread(server_config(pki, tmp_path / "data", outbox=OutboxConfig(max_items=1))).start()
    try:
        keys = pki.issue_clinician_keys("full_outbox")
        first = phone.start(keys, s.target, room_code=s.room_code())
        phone.stop(keys, s.target)
        second = phone.start(keys, s.target, room_code=s.room_code())
        with pytest.raises(ClientError, match="outbox full") as exc:
            phone.stop(keys, s.target, visit_id=second)
        assert _code(exc) == "RESOURCE_EXHAUSTED"
        assert not phone.device_info(keys, s.target).visit_active  # the room is free, state wiped
        # Once the phone collects (and acks) the first report, the held sealed one is queued (after
        # acks have gone quiet for a moment: acks first) and delivered.
        delivered = [r.visit_id for r in phone.feedback(keys, s.target)]
        deadline = time.monotonic() + 10
        while s.server is not None and s.server.visits is not None and s.server.visits.unqueued and time.monotonic() < deadline:
            time.sleep(0.1)
        delivered += [r.visit_id for r in phone.feedback(keys, s.target)]
        assert delivered == [first, second]
    finally:
        s.stop()


def test_enrolment_the_speaker_model_refuses_is_a_clear_answer_not_internal(pki: Pki, tmp_path: Path, session_with_speakers) -> None:  # type: ignore[no-untyped-def]
    """Silence (a muted phone mic) through the real enroller: the phone hears why, not 'internal error'."""
    import numpy as np

    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.visit import PipelineEnroller
    from tests.delivery_fixtures import RecordingRunner

    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), RecordingRunner(), PipelineEnroller(session_with_speakers))
    background = BackgroundServer(server)
    background.start()
    try:
        target = phone.Target("127.0.0.1", background.port, server.fingerprint)
        with pytest.raises(ClientError) as exc:
            phone.enroll(pki.keys_a, target, np.zeros(16000 * 5, np.int16).tobytes(), 16000)
        assert exc.value.code == "INVALID_ARGUMENT" and "silent" in exc.value.message, exc.value.message
    finally:
        background.stop()
