"""The device's browser endpoint and the site service, without a browser: sign-in rules,
CORS, authorisation parity with the gRPC port, framing, limits, the join code, the feedback
timeline, and the committed web app (schema freshness, size, headers)."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge_agent.crypto import ca, seal
from edge_agent.device.web.grpcweb import SESSION_HEADER, frame
from edge_agent.device.web.qr import join_code
from edge_agent.device.web.sessions import DEVICE_PROOF_LABEL, PHONE_LOGIN_LABEL, der_to_p1363
from edge_agent.phone.web.site import load_assets, static_dir
from edge_agent.proto.edge_agent.v1 import agent_pb2, feedback_pb2, web_pb2
from tests.delivery_fixtures import Pki, closed_within, silent_connection
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller
from tests.phone_web_fixtures import ROOT, Device, Site

ORIGIN = "https://phones.test:8443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def device(pki: Pki, tmp_path: Path):  # type: ignore[no-untyped-def]
    d = Device.start(pki, tmp_path / "data", ORIGIN)
    yield d
    d.stop()


class WebClient:
    """A minimal gRPC-Web client in Python, speaking exactly what the app sends."""

    def __init__(self, pki: Pki, port: int, origin: str | None = ORIGIN, source: str | None = None) -> None:
        self.ctx = ssl.create_default_context(cadata=pki.authority.cert_pem.decode())
        self.ctx.check_hostname = False
        self.port, self.origin, self.token = port, origin, ""
        self.source = (source, 0) if source else None

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, dict[str, str], list[tuple[int, bytes]]]:
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30, source_address=self.source)
        h = {"content-type": "application/grpc-web+proto"}
        if self.origin:
            h["origin"] = self.origin
        if self.token:
            h[SESSION_HEADER] = self.token
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        frames, i = [], 0
        while i + 5 <= len(data) and r.status == 200:
            f, n = struct.unpack_from(">BI", data, i)
            frames.append((f, data[i + 5 : i + 5 + n]))
            i += 5 + n
        return r.status, {k.lower(): v for k, v in r.getheaders()}, frames

    def call(self, service: str, method: str, msg: Any, reply: Any = None, stream: list[Any] | None = None) -> tuple[int, str, Any]:
        body = b"".join(frame(m.SerializeToString()) for m in (stream or [msg]))
        _, _, frames = self.post(f"/edge_agent.v1.{service}/{method}", body)
        trailer = dict(line.split(": ", 1) for line in frames[-1][1].decode().strip().split("\r\n"))
        code = int(trailer["grpc-status"])
        from urllib.parse import unquote

        out = reply.FromString(frames[0][1]) if reply is not None and code == 0 else None
        return code, unquote(trailer.get("grpc-message", "")), out

    def challenge(self) -> tuple[bytes, web_pb2.WebChallengeResponse]:
        nonce = os.urandom(32)
        code, msg, ch = self.call("EdgeAgentWebAuth", "Challenge", web_pb2.WebChallengeRequest(phone_nonce=nonce), web_pb2.WebChallengeResponse)
        assert code == 0, msg
        return nonce, ch

    def login(self, key: ec.EllipticCurvePrivateKey, cert_der: bytes, fp: bytes | None = None) -> tuple[int, str]:
        _, ch = self.challenge()
        fp = fp if fp is not None else hashlib.sha256(ch.device_certificate).digest()
        sig = der_to_p1363(key.sign(PHONE_LOGIN_LABEL + ch.challenge + fp, ec.ECDSA(hashes.SHA256())))
        code, msg, reply = self.call("EdgeAgentWebAuth", "Login", web_pb2.WebLoginRequest(challenge=ch.challenge, certificate=cert_der, signature=sig),
                                     web_pb2.WebLoginResponse)
        if code == 0:
            self.token = reply.token
            assert 0 < reply.valid_for_s <= 600
        return code, msg


def _keys(bundle_path: Path) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    b = ca.load_bundle(bundle_path)
    key = serialization.load_pem_private_key(b.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, b.cert.public_bytes(serialization.Encoding.DER)


def test_device_proves_its_key_and_a_clinician_signs_in(pki: Pki, device: Device) -> None:
    web = WebClient(pki, device.both.web.port)
    nonce, ch = web.challenge()
    assert hashlib.sha256(ch.device_certificate).hexdigest() == device.server.fingerprint and ch.room == "Room 4"
    from cryptography import x509

    from edge_agent.device.web.sessions import p1363_to_der

    cert = x509.load_der_x509_certificate(ch.device_certificate)
    cert.public_key().verify(p1363_to_der(ch.device_signature), DEVICE_PROOF_LABEL + nonce + ch.challenge + b"Room 4", ec.ECDSA(hashes.SHA256()))
    assert web.login(*_keys(pki.clinician_a)) == (0, "")
    code, _, info = web.call("EdgeAgent", "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest(), agent_pb2.DeviceInfo)
    assert code == 0 and info.room == "Room 4"


def test_sign_in_refusals(pki: Pki, device: Device, tmp_path: Path) -> None:
    web = WebClient(pki, device.both.web.port)
    key, der = _keys(pki.clinician_a)
    # a signature made for another device (relayed login) does not verify here
    assert web.login(key, der, fp=b"\x00" * 32)[0] == 16
    # a challenge is single use
    _, ch = web.challenge()
    sig = der_to_p1363(key.sign(PHONE_LOGIN_LABEL + ch.challenge + hashlib.sha256(ch.device_certificate).digest(), ec.ECDSA(hashes.SHA256())))
    req = web_pb2.WebLoginRequest(challenge=ch.challenge, certificate=der, signature=sig)
    assert web.call("EdgeAgentWebAuth", "Login", req)[0] == 0
    code, msg, _ = web.call("EdgeAgentWebAuth", "Login", req)
    assert code == 16 and "challenge" in msg
    # another site's CA
    other = ca.init_ca(tmp_path / "other-ca", site="Elsewhere")
    ca.issue_clinician(other, tmp_path / "foreign.pem")
    code, msg = web.login(*_keys(tmp_path / "foreign.pem"))
    assert code == 16 and "not from this site's CA" in msg
    # expired
    ca.issue_clinician(pki.authority, tmp_path / "old.pem", days=1, valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    code, msg = web.login(*_keys(tmp_path / "old.pem"))
    assert code == 16 and msg.startswith("certificate expired")
    # an admin certificate is not a clinician's
    code, msg = web.login(*_keys(pki.admin))
    assert code == 7 and "clinician" in msg
    # revoked (the device's CRL, reloaded within a second)
    issued = ca.issue_clinician(pki.authority, tmp_path / "gone.pem")
    ca.revoke(pki.authority, issued.subject_id)
    import time

    time.sleep(1.2)
    code, msg = web.login(*_keys(tmp_path / "gone.pem"))
    assert code == 16 and "revoked" in msg


def test_token_only_in_the_header_and_origin_is_exact(pki: Pki, device: Device) -> None:
    web = WebClient(pki, device.both.web.port)
    web.login(*_keys(pki.clinician_a))
    body = frame(agent_pb2.GetDeviceInfoRequest().SerializeToString())
    token, web.token = web.token, ""
    _, _, frames = web.post(f"/edge_agent.v1.EdgeAgent/GetDeviceInfo?{SESSION_HEADER}={token}", body)
    assert b"grpc-status: 16" in frames[-1][1]
    web.token = token
    status, headers, _ = web.post("/edge_agent.v1.EdgeAgent/GetDeviceInfo", body)
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    evil = WebClient(pki, device.both.web.port, origin="https://evil.example")
    evil.token = token
    status, headers, _ = evil.post("/edge_agent.v1.EdgeAgent/GetDeviceInfo", body)
    assert status == 403 and "access-control-allow-origin" not in headers
    status, headers, _ = web.post("/edge_agent.v1.EdgeAgent/StartVisit", b"", {"access-control-request-method": "POST"}, method="OPTIONS")
    assert status == 204 and headers["access-control-allow-origin"] == ORIGIN and SESSION_HEADER in headers["access-control-allow-headers"]
    # admin RPCs are not served to browsers at all
    status, _, _ = web.post("/edge_agent.v1.EdgeAgentAdmin/GetStatus", body)
    assert status == 404


def test_authorisation_is_the_grpc_services(pki: Pki, device: Device) -> None:
    a, b = WebClient(pki, device.both.web.port), WebClient(pki, device.both.web.port)
    a.login(*_keys(pki.clinician_a))
    b.login(*_keys(pki.clinician_b))
    priv, pub = seal.generate_keypair()
    code, _, started = a.call("EdgeAgent", "StartVisit", agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, room_code=pki.room_code()),
                              agent_pb2.StartVisitResponse)
    assert code == 0
    code, msg, _ = b.call("EdgeAgent", "StopVisit", agent_pb2.StopVisitRequest(visit_id=started.visit_id))
    assert code == 7 and "another clinician" in msg
    assert a.call("EdgeAgent", "StartVisit", agent_pb2.StartVisitRequest(consent=False, sealing_public_key=pub))[0] == 3
    assert a.call("EdgeAgent", "StopVisit", agent_pb2.StopVisitRequest(visit_id=started.visit_id))[0] == 0
    _, _, frames = b.post("/edge_agent.v1.EdgeAgent/StreamFeedback", frame(agent_pb2.StreamFeedbackRequest(cursor=0).SerializeToString()))
    assert len(frames) == 1  # B sees nothing of A's
    _, _, frames = a.post("/edge_agent.v1.EdgeAgent/StreamFeedback", frame(agent_pb2.StreamFeedbackRequest(cursor=0).SerializeToString()))
    item = agent_pb2.FeedbackItem.FromString(frames[0][1])
    fb = feedback_pb2.Feedback.FromString(seal.open_envelope(seal.from_proto(item.envelope), priv))
    assert fb.visit_id == started.visit_id  # the Python CLI opens what a browser-started visit produced


def test_enrolment_is_one_post_of_chunks_with_the_grpc_limits(pki: Pki, device: Device) -> None:
    web = WebClient(pki, device.both.web.port)
    web.login(*_keys(pki.clinician_a))
    import numpy as np

    rng = np.random.default_rng(1)
    pcm = (rng.standard_normal(16000 * 3) * 3000).astype("<i2").tobytes()
    chunks = [agent_pb2.EnrollVoiceChunk(sample_rate=16000 if i == 0 else 0, pcm_s16le=pcm[i : i + 32768]) for i in range(0, len(pcm), 32768)]
    code, msg, reply = web.call("EdgeAgent", "EnrollVoice", None, agent_pb2.EnrollVoiceResponse, stream=chunks)
    assert code == 0, msg
    assert abs(reply.audio_s - 3.0) < 0.01 and len(reply.voiceprint_values) > 0
    too_long = [agent_pb2.EnrollVoiceChunk(sample_rate=8000 if i == 0 else 0, pcm_s16le=b"\x01\x00" * 30000) for i in range(9)]
    code, msg, _ = web.call("EdgeAgent", "EnrollVoice", None, stream=too_long)
    assert code == 3 and "longer than 30 s" in msg
    status, _, frames = web.post("/edge_agent.v1.EdgeAgent/StartVisit", b"\x00" * (200 * 1024))
    assert b"grpc-status: 8" in frames[-1][1]
    _, _, frames = web.post("/edge_agent.v1.EdgeAgent/StartVisit", b"\x00\x00\x00\x00\x09garbage!!")
    assert b"grpc-status: 3" in frames[-1][1]



def test_browser_start_with_a_voiceprint_of_another_speaker_model(pki: Pki, device: Device) -> None:
    """Over gRPC-Web as over gRPC: enrolment names the model; a start with another model's voiceprint runs the visit
    without it and says to re-enrol (one line); with the device's own model the voiceprint is used."""
    from edge_agent.device.grpc.service import STALE_VOICEPRINT_NOTICE

    web = WebClient(pki, device.both.web.port)
    web.login(*_keys(pki.clinician_a))
    import numpy as np

    pcm = (8000 * np.sin(2 * np.pi * 220 * np.arange(16000 * 2) / 16000)).astype("<i2").tobytes()
    code, msg, enrolled = web.call("EdgeAgent", "EnrollVoice", None, agent_pb2.EnrollVoiceResponse,
                                   stream=[agent_pb2.EnrollVoiceChunk(sample_rate=16000, pcm_s16le=pcm)])
    assert code == 0, msg
    assert enrolled.voiceprint_model == SpectralVoiceEnroller.model_id
    _, pub = seal.generate_keypair()
    for model, use, notice in ((enrolled.voiceprint_model, agent_pb2.VOICEPRINT_USED, ""),
                               ("spectral-bands-16@older", agent_pb2.VOICEPRINT_STALE, STALE_VOICEPRINT_NOTICE)):
        req = agent_pb2.StartVisitRequest(consent=True, sealing_public_key=pub, room_code=pki.room_code(),
                                          voiceprint_values=enrolled.voiceprint_values, voiceprint_model=model)
        code, msg, started = web.call("EdgeAgent", "StartVisit", req, agent_pb2.StartVisitResponse)
        assert code == 0, msg
        assert started.visit_id and started.voiceprint_use == use and started.notice == notice
        assert web.call("EdgeAgent", "StopVisit", agent_pb2.StopVisitRequest(visit_id=started.visit_id))[0] == 0

