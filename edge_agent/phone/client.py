"""Reference clinician phone client: discover | start | stop | enroll | feedback [--follow].

Plain functions (the typer app wires ``edge-agent phone ...`` to them). Every
connection is mutual TLS with the clinician bundle; the device must chain to
the site CA, carry a device certificate whose CA-attested room is the room the
clinician chose, match the fingerprint pinned at provisioning (``phone pin``;
never one learned from mDNS, which anyone on the network can answer), and not
be revoked by the newest site CRL the phone holds. The phone learns newer CRLs
from every device it talks to (``DeviceInfo.crl``, CA-signed, only ever
replaced by a higher CRL number) and refuses to work without a current one.
A device whose ``DeviceInfo.protocol_version`` this client does not understand
is refused before any other call (:mod:`edge_agent.protocol`).

Fingerprint check: gRPC Python exposes no peer certificate on the client side,
so we complete one TLS handshake with :mod:`ssl` (same CA, same client cert)
to read the device certificate, compare its SHA-256, then open the gRPC
channel. Between the two connections only another certificate from the same
site CA could be substituted (see docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf
from cryptography import x509

from edge_agent.crypto import ca, seal
from edge_agent.crypto.errors import CertificateError, SealError
from edge_agent.feedback.quality import empty_report_text, quality_notes
from edge_agent.mtls.memfile import pem_memfile
from edge_agent.phone.answers import ALREADY_ENDED, NO_REPORT_CAPABILITY, device_answer, no_report_line
from edge_agent.phone.keys import ClientError, ClinicianKeys, load_key_file, remember, update_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc, feedback_pb2
from edge_agent.protocol import MAX_ENROLL_SECONDS, compatibility
from edge_agent.wording import a_or_an

ENROLL_CHUNK_BYTES = 32 * 1024
REPORT_SEQ = 1  # the sequence number a visit's coaching report is sealed under (population records use 0)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    fingerprint: str | None = None  # expected SHA-256 of the device certificate (hex), from provisioning
    room: str | None = None  # the room the clinician chose: the device certificate must name it

    @classmethod
    def parse(cls, address: str, fingerprint: str | None = None, room: str | None = None) -> Target:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ClientError(f"device address {address!r} must be HOST:PORT (or use discover)")
        return cls(host.strip("[]"), int(port), fingerprint.lower() if fingerprint else None, room)


@dataclass(frozen=True)
class Report:
    item_id: int
    visit_id: str
    feedback: feedback_pb2.Feedback

    def render(self) -> str:
        return render_report(self.feedback)


# ---- connection ---------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedDevice:
    """The device certificate seen on a handshake that verified it against the site CA."""

    fingerprint: str  # SHA-256 of the DER certificate, hex
    certificate_pem: str  # the very certificate, to pin the gRPC channel to
    room: str = ""  # the room the CA certified for this device
    serial: int = 0


def held_crl(keys: ClinicianKeys) -> ca.Crl | None:
    """The phone's CRL if it still verifies under the site CA (None if none or stale)."""
    if not keys.crl_pem:
        return None
    try:
        return ca.parse_crl(keys.crl_pem.encode(), x509.load_pem_x509_certificate(keys.ca_pem.encode()), "the phone's CRL")
    except CertificateError:
        return None


def _crl_number(keys: ClinicianKeys) -> int:
    if not keys.crl_pem:
        return 0
    try:
        crl = x509.load_pem_x509_crl(keys.crl_pem.encode())
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except (ValueError, x509.ExtensionNotFound):
        return 0


def learn_crl(keys: ClinicianKeys, pem: bytes) -> bool:
    """Keep ``pem`` if it is a current site CRL numbered above the one held; True if it was taken."""
    if not pem:
        return False
    try:
        crl = ca.parse_crl(bytes(pem), x509.load_pem_x509_certificate(keys.ca_pem.encode()), "the device's CRL")
    except CertificateError:
        return False  # stale, foreign or damaged: the phone keeps what it has
    if crl.number <= _crl_number(keys):
        return False
    with update_key_file(keys.path) as fresh:
        if crl.number > _crl_number(fresh):
            fresh.crl_pem = crl.pem.decode()
    keys.crl_pem = crl.pem.decode()
    return True


_CERT_NOT_YET_VALID, _CERT_HAS_EXPIRED = 9, 10  # OpenSSL X509_V_ERR_CERT_NOT_YET_VALID / X509_V_ERR_CERT_HAS_EXPIRED


def check_own_certificate(keys: ClinicianKeys, now: dt.datetime | None = None) -> None:
    """The phone's own certificate out of its dates, said before connecting: the device refuses it after the
    handshake (TLS 1.3 checks the client last), which the phone could only report as a lost connection."""
    cert = x509.load_pem_x509_certificate(keys.cert_pem.encode())
    now = now or dt.datetime.now(dt.timezone.utc)
    if now >= cert.not_valid_after_utc:
        raise ClientError(f"this phone's certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}; make a new request "
                          "(`edge-agent phone request`) and ask IT to sign it")
    if now < cert.not_valid_before_utc:
        raise ClientError(f"this phone's certificate is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
                          "check this phone's clock (date and time zone)")


