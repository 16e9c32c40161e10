"""Site certificate authority: device, clinician and admin certificates, and a CRL.

Choices (see docs/security.md):

* ECDSA P-256 / SHA-256 everywhere: BoringSSL (inside grpcio) verifies it on
  every platform, while Ed25519 certificate support in gRPC's TLS stack is
  uneven.
* Lifetimes: CA 10 years, device 1 year, clinician 1 year, admin 90 days.
* The role is the subject's OU (``device`` | ``clinician`` | ``admin`` |
  ``quality`` | ``aggregator`` | ``contributor``), signed by the CA so a client
  cannot claim another. A clinician's CN is a random pseudonym (``c-`` + 16
  base32 chars), never a name; a new one per certificate.
* Facts the CA attests in the subject, next to the role: a device's room
  (``L``, localityName), a clinician's stable subject id (``UID``, ``s-`` +
  random, kept when the certificate is re-issued: the population signal counts
  people, not certificates), a contributor's service line (``businessCategory``).
* Revocation is an X.509 CRL signed by the CA with a CRL number that only goes
  up and a next-update date; the server checks each caller's serial against it
  (gRPC Python exposes no CRL hook in the handshake) and refuses a CRL that is
  out of date or older than the one it holds.
* Every private key file is written 0600, atomically.

CA directory layout::

    ca.key.pem   CA private key (0600; keep offline)
    ca.cert.pem  CA certificate (public; goes into every bundle)
    issued.jsonl one line per certificate issued: serial, role, id, not_after
    crl.pem      current revocation list (copy to devices)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.crypto.errors import CertificateError
from edge_agent.crypto.files import write_private, write_public

ROLE_DEVICE = "device"  # a room device (TLS server for phones)
ROLE_CLINICIAN = "clinician"  # a clinician's phone
ROLE_ADMIN = "admin"  # IT: runs room devices (status, force stop); cannot read the population signal
ROLE_QUALITY = "quality"  # Quality & Safety: queries the population aggregator, nothing else
ROLE_AGGREGATOR = "aggregator"  # the population aggregator's own server identity
ROLE_CONTRIBUTOR = "contributor"  # a room device's client identity for delivering population records
ROLE_WEB = "web"  # the site's phone web app server (edge-agent phone-web serve): a TLS server, never a device
ROLES = (ROLE_DEVICE, ROLE_CLINICIAN, ROLE_ADMIN, ROLE_QUALITY, ROLE_AGGREGATOR, ROLE_CONTRIBUTOR, ROLE_WEB)
# the command that makes each role's bundle, for the one-line refusals of a missing or foreign bundle
ISSUE_COMMANDS = {
    ROLE_DEVICE: "edge-agent ca issue-device", ROLE_CLINICIAN: "edge-agent ca issue-clinician",
    ROLE_ADMIN: "edge-agent ca issue-admin", ROLE_QUALITY: "edge-agent ca issue-quality",
    ROLE_AGGREGATOR: "edge-agent ca issue-aggregator", ROLE_CONTRIBUTOR: "edge-agent aggregator issue-contributor",
    ROLE_WEB: "edge-agent ca issue-web --dns SITE-HOST",
}


def issue_hint(role: str) -> str:
    """What to do about a missing or foreign bundle of ``role``: "issue one with '<its command>'"."""
    return f"issue one with '{ISSUE_COMMANDS[role]}'"

CA_DAYS = 3650
DEVICE_DAYS = 365
CLINICIAN_DAYS = 365
ADMIN_DAYS = 90
QUALITY_DAYS = 90
WEB_DAYS = 365
CRL_DAYS = 30

# The name every device certificate carries; clients connect with this as the
# TLS target name (room devices are reached by IP/mDNS, not by stable DNS).
DEVICE_TLS_NAME = "edge-agent"
# The aggregator's name: a room device's certificate does not carry it, so no room
# device can pose as the aggregator to the forwarders (and vice versa).
AGGREGATOR_TLS_NAME = "edge-agent-aggregator"

CA_KEY = "ca.key.pem"
CA_CERT = "ca.cert.pem"
ISSUED = "issued.jsonl"
CRL = "crl.pem"

_ROOM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$")
# a title and a name after it ("Dr Patel", "Exam 2 - Dr. Lee"): a room named after the clinician who works in it
# ("ms"/"pa" are left out: "MS clinic", "PA room" are rooms, not people)
_PERSON_TITLE_RE = re.compile(r"(?:^|[ ._-])(?:dr|doctor|prof|professor|mr|mrs|miss|nurse)\.?[ ._-]+[a-z]", re.IGNORECASE)
# ... or glued to it, CamelCase ("DrPatel", "Room ProfOkafor"): case-sensitive, so "DRoom", "Drawing room" stay rooms
_PERSON_TITLE_GLUED_RE = re.compile(r"(?:^|[ ._-])(?:Dr|Doctor|Prof|Professor|Mr|Mrs|Miss|Nurse)[A-Z][a-z]")
_SERVICE_LINE_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
_STABLE_ID_RE = re.compile(r"^s-[a-z2-7]{16}$")


ROOM_PERSON_HINT = ("room label {room!r} looks like a person's name; name the room (e.g. 'Exam 3'), never the clinician "
                    "who works in it: the label is advertised to the whole network (mDNS)")


def names_a_person(room: str) -> bool:
    """Whether a room label carries a title and a name (docs/design.md §3.5: no clinician identifier in mDNS)."""
    return _PERSON_TITLE_RE.search(room) is not None or _PERSON_TITLE_GLUED_RE.search(room) is not None


@dataclass(frozen=True)
class Issued:
    """What ``issue_*`` made: the bundle path and the certificate's facts."""

    role: str
    subject_id: str
    serial: int
    not_after: dt.datetime
    fingerprint: str
    bundle: Path


