"""Every doctor check passes on a healthy setup and fails with its message when its condition is broken."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.crypto import ca
from edge_agent.device.config import parse_config
from edge_agent.models import models_dir
from edge_agent.site import doctor
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("doctor-site")
    authority = ca.init_ca(base / "ca")
    ca.issue_device(authority, "Room 4", base / "device.pem")
    ca.issue_device(authority, "Room 5", base / "other.pem")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    ca.issue_device(authority, "Room 6", base / "expired.pem", days=2, valid_from=past)
    revoked = ca.issue_device(authority, "Room 7", base / "revoked.pem")
    (base / "crl-empty.pem").write_bytes((base / "ca" / "crl.pem").read_bytes())
    ca.write_crl(authority, (revoked.serial,))
    return {"base": base, "crl": base / "ca" / "crl.pem", "crl_empty": base / "crl-empty.pem"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- models ----------------------------------------------------------------------------------


def test_models(tmp_path: Path) -> None:
    assert doctor.check_models().ok
    models = tmp_path / "models"
    shutil.copytree(models_dir(), models, ignore=shutil.ignore_patterns("data"))
    (models / "speaker_ge2e.onnx").unlink()
    check = doctor.check_models(models)
    assert not check.ok and "speaker_ge2e.onnx is missing" in check.message and check.fix
    assert doctor.check_models(asr_model=str(tmp_path / "no-such-whisper")).message.startswith("ASR model directory not found")
    silero = doctor.check_models(vad_engine="silero")
    assert silero.ok and "Silero VAD model at" in silero.message and "silero_vad_v6.onnx" in silero.message
    hybrid = doctor.check_models(vad_engine="hybrid")  # the hybrid opens the same model
    assert hybrid.ok and "Silero VAD model at" in hybrid.message


# ---- certificates and clock --------------------------------------------------------------------


def test_certificates(site: dict[str, Path]) -> None:
    b = site["base"]
    ok = doctor.check_certificates(b / "device.pem", site["crl"])
    assert ok.ok and "valid for 36" in ok.message and "ok (1 revoked" in ok.message
    expired = doctor.check_certificates(b / "expired.pem", site["crl"])
    assert not expired.ok and "device certificate expired on" in expired.message
    later = doctor.check_certificates(b / "device.pem", site["crl"], now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400))
    assert not later.ok and "expired" in later.message
    soon = doctor.check_certificates(b / "device.pem", site["crl"], now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=25))
    assert soon.ok
    # Issue 16: "no CRL" used to pass; a device without its revocation list lets revoked phones in
    no_crl = doctor.check_certificates(b / "device.pem")
    assert not no_crl.ok and "no CRL configured" in no_crl.message and "edge-agent ca crl" in no_crl.fix
    revoked = doctor.check_certificates(b / "revoked.pem", site["crl"])
    assert not revoked.ok and "revoked" in revoked.message
    stale = doctor.check_certificates(b / "device.pem", site["crl_empty"], now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=45))
    assert not stale.ok and "out of date" in stale.message
    missing = doctor.check_certificates(b / "nope.pem")
    assert not missing.ok and "not found" in missing.message


def test_clock(site: dict[str, Path]) -> None:
    assert doctor.check_clock(bundle=site["base"] / "device.pem").ok
    wrong = doctor.check_clock(now=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc))
    assert not wrong.ok and "before 2025-01-01" in wrong.message and "timedatectl" in wrong.fix
    before_cert = doctor.check_clock(now=dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc), bundle=site["base"] / "device.pem")
    assert not before_cert.ok and "before the device certificate was issued" in before_cert.message


# ---- outbox ---------------------------------------------------------------------------------------


def test_outbox_writable_and_missing(tmp_path: Path) -> None:
    from edge_agent.crypto import seal
    from edge_agent.device.outbox import Outbox

    box = Outbox(tmp_path / "outbox.db")
    _priv, pub = seal.generate_keypair()
    box.put("c-aaaaaaaaaaaaaaaa", seal.seal(b"report", pub, "v-1", 1))
    box.close()
    ok = doctor.check_outbox(tmp_path, max_mb=1)
    assert ok.ok and "1 queued" in ok.message and not list(tmp_path.glob(".doctor-probe*"))
    missing = doctor.check_outbox(tmp_path / "absent", 64)
    assert not missing.ok and "does not exist" in missing.message


FULL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from edge_agent.site.doctor import check_outbox
    small, full = Path(sys.argv[2]), Path(sys.argv[3])
    (full / "filler").write_bytes(bytes(1024 * 1024))  # tmpfs of 1 MiB: now full
    print(json.dumps([check_outbox(small, 64).__dict__, check_outbox(full, 1).__dict__]))
    """
)


