"""A phone's voiceprint names the speaker model that made it; a device with another model does not use it.

Real server, real mutual TLS on 127.0.0.1, the reference phone client and raw gRPC requests (old phones).
After a speaker-model update a voiceprint enrolled before it lives in another embedding space: its cosines
mean nothing and would mis-attribute clinician and patient with confidence. The visit must still start
(coaching is not lost), without the voiceprint, and the phone must be told to re-enrol.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_agent.crypto import seal
from edge_agent.device.grpc.service import STALE_VOICEPRINT_NOTICE
from edge_agent.device.ops.metrics import Registry
from edge_agent.phone import client as phone
from edge_agent.phone.commands import phone_start
from edge_agent.phone.keys import load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from edge_agent.speakers.enrol import Voiceprint
from tests.delivery_fixtures import Pki, ServerThread, pki, raw_channel, server_config  # noqa: F401 (pytest fixture)
from tests.doubles.scripted_runner import SpectralVoiceEnroller

DEVICE_MODEL = SpectralVoiceEnroller.model_id
OLDER_MODEL = "spectral-bands-16@test"


@pytest.fixture
def dev(pki: Pki, tmp_path: Path):  # type: ignore[no-untyped-def]
    s = ServerThread(server_config(pki, tmp_path / "data"), metrics=Registry()).start()
    yield s
    s.stop()


def _enrol(pki: Pki, dev: ServerThread) -> list[float]:
    t = np.arange(16000 * 2) / 16000
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()
    return phone.enroll(pki.keys_a, dev.target, pcm, 16000)


def _counts(dev: ServerThread) -> dict[str, float]:
    return {c: dev.metrics.get("edge_agent_start_voiceprints_total", check=c) for c in ("matched", "stale", "unstated")}


def _stop_and_read_report(pki: Pki, dev: ServerThread, visit: str) -> None:
    phone.stop(pki.keys_a, dev.target)
    reports = phone.feedback(pki.keys_a, dev.target)
    assert [r.visit_id for r in reports] == [visit]  # the visit's coaching arrives either way


def test_enrolment_returns_the_model_and_a_matching_voiceprint_is_used(pki: Pki, dev: ServerThread) -> None:
    values = _enrol(pki, dev)
    keys = load_key_file(pki.keys_a)
    assert keys.voiceprint == values and keys.voiceprint_model == DEVICE_MODEL
    assert phone.device_info(pki.keys_a, dev.target).speaker_model == DEVICE_MODEL  # stated before any start, too
    started = phone.start_visit(pki.keys_a, dev.target, room_code=dev.room_code())
    assert started.voiceprint == "used" and started.notice == ""
    ctx = dev.runner.contexts[-1]
    assert ctx.voiceprint is not None and np.allclose(ctx.voiceprint, values, atol=1e-6)
    assert _counts(dev) == {"matched": 1, "stale": 0, "unstated": 0}
    _stop_and_read_report(pki, dev, started.visit_id)


def test_a_voiceprint_of_another_model_is_not_used_the_visit_starts_and_the_phone_is_told(pki: Pki, dev: ServerThread) -> None:
    values = _enrol(pki, dev)
    keys = load_key_file(pki.keys_a)
    keys.voiceprints = {OLDER_MODEL: values}  # enrolled before the device's speaker model was updated
    keys.save()
    # the device states its model, so the phone knows before the start that it holds none for it: said, not sent
    # (tests/unit/phone/test_voiceprints_per_model.py); a device from before that field is told the model and says
    said: list[str] = []
    out = phone_start(pki.keys_a, f"127.0.0.1:{dev.port}", dev.server.fingerprint, "Room 4", room_code=dev.room_code(),  # type: ignore[union-attr]
                      emit=said.append)
    assert out["visit_id"] and out["voiceprint"] == "none" and out["notice"] == phone.OTHER_MODEL_NOTICE and len(said) == 1
    ctx = dev.runner.contexts[-1]
    assert ctx.voiceprint is None and ctx.voiceprint_bytes is None  # the runner never saw it
    assert _counts(dev) == {"matched": 0, "stale": 0, "unstated": 0}
    # the phone keeps it (another room's device may still run the model that made it); enrolling here adds this model
    assert load_key_file(pki.keys_a).voiceprints == {OLDER_MODEL: values}
    _stop_and_read_report(pki, dev, out["visit_id"])

    # sent anyway (a phone that cannot know, a raw client): not used, and the device says so in one line
    stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, dev.port))
    reply = stub.StartVisit(agent_pb2.StartVisitRequest(
        consent=True, sealing_public_key=_pub(), voiceprint_values=values, voiceprint_model=OLDER_MODEL, room_code=dev.room_code(),
    ), timeout=30)
    assert reply.visit_id and reply.voiceprint_use == agent_pb2.VOICEPRINT_STALE and reply.notice == STALE_VOICEPRINT_NOTICE
    assert "older speaker model" in reply.notice and "re-enrol on the phone" in reply.notice and "\n" not in reply.notice
    ctx = dev.runner.contexts[-1]
    assert ctx.voiceprint is None and ctx.voiceprint_bytes is None
    assert _counts(dev) == {"matched": 0, "stale": 1, "unstated": 0}
    assert stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=reply.visit_id), timeout=60).cursor > 0

    # the bytes form too
    vp = Voiceprint(np.full(256, 1 / 16, np.float32), 12.0, 0.9, 10, OLDER_MODEL)
    reply = stub.StartVisit(agent_pb2.StartVisitRequest(
        consent=True, sealing_public_key=_pub(), voiceprint=vp.to_bytes(), voiceprint_model=OLDER_MODEL, room_code=dev.room_code(),
    ), timeout=30)
    assert reply.visit_id and reply.voiceprint_use == agent_pb2.VOICEPRINT_STALE and reply.notice == STALE_VOICEPRINT_NOTICE
    ctx = dev.runner.contexts[-1]
    assert ctx.voiceprint is None and ctx.voiceprint_bytes is None
    assert stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=reply.visit_id), timeout=60).cursor > 0


def test_a_voiceprint_without_a_model_id_is_used_as_before_and_counted(pki: Pki, dev: ServerThread) -> None:
    """Phones from before the id (key files without it, the web app before it stored one): today's behaviour."""
    keys = load_key_file(pki.keys_a)
    keys.voiceprints = {"": [0.25] * 32}
    keys.save()
    started = phone.start_visit(pki.keys_a, dev.target, room_code=dev.room_code())
    assert started.voiceprint == "used unchecked" and started.notice == ""
    ctx = dev.runner.contexts[-1]
    assert ctx.voiceprint is not None and abs(float(ctx.voiceprint[0]) - 0.25) < 1e-6
    assert _counts(dev) == {"matched": 0, "stale": 0, "unstated": 1}
    _stop_and_read_report(pki, dev, started.visit_id)

    # an old phone's request (no field 7 at all) and a start without any voiceprint
    stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, dev.port))
    old = agent_pb2.StartVisitRequest(consent=True, sealing_public_key=_pub(), voiceprint_values=[0.5] * 32, room_code=dev.room_code())
    reply = stub.StartVisit(old, timeout=30)
    assert reply.voiceprint_use == agent_pb2.VOICEPRINT_UNCHECKED and not reply.notice
    assert dev.runner.contexts[-1].voiceprint is not None
    stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=reply.visit_id), timeout=60)
    reply = stub.StartVisit(agent_pb2.StartVisitRequest(consent=True, sealing_public_key=_pub(), room_code=dev.room_code()), timeout=30)
    assert reply.voiceprint_use == agent_pb2.VOICEPRINT_NONE and not reply.notice
    stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=reply.visit_id), timeout=60)
    assert _counts(dev) == {"matched": 0, "stale": 0, "unstated": 2}  # a start without a voiceprint is not counted


