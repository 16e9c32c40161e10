"""Reference phone client: key file, plain CLI functions, concurrent use, readable report."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import pytest

from edge_agent.phone import client as phone
from edge_agent.phone import commands as cli
from edge_agent.phone.keys import ClientError, load_key_file
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from tests.delivery_fixtures import Pki, ServerThread, pki, server_config, srv  # noqa: F401 (pytest fixtures)
from tools.bench.outbox_write import bench_delivery


def test_key_file_is_private_and_checked(pki: Pki, tmp_path: Path) -> None:
    out = cli.phone_init(pki.clinician_a, tmp_path / "k.json")
    path = tmp_path / "k.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert out["pseudonym"].startswith("c-") and len(bytes.fromhex(out["sealing_public_key"])) == 32
    with pytest.raises(ClientError, match="already exists"):
        cli.phone_init(pki.clinician_a, path)
    with pytest.raises(ClientError, match="clinician bundle"):
        cli.phone_init(pki.device, tmp_path / "dev.json")
    path.chmod(0o644)
    with pytest.raises(ClientError, match="chmod 600"):
        load_key_file(path)
    with pytest.raises(ClientError, match="phone init"):
        load_key_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    bad.chmod(0o600)
    with pytest.raises(ClientError, match="damaged"):
        load_key_file(bad)


def test_cli_functions_full_story(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:
    key_file = tmp_path / "phone.json"
    cli.phone_init(pki.clinician_b, key_file)
    device = f"127.0.0.1:{srv.port}"
    fp = srv.target.fingerprint
    with pytest.raises(ClientError, match="--room"):
        cli.phone_start(key_file, device, fp, room_code=srv.room_code())  # a start names the room the clinician is in
    with pytest.raises(ClientError, match="certified for 'Room 4', not 'Room 5'"):
        cli.phone_start(key_file, device, fp, room="Room 5", room_code=srv.room_code())
    started = cli.phone_start(key_file, device, fp, room="Room 4", room_code=srv.room_code())
    stopped = cli.phone_stop(key_file, device, fp)
    assert stopped["visit_id"] == started["visit_id"]
    shown: list[str] = []
    assert cli.phone_feedback(key_file, device, fp, emit=shown.append) == 1
    assert "What to try next time" in shown[0] and "Timing:" in shown[0]
    assert cli.phone_feedback(key_file, device, fp, emit=shown.append) == 0 and shown[-1] == "No new feedback."
    json.dumps([started, stopped])
    with pytest.raises(ClientError, match="HOST:PORT"):
        cli.phone_start(key_file, "localhost", None, room="Room 4")
    with pytest.raises(ClientError, match="cannot reach"):
        cli.phone_start(key_file, "127.0.0.1:1", None, room="Room 4")


def test_follow_while_starting_and_stopping_keeps_key_file_consistent(pki: Pki, srv: ServerThread) -> None:
    keys = pki.issue_clinician_keys("busy_phone")
    got: list[str] = []
    th = threading.Thread(
        target=phone.feedback, args=(keys, srv.target), kwargs={"follow": True, "max_reports": 3, "on_report": lambda r: got.append(r.visit_id)},
        daemon=True,
    )
    th.start()
    visits = []
    for _ in range(3):
        visits.append(phone.start(keys, srv.target, room_code=srv.room_code()))  # saves current visit while the follower saves cursors
        time.sleep(0.05)
        phone.stop(keys, srv.target)
    th.join(20)
    assert got == visits
    assert load_key_file(keys).current_visit == {}


def test_render_report_is_readable() -> None:
    fb = feedback_pb2.Feedback(visit_id="v", duration_s=612, started_unix_s=0, timing={"talk_share": 0.62, "opening_uninterrupted_s": 9})
    fb.label_counts["open_question"] = 2
    fb.observations.add(behaviour="interruptions", at_s=14, moment="you asked about fever before she finished describing the pain",
                        alternative="let the opening statement run; it usually takes under a minute")
    text = phone.render_report(fb)
    assert "10:12 long" in text and "At 0:14: you asked about fever" in text
    assert "Your share of talk: 62%" in text and "open question: 2" in text
    for word in ("score", "grade", "rank"):
        assert word not in text.lower()


def test_every_timing_metric_gets_a_readable_line() -> None:
    from edge_agent.behaviours.timing import Utterance, compute_timing

    said = [(0.0, 2.0, "How can I help you today?", "clinician"), (2.5, 9.0, "My knee hurts.", "patient"),
            (9.5, 11.0, "Does it hurt at night?", "clinician"), (11.8, 12.5, "Yes.", "patient")]
    utts = [Utterance(t0=a, t1=b, text=text, speaker=who) for a, b, text, who in said]
    numbers = {k: float(v) for k, v in compute_timing(utts).to_dict().items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    fb = feedback_pb2.Feedback(visit_id="v", duration_s=13, timing=numbers)
    fb.label_counts["closed_question"] = 1
    fb.label_counts["empathy"] = 0
    text = phone.render_report(fb)
    timing_lines = text.split("Timing:\n")[1].split("\n\n")[0].splitlines()
    assert len(timing_lines) == len(numbers) >= 6
    assert not [line for line in timing_lines if "_" in line or line.strip().split(":")[0].endswith(" s")]
    assert "closed question: 1" in text and "not heard this visit: empathy" in text and "empathy: 0" not in text


def test_bench_delivery_meets_target() -> None:
    result = bench_delivery(visits=5)
    assert result["stop_to_report_on_phone"]["p95_ms"] < 2000


def test_a_visit_with_no_speech_says_so_instead_of_a_blank_report(session_with_speakers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A muted or dead room microphone: the clinician's report used to be the title line and nothing else."""
    import numpy as np
    import soundfile as sf

    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.device.lifecycle import VisitContext
    from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy, file_factory

    silence = tmp_path / "room.wav"
    sf.write(str(silence), np.zeros(16000 * 4, np.float32), 16000)
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), file_factory(silence, realtime=False), VisitPolicy())
    runner.start(VisitContext("v-silent000000000", int(time.time()), 600, request_stop=lambda reason: None))
    assert runner.wait_capture_end(60)
    fb = runner.stop()
    fb.duration_s, fb.started_unix_s = 4.0, int(time.time())
    text = phone.render_report(fb)
    assert "No speech was heard" in text and "microphone" in text, text


def test_follow_when_the_device_restarts_says_so_plainly(pki: Pki, tmp_path: Path) -> None:
    """`feedback --follow` across a device restart (an update): the stream ends with 'the device closed the
    connection', not 'lost the device or it changed since its certificate was checked' (which reads like an attack)."""
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    errors: list[ClientError] = []

    def follow() -> None:
        try:
            phone.feedback(pki.keys_a, srv.target, follow=True, timeout=30)
        except ClientError as exc:
            errors.append(exc)

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(1.5)  # the stream is open and waiting
    srv.stop()
    thread.join(30)
    assert errors, "the follow ended without telling the user"
    message = errors[0].message
    assert "changed since its certificate" not in message and "restart" in message, message