@dataclass(frozen=True)
class Bundle:
    """A provisioning bundle: private key, its certificate and the site CA."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes
    cert: x509.Certificate
    ca_cert: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)


@dataclass(frozen=True)
class Identity:
    """Who a peer certificate says it is (only trusted after TLS verified the chain)."""

    role: str
    subject_id: str  # the CN: per certificate (a clinician's routing pseudonym)
    serial: int
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    room: str = ""  # devices: the room the CA certified (L)
    stable_id: str = ""  # clinicians: the person's subject id across re-issued certificates (UID); else the CN
    service_line: str = ""  # contributors: the service line the CA bound the certificate to

    @property
    def person(self) -> str:
        """The id that stays the same across a clinician's certificates (population unit, allow-lists)."""
        return self.stable_id or self.subject_id


@dataclass(frozen=True)
class Crl:
    """A CA-signed revocation list that was checked: signature, number and dates."""

    number: int
    last_update: dt.datetime
    next_update: dt.datetime
    revoked: frozenset[int]
    pem: bytes

    def current(self, now: dt.datetime | None = None) -> bool:
        return (now or _now()) < self.next_update


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex (what mDNS ``fp`` carries)."""
    if isinstance(cert, bytes):
        cert = x509.load_pem_x509_certificate(cert)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_pseudonym() -> str:
    """A random clinician id: 80 bits, base32 (no name, no counter, no date)."""
    return "c-" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def new_stable_id() -> str:
    """A clinician's stable subject id: 80 random bits, kept across re-issued certificates."""
    return "s-" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def _name(cn: str, role: str, site: str, extra: tuple[x509.NameAttribute, ...] = ()) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, site),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            *extra,
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# ---- CA ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateAuthority:
    """A loaded site CA (key + certificate) rooted at ``directory``."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def site(self) -> str:
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else "edge-agent site"

    @property
    def cert_pem(self) -> bytes:
        return _cert_pem(self.cert)


def init_ca(directory: Path, site: str = "edge-agent site", days: int = CA_DAYS, passphrase: bytes | None = None) -> CertificateAuthority:
    """Create a new site CA in ``directory`` (refuses to overwrite an existing one)."""
    directory = Path(directory)
    if (directory / CA_KEY).exists():
        raise CertificateError(f"a CA already exists in {directory}; use another directory or remove it deliberately")
    if not 1 <= days <= 3 * CA_DAYS:
        raise CertificateError(f"CA lifetime must be 1..{3 * CA_DAYS} days, got {days}")
    if not site or len(site) > 64:
        raise CertificateError("site name must be 1-64 characters")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, site), x509.NameAttribute(NameOID.COMMON_NAME, f"{site} edge-agent CA")]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign + cRLSign only
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    write_private(directory / CA_KEY, _key_pem(key, passphrase))
    write_public(directory / CA_CERT, _cert_pem(cert))
    ca = CertificateAuthority(directory, key, cert)
    write_crl(ca)
    return ca


# The CA key's optional passphrase comes from this variable, never argv (ps shows argv).
PASSPHRASE_ENV = "EDGE_AGENT_CA_PASSPHRASE"


def passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def _key_refusal(directory: Path, key_pem: bytes, passphrase: bytes | None) -> str:
    """Why the CA key did not load, and what to do: the passphrase is set in the environment, which the user
    cannot see in the command they typed."""
    if b"ENCRYPTED" not in key_pem:
        if passphrase is not None:
            return f"the CA key in {directory} has no passphrase; unset {PASSPHRASE_ENV}"
        return f"the CA key {directory / CA_KEY} is damaged; restore the CA folder from its backup"
    if passphrase is None:
        return f"the CA key in {directory} is protected by a passphrase; set {PASSPHRASE_ENV} to it (not on the command line)"
    return f"wrong passphrase for the CA key in {directory}; set {PASSPHRASE_ENV} to the one given at 'edge-agent ca init'"


def load_ca(directory: Path, passphrase: bytes | None = None) -> CertificateAuthority:
    directory = Path(directory)
    try:
        key_pem = (directory / CA_KEY).read_bytes()
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    except FileNotFoundError:
        raise CertificateError(f"no site CA in {directory}; run 'edge-agent ca init' first") from None
    except ValueError:
        raise CertificateError(f"{directory / CA_CERT} is not a PEM certificate; restore it from backup") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=passphrase)
    except (TypeError, ValueError):
        raise CertificateError(_key_refusal(directory, key_pem, passphrase)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"the CA key in {directory} is not a P-256 key")
    return CertificateAuthority(directory, key, cert)


_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_dns_name(name: str) -> str:
    """A host name a TLS client can match: dot-separated labels of letters, digits and inner '-' (IDNs as xn--)."""
    labels = name.split(".")
    if (len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):  # an all-digit last label: an IP address (or a typo), never a host name
        hint = "give an IP address with --ip" if labels[-1].isdigit() else \
            "letters, digits and '-' in dot-separated labels of at most 63, e.g. room4.clinic.example; an accented name as its xn-- form"
        raise CertificateError(f"--dns {name!r} is not a DNS name; {hint}")
    return name


def _issue(
    ca: CertificateAuthority,
    role: str,
    cn: str,
    out: Path,
    days: int,
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    valid_from: dt.datetime | None = None,
    client: bool | None = None,
    public_key: ec.EllipticCurvePublicKey | None = None,
    extra: tuple[x509.NameAttribute, ...] = (),
    tls_name: str = DEVICE_TLS_NAME,
) -> Issued:
    """``client`` chooses the TLS purpose; by default devices serve and everyone else is a client.

    With ``public_key`` (from a certificate request) no key is made and the
    file written holds only the certificate and the CA: the private key never
    existed outside the requester.
    """
    if not 1 <= days <= CA_DAYS:
        raise CertificateError(f"certificate lifetime must be 1..{CA_DAYS} days, got {days}")
    for name in dns_names:
        check_dns_name(name)
    key = ec.generate_private_key(ec.SECP256R1()) if public_key is None else None
    start = valid_from or (_now() - dt.timedelta(minutes=5))  # tolerate small clock skew
    not_after = start + dt.timedelta(days=days)
    if not_after > ca.cert.not_valid_after_utc:
        not_after = ca.cert.not_valid_after_utc  # a leaf cannot outlive its CA
    if client is None:
        client = role not in (ROLE_DEVICE, ROLE_AGGREGATOR, ROLE_WEB)
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, role, ca.site, extra))
        .issuer_name(ca.cert.subject)
        .public_key(public_key if key is None else key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if role in (ROLE_DEVICE, ROLE_AGGREGATOR, ROLE_WEB) and not client:
        # the web server answers only on the site's own names: never on `edge-agent`, the room devices' TLS name
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in ((tls_name,) if tls_name else ()) + tuple(dns_names)]
        for ip in ips:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
            except ValueError:
                raise CertificateError(f"{ip!r} is not an IP address; give e.g. --ip 10.0.0.7") from None
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    write_private(Path(out), (b"" if key is None else _key_pem(key)) + _cert_pem(cert) + ca.cert_pem)
    _record(ca, role, cn, cert, identity_of(cert).stable_id)
    return Issued(role, cn, cert.serial_number, cert.not_valid_after_utc, fingerprint(cert), Path(out))


def _record(ca: CertificateAuthority, role: str, cn: str, cert: x509.Certificate, stable_id: str = "") -> None:
    entry = {"serial": str(cert.serial_number), "role": role, "id": cn, "not_after": cert.not_valid_after_utc.isoformat()}
    if stable_id:
        entry["subject"] = stable_id
    line = json.dumps(entry)
    index = ca.directory / ISSUED
    old = index.read_bytes() if index.exists() else b""
    write_private(index, old + line.encode() + b"\n")


def issue_device(
    ca: CertificateAuthority,
    room: str,
    out: Path,
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    days: int = DEVICE_DAYS,
    valid_from: dt.datetime | None = None,
) -> Issued:
    """A room device's server certificate, as a bundle file (key + cert + CA)."""
    if not _ROOM_RE.match(room):
        raise CertificateError("room label must be 1-40 letters, digits, space, '.', '_' or '-'")
    if names_a_person(room):
        raise CertificateError(ROOM_PERSON_HINT.format(room=room))
    device_id = "d-" + secrets.token_hex(6)  # the CN names the box; the room is attested in L (re-issue to move it)
    return _issue(ca, ROLE_DEVICE, device_id, out, days, dns_names, ips, valid_from,
                  extra=(x509.NameAttribute(NameOID.LOCALITY_NAME, room),))


