"""Browser sign-in: challenge, proof of the phone's key, short-lived session tokens.

A browser cannot present a TLS client certificate made from a WebCrypto key,
so the phone proves its key another way, with the same certificate:

1. ``Challenge(phone_nonce)``: the device answers a fresh single-use challenge,
   its certificate (DER) and an ECDSA signature by its device key over
   ``"edge-agent/v1 device-proof\\0" || phone_nonce || challenge || room``. The
   app checks the certificate's SHA-256 against the room's QR code, its chain to
   the site CA it got at enrolment, and the signature: it talks to that device.
2. ``Login(challenge, certificate, signature)``: the phone signs
   ``"edge-agent/v1 phone-login\\0" || challenge || SHA-256(device certificate)``
   with its non-extractable P-256 key. The device checks the certificate chains
   to the site CA, is within its validity, is a clinician's, is not revoked
   (the same ``PeerAuthorizer`` and CRL as the gRPC port), and that the
   signature verifies under the certificate's key. Binding the device
   fingerprint means a login cannot be relayed to another room.
3. The answer is a random token valid for ``session_s`` (minutes), sent in the
   ``x-edge-agent-session`` header, never in a URL. It stands for the
   certificate: ``WebContext.auth_context()`` hands that certificate to the
   unchanged servicer, so authorisation is exactly the gRPC port's.

Tokens and challenges live in memory only (a restart signs everyone out) and
are bounded in number.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from edge_agent.crypto import ca
from edge_agent.mtls.auth import AuthError, PeerAuthorizer
from edge_agent.proto.edge_agent.v1 import web_pb2

DEVICE_PROOF_LABEL = b"edge-agent/v1 device-proof\x00"
PHONE_LOGIN_LABEL = b"edge-agent/v1 phone-login\x00"
NONCE_LEN = 32
MAX_CERT_BYTES = 4096


@dataclass(frozen=True)
class SessionPolicy:
    session_s: float = 600.0  # a session token lives 10 minutes; the app signs in again silently
    challenge_s: float = 60.0
    max_sessions: int = 1024
    max_challenges: int = 256
    # per network address, beyond the outstanding-challenge cap: a burst of challenges_per_address, then one every
    # challenge_refill_s (a phone signs in once per session_s; a retry loop or a scanner is slowed, not the room)
    challenges_per_address: int = 20
    challenge_refill_s: float = 6.0
    max_addresses: int = 4096  # addresses remembered for the rate limit (least recently seen forgotten first)


@dataclass
class _Session:
    pem: bytes
    cert_not_after: float
    expires: float


class _PemContext:
    """Lets PeerAuthorizer judge a certificate at login exactly as it judges a TLS peer."""

    def __init__(self, pem: bytes) -> None:
        self._pem = pem

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._pem]}


def p1363_to_der(sig: bytes) -> bytes:
    if len(sig) != 64:
        raise ValueError("signature must be 64 bytes (P-256 r||s)")
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


def der_to_p1363(sig: bytes) -> bytes:
    r, s = decode_dss_signature(sig)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class WebSessions:
    def __init__(self, bundle: ca.Bundle, room: str, auth: PeerAuthorizer, policy: SessionPolicy = SessionPolicy(),
                 clock: Callable[[], float] = time.time) -> None:
        key = serialization.load_pem_private_key(bundle.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("device key must be P-256")
        self._key = key
        self._ca = bundle.ca_cert
        self._cert_der = bundle.cert.public_bytes(serialization.Encoding.DER)
        self._fp = hashlib.sha256(self._cert_der).digest()
        self._room = room
        self._auth = auth
        self._policy = policy
        self._clock = clock
        self._challenges: OrderedDict[bytes, float] = OrderedDict()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)
        self._lock = threading.Lock()  # challenges are answered on worker threads (asyncio.to_thread)

    # ---- handshake ------------------------------------------------------------------

    def _admit(self, address: str, now: float) -> None:
        """Token bucket per address: RESOURCE_EXHAUSTED (gRPC's 429) with the wait, when it is empty."""
        p = self._policy
        with self._lock:
            tokens, at = self._buckets.pop(address, (float(p.challenges_per_address), now))
            tokens = min(float(p.challenges_per_address), tokens + max(0.0, now - at) / p.challenge_refill_s)
            if tokens < 1.0:
                self._buckets[address] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) * p.challenge_refill_s))
                raise AuthError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many sign-in attempts from this network address; try again in {wait} s")
            self._buckets[address] = (tokens - 1.0, now)
            while len(self._buckets) > p.max_addresses:
                self._buckets.popitem(last=False)

    def challenge(self, phone_nonce: bytes, address: str = "") -> web_pb2.WebChallengeResponse:
        if len(phone_nonce) != NONCE_LEN:
            raise AuthError(grpc.StatusCode.INVALID_ARGUMENT, f"phone_nonce must be {NONCE_LEN} random bytes")
        now = self._clock()
        self._admit(address or "?", now)
        self._expire(now)
        challenge = secrets.token_bytes(NONCE_LEN)
        with self._lock:
            self._challenges[challenge] = now + self._policy.challenge_s
            while len(self._challenges) > self._policy.max_challenges:
                self._challenges.popitem(last=False)
        proof = DEVICE_PROOF_LABEL + phone_nonce + challenge + self._room.encode()
        sig = der_to_p1363(self._key.sign(proof, ec.ECDSA(hashes.SHA256())))
        return web_pb2.WebChallengeResponse(
            challenge=challenge, device_certificate=self._cert_der, device_signature=sig, room=self._room,
            valid_for_s=int(self._policy.challenge_s),
        )

    def login(self, request: web_pb2.WebLoginRequest) -> web_pb2.WebLoginResponse:
        now = self._clock()
        self._expire(now)
        with self._lock:
            known = self._challenges.pop(bytes(request.challenge), None)
        if known is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "sign-in challenge unknown or expired; try again")
        if not 0 < len(request.certificate) <= MAX_CERT_BYTES:
            raise AuthError(grpc.StatusCode.INVALID_ARGUMENT, "certificate missing or too large")
        try:
            cert = x509.load_der_x509_certificate(bytes(request.certificate))
        except ValueError:
            raise AuthError(grpc.StatusCode.INVALID_ARGUMENT, "certificate is not DER X.509") from None
        try:
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "your certificate is not from this site's CA; enrol this phone with your IT") from None
        if now < cert.not_valid_before_utc.timestamp():
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "your certificate is not valid yet; check the phone's clock")
        if now > cert.not_valid_after_utc.timestamp():
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "certificate expired; make a new request in Settings and ask IT to sign it")
        pem = cert.public_bytes(serialization.Encoding.PEM)
        ident = self._auth.require(_PemContext(pem), ca.ROLE_CLINICIAN)  # role + CRL, as on the gRPC port
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "certificate key must be P-256")
        try:
            public_key.verify(p1363_to_der(bytes(request.signature)), PHONE_LOGIN_LABEL + bytes(request.challenge) + self._fp,
                              ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "sign-in signature does not verify with your certificate") from None
        del ident
        token = secrets.token_urlsafe(32)
        not_after = cert.not_valid_after_utc.timestamp()
        expires = min(now + self._policy.session_s, not_after)
        with self._lock:
            self._sessions[token] = _Session(pem, not_after, expires)
            while len(self._sessions) > self._policy.max_sessions:
                self._sessions.popitem(last=False)
        return web_pb2.WebLoginResponse(token=token, valid_for_s=int(expires - now), certificate_not_after_unix_s=int(not_after))

    # ---- per call -------------------------------------------------------------------

    def peer_for(self, token: str) -> Callable[[], bytes | None]:
        """The stand-in for a TLS peer: the session's certificate, re-checked on every use."""

        def peer() -> bytes | None:
            session = self._sessions.get(token) if token else None
            now = self._clock()
            if session is None:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "not signed in to this room device; sign in again")
            if now > session.cert_not_after:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "certificate expired; make a new request in Settings and ask IT to sign it")
            if now > session.expires:
                self._sessions.pop(token, None)
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "session expired; sign in again")
            return session.pem

        return peer

    def _expire(self, now: float) -> None:
        with self._lock:
            for key in [k for k, t in self._challenges.items() if t < now]:
                del self._challenges[key]
            for token in [k for k, s in self._sessions.items() if s.expires < now]:
                del self._sessions[token]