def test_site_serves_the_app_with_a_strict_policy(pki: Pki, tmp_path: Path) -> None:
    ca.issue_web(pki.authority, tmp_path / "site.pem", ips=("127.0.0.1",))
    site = Site.start(tmp_path / "site.pem", pki.crl)
    try:
        ctx = ssl.create_default_context(cadata=pki.authority.cert_pem.decode())
        ctx.check_hostname = False
        total = 0
        for path in ("/", "/app.js", "/app.css", "/manifest.webmanifest", "/sw.js", "/icon-192.png"):
            c = http.client.HTTPSConnection("127.0.0.1", site.server.port, context=ctx, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, path
            csp = r.getheader("content-security-policy")
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            total += len(body)
        assert total <= 300 * 1024, total  # first load over the LAN
        for bad in ("/../pyproject.toml", "/static/app.js", "/%2e%2e/x"):
            c = http.client.HTTPSConnection("127.0.0.1", site.server.port, context=ctx, timeout=10)
            c.request("GET", bad)
            assert c.getresponse().status == 404
    finally:
        site.stop()


def test_committed_app_is_built_from_the_sources() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "phone-web" / "gen_schema.py"), "--check"],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    html = (static_dir() / "index.html").read_text()
    assert "<script>" not in html and 'type="module" src="app.js"' in html
    assert set(load_assets()) >= {"/", "/app.js", "/sw.js", "/manifest.webmanifest", "/icon-512.png"}
    assert "edge-agent-" in (static_dir() / "sw.js").read_text()  # the cache name carries the build hash