def issue_aggregator(
    ca: CertificateAuthority, out: Path, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = (), days: int = DEVICE_DAYS,
    valid_from: dt.datetime | None = None,
) -> Issued:
    """The population aggregator's server certificate (name ``edge-agent-aggregator``, not a room device's)."""
    return _issue(ca, ROLE_AGGREGATOR, "g-" + secrets.token_hex(6), out, days, dns_names, ips, valid_from,
                  tls_name=AGGREGATOR_TLS_NAME)


def issue_web(
    ca: CertificateAuthority, out: Path, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = (), days: int = WEB_DAYS,
    valid_from: dt.datetime | None = None,
) -> Issued:
    """The site web server's certificate (``edge-agent phone-web serve``): OU=web, serverAuth, SAN = the site host only.

    Not a room device's: no room, no ``edge-agent`` name, so a phone (the app or
    the Python client) refuses it as a device, and the device refuses it as a
    clinician; the site service in turn refuses a device bundle.
    """
    if not dns_names and not ips:
        raise CertificateError("the site web certificate needs the name phones use: give --dns phones.clinic.example (or --ip)")
    return _issue(ca, ROLE_WEB, "w-" + secrets.token_hex(6), out, days, dns_names, ips, valid_from, tls_name="")


def issue_quality(ca: CertificateAuthority, out: Path, days: int = QUALITY_DAYS, valid_from: dt.datetime | None = None) -> Issued:
    """A Quality & Safety analyst's client certificate: population queries only (90 days)."""
    return _issue(ca, ROLE_QUALITY, "q-" + secrets.token_hex(6), out, days, valid_from=valid_from)


