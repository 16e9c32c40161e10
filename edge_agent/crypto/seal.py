"""Seal feedback to one clinician's X25519 key: HPKE (RFC 9180) base mode.

Suite: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, one-shot,
from ``cryptography`` (>= 47), so no construction here is ours.

Binding: the HPKE ``info`` carries the suite name, the visit id, the sequence
number and the recipient key id. All three enter the key schedule, so an
envelope whose metadata was changed (another visit, another sequence number,
another recipient) does not open. ``open_envelope`` additionally compares them
with what the caller expects, and the Feedback inside repeats the visit id.

The device only ever holds recipients' *public* keys; it cannot open its own
outbox.
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge_agent.crypto.errors import SealError

SUITE_NAME = "hpke-base-x25519-sha256-chacha20poly1305"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_INFO_LABEL = b"edge-agent/v1 feedback"
KEY_ID_LEN = 16
MAX_VISIT_ID_LEN = 64


@dataclass(frozen=True)
class Envelope:
    """One sealed report; mirrors the ``edge_agent.v1.Envelope`` message."""

    suite: str
    visit_id: str
    seq: int
    recipient_key_id: bytes
    sealed: bytes  # HPKE enc || ciphertext
    created_unix_s: int


def public_key_bytes(key: X25519PublicKey | X25519PrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: bytes | X25519PublicKey | X25519PrivateKey) -> bytes:
    """Short stable id of a recipient key: SHA-256(raw public key)[:16]."""
    raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
    return hashlib.sha256(raw).digest()[:KEY_ID_LEN]


def load_public_key(raw: bytes) -> X25519PublicKey:
    """Parse a 32-byte X25519 public key, rejecting the all-zero/low-order junk HPKE would fail on."""
    if len(raw) != 32:
        raise SealError(f"sealing public key must be 32 raw X25519 bytes, got {len(raw)}")
    try:
        key = X25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SealError("sealing public key is not a valid X25519 key; regenerate the phone's keys") from None
    try:
        # A trial encryption catches low-order points (the DH would be all zero) now,
        # at StartVisit, rather than at stop when the report is already built.
        _SUITE.encrypt(b"", key, info=b"probe")
    except Exception:  # noqa: BLE001 - backend raises ValueError for a degenerate DH; any failure means unusable
        raise SealError("sealing public key is not usable (low-order point); regenerate the phone's keys") from None
    return key


def _info(visit_id: str, seq: int, recipient_key_id: bytes) -> bytes:
    # Length-prefixed fields so no two (visit_id, seq, key id) give the same bytes.
    vid = visit_id.encode("utf-8")
    if not 0 < len(vid) <= MAX_VISIT_ID_LEN:
        raise SealError(f"visit id must be 1-{MAX_VISIT_ID_LEN} bytes")
    if not 0 <= seq < 2**64:
        raise SealError("sequence number out of range")
    if len(recipient_key_id) != KEY_ID_LEN:
        raise SealError("recipient key id must be 16 bytes")
    return b"".join(
        (
            struct.pack(">H", len(_INFO_LABEL)), _INFO_LABEL,
            struct.pack(">H", len(SUITE_NAME)), SUITE_NAME.encode(),
            struct.pack(">H", len(vid)), vid,
            struct.pack(">Q", seq),
            struct.pack(">H", len(recipient_key_id)), recipient_key_id,
        )
    )


def seal(plaintext: bytes, recipient_public_key: bytes | X25519PublicKey, visit_id: str, seq: int) -> Envelope:
    """Encrypt ``plaintext`` (a serialised Feedback) so only the recipient can read it."""
    pub = load_public_key(recipient_public_key) if isinstance(recipient_public_key, bytes) else recipient_public_key
    kid = key_id(pub)
    sealed = _SUITE.encrypt(plaintext, pub, info=_info(visit_id, seq, kid))
    return Envelope(SUITE_NAME, visit_id, seq, kid, sealed, int(time.time()))


def open_envelope(
    env: Envelope,
    recipient_private_key: X25519PrivateKey,
    expected_visit_id: str | None = None,
    expected_seq: int | None = None,
) -> bytes:
    """Decrypt on the phone; fails if the envelope was meant for another key, visit or position."""
    if env.suite != SUITE_NAME:
        raise SealError(f"unsupported envelope suite {env.suite!r}; update the phone client")
    own_kid = key_id(recipient_private_key)
    if env.recipient_key_id != own_kid:
        raise SealError("this envelope is sealed to another key; it is not yours")
    if expected_visit_id is not None and env.visit_id != expected_visit_id:
        raise SealError("envelope belongs to another visit")
    if expected_seq is not None and env.seq != expected_seq:
        raise SealError("envelope has an unexpected sequence number (replayed or reordered)")
    try:
        return _SUITE.decrypt(env.sealed, recipient_private_key, info=_info(env.visit_id, env.seq, own_kid))
    except (InvalidTag, ValueError):
        raise SealError("envelope does not open: tampered, or replayed under another visit or sequence number") from None


def generate_keypair() -> tuple[X25519PrivateKey, bytes]:
    """A new clinician sealing key pair (the phone keeps the private half)."""
    priv = X25519PrivateKey.generate()
    return priv, public_key_bytes(priv)


def private_key_from_bytes(raw: bytes) -> X25519PrivateKey:
    if len(raw) != 32:
        raise SealError("sealing private key must be 32 raw bytes; the key file is damaged")
    return X25519PrivateKey.from_private_bytes(raw)


def private_key_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def to_proto(env: Envelope):  # type: ignore[no-untyped-def]
    from edge_agent.proto.edge_agent.v1 import agent_pb2

    return agent_pb2.Envelope(
        suite=env.suite, visit_id=env.visit_id, seq=env.seq, recipient_key_id=env.recipient_key_id,
        sealed=env.sealed, created_unix_s=env.created_unix_s,
    )


def from_proto(msg) -> Envelope:  # type: ignore[no-untyped-def]
    return Envelope(msg.suite, msg.visit_id, msg.seq, bytes(msg.recipient_key_id), bytes(msg.sealed), msg.created_unix_s)