def verify_device(keys: ClinicianKeys, target: Target, timeout: float = 5.0) -> VerifiedDevice:
    """Fetch the device certificate over TLS; check chain, room, pinned fingerprint and the phone's CRL."""
    check_own_certificate(keys)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=keys.ca_pem)
    with pem_memfile((keys.cert_pem + keys.key_pem).encode(), "edge-agent-key") as path:
        ctx.load_cert_chain(path)
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=ca.DEVICE_TLS_NAME) as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code in (_CERT_NOT_YET_VALID, _CERT_HAS_EXPIRED):  # from this site's CA, but out of its dates
            state = "has expired" if exc.verify_code == _CERT_HAS_EXPIRED else "is not valid yet (check this phone's clock)"
            raise ClientError(f"the certificate of the device at {target.host}:{target.port} {state}; tell IT "
                              "('edge-agent doctor' on the device)") from None
        raise ClientError(f"device at {target.host}:{target.port} is not from this site's CA ({exc.verify_message}); do not use it") from None
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot reach the device at {target.host}:{target.port} ({exc.__class__.__name__}); check Wi-Fi and the address") from None
    if der is None:
        raise ClientError("device sent no certificate")
    fp = hashlib.sha256(der).hexdigest()
    pinned = target.fingerprint or (keys.pins.get(target.room) if target.room else None)
    if pinned is not None and fp != pinned:
        raise ClientError(f"device certificate fingerprint {fp[:16]}... does not match the expected {pinned[:16]}...; do not use this device")
    try:
        ident = ca.identity_of(x509.load_der_x509_certificate(der))
    except (ValueError, CertificateError):
        raise ClientError(f"device at {target.host}:{target.port} has no edge-agent device certificate; do not use it") from None
    if ident.role != ca.ROLE_DEVICE:
        raise ClientError(f"{target.host}:{target.port} is not a room device (its certificate is {a_or_an(ident.role)}'s); do not use it")
    if not ident.room:
        raise ClientError("the device certificate names no room (issued before rooms were attested); IT must re-issue it")
    if target.room is not None and ident.room != target.room:
        raise ClientError(f"this device is certified for {ident.room!r}, not {target.room!r}; do not use it in this room")
    crl = held_crl(keys)
    if crl is not None and ident.serial in crl.revoked:
        raise ClientError("this device's certificate has been revoked by the site; do not use it, tell IT")
    return VerifiedDevice(fp, ssl.DER_cert_to_PEM_cert(der), ident.room, ident.serial)


def device_fingerprint(keys: ClinicianKeys, target: Target, timeout: float = 5.0) -> str:
    """SHA-256 of the device certificate, after verifying it chains to the site CA."""
    return verify_device(keys, target, timeout).fingerprint


def channel_options() -> list[tuple[str, object]]:
    return [
        ("grpc.ssl_target_name_override", ca.DEVICE_TLS_NAME),
        ("grpc.keepalive_time_ms", 20_000),  # >= server min_ping_interval (10 s)
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", 2 * 1024 * 1024),
    ]


@contextmanager
def connect(keys: ClinicianKeys, target: Target) -> Iterator[tuple[grpc.Channel, str]]:
    """A verified mutual-TLS channel and the device fingerprint.

    gRPC Python shows a client no peer certificate, so the chain and
    fingerprint are checked on a plain TLS handshake first, and the gRPC
    channel then trusts exactly that certificate (it is the channel's only
    trust anchor): a different device, even one of the same site CA, that
    answers the second connection fails the handshake.
    """
    with connect_info(keys, target) as (channel, fp, _info):
        yield channel, fp


@contextmanager
def connect_info(keys: ClinicianKeys, target: Target) -> Iterator[tuple[grpc.Channel, str, agent_pb2.DeviceInfo]]:
    """:func:`connect`, also handing over the DeviceInfo the checks read (e.g. its speaker model)."""
    device = verify_device(keys, target)
    fp = device.fingerprint
    creds = grpc.ssl_channel_credentials(device.certificate_pem.encode(), keys.key_pem.encode(), keys.cert_pem.encode())
    channel = grpc.secure_channel(f"{target.host}:{target.port}", creds, options=channel_options())
    try:
        info = _check_over_mtls(keys, channel, device)
        yield channel, fp, info
    finally:
        channel.close()