def issue_contributor(
    ca: CertificateAuthority, service_line: str, out: Path, days: int = DEVICE_DAYS, valid_from: dt.datetime | None = None
) -> Issued:
    """A room device's client certificate for population deliveries, bound to its service line."""
    if not _SERVICE_LINE_RE.match(service_line):
        raise CertificateError(f"service line {service_line!r} must be 2-32 lowercase letters, digits or '-'")
    if names_a_person(service_line):
        raise CertificateError(f"service line {service_line!r} looks like a person's name; name the department, never a clinician")
    return _issue(ca, ROLE_CONTRIBUTOR, "d-" + secrets.token_hex(6), out, days, valid_from=valid_from,
                  extra=(x509.NameAttribute(NameOID.BUSINESS_CATEGORY, service_line),))


def stable_id_of(ca: CertificateAuthority, who: str) -> str:
    """The stable subject id of an earlier clinician certificate (by pseudonym, serial or the id itself)."""
    if _STABLE_ID_RE.match(who):
        if any(e.get("subject") == who for e in issued(ca)):
            return who
        raise CertificateError(f"no clinician with subject id {who!r} was issued by this CA; check 'issued.jsonl'")
    for entry in issued(ca):
        if entry.get("role") == ROLE_CLINICIAN and who in (entry["id"], entry["serial"]):
            if not entry.get("subject"):
                raise CertificateError(f"{who} predates stable subject ids; issue without --renew (it becomes a new clinician)")
            return str(entry["subject"])
    raise CertificateError(f"no clinician certificate {who!r} was issued by this CA; give the old pseudonym (c-...) or serial")


