"""The phone's key file: TLS bundle, sealing key pair, voiceprints and delivery cursors (0600 JSON).

Everything that identifies or decrypts for the clinician lives only here, on
the phone. The device sees the public sealing key and the voiceprint during a
visit and forgets both at stop. The phone keeps one voiceprint per speaker model
(rooms of two releases may run two models while a fleet is updated).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.crypto import ca, seal
from edge_agent.crypto.files import write_private
from edge_agent.errors import EdgeAgentError
from edge_agent.wording import a_or_an

KEY_FILE_VERSION = 1
MAX_VOICEPRINTS = 3  # speaker models a phone keeps a voiceprint for (a fleet mid-update runs two; one spare)


class ClientError(EdgeAgentError):
    """The phone client cannot do what was asked (one line, what to do)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code  # gRPC status name when the device refused, else ""


@dataclass
class ClinicianKeys:
    path: Path
    pseudonym: str
    key_pem: str
    cert_pem: str
    ca_pem: str
    sealing_private_b64: str
    # The clinician's voiceprints, one per speaker model that made them (EnrollVoiceResponse.voiceprint_model ->
    # values), oldest first, at most MAX_VOICEPRINTS: while a fleet is updated room by room, rooms of two releases
    # may run two models, and a voiceprint works only on a device of its own model. "" = a model not known (enrolled
    # on a device that did not say, or before phones kept it): sent unchecked. See voiceprint_for().
    voiceprints: dict[str, list[float]] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)  # 'device fingerprint/outbox id' -> last delivered id
    current_visit: dict[str, str] = field(default_factory=dict)  # device fingerprint -> running visit id
    pending_acks: dict[str, list[int]] = field(default_factory=dict)  # 'fingerprint/outbox id' -> ids shown, ack not yet confirmed
    crl_pem: str = ""  # the newest site CRL seen (from IT or any device; CA-signed, only ever replaced by a newer one)
    pins: dict[str, str] = field(default_factory=dict)  # room -> device certificate fingerprint, from provisioning
    visits: list[str] = field(default_factory=list)  # visit ids this phone started or claimed (newest last, bounded)
    opened: list[str] = field(default_factory=list)  # 'visit id/seq' of reports already opened (bounded)
    # device fingerprint -> ids of room claims not yet seen to start (or fail): a press may start a visit for one
    # while the phone is not watching; its visit id is asked for before that visit's report is judged unknown
    claims: dict[str, list[str]] = field(default_factory=dict)

    @property
    def voiceprint(self) -> list[float]:
        """The most recent enrolment's values ([] before any)."""
        return next(reversed(self.voiceprints.values()), [])

    @property
    def voiceprint_model(self) -> str:
        """The speaker model of the most recent enrolment ("" before any, or not known)."""
        return next(reversed(self.voiceprints), "")

    def keep_voiceprint(self, model: str, values: list[float]) -> None:
        """An enrolment's voiceprint: replaces the one of the same model, keeps the others (the oldest beyond
        MAX_VOICEPRINTS is dropped)."""
        self.voiceprints.pop(model, None)
        self.voiceprints[model] = list(values)
        _bound(self.voiceprints)

    def voiceprint_for(self, device_model: str) -> tuple[str, list[float]] | None:
        """(model, values) to send to a device attributing with ``device_model`` (DeviceInfo.speaker_model), or
        None: this phone holds none that device would use, so the visit runs without one (say so before it starts).

        * the device states its model: the voiceprint made by that model; else one of a model not known (from before
          phones kept it: sent without a model, the device uses it unchecked as it always did); else None;
        * the device does not state it (a release from before the field, or one without enrolment): the most recent
          voiceprint, as phones did before keeping several.
        """
        if not self.voiceprints:
            return None
        if not device_model:
            return self.voiceprint_model, self.voiceprint
        for model in (device_model, ""):
            if model in self.voiceprints:
                return model, self.voiceprints[model]
        return None

    @property
    def sealing_private(self) -> X25519PrivateKey:
        return seal.private_key_from_bytes(base64.b64decode(self.sealing_private_b64))

    @property
    def sealing_public(self) -> bytes:
        return seal.public_key_bytes(self.sealing_private)

    def save(self) -> None:
        data = asdict(self)
        data.pop("path")
        data["version"] = KEY_FILE_VERSION
        write_private(self.path, json.dumps(data, indent=1).encode())


def _is_values(values: object) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _bound(voiceprints: dict[str, list[float]]) -> None:
    for old in list(voiceprints)[: max(0, len(voiceprints) - MAX_VOICEPRINTS)]:  # the oldest go first
        del voiceprints[old]