def test_outbox_full_and_too_small_tmpfs(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    small, full = tmp_path / "small", tmp_path / "full"
    small.mkdir()
    full.mkdir()
    mounts = f"mount -t tmpfs -o size=4m tmpfs {small} && mount -t tmpfs -o size=1m tmpfs {full}"
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'{mounts} && exec "$0" -c "$1" "$2" "$3" "$4"', sys.executable, FULL_SCRIPT, str(ROOT), str(small), str(full)],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    too_small, filled = json.loads(result.stdout)
    assert not too_small["ok"] and "outbox.max_mb=64 needs" in too_small["message"]
    assert not filled["ok"] and "is full" in filled["message"] and "free space" in filled["fix"]
    assert "held in the daemon's memory" in filled["message"] and "do not restart" in filled["fix"]


# ---- port --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running_server(site: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    data = tmp_path_factory.mktemp("doctor-server")
    port_file = data / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.scripted_server", "--bundle", str(site["base"] / "device.pem"), "--data-dir", str(data),
         "--room", "Room 4", "--crl", str(site["crl"]), "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        proc.terminate()
        proc.wait(10)


def test_port(site: dict[str, Path], running_server: int) -> None:
    ok = doctor.check_port("0.0.0.0", running_server, site["base"] / "device.pem")
    assert ok.ok and "with this device's certificate" in ok.message
    other = doctor.check_port("127.0.0.1", running_server, site["base"] / "other.pem")
    assert not other.ok and "serves a different certificate" in other.message
    closed = doctor.check_port("0.0.0.0", _free_port(), site["base"] / "device.pem")
    assert not closed.ok and "nothing accepts connections on 127.0.0.1" in closed.message and "systemctl" in closed.fix


# ---- audio (real PortAudio through ALSA's file plugin) ------------------------------------------------


def _reinit_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def test_audio(jfk_16k: np.ndarray, alsa_file_mic, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(alsa_file_mic(jfk_16k[: 3 * 16000])))
    _reinit_portaudio()
    try:
        ok = doctor.check_audio("micin", duration_s=1.0)
    finally:
        _reinit_portaudio()
    assert ok.ok and "microphone 'micin' (16000 Hz) delivered 1.0 s" in ok.message


def test_audio_silent_device(alsa_file_mic, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(alsa_file_mic(np.zeros(3 * 16000, np.float32))))
    _reinit_portaudio()
    try:
        silent = doctor.check_audio("micin", duration_s=1.0)
    finally:
        _reinit_portaudio()
    assert not silent.ok and "digital silence" in silent.message