def _check_over_mtls(keys: ClinicianKeys, channel: grpc.Channel, device: VerifiedDevice) -> agent_pb2.DeviceInfo:
    """Over the pinned channel: the device's room, a current CRL (learning a newer one), and its serial against it."""
    try:
        info = agent_pb2_grpc.EdgeAgentStub(channel).GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=10)
    except grpc.RpcError as exc:
        raise _rpc_error(exc) from None
    if info.room != device.room:
        raise ClientError(f"the device says it is {info.room!r} but its certificate says {device.room!r}; do not use it, tell IT")
    learn_crl(keys, info.crl)
    crl = held_crl(keys)
    if crl is None:
        raise ClientError("this phone has no current revocation list and the device offered none; "
                          "connect to another room device or ask IT (edge-agent phone crl)")
    if device.serial in crl.revoked:
        raise ClientError("this device's certificate has been revoked by the site; do not use it, tell IT")
    check_protocol(info)
    return info


def check_protocol(info: agent_pb2.DeviceInfo) -> None:
    """The device's protocol version against the range this client understands (edge_agent.protocol): before any
    other call, a device this client would misunderstand is refused in one line that says what to update."""
    compat = compatibility(info.protocol_version)
    if not compat.usable:
        raise ClientError(compat.reason)


def _rpc_error(exc: grpc.RpcError) -> ClientError:
    code = exc.code()  # type: ignore[attr-defined]
    details = exc.details() or code.name  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        # the certificate check just passed, so a failing handshake now means another machine answered
        return ClientError(
            f"lost the device or it changed since its certificate was checked ({details.splitlines()[0][:120]}); "
            "retry, and if it persists tell IT", code=code.name)
    # the web app's wording (edge_agent.phone.answers): a refusal, a limit, a fault, capture that could not start
    return ClientError(device_answer(code.name, details), code=code.name)


def _no_report(info: agent_pb2.DeviceInfo, visit_id: str) -> int | None:
    """Why ``visit_id`` (one of the caller's) ended with no report, if the device says it did (else None)."""
    if NO_REPORT_CAPABILITY not in info.capabilities:
        return None
    return next((int(e.reason) for e in info.ended_without_report if e.visit_id == visit_id), None)


def _forget_visit(key_file: str | Path, visit_id: str) -> None:
    """A visit whose report will never come: no longer this phone's current visit, and not waited for any more."""
    with update_key_file(key_file) as fresh:
        if visit_id in fresh.visits:
            fresh.visits.remove(visit_id)
        for fp, current in list(fresh.current_visit.items()):
            if current == visit_id:
                fresh.current_visit.pop(fp)


# ---- verbs ------------------------------------------------------------------------------


def device_info(key_file: str | Path, target: Target) -> agent_pb2.DeviceInfo:
    keys = load_key_file(key_file)
    with connect(keys, target) as (channel, _):
        try:
            return agent_pb2_grpc.EdgeAgentStub(channel).GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=10)
        except grpc.RpcError as exc:
            raise _rpc_error(exc) from None


VOICEPRINT_USE_NAMES = {
    agent_pb2.VOICEPRINT_USE_UNSPECIFIED: "unknown",  # a device from before it said (it used any voiceprint sent)
    agent_pb2.VOICEPRINT_NONE: "none", agent_pb2.VOICEPRINT_USED: "used",
    agent_pb2.VOICEPRINT_UNCHECKED: "used unchecked", agent_pb2.VOICEPRINT_STALE: "not used: re-enrol",
}


# Said before a start when this phone holds voiceprints but none made by the room device's speaker model (the room runs
# another release's model while the fleet is updated): the visit may start, without one. The web app says the same.
OTHER_MODEL_NOTICE = ("this room uses another voice model: enrol here to use your voice profile in this room too "
                      "(your other rooms keep theirs); the visit can start without it")


@dataclass(frozen=True)
class StartedVisit:
    visit_id: str
    voiceprint: str  # VOICEPRINT_USE_NAMES: what the device did with the voiceprint this phone sent
    notice: str  # one line for the clinician (the device's, e.g. re-enrol; else OTHER_MODEL_NOTICE if said), else ""
    recovered: bool = False  # the start's answer was lost; the device said afterwards that this visit of ours runs


# A start whose answer may have been lost on the way back (the device may have started the visit): the phone asks
# the device afterwards whether a visit of its own runs there. Refusals (busy, wrong code, ...) are answers.
ANSWER_LOST = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
               grpc.StatusCode.UNKNOWN)
OWN_VISIT_CAPABILITY = "own-visit"  # DeviceInfo.own_visit_id is filled by this device
RECOVERED_NOTICE = ("the device's answer to the start was lost, but your visit IS running (capture is on): "
                    "stop it with 'edge-agent phone stop' when the visit ends")


def start(key_file: str | Path, target: Target, max_duration_s: int = 0, consent: bool = True, room_code: str = "") -> str:
    """Start a visit (the clinician confirms the patient knows capture is on, and types the room's code)."""
    return start_visit(key_file, target, max_duration_s, consent, room_code).visit_id