def test_committed_app_is_byte_identical_to_a_fresh_build(tmp_path: Path) -> None:
    """The committed static/ is what the pinned sources build (needs node and `npm ci` in tools/phone-web)."""
    import shutil

    web = ROOT / "tools" / "phone-web"
    if shutil.which("node") is None or not (web / "node_modules" / "esbuild").is_dir():
        pytest.skip("node or tools/phone-web/node_modules missing: run `cd tools/phone-web && npm ci` to check the build")
    copy = tmp_path / "tools" / "phone-web"
    shutil.copytree(web, copy, ignore=shutil.ignore_patterns("node_modules", "test"))
    (copy / "node_modules").symlink_to(web / "node_modules")
    res = subprocess.run(["node", "build.mjs"], cwd=copy, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    built = tmp_path / "edge_agent" / "phone" / "web" / "static"
    committed = static_dir()
    names = sorted(p.name for p in committed.iterdir() if p.is_file())
    assert names == sorted(p.name for p in built.iterdir() if p.is_file())
    differ = [n for n in names if (built / n).read_bytes() != (committed / n).read_bytes()]
    assert not differ, f"committed app differs from its sources: {differ}; rebuild with tools/phone-web (see build.mjs)"


def test_join_code_carries_address_fingerprint_and_room(pki: Pki) -> None:
    code = join_code("https://phones.test:8443/", "https://10.0.0.7:50444", "Room 4", bundle=pki.device)
    assert code.link == (f"https://phones.test:8443/#join?d=https%3A%2F%2F10.0.0.7%3A50444&fp={ca.load_bundle(pki.device).fingerprint}"
                         "&room=Room%204")
    from edge_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="https"):
        join_code("http://phones.test", "https://10.0.0.7:50444", "Room 4", fingerprint="ab" * 32)


