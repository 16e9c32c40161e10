"""A phone that goes away while capture is starting must not leave capture running with no visit.

StartVisit runs the runner's ``start`` (opening the microphone) in a worker thread. If the
call is cancelled meanwhile (the phone's deadline passes, its Wi-Fi drops), gRPC cancels the
handler, but the thread carries on and turns capture on. Before the fix the lifecycle never
recorded that visit: nothing could stop it (StopVisit, the admin stop, long silence and the
maximum duration all found "no visit"), the LED stayed lit and the room listened until the
daemon restarted. Real gRPC over mutual TLS on loopback; the runner is the scripted one with
a start as slow as a sluggish audio device.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from edge_agent.crypto import seal
from edge_agent.device.lifecycle import VisitContext
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import Pki, RecordingRunner, ServerThread, raw_channel, server_config


class SlowStartRunner(RecordingRunner):
    def start(self, ctx: VisitContext) -> None:
        time.sleep(1.0)  # an audio device that takes a second to open
        super().start(ctx)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def test_a_start_cancelled_mid_way_leaves_no_capture_running(pki: Pki, tmp_path: Path) -> None:
    runner = SlowStartRunner()
    srv = ServerThread(server_config(pki, tmp_path / "data"), runner=runner).start()
    try:
        _priv, pub = seal.generate_keypair()
        with raw_channel(pki.clinician_a, srv.port) as channel:
            stub = agent_pb2_grpc.EdgeAgentStub(channel)
            req = agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, room_code=srv.room_code(),
                                              voiceprint_values=[0.25] * 32)
            with pytest.raises(grpc.RpcError) as cut:
                stub.StartVisit(req, timeout=0.3)
            assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            time.sleep(1.5)  # the runner's start has finished by now
            assert srv.server is not None
            visits = srv.server.visits
            assert runner.holds_visit_state == visits.active, (
                "capture is running but the device has no visit to stop (orphaned by the cancelled start)")
            assert not runner.holds_visit_state
            # the clinician's voiceprint from the cancelled start was not kept either
            vp = runner.contexts[-1].voiceprint
            assert vp is None or not vp.any()
            # a phone that learnt the id meanwhile (own_visit_id) is told no report comes for it, and why
            ended = stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=10).ended_without_report
            assert [(e.visit_id, e.reason) for e in ended] == [(runner.contexts[-1].visit_id, agent_pb2.NO_REPORT_DISCARDED)]
            # and the room is usable: the next start works and can be stopped
            started = stub.StartVisit(req, timeout=10)
            stopped = stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=started.visit_id), timeout=10)
            assert stopped.visit_id == started.visit_id
            assert not runner.holds_visit_state and not visits.active
    finally:
        srv.stop()


class SlowStopRunner(RecordingRunner):
    def stop(self, quotes: bool = False):  # type: ignore[no-untyped-def]
        time.sleep(1.0)  # a long visit's last segments still being decoded
        return super().stop(quotes)


def test_a_stop_cancelled_mid_way_still_delivers_the_report(pki: Pki, tmp_path: Path) -> None:
    """The phone's StopVisit deadline passes while the report is built: the visit still ends, and its report is
    sealed, queued and delivered on the next feedback stream instead of being thrown away."""
    from edge_agent.proto.edge_agent.v1 import feedback_pb2

    runner = SlowStopRunner()
    srv = ServerThread(server_config(pki, tmp_path / "data"), runner=runner).start()
    try:
        priv, pub = seal.generate_keypair()
        with raw_channel(pki.clinician_a, srv.port) as channel:
            stub = agent_pb2_grpc.EdgeAgentStub(channel)
            started = stub.StartVisit(agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, room_code=srv.room_code()),
                                      timeout=10)
            with pytest.raises(grpc.RpcError) as cut:
                stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=started.visit_id), timeout=0.3)
            assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            time.sleep(1.5)
            assert srv.server is not None and not srv.server.visits.active and not runner.holds_visit_state
            items = list(stub.StreamFeedback(agent_pb2.StreamFeedbackRequest(cursor=0), timeout=10))
            assert len(items) == 1, "the report of a visit whose stop call was cut off was lost"
            fb = feedback_pb2.Feedback.FromString(seal.open_envelope(seal.from_proto(items[0].envelope), priv))
            assert fb.visit_id == started.visit_id
    finally:
        srv.stop()
