"""A StartVisit whose answer is lost (the Wi-Fi drops after the request reached the room device) leaves capture on in
the room. The phone must find out that its visit runs and be able to stop it; no other clinician may.

Real room device on loopback with real mutual TLS; the answer is lost for real by a TCP relay between phone and device
(tests/lossy_link.py) that throws away what the device sends once the request has arrived, then drops the connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edge_agent.phone import client as phone
from edge_agent.phone import commands as cli
from edge_agent.phone.keys import ClientError, load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import Pki, RecordingRunner, ServerThread, pki, raw_channel, server_config  # noqa: F401
from tests.lossy_link import LossyLink, StartHook, lose_next_answer


class HookedRunner(StartHook, RecordingRunner):
    """The scripted runner; ``on_start`` runs while the device is turning capture on (the request has arrived)."""


@pytest.fixture
def device(pki: Pki, tmp_path: Path) -> Iterator[tuple[ServerThread, LossyLink]]:
    srv = ServerThread(server_config(pki, tmp_path / "data"), runner=HookedRunner()).start()
    link = LossyLink(srv.port)
    yield srv, link
    link.close()
    srv.stop()


def _active(srv: ServerThread) -> bool:
    assert srv.server is not None and srv.server.visits is not None
    return srv.server.visits.active


def _lose_next_answer(srv: ServerThread, link: LossyLink) -> None:
    assert isinstance(srv.runner, HookedRunner)
    lose_next_answer(srv.runner, link, lambda: _active(srv))


def test_a_lost_start_answer_is_recovered_and_only_its_clinician_can_stop_it(pki: Pki, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, link = device
    fp = srv.target.fingerprint
    via_link = f"127.0.0.1:{link.port}"
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    cli.phone_init(pki.clinician_a, a)
    cli.phone_init(pki.clinician_b, b)

    _lose_next_answer(srv, link)
    started = cli.phone_start(a, via_link, fp, room="Room 4", room_code=srv.room_code())
    assert link.discarded() > 0  # the device's answer really was lost on the way
    assert _active(srv)  # capture is on in the room
    assert started["recovered"] is True and "IS running" in started["notice"]
    vid = started["visit_id"]
    assert vid == srv.runner.contexts[-1].visit_id  # the visit the device runs, learned after the loss
    assert vid in load_key_file(a).visits  # its report will open on this phone

    # the second clinician learns nothing about it and cannot stop it, by name or without one
    info = phone.device_info(b, srv.target)
    assert info.visit_active and info.own_visit_id == "" and info.own_visit_started_unix_s == 0
    with pytest.raises(ClientError, match="no visit started from this phone"):
        cli.phone_stop(b, f"127.0.0.1:{srv.port}", fp)
    with pytest.raises(ClientError, match="another clinician") as refused:
        cli.phone_stop(b, f"127.0.0.1:{srv.port}", fp, visit_id=vid)
    assert refused.value.code == "PERMISSION_DENIED"
    with pytest.raises(ClientError, match="already running"):  # B's start: busy, and not told whose
        cli.phone_start(b, f"127.0.0.1:{srv.port}", fp, room="Room 4", room_code=srv.room_code())
    assert _active(srv)

    # the first clinician's phone stops it; its report arrives and opens
    stopped = cli.phone_stop(a, via_link, fp)
    assert stopped["visit_id"] == vid and not _active(srv)
    shown: list[str] = []
    assert cli.phone_feedback(a, f"127.0.0.1:{srv.port}", fp, emit=shown.append) == 1
    assert "What to try next time" in shown[0]


def test_stop_after_a_lost_answer_works_even_when_the_phone_recorded_nothing(pki: Pki, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The clinician saw an error and walked on; later 'phone stop' (no visit noted) asks the device and stops it."""
    srv, _link = device
    a = tmp_path / "a.json"
    cli.phone_init(pki.clinician_a, a)
    keys = load_key_file(a)
    with raw_channel(keys, srv.port) as ch:  # a start whose answer the phone never read
        agent_pb2_grpc.EdgeAgentStub(ch).StartVisit(agent_pb2.StartVisitRequest(
            consent=True, sealing_public_key=keys.sealing_public, room_code=srv.room_code()), timeout=30)
    assert _active(srv) and not load_key_file(a).current_visit
    stopped = cli.phone_stop(a, f"127.0.0.1:{srv.port}", srv.target.fingerprint)
    assert stopped["visit_id"] == srv.runner.contexts[-1].visit_id and not _active(srv)