def start_visit(key_file: str | Path, target: Target, max_duration_s: int = 0, consent: bool = True,
                room_code: str = "", before_start: Callable[[str], None] | None = None, timeout: float = 30) -> StartedVisit:
    """:func:`start`, also saying what the device did with the voiceprint.

    The voiceprint sent is the one made by the device's speaker model (``DeviceInfo.speaker_model``, read over the
    checked channel just before); a device that does not state its model gets the most recent one, as before. When
    this phone holds voiceprints but none for that model, ``before_start`` hears :data:`OTHER_MODEL_NOTICE` before
    the start is sent, and the visit starts without one.

    A start whose answer is lost (deadline, dropped connection), or refused as busy, asks the device on a new
    connection whether a visit of this phone's runs there (:func:`own_visit`): if so it is adopted (remembered, so
    ``phone stop`` ends it and its report opens) and returned with ``recovered``; if not, the line says capture is off.
    """
    keys = load_key_file(key_file)
    with connect_info(keys, target) as (channel, fp, info):
        chosen = keys.voiceprint_for(info.speaker_model)
        said = OTHER_MODEL_NOTICE if chosen is None and keys.voiceprints else ""
        if said and before_start is not None:
            before_start(said)
        model, values = chosen or ("", [])
        request = agent_pb2.StartVisitRequest(
            consent=consent, sealing_public_key=keys.sealing_public, voiceprint_values=values, max_duration_s=max_duration_s,
            room_code=room_code,
            # the model id goes with the voiceprint it names, never alone
            voiceprint_model=model if values else "",
        )
        failure: ClientError | None = None
        lost = False
        try:
            reply = agent_pb2_grpc.EdgeAgentStub(channel).StartVisit(request, timeout=timeout)
        except grpc.RpcError as exc:
            failure = _rpc_error(exc)
            lost = exc.code() in ANSWER_LOST  # type: ignore[attr-defined]
            busy = exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "already running" in (exc.details() or "")  # type: ignore[attr-defined]
            if not (lost or busy):
                raise failure from None
    if failure is not None:  # asked on a new connection: the old one may be the one that failed
        return _after_lost_start(key_file, target, failure, lost)
    _adopt_visit(key_file, fp, reply.visit_id)
    # Every voiceprint is kept, even one this device calls stale: another room's device may still run the model that
    # made it (a fleet is updated room by room); enrolling here adds this device's model beside it.
    return StartedVisit(str(reply.visit_id), VOICEPRINT_USE_NAMES.get(reply.voiceprint_use, "unknown"),
                        _one_line(reply.notice) or said)


def own_visit(key_file: str | Path, target: Target) -> tuple[str, agent_pb2.DeviceInfo]:
    """The visit this phone's certificate started that runs on the device now ("" if none), adopted as this phone's
    current visit there (``phone stop`` ends it; its report opens). The device says only the caller's own visit."""
    keys = load_key_file(key_file)
    with connect_info(keys, target) as (_channel, fp, info):
        pass
    vid = _own_visit_id(info)
    if vid:
        _adopt_visit(key_file, fp, vid)
    return vid, info


def _own_visit_id(info: agent_pb2.DeviceInfo) -> str:
    """The caller's own running visit as the device names it; "" if none or the device cannot say."""
    return info.own_visit_id if OWN_VISIT_CAPABILITY in info.capabilities else ""


def _adopt_visit(key_file: str | Path, fp: str, visit_id: str) -> None:
    """Remember a visit as this phone's (its report opens) and as its current one on that device ('phone stop')."""
    with update_key_file(key_file) as fresh:
        remember(fresh.visits, visit_id)
        fresh.current_visit[fp] = visit_id


def _after_lost_start(key_file: str | Path, target: Target, failure: ClientError, lost: bool) -> StartedVisit:
    """After a start with no answer (``lost``) or a busy refusal: is a visit of mine running there?"""
    why = ("the room device did not answer the start in time" if failure.code == grpc.StatusCode.DEADLINE_EXCEEDED.name
           else "the connection to the room device was lost before it answered the start")
    try:
        vid, info = own_visit(key_file, target)
    except ClientError:
        if not lost:
            raise failure from None
        raise ClientError(
            f"{why}, and it cannot be reached to check: your visit MAY be running "
            "(capture on); run 'edge-agent phone stop' as soon as the device is reachable, or press the room button",
            code=failure.code) from None
    if vid:
        return StartedVisit(vid, "unknown", RECOVERED_NOTICE if lost else
                            "a visit you started earlier is still running in this room (capture is on): "
                            "stop it with 'edge-agent phone stop' first", recovered=True)
    if not lost:
        raise failure
    if OWN_VISIT_CAPABILITY in info.capabilities or not info.visit_active:
        tail = "another clinician's visit runs here, yours did not start" if info.visit_active else "capture is off, start again"
        raise ClientError(f"{why}; the device says no visit of yours is running: {tail}", code=failure.code)
    # a device from before "own-visit": it cannot say whose the running visit is
    raise ClientError(f"{why}; a visit is running in this room and this device cannot say whose: if it is yours, "
                      "press the room button to stop it", code=failure.code)


