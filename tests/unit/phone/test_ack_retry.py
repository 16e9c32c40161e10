"""The phone retries acks with back-off and keeps the ones that never got through; the device's Ack is idempotent.

A lost ack used to leave a report the clinician had already read in the outbox for its
14-day retention. Faults here are the device's real answers: its outbox refusing the
delete (RESOURCE_EXHAUSTED, as on a full disk) and the device being gone (UNAVAILABLE).
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.device.outbox import OutboxDiskFullError
from edge_agent.phone import client as phone
from tests.delivery_fixtures import Pki, ServerThread, pki, server_config  # noqa: F401 - fixture

FAST = (0.05, 0.05, 0.05)


def _failing_acks(srv: ServerThread, failures: int) -> list[int]:
    """Make the device's outbox refuse the next ``failures`` deletes; returns the call log."""
    assert srv.server is not None and srv.server.outbox is not None
    box = srv.server.outbox
    real = box.ack
    calls: list[int] = []

    def ack(recipient: str, ids: list[int]) -> int:
        calls.append(len(ids))
        if len(calls) <= failures:
            raise OutboxDiskFullError("disk full writing outbox (test fault)")
        return real(recipient, ids)

    box.ack = ack  # type: ignore[method-assign]
    return calls


def test_ack_is_retried_until_the_device_confirms(pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        keys = pki.issue_clinician_keys("retry")
        vid = phone.start(keys, srv.target, room_code=srv.room_code())
        phone.stop(keys, srv.target, visit_id=vid)
        calls = _failing_acks(srv, failures=2)
        got = phone.feedback(keys, srv.target, ack_retry_delays=FAST)
        assert [r.visit_id for r in got] == [vid]
        assert len(calls) == 3  # two refusals, then the delete
        assert srv.server is not None and srv.server.outbox is not None and srv.server.outbox.stats() == (0, 0)
        assert not json.loads(keys.read_text())["pending_acks"]
    finally:
        srv.stop()


def test_unconfirmed_ack_is_kept_and_sent_first_next_time(pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        keys = pki.issue_clinician_keys("pending")
        vid = phone.start(keys, srv.target, room_code=srv.room_code())
        phone.stop(keys, srv.target, visit_id=vid)
        calls = _failing_acks(srv, failures=100)
        assert [r.visit_id for r in phone.feedback(keys, srv.target, ack_retry_delays=FAST)] == [vid]
        assert len(calls) == len(FAST) + 1
        pending = json.loads(keys.read_text())["pending_acks"]
        assert list(pending.values()) and all(v for v in pending.values())
        assert srv.server is not None and srv.server.outbox is not None
        box = srv.server.outbox
        assert box.stats()[0] == 1  # still on the device
        del box.ack  # the fault clears
        # next collection: the pending ack goes first, nothing is shown twice, the outbox empties
        assert phone.feedback(keys, srv.target) == []
        assert box.stats() == (0, 0)
        assert not json.loads(keys.read_text())["pending_acks"]
    finally:
        srv.stop()


def test_device_ack_is_idempotent(pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
    from tests.delivery_fixtures import raw_channel

    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        keys_path = pki.issue_clinician_keys("idem")
        vid = phone.start(keys_path, srv.target, room_code=srv.room_code())
        cursor = phone.stop(keys_path, srv.target, visit_id=vid).cursor
        from edge_agent.phone.keys import load_key_file

        with raw_channel(load_key_file(keys_path), srv.port) as channel:
            stub = agent_pb2_grpc.EdgeAgentStub(channel)
            assert stub.Ack(agent_pb2.AckRequest(ids=[cursor]), timeout=10).deleted == 1
            assert stub.Ack(agent_pb2.AckRequest(ids=[cursor]), timeout=10).deleted == 0  # a retried ack: OK, nothing to do
            assert stub.Ack(agent_pb2.AckRequest(ids=[cursor, cursor]), timeout=10).deleted == 0
    finally:
        srv.stop()


def test_device_gone_during_ack_keeps_it_pending(pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    """The device stops right after the report is shown: the ack fails UNAVAILABLE and is kept, then sent after restart."""
    from edge_agent.phone.keys import ClientError

    data = tmp_path / "data"
    srv = ServerThread(server_config(pki, data)).start()
    keys = pki.issue_clinician_keys("gone")
    vid = phone.start(keys, srv.target, room_code=srv.room_code())
    phone.stop(keys, srv.target, visit_id=vid)
    shown: list[str] = []

    def stop_device(report: phone.Report) -> None:
        shown.append(report.visit_id)
        srv.stop()

    try:
        phone.feedback(keys, srv.target, on_report=stop_device, ack_retry_delays=FAST)
    except ClientError:
        pass  # the stream may also end UNAVAILABLE: either way the report was shown once
    finally:
        if not shown:
            srv.stop()
    assert shown == [vid]
    assert any(json.loads(keys.read_text())["pending_acks"].values())
    again = ServerThread(server_config(pki, data)).start()
    try:
        assert again.server is not None and again.server.outbox is not None and again.server.outbox.stats()[0] == 1
        assert phone.feedback(keys, again.target) == []  # the pending ack went first; nothing shown twice
        assert again.server.outbox.stats() == (0, 0)
        assert not any(json.loads(keys.read_text())["pending_acks"].values())
    finally:
        again.stop()