def test_a_stale_stop_never_ends_a_newer_visit(pki: Pki, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A's recovered visit is stopped by the room (admin); B starts the next one; A's late stop must not end B's."""
    srv, link = device
    fp = srv.target.fingerprint
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    cli.phone_init(pki.clinician_a, a)
    cli.phone_init(pki.clinician_b, b)
    _lose_next_answer(srv, link)
    first = cli.phone_start(a, f"127.0.0.1:{link.port}", fp, room="Room 4", room_code=srv.room_code())
    assert first["recovered"]
    with raw_channel(pki.admin, srv.port) as ch:
        assert agent_pb2_grpc.EdgeAgentAdminStub(ch).ForceStopVisit(agent_pb2.ForceStopVisitRequest(), timeout=30).stopped
    second = cli.phone_start(b, f"127.0.0.1:{srv.port}", fp, room="Room 4", room_code=srv.room_code())
    with pytest.raises(ClientError, match="already ended on the room device") as late:
        cli.phone_stop(a, f"127.0.0.1:{srv.port}", fp)
    assert late.value.code == "NOT_FOUND"
    assert _active(srv) and srv.runner.contexts[-1].visit_id == second["visit_id"]  # B's visit runs on


def test_a_deadline_during_the_start_leaves_capture_off_and_says_so(pki: Pki, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The device was slow to turn capture on and the phone gave up: the device undoes the start; the phone says so."""
    srv, _link = device
    a = tmp_path / "a.json"
    cli.phone_init(pki.clinician_a, a)
    runner = srv.runner
    assert isinstance(runner, HookedRunner)
    runner.on_start = lambda: time.sleep(2.0)  # a slow microphone open
    with pytest.raises(ClientError, match="no visit of yours is running: capture is off") as failed:
        phone.start_visit(a, srv.target, room_code=srv.room_code(), timeout=0.5)
    assert failed.value.code == grpc.StatusCode.DEADLINE_EXCEEDED.name
    deadline = time.monotonic() + 20
    while runner.aborted == 0 and time.monotonic() < deadline:  # the start finishes, then is undone
        time.sleep(0.05)
    assert runner.started == 1 and runner.aborted == 1 and not runner.holds_visit_state and not _active(srv)


def test_a_phone_that_vanished_mid_start_hears_its_visit_runs_while_capture_is_still_turning_on(pki: Pki, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The phone left Wi-Fi range right after sending the start; the device never heard (no reset) and is still
    opening the microphone when the phone asks again from elsewhere: it must hear "running", not "capture is off"."""
    srv, link = device
    a = tmp_path / "a.json"
    cli.phone_init(pki.clinician_a, a)
    runner = srv.runner
    assert isinstance(runner, HookedRunner)
    asked = threading.Event()

    def slow_start() -> None:
        link.vanish()
        asked.wait(20)  # the microphone is still being opened when the phone asks
        time.sleep(0.3)

    runner.on_start = slow_start
    started = cli.phone_start(a, f"127.0.0.1:{link.port}", srv.target.fingerprint, room="Room 4", room_code=srv.room_code())
    asked.set()
    assert started["recovered"] is True
    stopped = cli.phone_stop(a, f"127.0.0.1:{srv.port}", srv.target.fingerprint)  # waits for the start, then stops it
    assert stopped["visit_id"] == started["visit_id"] == runner.contexts[-1].visit_id and not _active(srv)