def _one_line(text: str, limit: int = 200) -> str:
    """A device's notice as one short printable line (it is shown to the clinician as is)."""
    first = text.splitlines()[0] if text else ""
    return "".join(c if c.isprintable() else " " for c in first).strip()[:limit]


_MODEL_ID_RE = re.compile(r"[!-~]{1,128}")  # what a device accepts back as StartVisitRequest.voiceprint_model


@dataclass(frozen=True)
class ClaimResult:
    claim_id: str
    valid_for_s: int
    contested: bool


def claim_room(key_file: str | Path, target: Target) -> ClaimResult:
    """Tell the room device "I am here": a press of its button within the window starts my visit."""
    keys = load_key_file(key_file)
    with connect(keys, target) as (channel, fp):
        try:
            reply = agent_pb2_grpc.EdgeAgentStub(channel).ClaimRoom(
                agent_pb2.ClaimRoomRequest(sealing_public_key=keys.sealing_public), timeout=30
            )
        except grpc.RpcError as exc:
            raise _rpc_error(exc) from None
    if reply.claim_id:  # remembered: the press may come while nobody watches the claim (its report must still open)
        with update_key_file(key_file) as fresh:
            remember(fresh.claims.setdefault(fp, []), reply.claim_id, MAX_CLAIMS_REMEMBERED)
    return ClaimResult(reply.claim_id, int(reply.valid_for_s), bool(reply.contested))


MAX_CLAIMS_REMEMBERED = 64  # the device remembers no more claims than this either


def _learn_claimed_visits(stub: agent_pb2_grpc.EdgeAgentStub, key_file: str | Path, fp: str) -> None:
    """Ask the device about this phone's unresolved claims: a started one names a visit of mine (its report opens)."""
    keys = load_key_file(key_file)
    started: list[str] = []
    settled: list[str] = []
    for claim_id in list(keys.claims.get(fp, [])):
        try:
            st = stub.GetClaim(agent_pb2.GetClaimRequest(claim_id=claim_id), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):  # type: ignore[attr-defined]
                settled.append(claim_id)  # the device no longer knows it (restarted, or long forgotten)
            continue  # unreachable now: asked again next time
        if st.state == agent_pb2.CLAIM_STARTED and st.visit_id:
            started.append(st.visit_id)
            settled.append(claim_id)
        elif st.state != agent_pb2.CLAIM_PENDING:
            settled.append(claim_id)  # contested or expired: it never started anything
    if not (started or settled):
        return
    with update_key_file(key_file) as fresh:
        for vid in started:
            remember(fresh.visits, vid)
            fresh.current_visit[fp] = vid  # the newest started claim is the visit 'phone stop' ends
        left = [c for c in fresh.claims.get(fp, []) if c not in settled]
        if left:
            fresh.claims[fp] = left
        else:
            fresh.claims.pop(fp, None)


CLAIM_STATE_NAMES = {
    agent_pb2.CLAIM_PENDING: "pending", agent_pb2.CLAIM_STARTED: "started",
    agent_pb2.CLAIM_CONTESTED: "contested", agent_pb2.CLAIM_EXPIRED: "expired",
}


def claim_status(key_file: str | Path, target: Target, claim_id: str) -> agent_pb2.ClaimStatus:
    """Where my claim stands; a started visit is remembered as mine (its report will open)."""
    keys = load_key_file(key_file)
    with connect(keys, target) as (channel, fp):
        try:
            reply = agent_pb2_grpc.EdgeAgentStub(channel).GetClaim(agent_pb2.GetClaimRequest(claim_id=claim_id), timeout=30)
        except grpc.RpcError as exc:
            raise _rpc_error(exc) from None
    if reply.state == agent_pb2.CLAIM_STARTED and reply.visit_id:
        _adopt_visit(key_file, fp, reply.visit_id)
    return reply