def _clinician_attrs(ca: CertificateAuthority, renew: str | None) -> tuple[x509.NameAttribute, ...]:
    stable = stable_id_of(ca, renew) if renew else new_stable_id()
    return (x509.NameAttribute(NameOID.USER_ID, stable),)


def issue_clinician(
    ca: CertificateAuthority, out: Path, days: int = CLINICIAN_DAYS, valid_from: dt.datetime | None = None, renew: str | None = None
) -> Issued:
    """A clinician phone's client certificate under a fresh random pseudonym.

    ``renew`` (an earlier certificate's pseudonym, serial or subject id) keeps
    that clinician's stable subject id: a re-issued or second phone is the same
    person to the population signal and to room allow-lists.
    """
    return _issue(ca, ROLE_CLINICIAN, new_pseudonym(), out, days, valid_from=valid_from, extra=_clinician_attrs(ca, renew))


def sign_clinician_request(
    ca: CertificateAuthority, request: Path, out: Path, days: int = CLINICIAN_DAYS, valid_from: dt.datetime | None = None,
    renew: str | None = None,
) -> Issued:
    """Certify the key of a phone's request (``edge-agent phone request``) under a fresh pseudonym.

    Only the request's public key is used: its subject and extensions are
    ignored, so a request cannot ask for a name, a role or another lifetime.
    ``renew`` keeps an earlier certificate's stable subject id (see :func:`issue_clinician`).
    """
    try:
        csr = x509.load_pem_x509_csr(Path(request).read_bytes())
    except FileNotFoundError:
        raise CertificateError(f"request {request} not found; make one on the phone with 'edge-agent phone request'") from None
    except ValueError:
        raise CertificateError(f"{request} is not a certificate request (PEM); make one with 'edge-agent phone request'") from None
    if not csr.is_signature_valid:
        raise CertificateError(f"the signature of {request} does not verify (altered or damaged); make a new request on the phone")
    public_key = csr.public_key()
    if not (isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1)):
        raise CertificateError(f"{request} must hold a P-256 key; make it with 'edge-agent phone request'")
    return _issue(ca, ROLE_CLINICIAN, new_pseudonym(), out, days, valid_from=valid_from, public_key=public_key,
                  extra=_clinician_attrs(ca, renew))