def test_the_model_id_is_validated(pki: Pki, dev: ServerThread) -> None:
    stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, dev.port))
    bad = [
        dict(voiceprint_values=[0.5] * 32, voiceprint_model="x" * 129),  # too long
        dict(voiceprint_values=[0.5] * 32, voiceprint_model="speaker ge2e"),  # not the id enrolment returns
        dict(voiceprint_values=[0.5] * 32, voiceprint_model="model\n2"),
        dict(voiceprint_values=[0.5] * 32, voiceprint_model="model\n"),  # a trailing newline too
        dict(voiceprint_model=DEVICE_MODEL),  # a model id without the voiceprint it names
    ]
    for fields in bad:
        with pytest.raises(grpc.RpcError) as exc:
            stub.StartVisit(agent_pb2.StartVisitRequest(consent=True, sealing_public_key=_pub(), room_code=dev.room_code(), **fields),
                            timeout=30)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "voiceprint_model" in exc.value.details(), fields  # type: ignore[attr-defined]
    assert not dev.runner.contexts  # nothing started
    ok = stub.StartVisit(agent_pb2.StartVisitRequest(consent=True, sealing_public_key=_pub(), room_code=dev.room_code(),
                                                     voiceprint_values=[0.5] * 32, voiceprint_model="x" * 128), timeout=30)
    assert ok.voiceprint_use == agent_pb2.VOICEPRINT_STALE


def test_a_real_device_returns_its_speaker_encoder_and_uses_the_voiceprint(pki: Pki, tmp_path: Path,
                                                                          session_with_speakers) -> None:  # type: ignore[no-untyped-def]
    """The real enroller over gRPC: the id the phone gets is the one the CLI checks (`speaker_model_id()`), of the
    encoder the visits attribute with, and a start with it uses the voiceprint."""
    import soundfile as sf

    from edge_agent.data import bundled
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.visit import PipelineEnroller
    from edge_agent.speakers.encoder import speaker_model_id
    from tests.delivery_fixtures import RecordingRunner

    runner = RecordingRunner()
    enroller = PipelineEnroller(session_with_speakers)
    assert enroller.model_id == speaker_model_id() == session_with_speakers.speakers.encoder.model_id
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), runner, enroller)
    background = BackgroundServer(server)
    background.start()
    try:
        target = phone.Target("127.0.0.1", background.port, server.fingerprint)
        audio, rate = sf.read(str(bundled("demo_enrol.flac")), dtype="int16")
        phone.enroll(pki.keys_a, target, audio.tobytes(), rate)
        assert load_key_file(pki.keys_a).voiceprint_model == speaker_model_id()
        assert phone.device_info(pki.keys_a, target).speaker_model == speaker_model_id()  # what the phone picks by
        started = phone.start_visit(pki.keys_a, target, room_code=pki.room_code())
        assert started.voiceprint == "used" and not started.notice and runner.contexts[-1].voiceprint is not None
        phone.stop(pki.keys_a, target)
    finally:
        background.stop()


def _pub() -> bytes:
    return seal.generate_keypair()[1]