def init_key_file(bundle: str | Path, key_file: str | Path, overwrite: bool = False) -> ClinicianKeys:
    """Create the phone's key file from a clinician bundle and a fresh X25519 key pair."""
    key_file = Path(key_file)
    _refuse_existing(key_file, overwrite)
    priv, _ = seal.generate_keypair()
    keys = _certified(key_file, ca.load_bundle(Path(bundle), ca.ROLE_CLINICIAN), base64.b64encode(seal.private_key_bytes(priv)).decode(), str(bundle))
    keys.save()
    return keys


MAX_REMEMBERED = 1000  # visit ids and opened reports the key file keeps


def remember(items: list[str], item: str, limit: int = MAX_REMEMBERED) -> None:
    if item not in items:
        items.append(item)
    del items[: max(0, len(items) - limit)]


def _site_ca(site_ca: str | Path | None, ca_fingerprint: str | None) -> str:
    """The site CA certificate IT gave the phone (PEM), checked against a published fingerprint if given."""
    if site_ca is None:
        return ""
    try:
        pem = Path(site_ca).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except FileNotFoundError:
        raise ClientError(f"site CA certificate {site_ca} not found; IT publishes ca.cert.pem") from None
    except ValueError:
        raise ClientError(f"{site_ca} is not a PEM certificate; IT publishes the site CA as ca.cert.pem") from None
    if ca_fingerprint and ca.fingerprint(cert) != ca_fingerprint.lower().replace(":", ""):
        raise ClientError(f"{site_ca} does not match the site CA fingerprint you were given; do not use it")
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def request_key_file(key_file: str | Path, request_out: str | Path, overwrite: bool = False,
                     site_ca: str | Path | None = None, ca_fingerprint: str | None = None) -> ClinicianKeys:
    """Make the phone's keys here and write a certificate request for the site CA.

    The TLS and sealing private keys are born in the key file and never leave
    it; IT signs the request (``edge-agent ca sign-clinician``) and the phone
    installs the answer (:func:`install_certificate`). ``site_ca`` (the CA
    certificate from IT, optionally checked against ``ca_fingerprint``) is
    pinned now, so the answer must chain to exactly that CA.
    """
    key_file = Path(key_file)
    _refuse_existing(key_file, overwrite)
    if ca_fingerprint and site_ca is None:
        raise ClientError("--ca-fingerprint checks the site CA file: give --ca ca.cert.pem with it "
                          "(or give the fingerprint to 'edge-agent phone install')")
    pinned_ca = _site_ca(site_ca, ca_fingerprint)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    # the CA ignores the subject and assigns a pseudonym; an empty one says nothing about the clinician
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(tls_key, hashes.SHA256())
    priv, _ = seal.generate_keypair()
    key_pem = tls_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    keys = ClinicianKeys(key_file, "", key_pem.decode(), "", pinned_ca, base64.b64encode(seal.private_key_bytes(priv)).decode())
    # the request first: if it cannot be written nothing is left behind (a key file alone would block the retry)
    write_private(Path(request_out), csr.public_bytes(serialization.Encoding.PEM))
    keys.save()
    return keys


def install_certificate(key_file: str | Path, certificate: str | Path, ca_fingerprint: str | None = None) -> ClinicianKeys:
    """Install the CA's answer to :func:`request_key_file` (certificate + CA, no key) into the key file.

    The CA in the answer must be the site CA pinned at request time, or match
    ``ca_fingerprint`` (published by IT): a file carrying another CA is refused,
    whatever it signed.
    """
    key_file = Path(key_file)
    keys = load_key_file(key_file, allow_uncertified=True)
    if keys.cert_pem:
        raise ClientError(f"{key_file} already holds a certificate; make a new key file with 'edge-agent phone request'")
    try:
        answer = Path(certificate).read_bytes()
    except FileNotFoundError:
        raise ClientError(f"certificate {certificate} not found; ask IT for the file 'ca sign-clinician' wrote") from None
    problem = _answer_problem(answer, certificate, keys.key_pem, key_file)
    if problem:
        raise ClientError(problem)
    bundle = ca.parse_bundle(keys.key_pem.encode() + answer, str(certificate))  # checks the key matches and the CA signed it
    got = ca.fingerprint(bundle.ca_cert)
    if keys.ca_pem:
        if got != ca.fingerprint(keys.ca_pem.encode()):
            raise ClientError(f"{certificate} was signed by another CA than the site CA this phone was set up with; do not install it")
    elif not ca_fingerprint:
        raise ClientError("this phone does not know the site CA yet; give the site CA fingerprint IT published (--ca-fingerprint)")
    if ca_fingerprint and got != ca_fingerprint.lower().replace(":", ""):
        raise ClientError(f"{certificate} was signed by a CA whose fingerprint is not the site's ({got[:16]}...); do not install it")
    certified = _certified(key_file, bundle, keys.sealing_private_b64, str(certificate))
    certified.save()
    return certified


