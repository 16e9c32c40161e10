"""A phone keeps one voiceprint per speaker model, so a clinician works across rooms of two releases.

While IT updates a fleet room by room, a release may change the speaker model: rooms of the old and the new release
run different models, and a voiceprint works only on a device of the model that made it. A phone that kept one
voiceprint was told to re-enrol in every room it walked into, and each enrolment made it stale for the other kind of
room. Now: enrolling in a room adds that room's model beside the others; a start sends the voiceprint of the device's
model (DeviceInfo.speaker_model); a room for whose model the phone has none is said before the start (which still
runs); a device from before the field gets the most recent one, as before; an old key file's single voiceprint is
migrated.

Real devices (EdgeAgentServer with the spectral enroller), real gRPC over mutual TLS on 127.0.0.1, the reference phone.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.device.grpc.service import STALE_VOICEPRINT_NOTICE, EdgeAgentService
from edge_agent.device.ops.metrics import Registry
from edge_agent.phone import client as phone
from edge_agent.phone.commands import phone_start
from edge_agent.phone.keys import MAX_VOICEPRINTS, ClinicianKeys, load_key_file
from tests.delivery_fixtures import Pki, ServerThread, server_config
from tests.doubles.scripted_runner import SpectralVoiceEnroller
from tests.paths import REPO_ROOT

OLD_MODEL = SpectralVoiceEnroller.model_id  # the rooms not updated yet
NEW_MODEL = "spectral-bands-32@new-release"  # the rooms already updated to a release with another speaker model


@pytest.fixture
def pki(tmp_path: Path) -> Pki:  # a fresh phone key file per test (the voiceprints live in it)
    return Pki.make(tmp_path / "pki")


def _device(pki: Pki, data: Path, model: str) -> ServerThread:
    dev = ServerThread(server_config(pki, data), metrics=Registry()).start()
    assert dev.server is not None and dev.server.agent_service is not None
    dev.server.agent_service.speaker_model = model  # what it attributes with, returns at enrolment and states
    return dev


@pytest.fixture
def rooms(pki: Pki, tmp_path: Path) -> Iterator[tuple[ServerThread, ServerThread]]:
    """Two room devices: one still on the old release's speaker model, one on the new release's."""
    old, new = _device(pki, tmp_path / "old", OLD_MODEL), _device(pki, tmp_path / "new", NEW_MODEL)
    yield old, new
    old.stop()
    new.stop()


def _voice(hz: float) -> bytes:
    """2 s of a tone: another pitch gives another voiceprint, so the test can tell which one a start sent."""
    t = np.arange(16000 * 2) / 16000
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16).tobytes()


def _started_with(dev: ServerThread) -> np.ndarray | None:
    return dev.runner.contexts[-1].voiceprint


def _counts(dev: ServerThread) -> dict[str, float]:
    return {c: dev.metrics.get("edge_agent_start_voiceprints_total", check=c) for c in ("matched", "stale", "unstated")}


def _start(pki: Pki, dev: ServerThread) -> tuple[dict[str, str], list[tuple[str, int]]]:
    """``edge-agent phone start`` as the CLI runs it; what it said before the start, with how many visits had started."""
    said: list[tuple[str, int]] = []
    assert dev.server is not None
    out = phone_start(pki.keys_a, f"127.0.0.1:{dev.port}", dev.server.fingerprint, "Room 4", room_code=dev.room_code(),
                      emit=lambda line: said.append((line, len(dev.runner.contexts))))
    return out, said


def test_enrolled_in_both_kinds_of_room_each_start_uses_its_rooms_voiceprint(pki: Pki, rooms: tuple[ServerThread, ServerThread]) -> None:
    old, new = rooms
    assert phone.device_info(pki.keys_a, old.target).speaker_model == OLD_MODEL  # the device states its model
    assert phone.device_info(pki.keys_a, new.target).speaker_model == NEW_MODEL
    in_old = phone.enroll(pki.keys_a, old.target, _voice(220), 16000)
    in_new = phone.enroll(pki.keys_a, new.target, _voice(1000), 16000)
    assert not np.allclose(in_old, in_new, atol=1e-3)
    keys = load_key_file(pki.keys_a)
    assert list(keys.voiceprints) == [OLD_MODEL, NEW_MODEL]  # the second enrolment did not replace the first
    assert keys.voiceprint == in_new and keys.voiceprint_model == NEW_MODEL  # the most recent

    for dev, values in ((old, in_old), (new, in_new), (old, in_old), (new, in_new)):  # walking between the rooms
        out, said = _start(pki, dev)
        assert out["voiceprint"] == "used" and "notice" not in out and said == [], out
        vp = _started_with(dev)
        assert vp is not None and np.allclose(vp, values, atol=1e-6)
        phone.stop(pki.keys_a, dev.target)
    assert _counts(old) == _counts(new) == {"matched": 2, "stale": 0, "unstated": 0}  # nobody was told to re-enrol

    # enrolling again in one kind of room replaces only that model's voiceprint
    again = phone.enroll(pki.keys_a, old.target, _voice(440), 16000)
    keys = load_key_file(pki.keys_a)
    assert keys.voiceprints == {NEW_MODEL: in_new, OLD_MODEL: again}


def test_a_room_of_a_model_the_phone_has_no_voiceprint_for_is_said_before_the_start(pki: Pki, rooms: tuple[ServerThread, ServerThread]) -> None:
    old, new = rooms
    in_old = phone.enroll(pki.keys_a, old.target, _voice(220), 16000)
    out, said = _start(pki, new)
    # said once, before the device was asked to start (no visit had started when the line came), in one line
    assert said == [(phone.OTHER_MODEL_NOTICE[0].upper() + phone.OTHER_MODEL_NOTICE[1:] + ".", 0)], said
    assert "enrol here" in said[0][0] and "can start without it" in said[0][0] and "\n" not in said[0][0]
    # and the visit started, without a voiceprint: none was sent, so the device had none to judge stale
    assert out["visit_id"] and out["voiceprint"] == "none" and out["notice"] == phone.OTHER_MODEL_NOTICE
    assert _started_with(new) is None and new.runner.contexts[-1].voiceprint_bytes is None
    assert _counts(new) == {"matched": 0, "stale": 0, "unstated": 0}
    phone.stop(pki.keys_a, new.target)
    assert load_key_file(pki.keys_a).voiceprints == {OLD_MODEL: in_old}  # kept for the rooms of its model

    # a phone that never enrolled is not told about voice models
    out, said = _start_b(pki, new)
    assert said == [] and out["voiceprint"] == "none" and "notice" not in out


def _start_b(pki: Pki, dev: ServerThread) -> tuple[dict[str, str], list[str]]:
    said: list[str] = []
    assert dev.server is not None
    out = phone_start(pki.keys_b, f"127.0.0.1:{dev.port}", dev.server.fingerprint, "Room 4", room_code=dev.room_code(),
                      emit=said.append)
    phone.stop(pki.keys_b, dev.target)
    return out, said


@pytest.fixture
def older_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """Devices as the release before DeviceInfo.speaker_model: they check a voiceprint's model at the start, but do
    not state theirs (field 8 absent from the wire)."""
    stating = EdgeAgentService.GetDeviceInfo

    async def without_field(self: EdgeAgentService, request, context):  # type: ignore[no-untyped-def]
        info = await stating(self, request, context)
        info.ClearField("speaker_model")
        return info

    monkeypatch.setattr(EdgeAgentService, "GetDeviceInfo", without_field)


def test_a_device_that_does_not_state_its_model_gets_the_most_recent_voiceprint(
        pki: Pki, older_release: None, rooms: tuple[ServerThread, ServerThread]) -> None:
    old, new = rooms
    assert phone.device_info(pki.keys_a, old.target).speaker_model == ""
    in_old = phone.enroll(pki.keys_a, old.target, _voice(220), 16000)
    in_new = phone.enroll(pki.keys_a, new.target, _voice(1000), 16000)  # the most recent
    out, said = _start(pki, new)
    assert out["voiceprint"] == "used" and said == []
    assert np.allclose(_started_with(new), in_new, atol=1e-6)  # type: ignore[arg-type]
    phone.stop(pki.keys_a, new.target)
    # as before this change: the phone cannot know, the device does not use another model's voiceprint and says so
    out, said = _start(pki, old)
    assert said == [] and out["voiceprint"] == "not used: re-enrol" and out["notice"] == STALE_VOICEPRINT_NOTICE
    assert _started_with(old) is None
    phone.stop(pki.keys_a, old.target)
    assert load_key_file(pki.keys_a).voiceprints == {OLD_MODEL: in_old, NEW_MODEL: in_new}  # neither dropped


def _legacy_key_file(pki: Pki, values: list[float], model: str | None) -> None:
    """The key file as a phone from before wrote it: one voiceprint (and its model, once phones kept it)."""
    data = json.loads(pki.keys_a.read_text())
    data.pop("voiceprints")
    data["voiceprint"] = values
    if model is not None:
        data["voiceprint_model"] = model
    pki.keys_a.write_text(json.dumps(data))


def test_a_key_files_single_voiceprint_is_migrated_into_the_map(pki: Pki, rooms: tuple[ServerThread, ServerThread]) -> None:
    old, new = rooms
    values = phone.enroll(pki.keys_a, old.target, _voice(220), 16000)
    _legacy_key_file(pki, values, OLD_MODEL)
    assert load_key_file(pki.keys_a).voiceprints == {OLD_MODEL: values}
    out, said = _start(pki, old)
    assert out["voiceprint"] == "used" and said == [] and np.allclose(_started_with(old), values, atol=1e-6)  # type: ignore[arg-type]
    phone.stop(pki.keys_a, old.target)
    written = json.loads(pki.keys_a.read_text())  # the next save wrote the new form, still 0600
    assert written["voiceprints"] == {OLD_MODEL: values} and "voiceprint" not in written and "voiceprint_model" not in written
    assert stat.S_IMODE(os.stat(pki.keys_a).st_mode) == 0o600
    in_new = phone.enroll(pki.keys_a, new.target, _voice(1000), 16000)
    assert load_key_file(pki.keys_a).voiceprints == {OLD_MODEL: values, NEW_MODEL: in_new}  # the migrated one stays

    # a key file from before phones kept the model: the voiceprint's model is not known, so it is sent without one
    # (the device uses it unchecked, as it always did) until this phone enrols in a room of that model
    _legacy_key_file(pki, [0.25] * 32, None)
    assert load_key_file(pki.keys_a).voiceprints == {"": [0.25] * 32}
    out, said = _start(pki, new)
    assert out["voiceprint"] == "used unchecked" and said == [] and abs(float(_started_with(new)[0]) - 0.25) < 1e-6  # type: ignore[index]
    phone.stop(pki.keys_a, new.target)


def test_the_phone_keeps_at_most_a_few_models_the_oldest_dropped(pki: Pki) -> None:
    keys = load_key_file(pki.keys_a)
    for i in range(MAX_VOICEPRINTS + 1):
        keys.keep_voiceprint(f"model-{i}", [float(i)])
    assert list(keys.voiceprints) == [f"model-{i}" for i in range(1, MAX_VOICEPRINTS + 1)]
    keys.keep_voiceprint("model-1", [9.0])  # enrolling again in a room makes its model the most recent
    keys.keep_voiceprint("model-5", [5.0])
    assert list(keys.voiceprints) == ["model-3", "model-1", "model-5"] and keys.voiceprints["model-1"] == [9.0]
    assert keys.voiceprint_for("model-1") == ("model-1", [9.0]) and keys.voiceprint_for("model-2") is None
    assert keys.voiceprint_for("") == ("model-5", [5.0])  # a device that does not say: the most recent
    keys.save()
    assert load_key_file(pki.keys_a).voiceprints == keys.voiceprints  # the order survives the file


def test_the_web_app_chooses_as_the_python_phone_in_node(tmp_path: Path) -> None:
    """tools/phone-web/test/voiceprint.test.mjs runs voiceprint.js on enrolment sequences and device models whose
    answers (kept, chosen, said before the start) come from ClinicianKeys here: both phones follow one rule."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node missing (apt-get install nodejs)")
    models = ["m-a", "m-b", "m-c", "m-d", ""]
    sequences = [[], ["m-a"], ["m-a", "m-b"], ["m-b", "m-a"], ["m-a", "m-b", "m-a"], ["m-a", "m-b", "m-c", "m-d"],
                 ["m-a", "m-b", "m-c", "m-a", "m-d"], [""], ["", "m-a"], ["m-a", ""], ["", "m-a", "m-b", "m-c"]]
    cases = []
    for seq in sequences:
        for device in models:
            keys = ClinicianKeys(tmp_path / "unused.json", "", "", "", "", "")
            enrolments = [(m, [float(i), 0.5]) for i, m in enumerate(seq)]
            for m, values in enrolments:
                keys.keep_voiceprint(m, values)
            chosen = keys.voiceprint_for(device)
            cases.append({"enrolments": enrolments, "device": device, "kept": [[m, v] for m, v in keys.voiceprints.items()],
                          "chosen": list(chosen) if chosen else None, "said": bool(keys.voiceprints) and chosen is None})
    assert any(c["said"] for c in cases) and any(c["chosen"] for c in cases)
    fixtures = tmp_path / "voiceprints.json"
    notice = phone.OTHER_MODEL_NOTICE[0].upper() + phone.OTHER_MODEL_NOTICE[1:] + "."  # as the app words its lines
    fixtures.write_text(json.dumps({"max": MAX_VOICEPRINTS, "notice": notice, "cases": cases}))
    res = subprocess.run([node, "--test", str(REPO_ROOT / "tools" / "phone-web" / "test" / "voiceprint.test.mjs")],
                         env={**os.environ, "EDGE_AGENT_VOICEPRINT_CASES": str(fixtures)}, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "# fail 0" in res.stdout and "# skipped 0" in res.stdout, res.stdout[-1500:]


def test_a_damaged_voiceprint_map_is_one_line_not_a_traceback(pki: Pki) -> None:
    from edge_agent.phone.keys import ClientError

    for bad in ({"m": ["a"]}, {"m": "x"}, ["x"], {"m": [True]}):
        data = json.loads(pki.keys_a.read_text())
        data["voiceprints"] = bad
        pki.keys_a.write_text(json.dumps(data))
        with pytest.raises(ClientError, match="damaged or from another version"):
            load_key_file(pki.keys_a)