def test_audio_device_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an .asoundrc that defines a different device: "micin" is unplugged
    (tmp_path / ".asoundrc").write_text('pcm.othermic {\n type null\n}\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    _reinit_portaudio()
    try:
        missing = doctor.check_audio("micin", duration_s=1.0)
    finally:
        _reinit_portaudio()
    assert not missing.ok and "microphone 'micin' not found" in missing.message and "audio.device" in missing.fix


# ---- mDNS (inside a private network namespace) -----------------------------------------------------------

MDNS_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from edge_agent.site.doctor import check_mdns
    from edge_agent.device.mdns import Advertiser

    async def main():
        out = {"before": check_mdns("ab" * 32, 1.5, ["127.0.0.1"]).__dict__}
        adv = Advertiser(room="Room 4", port=50443, fingerprint="ab" * 32, interfaces=["127.0.0.1"])
        await adv.start()
        out["ours"] = (await asyncio.to_thread(check_mdns, "ab" * 32, 3.0, ["127.0.0.1"])).__dict__
        out["other"] = (await asyncio.to_thread(check_mdns, "cd" * 32, 1.5, ["127.0.0.1"])).__dict__
        await adv.stop()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_mdns_in_netns() -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    setup = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
    result = subprocess.run(
        ["unshare", "-rn", "sh", "-c", f'{setup} && exec "$0" -c "$1" "$2"', sys.executable, MDNS_SCRIPT, str(ROOT)],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 and "unshare" in result.stderr:
        pytest.skip(f"cannot create a network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["before"]["ok"] and "not advertising _edge-agent._tcp.local." in out["before"]["message"]
    assert out["ours"]["ok"] and "edge-agent-abababababab" in out["ours"]["message"]
    assert not out["other"]["ok"] and "1 other edge-agent device(s) seen" in out["other"]["message"]


# ---- CPU ---------------------------------------------------------------------------------------------------


def test_cpu_keeps_up_and_fails_over_budget() -> None:
    from edge_agent.device.session import TranscriptionSession

    cfg = parse_config({})
    session = TranscriptionSession.load(cfg.pipeline, speakers=True)
    ok = doctor.check_cpu(cfg, session=session)
    assert ok.ok and ok.message.startswith("5.0 s of speech processed in")
    slow = doctor.check_cpu(cfg, session=session, max_rtf=0.001)
    assert not slow.ok and "real-time factor" in slow.message and slow.fix


# ---- all together -------------------------------------------------------------------------------------------


def test_run_doctor_json_and_exit_code(site: dict[str, Path], tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "server": {"bundle": str(site["base"] / "device.pem"), "crl": str(site["crl"]), "room": "Room 4", "port": _free_port(), "advertise": False},
            "outbox": {"path": str(tmp_path), "max_mb": 1},
        }
    )
    checks = doctor.run_doctor(cfg, skip=("audio", "cpu"))
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["models", "certificates", "presence", "gpio", "population", "web", "clock", "outbox", "pipeline", "ports", "port",
                             "mdns", "dumps"]
    assert by_name["certificates"].ok and by_name["outbox"].ok and by_name["mdns"].ok and by_name["pipeline"].ok
    assert by_name["ports"].ok and "free" in by_name["ports"].message  # the daemon is not running: its port is free
    assert not by_name["port"].ok
    assert doctor.exit_code(checks) == 1
    data = json.loads(doctor.render_json(checks))
    assert data["ok"] is False and {c["name"] for c in data["checks"]} == set(by_name)
    lines = doctor.render_text(checks).splitlines()
    assert len(lines) == len(checks) and lines[10].startswith("FAIL port ") and "fix:" in lines[10]
    with pytest.raises(Exception, match="unknown doctor check"):
        doctor.run_doctor(cfg, skip=("dns",))


def test_outbox_quarantine_is_logged_counted_and_shown_by_doctor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged outbox at start: the server starts on a fresh one, logs and counts it, and doctor fails until IT removes the file."""
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.device.ops.metrics import Registry
    from tests.delivery_fixtures import Pki, RecordingRunner, server_config
    from tests.doubles.scripted_runner import SpectralVoiceEnroller

    pki = Pki.make(tmp_path / "pki")
    data = tmp_path / "data"
    data.mkdir()
    (data / "outbox.db").write_bytes(b"\x00garbage" * 4096)
    registry = Registry()
    server = EdgeAgentServer(server_config(pki, data), RecordingRunner(), SpectralVoiceEnroller(), metrics=registry)
    bg = BackgroundServer(server)
    with caplog.at_level("ERROR", logger="edge_agent"):
        bg.start()
    try:
        assert registry.get("edge_agent_outbox_quarantined_total", reason="damaged") == 1
        assert any("moved aside as" in r.getMessage() and "fresh outbox started" in r.getMessage() for r in caplog.records)
    finally:
        bg.stop()
    check = doctor.check_outbox(data, max_mb=1)
    assert not check.ok and "outbox.db.corrupt-1" in check.message and "shred -u" in check.fix
    for f in data.glob("outbox.db.corrupt-1*"):
        f.unlink()
    assert doctor.check_outbox(data, max_mb=1).ok


def test_outbox_check_reads_held_reports_from_the_daemon_metrics(tmp_path: Path) -> None:
    """Doctor reads the published numbers: a change shows after the next publication boundary, not before."""
    from edge_agent.device.ops.metrics import MetricsServer, Registry
    from tests.doubles.clock import ManualClock, publish_next

    registry, clock = Registry(), ManualClock()
    server = MetricsServer(registry, 0, publish_s=3600, clock=clock)
    port = server.start()
    try:
        assert doctor.check_outbox(tmp_path, max_mb=1, metrics_port=port).ok
        registry.set("edge_agent_reports_held", 3)
        registry.set("edge_agent_reports_held_bytes", 12000)
        assert doctor.check_outbox(tmp_path, max_mb=1, metrics_port=port).ok  # not published yet
        publish_next(server.publisher, clock)
        held = doctor.check_outbox(tmp_path, max_mb=1, metrics_port=port)
        assert not held.ok and "3 sealed reports (12 kB) are held" in held.message and "free space" in held.fix
        registry.set("edge_agent_reports_held", 0)
        registry.inc("edge_agent_reports_dropped_total", 2, reason="exit")
        assert "3 sealed reports" in doctor.check_outbox(tmp_path, max_mb=1, metrics_port=port).message  # as of the boundary
        publish_next(server.publisher, clock)
        lost = doctor.check_outbox(tmp_path, max_mb=1, metrics_port=port)
        assert not lost.ok and "2 sealed reports were lost" in lost.message
    finally:
        server.stop()
    # daemon not running: the check still runs on the files alone
    assert doctor.check_outbox(tmp_path, max_mb=1, metrics_port=port).ok


def test_outbox_path_naming_a_file_says_so(tmp_path: Path) -> None:
    """outbox.path set to the database file itself: the check says it is a file, not that it 'does not exist'."""
    db = tmp_path / "outbox.db"
    db.write_bytes(b"")
    check = doctor.check_outbox(db, 64)
    assert not check.ok and "not a directory" in check.message and "does not exist" not in check.message, check.message
    assert "outbox.path" in check.fix


def test_doctor_reports_every_refusal_serve_makes_at_start(site: dict[str, Path], tmp_path: Path) -> None:
    """An IT admin runs doctor before starting the service: each start-time refusal of serve (room-code secret,
    allow-list, population keys, web origin, server.room against the certificate) is a FAIL line, exit 1, with the
    same one-line reason serve gives; before, doctor said all was well and serve then refused."""
    from edge_agent.device.main import start_checks
    from edge_agent.errors import EdgeAgentError

    (tmp_path / "secret").write_text("not hex\n")
    (tmp_path / "secret").chmod(0o600)
    cfg = parse_config(
        {
            "server": {"bundle": str(site["base"] / "device.pem"), "crl": str(site["crl_empty"]), "room": "Room 9", "advertise": False},
            "outbox": {"path": str(tmp_path / "outbox"), "max_mb": 1},
            "presence": {"code_secret": str(tmp_path / "secret"), "allowed_clinicians": str(tmp_path / "missing-allow-list")},
            "population": {"enabled": True, "period_key": str(tmp_path / "no-period.key"),
                           "aggregator_public_key": str(tmp_path / "no-aggregator.pub")},
            "web": {"enabled": True},
        }
    )
    checks = {c.name: c for c in doctor.run_doctor(cfg, skip=("audio", "cpu", "models", "port", "pipeline", "outbox", "clock"))}
    assert not checks["certificates"].ok and "server.room is 'Room 9'" in checks["certificates"].message
    assert not checks["presence"].ok and "is not a room-code secret" in checks["presence"].message
    assert not checks["population"].ok and "no-period.key" in checks["population"].message
    assert not checks["web"].ok and "web.allowed_origin" in checks["web"].message
    assert checks["gpio"].ok and "gpio.backend is none" in checks["gpio"].message
    assert doctor.exit_code(list(checks.values())) == 1
    for c in checks.values():
        assert "\n" not in c.line()
    # the lines are serve's own refusals: the same functions raise the same messages
    for name, run in start_checks(cfg).items():
        if name == "gpio":
            continue
        with pytest.raises(EdgeAgentError) as refused:
            run()
        assert str(refused.value) in checks[name].message

    # fixed one at a time, each check passes and says what it checked
    (tmp_path / "secret").write_text("ab" * 32 + "\n")
    (tmp_path / "allow").write_text("# nobody yet\n")
    from edge_agent.crypto import seal
    from edge_agent.population.pseudonym import PeriodKeyRing

    PeriodKeyRing.create(tmp_path / "period.key")
    _, pub = seal.generate_keypair()
    (tmp_path / "aggregator.pub").write_bytes(pub)
    cfg2 = parse_config(
        {
            "server": {"bundle": str(site["base"] / "device.pem"), "crl": str(site["crl_empty"]), "room": "Room 4", "advertise": False},
            "outbox": {"path": str(tmp_path / "outbox"), "max_mb": 1},
            "presence": {"code_secret": str(tmp_path / "secret"), "allowed_clinicians": str(tmp_path / "allow")},
            "population": {"enabled": True, "period_key": str(tmp_path / "period.key"),
                           "aggregator_public_key": str(tmp_path / "aggregator.pub")},
            "web": {"enabled": True, "allowed_origin": "https://phones.clinic.example:8443"},
        }
    )
    ok = {c.name: c for c in doctor.run_doctor(cfg2, skip=("audio", "cpu", "models", "port", "pipeline", "outbox", "clock"))}
    assert all(c.ok for c in ok.values()), [c.line() for c in ok.values()]
    assert "allow-list" in ok["presence"].message and "origin" in ok["web"].message


def test_doctor_cli_shows_the_start_refusals_and_exits_non_zero(site: dict[str, Path], tmp_path: Path) -> None:
    conf = tmp_path / "edge.toml"
    conf.write_text(textwrap.dedent(f"""
        [server]
        bundle = "{site['base'] / 'device.pem'}"
        crl = "{site['crl_empty']}"
        room = "Room 4"
        advertise = false
        [outbox]
        path = "{tmp_path / 'outbox'}"
        [presence]
        code_secret = "{tmp_path / 'no-secret'}"
        [web]
        enabled = true
        allowed_origin = "https://phones.clinic.example/app"
    """))
    res = subprocess.run([sys.executable, "-m", "edge_agent.cli", "doctor", "--config", str(conf), "--skip", "audio", "--skip", "cpu",
                          "--skip", "models", "--skip", "port", "--skip", "pipeline"],
                         capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    presence = next(x for x in lines if x.startswith("FAIL presence"))
    assert "room-code secret" in presence and "not found" in presence and "edge-agent provision" in presence
    web = next(x for x in lines if x.startswith("FAIL web"))
    assert "must be exactly https://HOST[:PORT]" in web
    assert "Traceback" not in res.stderr


def test_doctor_reports_a_gpio_backend_serve_cannot_open(tmp_path: Path) -> None:
    """gpio.backend = "rpi" without its driver (lgpio): serve refuses at start; doctor says so with the same line."""
    import importlib.util

    if importlib.util.find_spec("lgpio") is not None:
        pytest.skip("lgpio is installed here: the rpi backend may open")
    cfg = parse_config({"gpio": {"backend": "rpi"}, "presence": {"code_secret": ""}})
    checks = {c.name: c for c in doctor.run_doctor(cfg, skip=tuple(n for n in doctor.CHECK_NAMES if n not in ("presence", "gpio")))}
    assert checks["presence"].ok and "room button (rpi)" in checks["presence"].message
    assert not checks["gpio"].ok and "gpio.backend 'rpi' unavailable" in checks["gpio"].message and "python3-lgpio" in checks["gpio"].message
    mock = {c.name: c for c in doctor.run_doctor(parse_config({"gpio": {"backend": "mock"}}), skip=("audio", "models", "certificates",
            "presence", "population", "web", "clock", "outbox", "pipeline", "port", "mdns", "cpu", "dumps"))}
    assert mock["gpio"].ok, mock["gpio"]


def test_doctor_json_reports_a_config_it_cannot_load(tmp_path: Path) -> None:
    """The fleet loop (docs/operations.md) saves `doctor --json` per room and lists the rooms whose `.ok` is false.
    A room with a bad config value printed only a plain line on stderr and nothing on stdout, so its JSON file was
    empty and jq listed it nowhere: the room that most needed a look vanished from the list."""
    conf = tmp_path / "edge.toml"
    conf.write_text("[vad]\naggressiveness = 7\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    for args, problem in ((["--config", str(conf)], "vad.aggressiveness is 7"),
                          (["--config", str(tmp_path / "missing.toml")], "not found")):
        res = subprocess.run([sys.executable, "-m", "edge_agent.cli", "doctor", *args, "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 1, res.stdout + res.stderr
        report = json.loads(res.stdout)
        assert report["ok"] is False
        (check,) = report["checks"]
        assert check["name"] == "config" and check["ok"] is False and problem in check["message"], check
        assert "docs/config.md" in check["fix"] and "Traceback" not in res.stderr
        text = subprocess.run([sys.executable, "-m", "edge_agent.cli", "doctor", *args],
                              capture_output=True, text=True, env=env, timeout=120)
        assert text.returncode == 1 and text.stdout.startswith("FAIL config") and problem in text.stdout, text.stdout + text.stderr


def test_a_bundle_readable_by_others_gets_the_chmod_fix_not_a_reissue(site: dict[str, Path], tmp_path: Path) -> None:
    """A 0644 bundle (copied with cp, or an image build) was told 'run: chmod 600 …' and then '— fix: issue a new
    bundle on the CA host': two contradictory instructions, the second a needless trip to the offline CA host."""
    loose = tmp_path / "device.pem"
    shutil.copy(site["base"] / "device.pem", loose)
    loose.chmod(0o644)
    got = doctor.check_certificates(loose, site["crl"])
    assert not got.ok and "chmod 600" in got.message
    assert "issue" not in got.fix and "chmod 600" in got.fix, got.line()
    not_yet = doctor.check_certificates(site["base"] / "device.pem", site["crl"], now=dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc))
    assert not not_yet.ok and "not valid until" in not_yet.message and "clock" in not_yet.fix


RO_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from edge_agent.site.doctor import run_doctor
    from edge_agent.device.config import load_config
    conf = Path(sys.argv[2])
    conf.write_text(f'[outbox]\\npath = "{sys.argv[3]}"\\n')
    (check,) = run_doctor(load_config(conf, env={}), skip=[n for n in ("audio", "models", "certificates", "presence", "gpio",
                          "population", "web", "clock", "pipeline", "ports", "port", "mdns", "cpu", "dumps")])
    print(json.dumps(check.__dict__))
    """
)


def test_a_read_only_outbox_is_explained_not_a_crash(tmp_path: Path) -> None:
    """A state directory on a read-only filesystem (an image mounted ro, a remount after disk errors) made the
    probe's clean-up raise EROFS: doctor said 'check crashed (OSError) — report this as a bug'."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    ro = tmp_path / "ro"
    ro.mkdir()
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o ro,size=1m tmpfs {ro} && exec "$0" -c "$1" "$2" "$3" "$4"',
         sys.executable, RO_SCRIPT, str(ROOT), str(tmp_path / "edge.toml"), str(ro)],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    check = json.loads(result.stdout)
    assert not check["ok"] and "crashed" not in check["message"] and "read-only" in check["message"].lower(), check
    assert "read-write" in check["fix"] and "chown" not in check["fix"], check