def stop(key_file: str | Path, target: Target, visit_id: str | None = None) -> agent_pb2.StopVisitResponse:
    keys = load_key_file(key_file)
    with connect_info(keys, target) as (channel, fp, info):
        # the device names the visit of this certificate's that runs there (also one whose start answer was lost,
        # or one the room button started for a claim): ahead of what this phone noted, which may have ended since
        own = _own_visit_id(info)
        if own and not visit_id:
            with update_key_file(key_file) as fresh:
                remember(fresh.visits, own)  # its report opens on this phone
        vid = visit_id or own or keys.current_visit.get(fp)
        if not vid and keys.claims.get(fp):  # started by the room button for a claim of mine the phone did not follow
            _learn_claimed_visits(agent_pb2_grpc.EdgeAgentStub(channel), key_file, fp)
            vid = load_key_file(key_file).current_visit.get(fp)
        if not vid:
            raise ClientError("no visit started from this phone on that device; give the visit id")
        stub = agent_pb2_grpc.EdgeAgentStub(channel)
        try:
            reply = stub.StopVisit(agent_pb2.StopVisitRequest(visit_id=vid), timeout=120)
        except grpc.RpcError as exc:
            failure = _rpc_error(exc)
            # the visit ended on the device with no report (before this stop, or at it): say so, and stop waiting
            try:
                why = _no_report(stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=10), vid)
            except grpc.RpcError:
                why = None
            if why is None and failure.code == grpc.StatusCode.NOT_FOUND.name and not visit_id:
                # this phone's own visit, which the device ended already (time limit, silence, the button, a
                # restart): not this phone's current visit any more; a report made then comes with `phone feedback`
                with update_key_file(key_file) as fresh:
                    if fresh.current_visit.get(fp) == vid:
                        fresh.current_visit.pop(fp)
                raise ClientError(ALREADY_ENDED, code=failure.code) from None
            if why is None:
                raise failure from None
            _forget_visit(key_file, vid)
            if failure.code == grpc.StatusCode.NOT_FOUND.name:
                raise ClientError(no_report_line(why), code=failure.code) from None
            raise ClientError(f"{failure.message} {no_report_line(why)}", code=failure.code) from None
    with update_key_file(key_file) as fresh:
        if fresh.current_visit.get(fp) == reply.visit_id:
            fresh.current_visit.pop(fp, None)
    return reply


def read_wav_pcm(path: str | Path) -> tuple[bytes, int]:
    """The recording as mono PCM s16le at its own rate, for EnrollVoice.

    Read through libsndfile, as every other command reads audio: Python's ``wave`` refused a 16-bit PCM WAV with an
    extensible header (what sox and many recorders write for stereo or 8/48 kHz) with 'unknown format: 65534;
    record 16-bit PCM WAV'. A recording longer than the device takes is refused before it is read: it was read whole
    into memory (a long file, gigabytes) and sent, only for the device to refuse it after 30 s.
    """
    from edge_agent.audio.file_source import open_audio_file

    with open_audio_file(Path(path)) as handle:
        seconds = handle.frames / handle.samplerate
        if seconds > MAX_ENROLL_SECONDS + 1:
            raise ClientError(
                f"{path} is {seconds:.0f} s long; enrolment takes 10–{MAX_ENROLL_SECONDS} s of you speaking alone: cut "
                f"that part out, e.g. `sox IN OUT trim START {MAX_ENROLL_SECONDS}`"
            )
        try:
            audio = handle.read(dtype="float32", always_2d=True)  # float: libsndfile scales every subtype into -1..1
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise ClientError(f"{path} is damaged ({str(exc).strip()}); record or copy it again") from None
        rate = handle.samplerate
    mono = np.clip(audio.mean(axis=1), -1.0, 1.0)
    return (mono * 32767).astype("<i2").tobytes(), rate


def enroll(key_file: str | Path, target: Target, pcm_s16le: bytes, sample_rate: int) -> list[float]:
    """Send the clinician's own recording; the voiceprint comes back and is kept in the key file, beside those of
    other speaker models (replacing only the one of this device's model)."""
    keys = load_key_file(key_file)

    def chunks() -> Iterator[agent_pb2.EnrollVoiceChunk]:
        for i in range(0, len(pcm_s16le), ENROLL_CHUNK_BYTES):
            yield agent_pb2.EnrollVoiceChunk(sample_rate=sample_rate if i == 0 else 0, pcm_s16le=pcm_s16le[i : i + ENROLL_CHUNK_BYTES])

    with connect(keys, target) as (channel, _):
        try:
            reply = agent_pb2_grpc.EdgeAgentStub(channel).EnrollVoice(chunks(), timeout=120)
        except grpc.RpcError as exc:
            raise _rpc_error(exc) from None
    with update_key_file(key_file) as fresh:
        # "" from a device that does not say (or says something no device would take back): sent unchecked
        fresh.keep_voiceprint(reply.voiceprint_model if _MODEL_ID_RE.fullmatch(reply.voiceprint_model) else "",
                              list(reply.voiceprint_values))
    return list(reply.voiceprint_values)


# Ack retries: a lost ack would leave a delivered report on the device for its 14-day retention.
ACK_RETRY_DELAYS_S: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
_ACK_RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED", "UNKNOWN", "CANCELLED"})


