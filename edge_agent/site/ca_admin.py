"""Plain functions behind ``edge-agent ca init|issue-device|issue-clinician|issue-admin|revoke``.

Each takes simple arguments and returns a JSON-able dict; :func:`describe`
turns it into the line(s) a person reads. The typer app in ``edge_agent.cli``
wires them up; nothing here prints a traceback for a user mistake (they raise
:class:`~edge_agent.crypto.errors.CertificateError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.crypto import ca as _ca


def _issued_dict(item: _ca.Issued) -> dict[str, Any]:
    return {
        "role": item.role,
        "id": item.subject_id,
        "serial": str(item.serial),
        "not_after": item.not_after.isoformat(),
        "fingerprint": item.fingerprint,
        "bundle": str(item.bundle),
    }


def ca_init(ca_dir: str | Path, site: str = "edge-agent site", days: int = _ca.CA_DAYS) -> dict[str, Any]:
    authority = _ca.init_ca(Path(ca_dir), site=site, days=days, passphrase=_ca.passphrase_from_env())
    return {
        "ca_dir": str(authority.directory),
        "ca_cert": str(authority.directory / _ca.CA_CERT),
        "crl": str(authority.directory / _ca.CRL),
        "fingerprint": _ca.fingerprint(authority.cert),
        "not_after": authority.cert.not_valid_after_utc.isoformat(),
    }


def ca_issue_device(
    ca_dir: str | Path, room: str, out: str | Path, dns: list[str] | None = None, ip: list[str] | None = None, days: int = _ca.DEVICE_DAYS
) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    result = _issued_dict(_ca.issue_device(authority, room, Path(out), tuple(dns or ()), tuple(ip or ()), days=days))
    result["room"] = room
    return result


def _with_subject(item: _ca.Issued) -> dict[str, Any]:
    out = _issued_dict(item)
    out["subject"] = _ca.identity_of(_ca.x509.load_pem_x509_certificate(_cert_of(item.bundle))).stable_id
    return out


def _serial_in(path: Path, authority: _ca.CertificateAuthority) -> int:
    """Serial of the certificate this CA issued in a bundle or PEM file (its own CA certificate is skipped)."""
    import re

    from cryptography.exceptions import InvalidSignature

    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", path.read_bytes(), re.S)
    for block in blocks:
        try:
            cert = _ca.x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        if cert.fingerprint(_ca.hashes.SHA256()) == authority.cert.fingerprint(_ca.hashes.SHA256()):
            continue
        try:
            cert.verify_directly_issued_by(authority.cert)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return int(cert.serial_number)
    raise _ca.CertificateError(f"{path} holds no certificate issued by this CA; give the serial or pseudonym instead")


def _cert_of(bundle: Path) -> bytes:
    import re

    data = Path(bundle).read_bytes()
    return re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", data, re.S)[0]


def ca_issue_clinician(ca_dir: str | Path, out: str | Path, days: int = _ca.CLINICIAN_DAYS, renew: str | None = None) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    return _with_subject(_ca.issue_clinician(authority, Path(out), days=days, renew=renew))


def ca_sign_clinician(ca_dir: str | Path, request: str | Path, out: str | Path, days: int = _ca.CLINICIAN_DAYS,
                      renew: str | None = None) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    return _with_subject(_ca.sign_clinician_request(authority, Path(request), Path(out), days=days, renew=renew))


def ca_issue_admin(ca_dir: str | Path, out: str | Path, days: int = _ca.ADMIN_DAYS) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    return _issued_dict(_ca.issue_admin(authority, Path(out), days=days))


def ca_issue_quality(ca_dir: str | Path, out: str | Path, days: int = _ca.QUALITY_DAYS) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    return _issued_dict(_ca.issue_quality(authority, Path(out), days=days))


def ca_issue_aggregator(ca_dir: str | Path, out: str | Path, dns: list[str] | None = None, ip: list[str] | None = None) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    return _issued_dict(_ca.issue_aggregator(authority, Path(out), tuple(dns or ()), tuple(ip or ())))


def ca_issue_web(ca_dir: str | Path, out: str | Path, dns: list[str] | None = None, ip: list[str] | None = None) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    result = _issued_dict(_ca.issue_web(authority, Path(out), tuple(dns or ()), tuple(ip or ())))
    result["next_step"] = f"edge-agent phone-web serve --bundle {out} --crl crl.pem (copy crl.pem from the CA directory, weekly)"
    return result


def ca_issue_contributor(ca_dir: str | Path, service_line: str, out: str | Path) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    result = _issued_dict(_ca.issue_contributor(authority, service_line, Path(out)))
    result["service_line"] = service_line
    return result


def ca_revoke(ca_dir: str | Path, who: str) -> dict[str, Any]:
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    if Path(who).is_file():  # a bundle (or certificate) file: revoke the certificate it holds
        who = str(_serial_in(Path(who), authority))
    serial, crl = _ca.revoke(authority, who)
    return {"revoked_serial": str(serial), "crl": str(crl), "next_step": "copy crl.pem to every room device (path in its config)"}


def ca_crl(ca_dir: str | Path, days: int = _ca.CRL_DAYS) -> dict[str, Any]:
    """Re-sign crl.pem (same revocations, next CRL number, fresh next-update): run it weekly, copy it to devices."""
    authority = _ca.load_ca(Path(ca_dir), _ca.passphrase_from_env())
    path = _ca.write_crl(authority, days=days)
    crl = _ca.read_crl(path, authority.cert)
    return {"crl": str(path), "number": crl.number, "next_update": crl.next_update.isoformat(), "revoked": len(crl.revoked),
            "next_step": "copy crl.pem to every room device and the aggregator before the next update"}


def describe(result: dict[str, Any]) -> str:
    """Readable lines for a person (the CLI prints JSON with --json instead)."""
    return "\n".join(f"{key}: {value}" for key, value in result.items())