def test_feedback_timeline_has_speakers_and_times_only() -> None:
    from edge_agent.feedback.proto import feedback_to_proto
    from edge_agent.feedback.report import build_feedback
    from edge_agent.transcript import Utterance

    class NoLabels:
        def classify(self, texts: list[str]) -> list[Any]:
            from types import SimpleNamespace

            return [SimpleNamespace(labels=[]) for _ in texts]

    utts = [Utterance(0.0, 2.0, "What brings you in today?", speaker="clinician"),
            # the patient trails "and" and stops: the clinician took the floor (a back-channel would not mark)
            Utterance(2.5, 7.0, "I have had this pain in my side for a week and it keeps me up at night and", speaker="patient"),
            Utterance(6.0, 7.5, "Any fever at all?", speaker="clinician"),
            Utterance(13.0, 14.0, "Right.", speaker="other")]
    msg = feedback_to_proto(build_feedback(utts, NoLabels()))
    assert [(t.speaker, t.start_s, t.end_s) for t in msg.timeline] == [
        (feedback_pb2.SPEAKER_CLINICIAN, 0.0, 2.0), (feedback_pb2.SPEAKER_PATIENT, 2.5, 7.0),
        (feedback_pb2.SPEAKER_CLINICIAN, 6.0, 7.5), (feedback_pb2.SPEAKER_OTHER, 13.0, 14.0)]
    assert any(m.kind == "opening_redirected" and m.at_s == 6.0 for m in msg.marks)
    # the floor-taking is detected, but interruption marks are withheld with their observation
    assert not [m for m in msg.marks if m.kind == "interruption"] and "interruptions" not in msg.timing
    assert b"fever" not in b"".join(t.SerializeToString() for t in msg.timeline)