def _send_acks(
    stub: agent_pb2_grpc.EdgeAgentStub, key_file: str | Path, where: str, ids: list[int],
    delays: Sequence[float] = ACK_RETRY_DELAYS_S,
) -> bool:
    """Ack ``ids``, retrying with back-off; True once the device confirmed.

    The ids stay in the key file's ``pending_acks`` until then, so a phone that gives up
    (device gone) sends them first the next time it collects. The device's Ack is
    idempotent (already-deleted ids count 0), so a retry after a lost *answer* is harmless.
    """
    for attempt in range(len(delays) + 1):
        try:
            stub.Ack(agent_pb2.AckRequest(ids=ids), timeout=10)
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() is not None else "UNKNOWN"  # type: ignore[attr-defined]
            if code in _ACK_RETRYABLE and attempt < len(delays):
                time.sleep(delays[attempt])
                continue
            if code in _ACK_RETRYABLE:
                return False  # kept pending: sent again at the next collection
            # refused for good (e.g. not this clinician's ids any more): nothing a retry can change
        with update_key_file(key_file) as fresh:
            left = [i for i in fresh.pending_acks.get(where, []) if i not in set(ids)]
            if left:
                fresh.pending_acks[where] = left
            else:
                fresh.pending_acks.pop(where, None)
        return True
    return False


def feedback(
    key_file: str | Path,
    target: Target,
    follow: bool = False,
    on_report: Callable[[Report], None] | None = None,
    max_reports: int | None = None,
    ack: bool = True,
    timeout: float | None = None,
    ack_retry_delays: Sequence[float] = ACK_RETRY_DELAYS_S,
    on_no_report: Callable[[str, str], None] | None = None,
) -> list[Report]:
    """Receive, decrypt and acknowledge reports, resuming from the saved cursor.

    Exactly-once: the cursor is saved after each report is decrypted (and handed
    to ``on_report``), before it is acknowledged; a dropped stream resumes after
    the last saved id, so nothing is shown twice and nothing is skipped. Acks are
    retried with back-off, and ones that never got through are kept in the key
    file and sent first the next time.

    A visit of this phone's that the device says ended with no report (``DeviceInfo.ended_without_report``) is
    handed to ``on_no_report`` (visit id, one line) once, and no longer waited for. The device ends a followed
    stream when that happens, so a follower hears it on its next call.
    """
    keys = load_key_file(key_file)
    got: list[Report] = []
    with connect(keys, target) as (channel, fp):
        stub = agent_pb2_grpc.EdgeAgentStub(channel)
        try:
            info = stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=10)
        except grpc.RpcError as exc:
            raise _rpc_error(exc) from None
        outbox_id = info.outbox_id
        for vid in [e.visit_id for e in info.ended_without_report if e.visit_id in keys.visits]:
            why = _no_report(info, vid)
            if why is not None:
                _forget_visit(key_file, vid)
                keys.visits.remove(vid)
                if on_no_report is not None:
                    on_no_report(vid, no_report_line(why))
        where = f"{fp}/{outbox_id}"  # ids are only meaningful within one outbox database
        cursor = keys.cursors.get(where, 0)
        if ack and keys.pending_acks.get(where):
            _send_acks(stub, key_file, where, list(keys.pending_acks[where]), ack_retry_delays)
        stream = stub.StreamFeedback(agent_pb2.StreamFeedbackRequest(cursor=cursor, follow=follow), timeout=timeout)
        refused: list[ClientError] = []
        try:
            for item in stream:
                if item.envelope.visit_id not in keys.visits and load_key_file(key_file).claims.get(fp):
                    _learn_claimed_visits(stub, key_file, fp)  # a visit the room button started for one of my claims
                try:
                    report = open_item(keys, item)
                except ClientError as exc:
                    # Refused (unknown visit, replay, wrong sequence, does not open): not acknowledged, so the device
                    # keeps it until its retention ends, but skipped, so it does not hide every report behind it.
                    refused.append(exc)
                    with update_key_file(key_file) as fresh:
                        fresh.cursors[where] = max(item.id, fresh.cursors.get(where, 0))
                    continue
                if on_report is not None:
                    on_report(report)
                got.append(report)
                with update_key_file(key_file) as fresh:
                    fresh.cursors[where] = max(item.id, fresh.cursors.get(where, 0))
                    if ack:
                        fresh.pending_acks.setdefault(where, []).append(item.id)
                    remember(fresh.opened, f"{report.visit_id}/{REPORT_SEQ}")
                keys.opened = fresh.opened
                if ack:
                    _send_acks(stub, key_file, where, [item.id], ack_retry_delays)
                if max_reports is not None and len(got) >= max_reports:
                    stream.cancel()
                    break
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and max_reports is not None and len(got) >= max_reports:  # type: ignore[attr-defined]
                return _after_refusals(got, refused)
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and follow:  # type: ignore[attr-defined]
                return _after_refusals(got, refused)
            details = (exc.details() or "").lower()  # type: ignore[attr-defined]
            if exc.code() == grpc.StatusCode.UNAVAILABLE and "handshake" not in details and "failed to connect" not in details:  # type: ignore[attr-defined]
                # the verified device was streaming and closed it (a restart, an update, the network dropped):
                # not a swapped device, which fails the handshake of a new connection (the message below)
                raise ClientError(
                    f"the device at {target.host}:{target.port} closed the feedback stream (it is restarting, or the "
                    "network dropped); run the command again in a minute - reports not received yet stay queued on it",
                    code="UNAVAILABLE",
                ) from None
            raise _rpc_error(exc) from None
    return _after_refusals(got, refused)


