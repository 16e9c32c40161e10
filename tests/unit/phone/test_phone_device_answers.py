"""What the Python phone says about the room device's answers, on a real device on loopback with real mutual TLS:

* a visit that ended with no report is said so in one line (why), and the phone stops waiting for it;
* a device fault (INTERNAL) is not "refused", in the web app's words (one table: edge_agent.phone.answers);
* a start whose capture could not begin says what happened and what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.device.lifecycle import VisitContext, VisitError
from edge_agent.errors import EdgeAgentError
from edge_agent.phone import commands as cli
from edge_agent.phone.keys import ClientError, load_key_file
from tests.delivery_fixtures import Pki, RecordingRunner, ServerThread, pki, server_config  # noqa: F401


class FaultyRunner(RecordingRunner):
    """The scripted runner, made to fail at the next start (``start_fault``) or stop (``stop_fault``)."""

    start_fault: EdgeAgentError | None = None
    stop_fault: Exception | None = None

    def start(self, ctx: VisitContext) -> None:
        if self.start_fault is not None:
            fault, self.start_fault = self.start_fault, None
            raise fault
        super().start(ctx)

    def stop(self, quotes: bool = False):  # type: ignore[no-untyped-def]
        if self.stop_fault is not None:
            fault, self.stop_fault = self.stop_fault, None
            super().stop(quotes)
            raise fault
        return super().stop(quotes)


@pytest.fixture
def device(pki: Pki, tmp_path: Path) -> Iterator[ServerThread]:
    srv = ServerThread(server_config(pki, tmp_path / "data"), runner=FaultyRunner()).start()
    yield srv
    srv.stop()


def _start(pki: Pki, srv: ServerThread, keys: Path) -> str:
    return str(cli.phone_start(keys, f"127.0.0.1:{srv.port}", srv.target.fingerprint, room="Room 4", room_code=srv.room_code())["visit_id"])


def _system_stop(srv: ServerThread) -> None:
    """The device ends the visit itself (time limit, long silence, the room button)."""
    assert srv.server is not None and srv.server.visits is not None
    try:
        srv.call(srv.server.visits.stop(None, None, "max duration"))
    except VisitError:
        pass  # ended and wiped, no report


def test_a_visit_ended_with_no_report_is_said_once_and_not_waited_for(pki: Pki, device: ServerThread, tmp_path: Path) -> None:
    srv, keys = device, tmp_path / "a.json"
    where = f"127.0.0.1:{srv.port}"
    cli.phone_init(pki.clinician_a, keys)
    runner = srv.runner
    assert isinstance(runner, FaultyRunner)

    # the pipeline fails when the device stops the visit on its own: the phone's stop is told why no report comes
    vid = _start(pki, srv, keys)
    runner.stop_fault = RuntimeError("pipeline fault")
    _system_stop(srv)
    with pytest.raises(ClientError) as told:
        cli.phone_stop(keys, where, srv.target.fingerprint, room="Room 4")
    assert told.value.message == "No report for this visit: the room device failed while building it; tell IT.", told.value.message
    assert vid not in load_key_file(keys).visits and not load_key_file(keys).current_visit  # not waited for any more

    # capture failed before any speech (the runner's own one-line refusal at stop): `phone feedback` says so once
    vid = _start(pki, srv, keys)
    runner.stop_fault = EdgeAgentError("the microphone was lost and did not come back")
    _system_stop(srv)
    lines: list[str] = []
    assert cli.phone_feedback(keys, where, srv.target.fingerprint, emit=lines.append) == 0
    assert lines == [f"No report for this visit: capture failed before any speech was heard (the room microphone stopped); "
                     f"check it is plugged in, or ask IT. (visit {vid})"], lines
    lines.clear()
    cli.phone_feedback(keys, where, srv.target.fingerprint, emit=lines.append)
    assert lines == ["No new feedback."], lines  # said once

    # a follower is woken: the device ends the followed stream and the phone reads why
    vid = _start(pki, srv, keys)
    heard: list[str] = []
    from edge_agent.phone import client as phone

    follower = threading.Thread(target=lambda: phone.feedback(keys, srv.target, follow=True, on_no_report=lambda v, line: heard.append(v),
                                                             timeout=30), daemon=True)
    follower.start()
    time.sleep(1.0)  # the stream is open and waiting
    runner.stop_fault = RuntimeError("pipeline fault")
    _system_stop(srv)
    follower.join(20)
    assert not follower.is_alive(), "the followed stream was not ended by a visit with no report"
    assert heard == [], heard  # the stream read DeviceInfo before the visit ended: told at the next call
    lines.clear()
    cli.phone_feedback(keys, where, srv.target.fingerprint, emit=lines.append)
    assert lines and lines[0].startswith("No report for this visit: the room device failed") and vid in lines[0], lines


def test_a_fault_at_the_phones_own_stop_is_not_a_refusal(pki: Pki, device: ServerThread, tmp_path: Path) -> None:
    srv, keys = device, tmp_path / "a.json"
    cli.phone_init(pki.clinician_a, keys)
    assert isinstance(srv.runner, FaultyRunner)
    vid = _start(pki, srv, keys)
    srv.runner.stop_fault = RuntimeError("pipeline fault")
    with pytest.raises(ClientError) as told:
        cli.phone_stop(keys, f"127.0.0.1:{srv.port}", srv.target.fingerprint, room="Room 4")
    line = told.value.message
    assert line.startswith("Fault on the room device: the report could not be built"), line  # not "device refused:"
    assert "refused" not in line and "\n" not in line, line
    assert line.endswith("No report for this visit: the room device failed while building it; tell IT."), line
    assert vid not in load_key_file(keys).visits


@pytest.mark.parametrize(("why", "advice"), [
    ("the room microphone is not connected; check its cable is plugged in, or call IT", ""),
    ("cannot open the audio input", "; check the room microphone is plugged in and start again, or ask IT"),
])
def test_capture_that_could_not_start_says_what_to_do(pki: Pki, device: ServerThread, tmp_path: Path, why: str, advice: str) -> None:
    srv, keys = device, tmp_path / "a.json"
    cli.phone_init(pki.clinician_a, keys)
    assert isinstance(srv.runner, FaultyRunner)
    srv.runner.start_fault = EdgeAgentError(f"IT's line for {why}", clinician=why)
    with pytest.raises(ClientError) as told:
        _start(pki, srv, keys)
    assert told.value.message == f"Capture could not start, so nothing is being recorded: {why}{advice}.", told.value.message


def test_a_button_press_whose_capture_cannot_start_is_said_to_the_claimer(tmp_path: Path) -> None:
    """`phone claim` follows its claim: a press whose capture could not start said nothing, then "expired" once the
    window had passed, as if nobody had pressed. The device now hands the claimer the press's line; the claim holds,
    so a press once the microphone is back starts the visit."""
    from edge_agent.audio.mic_source import MIC_MISSING
    from tests.button_device import button_device

    runner = FaultyRunner()
    runner.start_fault = EdgeAgentError("no input device matches audio.device", clinician=MIC_MISSING)
    lines: list[str] = []
    with button_device(tmp_path, window_s=60, runner=runner) as dev:
        result: dict[str, object] = {}
        where = f"{dev.target.host}:{dev.target.port}"
        waiter = threading.Thread(target=lambda: result.update(cli.phone_claim(
            dev.pki.keys_a, where, dev.target.fingerprint, room="Room 4", poll_s=0.2, emit=lines.append)), daemon=True)
        waiter.start()
        deadline = time.monotonic() + 10
        while not any(line.startswith("Press the button") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        dev.press()  # capture cannot start: refused
        deadline = time.monotonic() + 10
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lines[1:] == [f"Capture could not start, so nothing is being recorded: {MIC_MISSING}."], lines
        dev.press()  # the microphone is back: the same claim starts the visit
        waiter.join(10)
        assert result.get("state") == "started" and "note" not in result, result


def test_a_stop_of_a_visit_the_device_already_ended_says_so_as_the_web_app(pki: Pki, device: ServerThread, tmp_path: Path) -> None:
    """The device ended the visit with a report (its time limit): `phone stop` said "device refused: no such visit is
    running in this room" and kept it as the current visit, so every later `phone stop` failed the same way."""
    from edge_agent.phone.answers import ALREADY_ENDED

    srv, keys = device, tmp_path / "a.json"
    where = f"127.0.0.1:{srv.port}"
    cli.phone_init(pki.clinician_a, keys)
    vid = _start(pki, srv, keys)
    _system_stop(srv)  # the report is sealed and queued
    with pytest.raises(ClientError) as told:
        cli.phone_stop(keys, where, srv.target.fingerprint, room="Room 4")
    assert told.value.message == ALREADY_ENDED, told.value.message
    assert not load_key_file(keys).current_visit
    with pytest.raises(ClientError, match="no visit started from this phone"):
        cli.phone_stop(keys, where, srv.target.fingerprint, room="Room 4")
    lines: list[str] = []
    assert cli.phone_feedback(keys, where, srv.target.fingerprint, emit=lines.append) == 1 and vid in load_key_file(keys).visits