def test_outbox_check_fails_on_a_reports_lost_note_until_it_is_removed(tmp_path: Path) -> None:
    """The note the daemon leaves when it lost sealed reports (device/lost.py): doctor fails, says how many, why,
    when, and how to clear it; two losses add up; a note the disk had no room to fill still fails (count unknown)."""
    from edge_agent.device.lost import append_note

    assert doctor.check_outbox(tmp_path, max_mb=1).ok
    assert append_note(tmp_path, 2, "disk full", "exit", now=1_800_000_000) is None
    assert append_note(tmp_path, 1, "outbox full", "running", now=1_800_000_600) is None
    assert (tmp_path / "reports-lost").stat().st_mode & 0o777 == 0o600
    check = doctor.check_outbox(tmp_path, max_mb=1)
    assert not check.ok and check.name == "outbox"
    assert check.message.startswith("3 sealed report(s) could not be written and are gone (disk full, outbox full, "
                                    "last on 2027-01-15 UTC)")
    assert "08:" not in (tmp_path / "reports-lost").read_text()  # the day only: the state directory keeps no time of day
    assert f"rm {tmp_path / 'reports-lost'}" in check.fix and "df -h" in check.fix
    (tmp_path / "reports-lost").write_text("")  # created, but no room for its line
    blank = doctor.check_outbox(tmp_path, max_mb=1)
    assert not blank.ok and "count unreadable" in blank.message
    (tmp_path / "reports-lost").unlink()  # IT acknowledged it
    assert doctor.check_outbox(tmp_path, max_mb=1).ok


def test_dumps_fails_where_the_kernel_would_dump_the_non_dumpable_daemon(tmp_path: Path) -> None:
    """fs.suid_dumpable=2 (set with crash collectors such as apport) dumps a process that made itself non-dumpable:
    LimitCORE=0 and PR_SET_DUMPABLE=0 then keep no transcript out of a crash dump (docs/security.md)."""
    suid, pattern = tmp_path / "suid_dumpable", tmp_path / "core_pattern"
    pattern.write_text("|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E\n")
    suid.write_text("2\n")
    bad = doctor.check_dumps(suid, pattern)
    assert not bad.ok and "fs.suid_dumpable is 2" in bad.message and "apport" in bad.message and "sysctl" in bad.fix
    suid.write_text("0\n")
    good = doctor.check_dumps(suid, pattern)
    assert good.ok and "not dumped" in good.message
    assert doctor.check_dumps(tmp_path / "absent", pattern).ok  # not Linux: nothing to say
