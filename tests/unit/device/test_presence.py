"""Issue 16, presence before capture: a real device on loopback, real certificates, real phone client.

Findings covered here: remote capture (any clinician could start a visit in any
room; consent was a flag), the room-claim hijack (last claim won), quotes
leaving the device without a site setting.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.device.config import GpioSettings
from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.ops.button_control import ManagerVisitControl
from edge_agent.device.ops.gpio import RoomClaims, open_panel
from edge_agent.device.presence import Presence, RoomCodes, code_for, load_secret
from edge_agent.errors import ConfigError
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, load_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki, ServerThread, raw_channel, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def _wrong(code: str) -> str:
    return str((int(code) + 1) % 10**8).zfill(8)


def test_remote_start_needs_the_room_code_issue16(pki: Pki, tmp_path: Path) -> None:
    """Clinician B, not in Room 4, used to start a visit there and get the doctor's words in B's report."""
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        # no code: refused, and nothing captured
        with pytest.raises(ClientError, match="room code shown on the device") as exc:
            phone.start(pki.keys_b, srv.target)
        assert exc.value.code == "FAILED_PRECONDITION"
        # a wrong code: refused
        with pytest.raises(ClientError, match="room code is wrong") as exc:
            phone.start(pki.keys_b, srv.target, room_code=_wrong(srv.room_code()))
        assert exc.value.code == "PERMISSION_DENIED"
        assert srv.runner.started == 0 and srv.server is not None and srv.server.visits is not None
        assert not srv.server.visits.active
        # the code read off the device in the room (spaces as printed on the label are fine)
        code = srv.room_code()
        visit = phone.start(pki.keys_a, srv.target, room_code=f"{code[:4]} {code[4:]}")
        phone.stop(pki.keys_a, srv.target)
        [report] = phone.feedback(pki.keys_a, srv.target)
        assert report.visit_id == visit
    finally:
        srv.stop()


def test_guessing_room_codes_is_locked_out(pki: Pki, tmp_path: Path) -> None:
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        wrong = _wrong(srv.room_code())
        for _ in range(Presence.MAX_FAILURES_PER_CLINICIAN):
            with pytest.raises(ClientError, match="wrong"):
                phone.start(pki.keys_b, srv.target, room_code=wrong)
        with pytest.raises(ClientError, match="too many wrong room codes") as exc:  # even the right code, for a while
            phone.start(pki.keys_b, srv.target, room_code=srv.room_code())
        assert exc.value.code == "RESOURCE_EXHAUSTED"
        phone.start(pki.keys_a, srv.target, room_code=srv.room_code())  # another clinician is not locked out
        phone.stop(pki.keys_a, srv.target)
    finally:
        srv.stop()


def test_room_codes_rotate_and_the_cli_prints_them(pki: Pki) -> None:
    secret = load_secret(pki.room_code_secret)
    codes = RoomCodes(secret, 60, clock=lambda: 6000.0)
    now = codes.window()
    assert now.code == code_for(secret, 100) and len(now.code) == 8 and now.valid_until == 6060
    assert codes.matches(now.code) and codes.matches(code_for(secret, 99))  # the previous step too
    assert not codes.matches(code_for(secret, 98)) and not codes.matches(code_for(secret, 101))
    out = run_cli("device", "room-code", "--secret", str(pki.room_code_secret), "--step-s", "60", "--json")
    assert out.returncode == 0, out.stderr
    assert RoomCodes(secret, 60).matches(__import__("json").loads(out.stdout)["code"])


def test_room_allow_list(pki: Pki, tmp_path: Path) -> None:
    a = load_key_file(pki.keys_a)
    allow = tmp_path / "room4.allow"
    from cryptography import x509

    from edge_agent.crypto import ca

    person = ca.identity_of(x509.load_pem_x509_certificate(a.cert_pem.encode())).stable_id
    allow.write_text(f"# clinicians of room 4\n{person}\n")
    srv = ServerThread(server_config(pki, tmp_path / "data", allowed_clinicians=allow)).start()
    try:
        with pytest.raises(ClientError, match="allow-list") as exc:
            phone.start(pki.keys_b, srv.target, room_code=srv.room_code())
        assert exc.value.code == "PERMISSION_DENIED"
        phone.start(pki.keys_a, srv.target, room_code=srv.room_code())  # listed by stable subject id
        phone.stop(pki.keys_a, srv.target)
    finally:
        srv.stop()


def test_quotes_leave_the_device_only_if_the_site_allows(pki: Pki, tmp_path: Path) -> None:
    for quotes in (False, True):
        srv = ServerThread(server_config(pki, tmp_path / f"data-{quotes}", quotes=quotes)).start()
        try:
            phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
            phone.stop(pki.keys_a, srv.target)
            [report] = phone.feedback(pki.keys_a, srv.target)
        finally:
            srv.stop()
        fb = report.feedback
        said = [line.text for line in srv.runner._script_source if line.speaker == "clinician"]
        quoted = [ob.clinician_quote for ob in fb.observations if ob.clinician_quote]
        if quotes:
            assert quoted and all(any(q in s for s in said) for q in quoted)
        else:
            assert not quoted  # paraphrase only: the moment is described, never quoted
            blob = fb.SerializeToString()
            for sentence in said + [ln.text for ln in srv.runner._script_source if ln.speaker == "patient"]:
                assert sentence.encode() not in blob
            assert all(ob.moment for ob in fb.observations)


def _panel_rig(pki: Pki, tmp_path: Path):  # type: ignore[no-untyped-def]
    claims = RoomClaims(window_s=60)
    server = EdgeAgentServer(server_config(pki, tmp_path / "state"), ScriptedVisitRunner(), SpectralVoiceEnroller(), claims=claims)
    background = BackgroundServer(server)
    port = background.start()
    factory = MockFactory()
    settings = GpioSettings(backend="mock", button_pin=17, led_pin=27, red_led_pin=22)
    assert background.loop is not None and server.visits is not None
    panel = open_panel(settings, ManagerVisitControl(server.visits, background.loop), claims, factory=factory, bounce_s=None)
    assert panel is not None
    return server, background, phone.Target("127.0.0.1", port, server.fingerprint), factory, panel


def _press(factory: MockFactory) -> None:
    factory.pin(17).drive_low()
    factory.pin(17).drive_high()
    time.sleep(0.5)


def test_two_claims_refuse_the_press_and_both_phones_are_told_issue16(pki: Pki, tmp_path: Path) -> None:
    """A claims, B claims, A presses: B used to receive A's visit."""
    server, background, target, factory, panel = _panel_rig(pki, tmp_path)
    try:
        a = phone.claim_room(pki.keys_a, target)
        assert not a.contested
        b = phone.claim_room(pki.keys_b, target)
        assert b.contested  # B is told at once
        _press(factory)
        assert server.visits is not None and not server.visits.active  # nobody's visit: no capture at all
        red = factory.pin(22).states
        assert sum(1 for x, y in zip(red, red[1:]) if not x.state and y.state) >= 4  # the contested blink
        for keys, claim in ((pki.keys_a, a), (pki.keys_b, b)):  # both phones learn it
            assert phone.claim_status(keys, target, claim.claim_id).state == agent_pb2.CLAIM_CONTESTED
        with pytest.raises(ClientError) as exc:  # nobody reads another clinician's claim
            phone.claim_status(pki.keys_b, target, a.claim_id)
        assert exc.value.code == "NOT_FOUND"
        assert phone.feedback(pki.keys_b, target) == []
    finally:
        panel.close()
        background.stop()


