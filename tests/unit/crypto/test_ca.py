"""Site CA: certificates, lifetimes, roles, pseudonyms, file modes, CRL."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from edge_agent.crypto import ca
from edge_agent.crypto.errors import CertificateError
from edge_agent.site import ca_admin as cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_issue_and_lifetimes(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="St Elsewhere")
    assert _mode(tmp_path / "ca" / ca.CA_KEY) == 0o600
    assert _mode(tmp_path / "ca") == 0o700
    now = dt.datetime.now(dt.timezone.utc)
    assert authority.cert.not_valid_after_utc - now > dt.timedelta(days=3649)

    dev = ca.issue_device(authority, "Room 4", tmp_path / "dev.pem", ips=("127.0.0.1",))
    clin = ca.issue_clinician(authority, tmp_path / "clin.pem")
    adm = ca.issue_admin(authority, tmp_path / "adm.pem")
    for item, days in ((dev, 365), (clin, 365), (adm, 90)):
        assert _mode(item.bundle) == 0o600
        left = item.not_after - now
        assert dt.timedelta(days=days - 1) < left <= dt.timedelta(days=days)

    bundle = ca.load_bundle(clin.bundle)
    ident = ca.identity_of(bundle.cert)
    assert ident.role == ca.ROLE_CLINICIAN and ident.subject_id == clin.subject_id
    assert clin.subject_id.startswith("c-") and len(clin.subject_id) == 18
    # The clinician subject carries only site, role, pseudonym and the random stable subject id (never a name).
    oids = {a.oid for a in bundle.cert.subject}
    assert oids == {NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME, NameOID.USER_ID}
    assert ident.stable_id.startswith("s-") and len(ident.stable_id) == 18
    assert ca.identity_of(ca.load_bundle(adm.bundle).cert).role == ca.ROLE_ADMIN
    dev_cert = ca.load_bundle(dev.bundle).cert
    sans = dev_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ca.DEVICE_TLS_NAME in sans.get_values_for_type(x509.DNSName)
    assert dev.fingerprint == ca.fingerprint(dev_cert) and len(dev.fingerprint) == 64
    # Pseudonyms do not repeat.
    assert ca.issue_clinician(authority, tmp_path / "c2.pem").subject_id != clin.subject_id


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca")
    with pytest.raises(CertificateError, match="already exists"):
        ca.init_ca(tmp_path / "ca")


def test_revoke_by_id_updates_signed_crl(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    clin = ca.issue_clinician(authority, tmp_path / "clin.pem")
    other = ca.issue_clinician(authority, tmp_path / "other.pem")
    assert ca.load_crl(tmp_path / "ca" / ca.CRL, authority.cert) == frozenset()
    serial, crl_path = ca.revoke(authority, clin.subject_id)
    assert serial == clin.serial
    revoked = ca.load_crl(crl_path, authority.cert)
    assert clin.serial in revoked and other.serial not in revoked
    ca.revoke(authority, str(other.serial))
    assert ca.load_crl(crl_path, authority.cert) == {clin.serial, other.serial}
    with pytest.raises(CertificateError, match="no certificate"):
        ca.revoke(authority, "c-nobody")


def test_crl_from_another_ca_is_rejected(tmp_path: Path) -> None:
    a = ca.init_ca(tmp_path / "a")
    b = ca.init_ca(tmp_path / "b")
    with pytest.raises(CertificateError, match="not signed"):
        ca.load_crl(tmp_path / "b" / ca.CRL, a.cert)
    del b


def test_bundle_errors_are_one_line(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    item = ca.issue_clinician(authority, tmp_path / "clin.pem")
    os.chmod(item.bundle, 0o644)
    with pytest.raises(CertificateError, match="chmod 600"):
        ca.load_bundle(item.bundle)
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"hello")
    os.chmod(bad, 0o600)
    with pytest.raises(CertificateError, match="not an edge-agent bundle"):
        ca.load_bundle(bad)
    with pytest.raises(CertificateError, match="not found"):
        ca.load_bundle(tmp_path / "missing.pem")
    with pytest.raises(CertificateError, match="ca init"):
        ca.load_ca(tmp_path / "nowhere")
    with pytest.raises(CertificateError, match="lifetime"):
        ca.issue_admin(authority, tmp_path / "a.pem", days=0)
    with pytest.raises(CertificateError, match="room label"):
        ca.issue_device(authority, "room\n4", tmp_path / "d.pem")


def test_cli_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_AGENT_CA_PASSPHRASE", "correct horse")
    out = cli.ca_init(tmp_path / "ca", site="Clinic")
    assert len(out["fingerprint"]) == 64
    assert b"ENCRYPTED" in (tmp_path / "ca" / ca.CA_KEY).read_bytes()
    dev = cli.ca_issue_device(tmp_path / "ca", "Room 1", tmp_path / "dev.pem", ip=["127.0.0.1"])
    clin = cli.ca_issue_clinician(tmp_path / "ca", tmp_path / "clin.pem")
    adm = cli.ca_issue_admin(tmp_path / "ca", tmp_path / "adm.pem")
    assert dev["role"] == "device" and clin["role"] == "clinician" and adm["role"] == "admin"
    rev = cli.ca_revoke(tmp_path / "ca", clin["id"])
    assert rev["revoked_serial"] == clin["serial"]
    json.dumps([out, dev, clin, adm, rev])
    assert "fingerprint:" in cli.describe(dev)
    monkeypatch.setenv("EDGE_AGENT_CA_PASSPHRASE", "wrong")
    with pytest.raises(CertificateError, match="passphrase"):
        cli.ca_issue_admin(tmp_path / "ca", tmp_path / "adm2.pem")


def test_bundle_that_cannot_be_written_leaves_no_key_behind_and_is_one_line(tmp_path: Path) -> None:
    """--out naming a folder: the private key's temp file must not stay beside it, and the user sees one line."""
    from tests.cli_runner import run_cli

    ca.init_ca(tmp_path / "ca")
    out_dir = tmp_path / "out"
    (out_dir / "clinician.pem").mkdir(parents=True)  # the --out path is taken by a folder
    result = run_cli("ca", "issue-clinician", "--ca-dir", str(tmp_path / "ca"), "--out", str(out_dir / "clinician.pem"))
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and str(out_dir / "clinician.pem") in lines[0], result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["clinician.pem"], "a temp file holding the private key was left"
    assert len(ca.issued(ca.load_ca(tmp_path / "ca"))) == 0  # nothing recorded as issued either


