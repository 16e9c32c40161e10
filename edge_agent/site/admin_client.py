"""IT's side of the device's ``EdgeAgentAdmin`` service: ``edge-agent device status|force-stop|purge-expired``.

``edge-agent ca issue-admin`` makes an admin bundle and every room device serves
``GetStatus``, ``ForceStopVisit`` and ``PurgeExpired`` to that role only; this is
the client that uses them. The connection is the phone's (``edge_agent.phone.client``):
a TLS handshake verifies the device certificate against the site CA in the admin
bundle (and the expected fingerprint, if given), then the gRPC channel trusts
exactly that certificate, so another machine cannot answer the call in between.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from edge_agent.crypto import ca
from edge_agent.errors import EdgeAgentError
from edge_agent.mtls.memfile import pem_memfile
from edge_agent.phone.answers import REFUSAL_CODES
from edge_agent.phone.client import Target, channel_options
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from edge_agent.wording import a_or_an


class AdminError(EdgeAgentError):
    """An admin call could not be made or was refused (one line, what to do)."""


def _admin_bundle(path: Path) -> ca.Bundle:
    bundle = ca.load_bundle(path, ca.ROLE_ADMIN)
    role = ca.identity_of(bundle.cert).role
    if role != ca.ROLE_ADMIN:
        raise AdminError(f"{path} holds {a_or_an(role)} certificate, not an admin's; {ca.issue_hint(ca.ROLE_ADMIN)}")
    return bundle


def _device_certificate(bundle: ca.Bundle, target: Target, timeout: float = 5.0) -> str:
    """The device certificate (PEM) after checking its chain, its role and the expected fingerprint."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=bundle.ca_pem.decode())
    with pem_memfile(bundle.cert_pem + bundle.key_pem, "edge-agent-admin") as path:
        ctx.load_cert_chain(path)
    where = f"{target.host}:{target.port}"
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=ca.DEVICE_TLS_NAME) as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise AdminError(f"the device at {where} failed the certificate check ({exc.verify_message}); "
                         "run 'edge-agent doctor' on it") from None
    except (OSError, ssl.SSLError) as exc:
        raise AdminError(f"cannot reach the device at {where} ({type(exc).__name__}); check the address and server.port") from None
    if der is None:
        raise AdminError(f"the device at {where} sent no certificate")
    fp = hashlib.sha256(der).hexdigest()
    if target.fingerprint and fp != target.fingerprint:
        raise AdminError(f"the device at {where} has certificate {fp[:16]}..., not the expected {target.fingerprint[:16]}...; "
                         "do not trust this machine")
    if ca.identity_of(x509.load_der_x509_certificate(der)).role != ca.ROLE_DEVICE:
        raise AdminError(f"{where} is not a room device")
    return ssl.DER_cert_to_PEM_cert(der)


@contextmanager
def admin_stub(bundle_path: Path, address: str, fingerprint: str | None = None) -> Iterator[agent_pb2_grpc.EdgeAgentAdminStub]:
    target = Target.parse(address, fingerprint)
    bundle = _admin_bundle(bundle_path)
    device_pem = _device_certificate(bundle, target)
    creds = grpc.ssl_channel_credentials(device_pem.encode(), bundle.key_pem, bundle.cert_pem)
    channel = grpc.secure_channel(f"{target.host}:{target.port}", creds, options=channel_options())
    try:
        yield agent_pb2_grpc.EdgeAgentAdminStub(channel)
    except grpc.RpcError as exc:
        raise AdminError(_answer_line(exc)) from None
    finally:
        channel.close()


def _answer_line(exc: grpc.RpcError) -> str:
    """One line for IT: a refusal (a rule said no), a limit, an unreachable device, or a fault on the device
    (it broke: its journal says why), never all of them read as "refused"."""
    code = exc.code()  # type: ignore[attr-defined]
    details = (exc.details() or code.name).splitlines()[0][:200]  # type: ignore[attr-defined]
    if code.name in REFUSAL_CODES:
        return f"the device refused: {details}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"the device is at a limit: {details}"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return f"the device did not answer ({details}); check it is running (`edge-agent doctor` on it) and the address"
    return f"fault on the device: {details}; its journal says why (`journalctl -u edge-agent` on it)"


def status(bundle_path: Path, address: str, fingerprint: str | None = None) -> dict[str, Any]:
    with admin_stub(bundle_path, address, fingerprint) as stub:
        got = stub.GetStatus(agent_pb2.GetStatusRequest(), timeout=10)
    return {
        "room": got.room, "software_version": got.software_version, "uptime_s": round(got.uptime_s),
        "visit_active": got.visit_active, "outbox_items": got.outbox_items, "outbox_bytes": got.outbox_bytes,
        "outbox_capacity_items": got.outbox_capacity_items, "outbox_capacity_bytes": got.outbox_capacity_bytes,
        "certificate_valid_until": f"{dt.datetime.fromtimestamp(got.server_cert_not_after_unix_s, dt.timezone.utc):%Y-%m-%d}",
        "revoked_serials": got.revoked_serials,
    }


def force_stop(bundle_path: Path, address: str, fingerprint: str | None = None) -> dict[str, Any]:
    with admin_stub(bundle_path, address, fingerprint) as stub:
        got = stub.ForceStopVisit(agent_pb2.ForceStopVisitRequest(), timeout=120)  # the report is sealed first
    return {"stopped": got.stopped}


def purge_expired(bundle_path: Path, address: str, fingerprint: str | None = None) -> dict[str, Any]:
    with admin_stub(bundle_path, address, fingerprint) as stub:
        got = stub.PurgeExpired(agent_pb2.PurgeExpiredRequest(), timeout=30)
    return {"purged": got.purged}