def test_single_claim_press_starts_and_the_phone_confirms(pki: Pki, tmp_path: Path) -> None:
    server, background, target, factory, panel = _panel_rig(pki, tmp_path)
    try:
        claim = phone.claim_room(pki.keys_a, target)
        _press(factory)
        status = phone.claim_status(pki.keys_a, target, claim.claim_id)
        assert status.state == agent_pb2.CLAIM_STARTED and status.visit_id
        phone.stop(pki.keys_a, target)  # the confirmed visit id is the phone's current visit
        [report] = phone.feedback(pki.keys_a, target)
        assert report.visit_id == status.visit_id
    finally:
        panel.close()
        background.stop()


def test_claim_status_over_raw_grpc_validates_its_id(pki: Pki, tmp_path: Path) -> None:
    server, background, target, factory, panel = _panel_rig(pki, tmp_path)
    try:
        stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, target.port))
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetClaim(agent_pb2.GetClaimRequest(claim_id="x" * 500))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        panel.close()
        background.stop()


def test_device_without_room_code_refuses_phone_starts(pki: Pki, tmp_path: Path) -> None:
    srv = ServerThread(replace(server_config(pki, tmp_path / "data"), room_code_secret=None)).start()
    try:
        with pytest.raises(ClientError, match="no room code; claim the room") as exc:
            phone.start(pki.keys_a, srv.target, room_code="12345678")
        assert exc.value.code == "FAILED_PRECONDITION"
        assert "room-code" not in phone.device_info(pki.keys_a, srv.target).capabilities
    finally:
        srv.stop()


def test_damaged_room_code_secret_is_one_line(tmp_path: Path) -> None:
    """A room-code secret with damaged bytes: the remedy in one line, from the library and from the CLI."""
    secret = tmp_path / "room-code.key"
    secret.write_bytes(b"\xff\xfe" + b"ab" * 32 + b"\n")
    secret.chmod(0o600)
    with pytest.raises(ConfigError, match="is not a room-code secret"):
        load_secret(secret)
    out = run_cli("device", "room-code", "--secret", str(secret))
    assert out.returncode == 2 and "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "is not a room-code secret" in out.stderr and out.stderr.strip().count("\n") == 0


def test_room_code_helper_uses_the_device_config(pki: Pki, tmp_path: Path) -> None:
    """`device room-code` on a device whose config sets code_step_s prints the code the daemon accepts.

    It used to ignore the config and always use the 28-day default: a display device set to
    ``code_step_s = 60`` (or a weekly label) got a code that StartVisit refused.
    """
    import json

    config = tmp_path / "config.toml"
    config.write_text(f'[presence]\ncode_secret = "{pki.room_code_secret}"\ncode_step_s = 60\n')
    secret = load_secret(pki.room_code_secret)
    for args, env in ((("--config", str(config)), {}), ((), {"EDGE_AGENT_CONFIG": str(config)})):
        out = run_cli("device", "room-code", *args, "--json", env=env)
        assert out.returncode == 0, out.stderr
        code = json.loads(out.stdout)["code"]
        assert RoomCodes(secret, 60).matches(code) and not RoomCodes(secret, 28 * 86400).matches(code)
    config.write_text('[presence]\ncode_secret = ""\n')
    out = run_cli("device", "room-code", "--config", str(config))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "presence.code_secret" in out.stderr, out.stderr