def _answer_problem(answer: bytes, certificate: str | Path, key_pem: str, key_file: Path) -> str | None:
    """A file that is not this phone's answer, named for what it is: parse_bundle would call each of these a bundle
    that is not one, or a key that 'does not match its certificate; issue a new bundle' (nothing was wrong with it)."""
    if b"PRIVATE KEY" in answer:
        return (f"{certificate} is a whole bundle with its own key, not the answer to this phone's request; set it up with "
                f"'edge-agent phone init --bundle {certificate} --keys NEW-FILE' instead")
    if b"CERTIFICATE REQUEST" in answer:
        return f"{certificate} is a certificate request; give it to IT ('edge-agent ca sign-clinician') and install the file they return"
    try:
        certs = x509.load_pem_x509_certificates(answer)
    except ValueError:
        return None  # parse_bundle says what is wrong with it
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = serialization.load_pem_private_key(key_pem.encode(), None).public_key().public_bytes(serialization.Encoding.DER, spki)
    if not any(c.public_key().public_bytes(serialization.Encoding.DER, spki) == ours for c in certs):
        return (f"{certificate} was signed for another request than the one made with {key_file} (another phone's, or an "
                "earlier one); give IT this key file's request and install the file they return")
    return None


def _refuse_existing(key_file: Path, overwrite: bool) -> None:
    if key_file.exists() and not overwrite:
        raise ClientError(f"{key_file} already exists; it holds your keys — choose another path or pass --overwrite")


def _certified(key_file: Path, bundle: ca.Bundle, sealing_private_b64: str, source: str) -> ClinicianKeys:
    ident = ca.identity_of(bundle.cert)
    if ident.role != ca.ROLE_CLINICIAN:
        raise ClientError(f"{source} holds {a_or_an(ident.role)} certificate; the phone needs a clinician bundle or certificate")
    return ClinicianKeys(
        key_file, ident.subject_id, bundle.key_pem.decode(), bundle.cert_pem.decode(), bundle.ca_pem.decode(), sealing_private_b64
    )


def load_key_file(key_file: str | Path, allow_uncertified: bool = False) -> ClinicianKeys:
    key_file = Path(key_file)
    try:
        st = key_file.stat()
        raw = key_file.read_text()
    except FileNotFoundError:
        raise ClientError(f"key file {key_file} not found; check --keys, or create it: 'edge-agent phone request' (then "
                          "'phone install' of IT's answer) or 'edge-agent phone init --bundle BUNDLE'") from None
    except OSError as exc:  # a directory, no permission
        raise ClientError(f"cannot read key file {key_file}: {exc.strerror}; give the phone's key file (--keys)") from None
    except UnicodeDecodeError:
        raise ClientError(f"key file {key_file} is damaged or from another version; re-create it from your bundle") from None
    if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
        raise ClientError(f"key file {key_file} is readable by others; run: chmod 600 {key_file}")
    try:
        data = json.loads(raw)
        if data.pop("version", None) != KEY_FILE_VERSION:
            raise ValueError("version")
        # a key file from before phones kept a voiceprint per speaker model: its one voiceprint (and model, if it
        # had one) becomes the map's oldest entry; written back in the new form by the next save
        legacy, legacy_model = data.pop("voiceprint", []), data.pop("voiceprint_model", "")
        keys = ClinicianKeys(path=key_file, **data)
        if not (isinstance(keys.voiceprints, dict) and all(map(_is_values, keys.voiceprints.values()))
                and _is_values(legacy) and isinstance(legacy_model, str)):
            raise TypeError("voiceprints")
        if legacy and legacy_model not in keys.voiceprints:
            keys.voiceprints = {legacy_model: legacy, **keys.voiceprints}
            _bound(keys.voiceprints)
    except (ValueError, TypeError):
        raise ClientError(f"key file {key_file} is damaged or from another version; re-create it from your bundle") from None
    if not keys.cert_pem and not allow_uncertified:
        raise ClientError(f"key file {key_file} has no certificate yet; install the one IT signed with 'edge-agent phone install'")
    return keys


@contextmanager
def update_key_file(key_file: str | Path) -> Iterator[ClinicianKeys]:
    """Read-modify-write the key file under an exclusive lock.

    A ``feedback --follow`` may run while ``start``/``stop`` are used: each change
    (cursor, current visit, voiceprint) reloads the file under the lock so no
    writer overwrites another's update with a stale copy.
    """
    key_file = Path(key_file)
    lock = os.open(key_file.with_name(key_file.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys = load_key_file(key_file)
        yield keys
        keys.save()
    finally:
        os.close(lock)  # closing releases the flock
