"""Phone-made keys: the CA certifies a request, the private keys never leave the phone's key file."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge_agent.crypto import ca
from edge_agent.crypto.errors import CertificateError
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, install_certificate, load_key_file, request_key_file
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki, ServerThread, pki, srv  # noqa: F401 (pytest fixtures)


def test_request_sign_install_then_the_phone_works(pki: Pki, srv: ServerThread, tmp_path: Path) -> None:
    pending = request_key_file(tmp_path / "phone.json", tmp_path / "req.pem", site_ca=pki.root / "ca" / ca.CA_CERT)  # pinned
    with pytest.raises(ClientError, match="no certificate yet"):
        load_key_file(tmp_path / "phone.json")
    issued = ca.sign_clinician_request(pki.authority, tmp_path / "req.pem", tmp_path / "signed.pem")
    keys = install_certificate(tmp_path / "phone.json", tmp_path / "signed.pem")
    assert keys.pseudonym == issued.subject_id and keys.key_pem == pending.key_pem
    assert keys.sealing_private_b64 == pending.sealing_private_b64
    assert phone.device_info(tmp_path / "phone.json", srv.target).room == "Room 4"
    # the private key exists only in the key file: not in the request, the answer, or anything the CA keeps
    scalar = serialization.load_pem_private_key(pending.key_pem.encode(), None).private_numbers().private_value  # type: ignore[union-attr]
    secret = scalar.to_bytes(32, "big")
    for path in [tmp_path / "req.pem", tmp_path / "signed.pem", *(pki.root / "ca").iterdir()]:
        assert secret not in _decoded(path.read_bytes()), path


def _decoded(data: bytes) -> bytes:
    """The file's bytes plus the DER inside every PEM block (a key would hide in base64)."""
    blocks = re.findall(rb"-----BEGIN [^-]+-----(.+?)-----END", data, re.S)
    return data + b"".join(base64.b64decode(b"".join(b.split())) for b in blocks)


def test_request_subject_is_ignored_and_tampering_refused(pki: Pki, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Dr Jane Smith"),
                      x509.NameAttribute(x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME, ca.ROLE_ADMIN)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    (tmp_path / "named.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    issued = ca.sign_clinician_request(pki.authority, tmp_path / "named.pem", tmp_path / "named.cert.pem")
    cert = x509.load_pem_x509_certificates((tmp_path / "named.cert.pem").read_bytes())[0]
    ident = ca.identity_of(cert)
    assert ident.role == ca.ROLE_CLINICIAN and ident.subject_id == issued.subject_id
    assert b"Jane" not in (tmp_path / "named.cert.pem").read_bytes() and "Jane" not in cert.subject.rfc4514_string()
    # a request whose public key was swapped after signing does not verify
    other = ec.generate_private_key(ec.SECP256R1())
    forged = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(other, hashes.SHA256())
    der = bytearray(forged.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # flip a signature byte
    (tmp_path / "forged.pem").write_bytes(x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateError, match="does not verify"):
        ca.sign_clinician_request(pki.authority, tmp_path / "forged.pem", tmp_path / "x.pem")
    assert not (tmp_path / "x.pem").exists()


def test_install_refuses_a_certificate_for_another_key(pki: Pki, tmp_path: Path) -> None:
    request_key_file(tmp_path / "a.json", tmp_path / "a.req")
    request_key_file(tmp_path / "b.json", tmp_path / "b.req")
    ca.sign_clinician_request(pki.authority, tmp_path / "b.req", tmp_path / "b.cert")
    with pytest.raises(ClientError, match="signed for another request than the one made with"):
        install_certificate(tmp_path / "a.json", tmp_path / "b.cert")
    assert load_key_file(tmp_path / "a.json", allow_uncertified=True).cert_pem == ""


def test_cli_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a request\n")
    assert run_cli("ca", "init", "--ca-dir", str(tmp_path / "ca")).returncode == 0
    out = run_cli("ca", "sign-clinician", str(tmp_path / "junk.pem"), "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "c.pem"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "not a certificate request" in out.stderr


@pytest.mark.parametrize("damage", ["directory", "binary"])
def test_unreadable_key_file_is_one_line(tmp_path: Path, damage: str) -> None:
    """--keys naming a folder, or a key file whose bytes were damaged: one line, exit 2, never an internal error."""
    keys = tmp_path / "phone.keys"
    if damage == "directory":
        keys.mkdir(mode=0o700)
    else:
        keys.write_bytes(b'{"version": \xef\xbf\x00\xff garbage')
        keys.chmod(0o600)
    out = run_cli("phone", "feedback", "--keys", str(keys), "--device", "127.0.0.1:1")
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and str(keys) in lines[0], out.stderr


def test_phone_enroll_recording_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "phone.keys"  # the recording is read before any key or device is needed
    out = run_cli("phone", "enroll", str(tmp_path), "--keys", str(keys), "--device", "127.0.0.1:1")
    assert out.returncode == 2 and "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "is a directory, not an audio file" in out.stderr, out.stderr


@pytest.mark.parametrize("minutes", ["-5", "100000000"])
def test_phone_start_max_minutes_out_of_range_is_one_line(tmp_path: Path, minutes: str) -> None:
    """A negative (or absurd) --max-minutes cannot go into the request's uint32: one line, not 'Value out of range'."""
    out = run_cli("phone", "start", "--keys", str(tmp_path / "phone.keys"), "--device", "127.0.0.1:1", "--room", "Room 4",
                  "--room-code", "1234 5678", "--max-minutes", minutes)
    assert out.returncode == 2 and "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "--max-minutes" in out.stderr, out.stderr


def test_request_ca_fingerprint_alone_is_refused_not_ignored(tmp_path: Path) -> None:
    """--ca-fingerprint only checks the --ca file: alone it pinned nothing and said nothing ('site_ca_pinned: False')."""
    out = run_cli("phone", "request", "--keys", str(tmp_path / "phone.keys"), "--out", str(tmp_path / "req.pem"),
                  "--ca-fingerprint", "ab" * 32)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--ca" in out.stderr, out.stderr
    assert not (tmp_path / "phone.keys").exists() and not (tmp_path / "req.pem").exists()


def test_request_that_cannot_be_written_leaves_no_key_file(tmp_path: Path) -> None:
    """--out naming a folder: nothing is made, so the same command works once the path is fixed."""
    (tmp_path / "req.pem").mkdir()
    out = run_cli("phone", "request", "--keys", str(tmp_path / "phone.keys"), "--out", str(tmp_path / "req.pem"))
    assert out.returncode == 2 and "internal error" not in out.stderr, out.stderr
    assert not (tmp_path / "phone.keys").exists(), "a key file was left behind: the retry would say it already exists"
