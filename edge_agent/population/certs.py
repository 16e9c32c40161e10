"""A client certificate for a room device to submit contributions to the aggregator.

The site CA's device certificates carry only the serverAuth EKU (they are TLS
servers for phones), and TLS refuses them as client certificates ("unsupported
certificate purpose"). Until ``edge_agent.crypto.ca.issue_device`` also sets
clientAuth, IT issues each device a second, client-only bundle here: same CA,
role ``device`` (the aggregator accepts submissions from that role only), a
random id unrelated to the room label, P-256, one year, recorded in
``issued.jsonl`` and revocable with ``edge-agent ca revoke`` like any other.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.crypto import ca
from edge_agent.crypto.files import write_private


def issue_contributor(authority: ca.CertificateAuthority, out: Path, days: int = ca.DEVICE_DAYS) -> ca.Issued:
    """Client bundle (key + cert + CA) for a device's deliveries to the aggregator."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    not_after = min(start + dt.timedelta(days=days), authority.cert.not_valid_after_utc)
    cn = "d-" + secrets.token_hex(6)
    cert = (
        x509.CertificateBuilder()
        .subject_name(ca._name(cn, ca.ROLE_DEVICE, authority.site))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    write_private(Path(out), ca._key_pem(key) + ca._cert_pem(cert) + authority.cert_pem)
    ca._record(authority, ca.ROLE_DEVICE, cn, cert)
    return ca.Issued(ca.ROLE_DEVICE, cn, cert.serial_number, cert.not_valid_after_utc, ca.fingerprint(cert), Path(out))