def test_revoke_by_bundle_path(tmp_path: Path) -> None:
    """`ca revoke` documents 'certificate serial, pseudonym or bundle path': a lost phone's bundle file works too."""
    from tests.cli_runner import run_cli

    authority = ca.init_ca(tmp_path / "ca")
    issued = ca.issue_clinician(authority, tmp_path / "lost-phone.pem")
    out = run_cli("ca", "revoke", str(tmp_path / "lost-phone.pem"), "--ca-dir", str(tmp_path / "ca"), "--json")
    assert out.returncode == 0, out.stderr
    assert issued.serial in ca.read_crl(tmp_path / "ca" / ca.CRL, authority.cert).revoked
    other = ca.init_ca(tmp_path / "other")  # a bundle from another CA is refused, not revoked by serial here
    ca.issue_clinician(other, tmp_path / "foreign.pem")
    out = run_cli("ca", "revoke", str(tmp_path / "foreign.pem"), "--ca-dir", str(tmp_path / "ca"))
    assert out.returncode == 2 and "no certificate issued by this CA" in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr


@pytest.mark.parametrize("name", ["bad name!", "room_4.clinic.example", "-room4.clinic.example", "room4..clinic", "10.0.0.7", "a" * 64 + ".example", "chambre-é.example", "room4.clinic.example."])
def test_issue_refuses_a_name_that_is_not_a_dns_name(tmp_path: Path, name: str) -> None:
    """`ca issue-device --dns "bad name!"` wrote a certificate naming 'bad name!', which no client can ever match."""
    from tests.cli_runner import run_cli

    ca.init_ca(tmp_path / "ca")
    out = tmp_path / "device.pem"
    result = run_cli("ca", "issue-device", "--ca-dir", str(tmp_path / "ca"), "--room", "Room 4", "--out", str(out), "--dns", name)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"--dns {name!r} is not a DNS name" in lines[0] and "Traceback" not in result.stderr, lines[0]
    assert not out.exists()
    ok = run_cli("ca", "issue-web", "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "web.pem"), "--dns", "phones.clinic-b.example")
    assert ok.returncode == 0, ok.stderr