def _after_refusals(got: list[Report], refused: list[ClientError]) -> list[Report]:
    """The reports received (already shown through ``on_report`` and acknowledged), or, if any was refused, one line."""
    if not refused:
        return got
    more = f" ({len(refused) - 1} more refused; they stay on the device, unacknowledged)" if len(refused) > 1 else ""
    shown = f"; {len(got)} other report(s) were received" if got else ""
    raise ClientError(f"{refused[0].message}{more}{shown}", code=refused[0].code)


def open_item(keys: ClinicianKeys, item: agent_pb2.FeedbackItem) -> Report:
    """Open one report: sealed to me, for a visit this phone started or claimed, sequence 1, not opened before."""
    env = seal.from_proto(item.envelope)
    if env.seq != REPORT_SEQ:
        raise ClientError(f"report {item.id} has sequence number {env.seq}, not a visit report's; ignoring it")
    if env.visit_id not in keys.visits:
        keys.visits = load_key_file(keys.path).visits  # started since this key file was read (e.g. while following)
    if env.visit_id not in keys.visits:
        raise ClientError(f"report {item.id} is for a visit this phone did not start or claim; ignoring it")
    if f"{env.visit_id}/{env.seq}" in keys.opened:
        raise ClientError(f"report {item.id} repeats a report already opened (replayed); ignoring it")
    try:
        plaintext = seal.open_envelope(env, keys.sealing_private)
    except SealError as exc:
        raise ClientError(f"report {item.id} cannot be opened: {exc}") from None
    fb = feedback_pb2.Feedback.FromString(plaintext)
    if fb.visit_id != env.visit_id:
        raise ClientError(f"report {item.id} names another visit than its envelope; ignoring it")
    return Report(item.id, env.visit_id, fb)


# ---- rendering -----------------------------------------------------------------------------

_TIMING_LABELS = {
    "opening_uninterrupted_s": ("Patient's opening statement ran", "{:.0f} s"),
    "interruptions": ("Interruptions", "{:.0f}"),
    "talk_share": ("Your share of talk", "{:.0%}"),
    "longest_monologue_s": ("Longest stretch of you talking", "{:.0f} s"),
    "wait_after_question_s": ("Patient's pause before answering", "{:.1f} s"),
    "wait_after_question_median_s": ("Patient's pause before answering (median; 0 when you went on)", "{:.1f} s"),
    "pause_after_answer_median_s": ("Your pause after the patient's answer (median)", "{:.1f} s"),
    "stacked_questions": ("Two or more questions before an answer", "{:.0f}"),
    "speech_rate_wpm": ("Speech rate", "{:.0f} words/min"),
}


def _clock(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 60}:{s % 60:02d}"


def render_report(fb: feedback_pb2.Feedback) -> str:
    """A readable report for the clinician (coaching, not a score)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(fb.started_unix_s)) if fb.started_unix_s else "unknown time"
    lines = [f"Visit of {when} ({_clock(fb.duration_s)} long)", ""]
    for note in quality_notes(fb.quality):
        lines.extend([note, ""])
    if not (fb.observations or fb.timing or fb.label_counts):
        lines.extend([empty_report_text(fb.quality), ""])
    if fb.observations:
        lines.append("What to try next time:")
        for n, ob in enumerate(fb.observations, 1):
            lines.append(f"  {n}. At {_clock(ob.at_s)}: {ob.moment}")
            if ob.clinician_quote:
                lines.append(f'     You said: "{ob.clinician_quote}"')
            if ob.alternative:
                lines.append(f"     Try: {ob.alternative.rstrip('.')}.")
            if ob.rationale:
                lines.append(f"     Why: {ob.rationale}")
        lines.append("")
    if fb.timing:
        lines.append("Timing:")
        for key in sorted(fb.timing):
            label, fmt = _TIMING_LABELS.get(key, (key.replace("_", " "), "{:g}"))
            lines.append(f"  {label}: {fmt.format(fb.timing[key])}")
        lines.append("")
    if fb.label_counts:
        lines.append("What you did (count of your utterances):")
        for key, count in sorted(fb.label_counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if count:
                lines.append(f"  {key.replace('_', ' ')}: {count}")
        unheard = sorted(key.replace("_", " ") for key, count in fb.label_counts.items() if not count)
        if unheard:
            lines.append(f"  not heard this visit: {', '.join(unheard)}")
        lines.append("")
    if fb.summary:
        lines.extend([fb.summary, ""])
    if fb.contribution:
        lines.extend([fb.contribution, ""])
    return "\n".join(lines).rstrip() + "\n"