def test_daemon_config_starts_the_browser_endpoint(pki: Pki, tmp_path: Path) -> None:
    """[web] in config.toml: the daemon's wiring brings the endpoint up on server.host, same servicer."""
    import socket

    from edge_agent.device.config import load_config
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.main import _start_web
    from tests.cli_runner import run_cli
    from tests.delivery_fixtures import server_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    toml = tmp_path / "config.toml"
    toml.write_text(f'[server]\nhost = "127.0.0.1"\n[web]\nenabled = true\nport = {free}\nallowed_origin = "{ORIGIN}"\nsession_minutes = 5\n')
    cfg = load_config(toml, env={})
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), ScriptedVisitRunner(), SpectralVoiceEnroller())
    bg = BackgroundServer(server)
    bg.start()
    try:
        web = bg.call(_start_web(cfg, server))
        client = WebClient(pki, free)
        assert client.login(*_keys(pki.clinician_a)) == (0, "")
        bg.call(web.stop())
    finally:
        bg.stop()
    res = run_cli("device", "qr", "--site", ORIGIN, "--address", f"https://127.0.0.1:{free}", "--room", "Room 4",
                  "--bundle", str(pki.device), "--json")
    assert res.returncode == 0, res.stderr
    assert f"fp={ca.load_bundle(pki.device).fingerprint}" in res.stdout
    res = run_cli("device", "qr", "--site", "http://x", "--address", "https://h:1", "--room", "R", "--fingerprint", "ab" * 32)
    assert res.returncode != 0 and res.stderr.count("\n") == 1 and "must be https://" in res.stderr


# ---- the browser endpoint behind the connection gate (same gate and limits as the gRPC port) ----------------------