def issue_admin(ca: CertificateAuthority, out: Path, days: int = ADMIN_DAYS, valid_from: dt.datetime | None = None) -> Issued:
    """An IT admin's client certificate (short-lived: 90 days)."""
    return _issue(ca, ROLE_ADMIN, "a-" + secrets.token_hex(6), out, days, valid_from=valid_from)


def issued(ca: CertificateAuthority) -> list[dict[str, str]]:
    index = ca.directory / ISSUED
    if not index.exists():
        return []
    return [json.loads(line) for line in index.read_text().splitlines() if line.strip()]


def _current_crl(ca: CertificateAuthority) -> tuple[dict[int, dt.datetime], int]:
    """Revoked serials and the CRL number of the CA's current ``crl.pem`` (empty, 0 if none)."""
    path = ca.directory / CRL
    if not path.exists():
        return {}, 0
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return {r.serial_number: r.revocation_date_utc for r in crl}, _crl_number(crl) or 0


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return None


def write_crl(ca: CertificateAuthority, add: tuple[int, ...] = (), days: int = CRL_DAYS, now: dt.datetime | None = None) -> Path:
    """(Re)write ``crl.pem`` with every revoked serial plus ``add``, the next CRL number and a fresh next-update.

    Devices refuse a CRL past its next update and one numbered below the CRL they
    hold, so re-sign it before it runs out (``edge-agent ca crl``, e.g. weekly from cron).
    """
    if not 1 <= days <= 366:
        raise CertificateError(f"CRL lifetime must be 1..366 days, got {days}")
    revoked, number = _current_crl(ca)
    now = now or _now()
    for serial in add:
        revoked.setdefault(serial, now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))  # tolerate small clock skew on devices
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(number + 1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    path = ca.directory / CRL
    write_public(path, crl.public_bytes(serialization.Encoding.PEM))
    return path


def revoke(ca: CertificateAuthority, who: str) -> tuple[int, Path]:
    """Revoke by serial (decimal or 0x-hex), by certificate id (pseudonym / device / admin id), or every
    certificate of a clinician by stable subject id (``s-...``). Returns the (last) serial and the CRL path."""
    serials = [int(e["serial"]) for e in issued(ca) if who in (e["id"], e["serial"], e.get("subject"))]
    if not serials:
        try:
            serials = [int(who, 0)]
        except ValueError:
            raise CertificateError(f"no certificate with id or serial {who!r} was issued by this CA; check 'issued.jsonl'") from None
    return serials[-1], write_crl(ca, tuple(serials))


# ---- bundles, CRLs and peers -----------------------------------------------------------


def load_bundle(path: Path, role: str | None = None) -> Bundle:
    """Read a bundle file (one PEM key, the leaf certificate, the CA certificate); ``role``, the role the caller
    needs, names the command that issues one when the file is missing."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fix = issue_hint(role) if role else "check the path given"
        raise CertificateError(f"bundle {path} not found; {fix}") from None
    except OSError as exc:
        raise CertificateError(f"cannot read bundle {path}: {exc.strerror}") from None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise CertificateError(f"bundle {path} is readable by others; run: chmod 600 {path}")
    return parse_bundle(data, str(path))


def parse_bundle(data: bytes, path: str) -> Bundle:
    """Check a bundle's bytes: one key, its certificate, and the CA that issued it (``path`` names it in errors)."""
    key_blocks = re.findall(rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----\n?", data, re.S)
    cert_blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", data, re.S)
    if len(key_blocks) != 1 or len(cert_blocks) != 2:
        raise CertificateError(f"{path} is not an edge-agent bundle (want 1 private key and 2 certificates)")
    try:
        certs = [x509.load_pem_x509_certificate(c) for c in cert_blocks]
        key = serialization.load_pem_private_key(key_blocks[0], password=None)
    except (TypeError, ValueError):
        raise CertificateError(f"{path} holds an unreadable key or certificate; issue a new bundle") from None
    cas = [c for c in certs if _is_ca(c)]
    leaves = [c for c in certs if not _is_ca(c)]
    if len(cas) != 1 or len(leaves) != 1:
        raise CertificateError(f"{path} must hold one CA and one leaf certificate")
    leaf, ca_cert = leaves[0], cas[0]
    if leaf.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise CertificateError(f"the key in {path} does not match its certificate; issue a new bundle")
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateError(f"the certificate in {path} was not issued by the CA in the same file") from None
    return Bundle(key_blocks[0], _cert_pem(leaf), _cert_pem(ca_cert), leaf, ca_cert)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if len(values) == 1 else ""


def identity_of(cert: x509.Certificate) -> Identity:
    """Role, id and the attested facts from a (chain-verified) certificate's subject."""
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    role = str(ous[0].value) if len(ous) == 1 else ""
    cn = str(cns[0].value) if len(cns) == 1 else ""
    if role not in ROLES or not cn:
        raise CertificateError("certificate has no edge-agent role; issue it with 'edge-agent ca issue-...'")
    return Identity(
        role, cn, cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc,
        room=_attr(cert, NameOID.LOCALITY_NAME) if role == ROLE_DEVICE else "",
        stable_id=_attr(cert, NameOID.USER_ID) if role == ROLE_CLINICIAN else "",
        service_line=_attr(cert, NameOID.BUSINESS_CATEGORY) if role == ROLE_CONTRIBUTOR else "",
    )


def room_of(cert: x509.Certificate) -> str:
    """The room a device certificate was issued for ("" for certificates from before rooms were attested)."""
    return _attr(cert, NameOID.LOCALITY_NAME)


def parse_crl(data: bytes, ca_cert: x509.Certificate, source: str = "CRL", now: dt.datetime | None = None) -> Crl:
    """Check a CRL: PEM, signed by this site's CA, numbered, and not past its next update."""
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError:
        raise CertificateError(f"{source} is not a PEM CRL; copy crl.pem from the CA directory") from None
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        raise CertificateError(f"{source} is not signed by this site's CA; copy the right crl.pem")
    number = _crl_number(crl)
    if number is None:
        raise CertificateError(f"{source} has no CRL number; re-sign it on the CA host with 'edge-agent ca crl'")
    nxt = crl.next_update_utc
    if nxt is None:
        raise CertificateError(f"{source} has no next-update date; re-sign it on the CA host with 'edge-agent ca crl'")
    if (now or _now()) >= nxt:
        raise CertificateError(
            f"{source} is out of date (next update was {nxt:%Y-%m-%d %H:%M} UTC); re-sign it on the CA host with "
            "'edge-agent ca crl' and copy it to the devices"
        )
    return Crl(number, crl.last_update_utc, nxt, frozenset(r.serial_number for r in crl), data)


def read_crl(path: Path, ca_cert: x509.Certificate, now: dt.datetime | None = None) -> Crl:
    """:func:`parse_crl` of a file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"CRL {path} not found; copy crl.pem from the CA directory") from None
    except OSError as exc:
        raise CertificateError(f"cannot read CRL {path}: {exc.strerror}") from None
    return parse_crl(data, ca_cert, f"CRL {path}", now)


def load_crl(path: Path, ca_cert: x509.Certificate) -> frozenset[int]:
    """Revoked serials from a CRL file, after every check of :func:`read_crl`."""
    return read_crl(path, ca_cert).revoked
