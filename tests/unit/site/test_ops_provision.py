"""Provisioning into a temp root: certificates 0600 + owner, config, models check, idempotent, dry run."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import shutil
import stat
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.device.config import load_config
from edge_agent.models import models_dir
from edge_agent.site.provision import ProvisionError, provision


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("site")
    authority = ca.init_ca(base / "ca", site="General Hospital")
    ca.issue_device(authority, "Room 4", base / "room4.pem")
    bundle = (base / "room4.pem").read_bytes()
    # the same device as separate files (what another PKI would hand over)
    key = re.search(rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----\n", bundle, re.S).group(0)  # type: ignore[union-attr]
    certs = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", bundle, re.S)
    (base / "device.key").write_bytes(key)
    (base / "device.crt").write_bytes(certs[0])
    (base / "ca.crt").write_bytes(certs[1])
    ca.issue_device(authority, "Room 5", base / "room5.pem")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)
    ca.issue_device(authority, "Room 6", base / "expired.pem", days=2, valid_from=past)
    ca.issue_clinician(authority, base / "phone.pem")
    return {"base": base, "ca": base / "ca"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_then_idempotent_with_owner_and_modes(site: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root"
    user = "nobody"  # exists on every Debian system; stands in for edge-agent
    first = provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=root, service_user=user)
    assert first.changed
    pem = root / "etc/edge-agent/tls/device.pem"
    assert _mode(pem) == 0o600 and _mode(root / "etc/edge-agent/tls/crl.pem") == 0o600
    assert _mode(root / "etc/edge-agent/tls") == 0o700
    if os.geteuid() == 0:
        assert pem.stat().st_uid == pwd.getpwnam(user).pw_uid
    assert ca.load_bundle(pem).fingerprint == first.fingerprint
    cfg = load_config(root / "etc/edge-agent/config.toml", env={})
    assert cfg.server.room == "Room 4" and cfg.server.bundle == Path("/etc/edge-agent/tls/device.pem")
    assert cfg.server.crl == Path("/etc/edge-agent/tls/crl.pem")

    again = provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=root, service_user=user)
    assert not again.changed
    assert {a.what for a in again.actions} <= {"unchanged", "check", "note"}


def test_separate_files_equal_the_bundle(site: dict[str, Path], tmp_path: Path) -> None:
    b = site["base"]
    r1 = provision("Room 4", bundle=b / "room4.pem", crl=site["ca"] / "crl.pem", root=tmp_path / "a")
    r2 = provision("Room 4", ca_bundle=b / "ca.crt", device_cert=b / "device.crt", device_key=b / "device.key", crl=site["ca"] / "crl.pem",
                   root=tmp_path / "b")
    assert r1.fingerprint == r2.fingerprint
    a = (tmp_path / "a/etc/edge-agent/tls/device.pem").read_bytes()
    assert a == (tmp_path / "b/etc/edge-agent/tls/device.pem").read_bytes()
    assert load_config(tmp_path / "b/etc/edge-agent/config.toml", env={}).server.crl == Path("/etc/edge-agent/tls/crl.pem")


def test_dry_run_lists_actions_and_writes_nothing(site: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=root, dry_run=True)
    assert not root.exists()
    paths = {a.path for a in result.actions if a.what == "write"}
    assert {"/etc/edge-agent/tls/device.pem", "/etc/edge-agent/config.toml"} <= paths
    assert json.loads(json.dumps(result.to_dict()))["dry_run"] is True
    assert "would provision" in result.describe()


def test_reprovision_changes_room_and_keeps_local_settings(site: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root"
    provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=root)
    cfg_path = root / "etc/edge-agent/config.toml"
    text = cfg_path.read_text().replace("# aggressiveness = 2", "aggressiveness = 3")
    cfg_path.write_text(text)  # an edit by IT ...
    result = provision("Room 5", bundle=site["base"] / "room5.pem", root=root)
    assert result.changed
    cfg = load_config(cfg_path, env={})
    assert cfg.server.room == "Room 5" and cfg.vad.aggressiveness == 3  # ... survives re-provisioning


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bundle": "expired.pem"}, "expired"),
        ({"bundle": "phone.pem"}, "not a device certificate"),
        ({"bundle": "missing.pem"}, "not found"),
        ({"ca_bundle": "ca.crt", "device_cert": "device.crt"}, "all of --ca-bundle, --device-cert and --device-key"),
        ({"bundle": "room4.pem", "device_key": "device.key"}, "not both"),
    ],
)
def test_bad_inputs_are_one_line_errors(site: dict[str, Path], tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    args = {k: site["base"] / v for k, v in kwargs.items()}
    with pytest.raises(Exception) as err:
        provision("Room 4", root=tmp_path, crl=site["ca"] / "crl.pem", **args)  # type: ignore[arg-type]
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "etc").exists()


def test_key_that_does_not_match_is_refused(site: dict[str, Path], tmp_path: Path) -> None:
    other = (site["base"] / "room5.pem").read_bytes()
    key = re.search(rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----\n", other, re.S).group(0)  # type: ignore[union-attr]
    (tmp_path / "wrong.key").write_bytes(key)
    b = site["base"]
    with pytest.raises(Exception, match="does not match"):
        provision("Room 4", ca_bundle=b / "ca.crt", device_cert=b / "device.crt", device_key=tmp_path / "wrong.key", crl=site["ca"] / "crl.pem",
                  root=tmp_path / "r")


def test_crl_is_required_and_room_must_be_the_certificates_issue16(site: dict[str, Path], tmp_path: Path) -> None:
    """Issue 16: the CRL was optional; the room was a label IT could change without a new certificate."""
    with pytest.raises(ProvisionError, match="revocation list"):
        provision("Room 4", bundle=site["base"] / "room4.pem", root=tmp_path / "r")
    with pytest.raises(ProvisionError, match="issued for room 'Room 4', not 'Room 5'"):
        provision("Room 5", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    result = provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=tmp_path / "r")
    secret = tmp_path / "r/etc/edge-agent/tls/room-code.key"
    assert _mode(secret) == 0o600 and len(bytes.fromhex(secret.read_text().strip())) == 32
    first = secret.read_bytes()
    assert any(a.path.endswith("room-code.key") and a.what == "write" for a in result.actions)
    again = provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=tmp_path / "r")
    assert secret.read_bytes() == first and not again.changed  # printed labels stay valid


def test_bad_room_label_and_foreign_crl(site: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="room label"):
        provision("Room/4", bundle=site["base"] / "room4.pem", root=tmp_path)
    other = ca.init_ca(tmp_path / "other-ca")
    with pytest.raises(Exception, match="not signed by this site's CA"):
        provision("Room 4", bundle=site["base"] / "room4.pem", crl=other.directory / "crl.pem", root=tmp_path)


def test_corrupt_model_refuses_provisioning(site: dict[str, Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(models_dir(), models, ignore=shutil.ignore_patterns("data"))
    with (models / "role_classifier.onnx").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ProvisionError, match="role_classifier.onnx does not match its MANIFEST"):
        provision("Room 4", bundle=site["base"] / "room4.pem", crl=site["ca"] / "crl.pem", root=tmp_path / "r", models_root=models)
    assert not (tmp_path / "r").exists()


def test_a_file_that_is_not_a_bundle_is_named_as_given(site: dict[str, Path], tmp_path: Path) -> None:
    """The bundle is validated through a private temp copy; the error named that copy
    (/tmp/edge-agent-provision-XXXX/device.pem), a path IT never typed and that no longer exists."""
    wrong = site["ca"] / "crl.pem"  # the CRL given as the bundle: an easy slip in the fleet loop
    with pytest.raises(ProvisionError) as err:
        provision("Room 4", bundle=wrong, root=tmp_path, crl=site["ca"] / "crl.pem")
    assert str(wrong) in str(err.value) and "edge-agent-provision-" not in str(err.value), err.value
    b = site["base"]
    with pytest.raises(ProvisionError) as err:  # separate files: name the three files it was made from
        provision("Room 4", ca_bundle=b / "ca.crt", device_cert=b / "device.crt", device_key=b / "ca.crt", root=tmp_path,
                  crl=site["ca"] / "crl.pem")
    assert "edge-agent-provision-" not in str(err.value) and "device.crt" in str(err.value), err.value