def test_silent_connections_do_not_starve_browser_calls(pki: Pki, device: Device) -> None:
    """The browser port is the gate's: 200 silent connections from one address get 16 slots, a phone still signs in."""
    port = device.both.web.port
    gate = device.both.web.gate
    assert gate is not None and gate.limits.max_connections_per_peer == 16 and gate.limits.first_byte_timeout_s == 5.0
    socks = [silent_connection(port, "127.0.0.2") for _ in range(200)]
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        web = WebClient(pki, port)
        assert web.login(*_keys(pki.clinician_a)) == (0, "")
        assert web.call("EdgeAgent", "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest())[0] == 0
        assert time.monotonic() - t0 < 5.0
        assert gate.refused >= 200 - 16
        # over the per-address cap: closed at once; the admitted silent ones: closed after ~5 s
        assert max(closed_within(s, 10.0) for s in socks[-20:]) < 1.0
        assert 3.0 < closed_within(socks[0], 15.0) < 8.0
    finally:
        for s in socks:
            s.close()


def test_silent_and_stalled_browser_connections_are_closed_after_about_5_s(pki: Pki, device: Device) -> None:
    port = device.both.web.port
    silent = silent_connection(port, "127.0.0.3")
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
    try:
        t_silent = closed_within(silent, 15.0)
        t_stalled = closed_within(stalled, 15.0)
        assert 3.0 < t_silent < 8.0, t_silent
        assert t_stalled < 8.0, t_stalled  # uvicorn's TLS handshake gets the gate's 5 s, not asyncio's 60 s
        assert WebClient(pki, port).login(*_keys(pki.clinician_a)) == (0, "")
    finally:
        silent.close()
        stalled.close()


def test_sign_in_challenges_are_rate_limited_per_address(pki: Pki, tmp_path: Path) -> None:
    """Beyond the outstanding-challenge cap: a burst per network address (as the gate saw it), then RESOURCE_EXHAUSTED."""
    from edge_agent.device.web.sessions import SessionPolicy

    d = Device.start(pki, tmp_path / "data", ORIGIN, session=SessionPolicy(challenges_per_address=3, challenge_refill_s=30.0))
    try:
        port = d.both.web.port
        here = WebClient(pki, port)
        for _ in range(3):
            here.challenge()
        req = web_pb2.WebChallengeRequest(phone_nonce=os.urandom(32))
        code, msg, _ = here.call("EdgeAgentWebAuth", "Challenge", req)
        assert code == 8 and msg.startswith("too many sign-in attempts from this network address; try again in ")
        assert 1 <= int(msg.rsplit(" ", 2)[1]) <= 30
        status, headers, frames = here.post("/edge_agent.v1.EdgeAgentWebAuth/Challenge", frame(req.SerializeToString()))
        assert status == 200 and headers["access-control-allow-origin"] == ORIGIN and b"grpc-status: 8" in frames[-1][1]
        # another address is not held back by this one (the gate hands the endpoint each connection's real address)
        there = WebClient(pki, port, source="127.0.0.5")
        assert there.login(*_keys(pki.clinician_b)) == (0, "")
        # a signed-in phone's calls are not sign-ins: they go on
        assert there.call("EdgeAgent", "GetDeviceInfo", agent_pb2.GetDeviceInfoRequest())[0] == 0
    finally:
        d.stop()


def test_default_challenge_limit_fits_phones() -> None:
    from edge_agent.device.web.sessions import SessionPolicy

    p = SessionPolicy()
    # a phone signs in once per session; 20 at once and one per 6 s covers a ward of phones behind one NAT address
    assert p.challenges_per_address >= 10 and p.challenge_refill_s * 10 <= p.session_s and p.max_addresses >= 1024


# ---- the site web server's own certificate role -----------------------------------------------------------------


def test_web_certificate_is_its_own_role(pki: Pki, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.errors import ConfigError, EdgeAgentError
    from edge_agent.phone.web.site import SiteServer
    from tests.cli_runner import run_cli
    from tests.delivery_fixtures import server_config

    issued = ca.issue_web(pki.authority, tmp_path / "web.pem", dns_names=("phones.clinic.example",), ips=("127.0.0.1",))
    cert = ca.load_bundle(tmp_path / "web.pem").cert
    assert issued.role == "web" and ca.identity_of(cert).role == "web" and ca.identity_of(cert).room == ""
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["phones.clinic.example"]  # not `edge-agent`, the devices' name
    with pytest.raises(EdgeAgentError, match="needs the name phones use"):
        ca.issue_web(pki.authority, tmp_path / "nameless.pem")
    # the site service takes only a web bundle; a room device only a device bundle
    with pytest.raises(ConfigError, match="is a device bundle, not the site web server's; issue one with 'edge-agent ca issue-web"):
        SiteServer(pki.device, pki.crl, "127.0.0.1", 0)
    from dataclasses import replace

    with pytest.raises(ConfigError, match="is a web bundle"):
        EdgeAgentServer(replace(server_config(pki, tmp_path / "data"), bundle=tmp_path / "web.pem"), ScriptedVisitRunner(), SpectralVoiceEnroller())
    # the CLI
    res = run_cli("ca", "issue-web", "--ca-dir", str(pki.root / "ca"), "--out", str(tmp_path / "cli-web.pem"), "--dns", "phones.test", "--json")
    assert res.returncode == 0, res.stderr
    assert '"role": "web"' in res.stdout and "phone-web serve" in res.stdout


def test_web_certificate_cannot_sign_in_as_a_clinician(pki: Pki, device: Device, tmp_path: Path) -> None:
    ca.issue_web(pki.authority, tmp_path / "web.pem", ips=("127.0.0.1",))
    code, msg = WebClient(pki, device.both.web.port).login(*_keys(tmp_path / "web.pem"))
    assert code == 7 and "clinician" in msg


# ---- the site CA and CRL for the app to pin and check -----------------------------------------------------------


def _get(port: int, path: str, pki: Pki) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context(cadata=pki.authority.cert_pem.decode())
    ctx.check_hostname = False
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_site_serves_its_ca_and_the_current_crl(pki: Pki, tmp_path: Path) -> None:
    from edge_agent.errors import EdgeAgentError
    from edge_agent.phone.web.site import SiteServer

    ca.issue_web(pki.authority, tmp_path / "site.pem", ips=("127.0.0.1",))
    site = Site.start(tmp_path / "site.pem", pki.crl)
    try:
        port = site.server.port
        status, headers, body = _get(port, "/ca.pem", pki)
        assert status == 200 and body == pki.authority.cert_pem and headers["cache-control"] == "no-cache"
        assert "content-security-policy" in headers and headers["x-content-type-options"] == "nosniff"
        status, headers, body = _get(port, "/crl.pem", pki)
        held = ca.parse_crl(body, pki.authority.cert)
        assert status == 200 and headers["cache-control"] == "no-cache"
        # a revocation reaches the served list within a second or so (re-read on change, as on the devices)
        issued = ca.issue_clinician(pki.authority, tmp_path / "gone.pem")
        ca.revoke(pki.authority, issued.subject_id)
        time.sleep(1.3)
        newer = ca.parse_crl(_get(port, "/crl.pem", pki)[2], pki.authority.cert)
        assert newer.number > held.number and issued.serial in newer.revoked
    finally:
        site.stop()
    # no CRL, another site's CRL: the service does not start (one line, as the devices)
    other = ca.init_ca(tmp_path / "other-ca", site="Elsewhere")
    with pytest.raises(EdgeAgentError, match="not signed by this site's CA"):
        SiteServer(tmp_path / "site.pem", other.directory / ca.CRL, "127.0.0.1", 0)
    with pytest.raises(EdgeAgentError, match="not found"):
        SiteServer(tmp_path / "site.pem", tmp_path / "missing.pem", "127.0.0.1", 0)


def test_site_policy_lists_the_room_devices_when_it_knows_them(pki: Pki, tmp_path: Path) -> None:
    from edge_agent.errors import ConfigError
    from edge_agent.phone.web.site import SiteServer

    ca.issue_web(pki.authority, tmp_path / "site.pem", ips=("127.0.0.1",))
    site = Site.start(tmp_path / "site.pem", pki.crl, device_origins=("https://10.0.0.7:50444", "https://room5.clinic.example:50444/"))
    try:
        for path in ("/", "/app.js", "/crl.pem", "/nope"):
            csp = _get(site.server.port, path, pki)[1]["content-security-policy"]
            assert "connect-src 'self' https://10.0.0.7:50444 https://room5.clinic.example:50444;" in csp, (path, csp)
            assert "require-trusted-types-for 'script'; trusted-types edge-agent" in csp
    finally:
        site.stop()
    for bad in ("http://10.0.0.7:50444", "https://10.0.0.7:50444/x", "https://a b", "https://h; script-src *", "*"):
        with pytest.raises(ConfigError, match="must be exactly https://HOST"):
            SiteServer(tmp_path / "site.pem", pki.crl, "127.0.0.1", 0, device_origins=(bad,))


# ---- the app's DER reader and CRL checks, run by Node on real certificates and CRLs of the project's CA --------


def test_app_der_reader_and_crl_checks_in_node(tmp_path: Path) -> None:
    import datetime as dt
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    authority = ca.init_ca(tmp_path / "ca", site="Test Clinic")
    older = (authority.directory / ca.CRL).read_text()
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem", ips=("127.0.0.1",))
    ca.issue_web(authority, tmp_path / "web.pem", ips=("127.0.0.1",))
    device = ca.load_bundle(tmp_path / "device.pem").cert
    ca.revoke(authority, str(device.serial_number))
    revoked = (authority.directory / ca.CRL).read_bytes()
    other = ca.init_ca(tmp_path / "other", site="Elsewhere")
    now = dt.datetime.now(dt.timezone.utc)

    def crl(next_update: dt.datetime, number: int | None = 99, extra: x509.ExtensionType | None = None) -> str:
        b = x509.CertificateRevocationListBuilder().issuer_name(authority.cert.subject).last_update(now - dt.timedelta(days=2)).next_update(next_update)
        if number is not None:
            b = b.add_extension(x509.CRLNumber(number), critical=False)
        if extra is not None:
            b = b.add_extension(extra, critical=True)
        return b.sign(authority.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()

    forged = bytearray(x509.load_pem_x509_crl(revoked).public_bytes(serialization.Encoding.DER))
    forged[-1] ^= 0x01  # the last byte of the signature's s
    fixtures = {
        "ca": authority.cert_pem.decode(), "device": device.public_bytes(serialization.Encoding.PEM).decode(),
        "device_serial": format(device.serial_number, "x"), "web": ca.load_bundle(tmp_path / "web.pem").cert_pem.decode(),
        "crl_revoked": revoked.decode(), "revoked_number": ca.parse_crl(revoked, authority.cert).number, "crl_older": older,
        "crl_foreign": (other.directory / ca.CRL).read_text(),
        "crl_stale": crl(now - dt.timedelta(minutes=1)),
        "crl_no_number": crl(now + dt.timedelta(days=1), number=None),
        "crl_critical_unknown": crl(now + dt.timedelta(days=1), extra=x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")),
        "crl_forged": x509.load_der_x509_crl(bytes(forged)).public_bytes(serialization.Encoding.PEM).decode(),
    }
    (tmp_path / "fixtures.json").write_text(json.dumps(fixtures))
    out = _node_test("der_crl.test.mjs", {"EDGE_AGENT_DER_FIXTURES": str(tmp_path / "fixtures.json")}, timeout=300)
    assert "# pass 11" in out, out[-1500:]


def test_site_state_dir_naming_a_file_is_refused_in_one_line(pki: Pki, tmp_path: Path) -> None:
    """`phone-web serve --state-dir` naming a file only logged a warning and served on: the CRL number was never
    recorded, so a restart would serve an older CRL. It is now refused at start in one line, exit 2."""
    from tests.cli_runner import run_cli

    ca.issue_web(pki.authority, tmp_path / "site.pem", ips=("127.0.0.1",))
    taken = tmp_path / "state"
    taken.write_text("not a folder\n")
    for state in (taken, taken / "below"):
        res = run_cli("phone-web", "serve", "--bundle", str(tmp_path / "site.pem"), "--crl", str(pki.crl), "--host", "127.0.0.1",
                      "--port", "0", "--state-dir", str(state), timeout=60)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert f"--state-dir {state}" in lines[0] and "folder" in lines[0] and "Traceback" not in res.stderr, lines[0]
        assert "phone web app on" not in res.stdout


def _node_test(name: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run one of the web app's own tests (tools/phone-web/test) with ``node --test`` (``env``: added to the
    environment, e.g. the path of cases computed in Python); it must pass. Returns its TAP output."""
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("node missing (apt-get install nodejs)")
    res = subprocess.run([node, "--test", str(ROOT / "tools" / "phone-web" / "test" / name)], env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "# fail 0" in res.stdout, res.stdout[-1500:]
    return res.stdout


def test_app_words_device_answers_as_the_python_phone_in_node(tmp_path: Path) -> None:
    """The web app and `edge-agent phone` say the same line for the same answer: one table (answers.py, generated into
    src/answers.js), and the same rules on it, checked on the Python phone's own lines."""
    import json

    from edge_agent.phone import answers

    answered = [("INTERNAL", "the report could not be built; the visit was ended and wiped"), ("UNKNOWN", "boom"),
                ("NOT_FOUND", "no such visit is running in this room"), ("PERMISSION_DENIED", "wrong room code"),
                ("RESOURCE_EXHAUSTED", "too many open feedback streams; close one and retry"),
                ("FAILED_PRECONDITION", "capture could not start: the room microphone cannot record; call IT"),
                ("FAILED_PRECONDITION", "capture could not start: cannot open the audio input."),
                ("FAILED_PRECONDITION", "the room code is missing"), ("INVALID_ARGUMENT", "consent must be true")]
    failures = ["capture could not start: the room microphone is not connected; check its cable is plugged in, or call IT",
                "capture could not start: no input", "the visit did not respond to the button in time"]
    cases = {
        "answers": [{"code": c, "details": d, "line": answers.device_answer(c, d)} for c, d in answered],
        "buttons": [{"failure": f, "line": answers.button_line(f)} for f in failures],
        "no_report": [{"reason": r, "line": answers.no_report_line(r)} for r in range(0, 7)],
    }
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = _node_test("answers.test.mjs", {"EDGE_AGENT_ANSWER_CASES": str(tmp_path / "cases.json")})
    assert "# skipped 0" in out, out[-1500:]


def test_app_report_text_rules_in_node() -> None:
    """The phone web app words a visit whose speech was all lost as the Python client does, not as silence."""
    _node_test("report_text.test.mjs")
    from edge_agent.feedback.quality import NO_SPEECH, NOTHING_TRANSCRIBED

    src = (ROOT / "tools" / "phone-web" / "src" / "report.js").read_text()
    assert NOTHING_TRANSCRIBED.split(":")[0] in src and NO_SPEECH.split(".")[0] in src  # the same words on both


def test_app_zeroes_the_enrolment_voice_even_when_enrolment_fails() -> None:
    """The web app's recording is zeroed after EnrollVoice whatever the outcome (it was skipped on a failed call)."""
    _node_test("voice.test.mjs")
    app = (ROOT / "tools" / "phone-web" / "src" / "app.js").read_text()
    assert "sendVoice(" in app and "EnrollVoice" not in app  # the app enrols only through the zeroing path


def test_app_keeps_the_voiceprint_model_and_shows_the_re_enrol_notice() -> None:
    """The web app keeps a voiceprint per speaker model, sends the device's, says before a start when it has none for
    the room's model, migrates an older app's single voiceprint, and shows the device's notice."""
    _node_test("voiceprint.test.mjs")
    from edge_agent.device.grpc.service import STALE_VOICEPRINT_NOTICE
    from edge_agent.phone.client import OTHER_MODEL_NOTICE

    src = (ROOT / "tools" / "phone-web" / "src" / "voiceprint.js").read_text()
    assert STALE_VOICEPRINT_NOTICE[1:] in src  # the app's own fallback says what the device says
    assert OTHER_MODEL_NOTICE[1:40] in src  # and says what the Python phone says before a start
    app = (ROOT / "tools" / "phone-web" / "src" / "app.js").read_text()
    for used in ("voiceprintFields(", "chooseVoiceprint(", "preStartNotice(", "enrolled(", "readVoiceprints(", "startNotice("):
        assert used in app, used
