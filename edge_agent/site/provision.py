"""Provision one room device: certificates, config, model check. Idempotent; dry-run lists actions.

    provision("Room 4", bundle=Path("room4.pem"), crl=Path("crl.pem"))
    provision("Room 4", ca_bundle=..., device_cert=..., device_key=..., dry_run=True)

Installs under ``root`` (``/`` on a device; a temp dir in tests):

* ``etc/edge-agent/tls/device.pem``: the device bundle in the format of
  ``edge-agent ca issue-device`` (key + device certificate + site CA), mode 0600,
  owned by the service user when it exists and we are root. Separate key /
  certificate / CA files are joined into that format, after checking the key
  matches the certificate and the CA issued it.
* ``etc/edge-agent/tls/crl.pem``, same mode and owner: required (given now,
  or already installed by an earlier run); a device without the site's CRL
  would let revoked phones in.
* ``etc/edge-agent/tls/room-code.key``: the room-code secret (presence), made
  once with 32 random bytes and kept on re-provisioning (0600, service user).
* ``etc/edge-agent/config.toml``: every key documented; ``[server] room``,
  ``bundle`` and ``crl`` set; any other value already in the file is kept.

Models are checked against ``models/MANIFEST`` first; a missing or corrupt
model refuses the whole run (a device must not come up half-working).
Running it again with the same inputs changes nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import secrets
import shutil
import stat
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.crypto import ca
from edge_agent.crypto.files import write_private
from edge_agent.device.config import DEFAULT_PATH, parse_config
from edge_agent.errors import ConfigError, EdgeAgentError, ModelError
from edge_agent.models import load_manifest, models_dir, verify_model
from edge_agent.site.config_file import render_toml

DEVICE_ETC = Path("/etc/edge-agent")
TLS_DIR = DEVICE_ETC / "tls"
BUNDLE_PATH = TLS_DIR / "device.pem"
CRL_PATH = TLS_DIR / "crl.pem"
ROOM_CODE_PATH = TLS_DIR / "room-code.key"
CONFIG_HEADER = (
    "edge-agent configuration (written by 'edge-agent provision'; values you set are kept on re-provisioning).\n"
    "Every key shows its default; uncomment to change. Reference: docs/config.md"
)


class ProvisionError(EdgeAgentError):
    """Provisioning inputs are missing, inconsistent or cannot be installed."""


@dataclass(frozen=True)
class Action:
    what: str  # "write" | "unchanged" | "check" | "chown" | "note"
    path: str  # the path as it will be on the device (without ``root``)
    detail: str = ""

    def line(self) -> str:
        return f"{self.what:9} {self.path}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class ProvisionResult:
    room: str
    dry_run: bool
    fingerprint: str
    not_after: str
    actions: list[Action] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(a.what in ("write", "chown") for a in self.actions)

    def describe(self) -> str:
        head = ("would provision" if self.dry_run else "provisioned") + f" room {self.room!r}, device fp {self.fingerprint[:16]}…"
        return "\n".join([head, *(a.line() for a in self.actions)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "room": self.room,
            "dry_run": self.dry_run,
            "fingerprint": self.fingerprint,
            "not_after": self.not_after,
            "changed": self.changed,
            "actions": [a.__dict__ for a in self.actions],
        }


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ProvisionError(f"{what} {path} not found") from None
    except OSError as exc:
        raise ProvisionError(f"cannot read {what} {path}: {exc.strerror}") from None


def _device_bundle(bundle: Path | None, ca_bundle: Path | None, device_cert: Path | None, device_key: Path | None) -> tuple[bytes, ca.Bundle]:
    """The bundle bytes in issue-device format, validated by the same loader the server uses."""
    separate = (ca_bundle, device_cert, device_key)
    if bundle is not None and any(p is not None for p in separate):
        raise ProvisionError("give either --bundle or --ca-bundle/--device-cert/--device-key, not both")
    if bundle is None and not all(p is not None for p in separate):
        raise ProvisionError("give a device bundle (--bundle) or all of --ca-bundle, --device-cert and --device-key")
    if bundle is not None:
        data = _read(bundle, "device bundle")
    else:
        assert ca_bundle is not None and device_cert is not None and device_key is not None
        data = b"".join(
            part if part.endswith(b"\n") else part + b"\n"
            for part in (_read(device_key, "device key"), _read(device_cert, "device certificate"), _read(ca_bundle, "CA bundle"))
        )
    # ca.load_bundle reads a 0600 file: validate through a private temp file that is removed at once
    tmpdir = Path(tempfile.mkdtemp(prefix="edge-agent-provision-"))
    try:
        probe = tmpdir / "device.pem"
        write_private(probe, data)
        loaded = ca.load_bundle(probe, ca.ROLE_DEVICE)
    except EdgeAgentError as exc:  # name what IT gave, not the temp copy (gone by the time the line is read)
        given = str(bundle) if bundle is not None else f"the files {device_key}, {device_cert} and {ca_bundle}"
        raise ProvisionError(exc.message.replace(str(probe), given)) from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if ca.identity_of(loaded.cert).role != ca.ROLE_DEVICE:
        raise ProvisionError("that certificate is not a device certificate; issue one with 'edge-agent ca issue-device'")
    if loaded.cert.not_valid_after_utc <= dt.datetime.now(dt.timezone.utc):
        raise ProvisionError(f"the device certificate expired on {loaded.cert.not_valid_after_utc:%Y-%m-%d}; issue a new one")
    return data, loaded


def _check_crl(crl: Path, bundle: ca.Bundle) -> bytes:
    data = _read(crl, "CRL")
    ca.load_crl(crl, bundle.ca_cert)  # signed by this site's CA, or CertificateError
    return data


def _service_ids(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _under(root: Path, device_path: Path) -> Path:
    return root / device_path.relative_to("/")


def _same_file(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> tuple[bool, bool]:
    """(content and mode equal, owner equal)."""
    try:
        st = path.stat()
        same = path.read_bytes() == data and stat.S_IMODE(st.st_mode) == mode
    except FileNotFoundError:
        return False, False
    return same, owner is None or (st.st_uid, st.st_gid) == owner


class _Installer:
    def __init__(self, root: Path, dry_run: bool, owner: tuple[int, int] | None) -> None:
        self.root = root
        self.dry_run = dry_run
        self.owner = owner
        self.actions: list[Action] = []

    def directory(self, device_path: Path, mode: int, owned: bool) -> None:
        path = _under(self.root, device_path)
        owner = self.owner if owned else None
        if path.is_dir() and stat.S_IMODE(path.stat().st_mode) == mode and (owner is None or (path.stat().st_uid, path.stat().st_gid) == owner):
            return
        self.actions.append(Action("write", str(device_path) + "/", f"directory, mode {mode:o}"))
        if not self.dry_run:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)
            if owner is not None:
                os.chown(path, *owner)

    def file(self, device_path: Path, data: bytes, mode: int, owned: bool, detail: str) -> None:
        path = _under(self.root, device_path)
        owner = self.owner if owned else None
        same, same_owner = _same_file(path, data, mode, owner)
        if same and same_owner:
            self.actions.append(Action("unchanged", str(device_path), detail))
            return
        if same:
            self.actions.append(Action("chown", str(device_path), "owner -> service user"))
        else:
            self.actions.append(Action("write", str(device_path), f"{detail}, mode {mode:o}"))
        if self.dry_run:
            return
        if not same:
            write_private(path, data, mode)  # atomic, with the final mode from the first byte
        if owner is not None:
            os.chown(path, *owner)


def _config_text(existing: Path, room: str, crl_installed: bool) -> str:
    values: dict[str, dict[str, Any]] = {}
    if existing.is_file():
        try:
            values = tomllib.loads(existing.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProvisionError(f"existing {existing} is not valid TOML ({exc}); fix or remove it, then provision again") from None
    server = dict(values.get("server", {}))
    server.update({"room": room, "bundle": str(BUNDLE_PATH), "crl": str(CRL_PATH) if crl_installed else ""})
    values["server"] = server
    try:
        parse_config(values)  # refuse to write a config the daemon would refuse to read
    except ConfigError as exc:
        raise ProvisionError(f"existing {existing} has an invalid setting: {exc}") from None
    return render_toml(values, header=CONFIG_HEADER) + "\n"


def check_models(root: Path | None = None) -> list[str]:
    """Verify every MANIFEST artefact; returns their names, raises ModelError on the first bad one."""
    root = root or models_dir()
    names = sorted(load_manifest(root))
    for name in names:
        verify_model(name, root)
    return names


def provision(
    room: str,
    ca_bundle: Path | None = None,
    device_cert: Path | None = None,
    device_key: Path | None = None,
    bundle: Path | None = None,
    crl: Path | None = None,
    root: Path = Path("/"),
    dry_run: bool = False,
    service_user: str = "edge-agent",
    models_root: Path | None = None,
) -> ProvisionResult:
    """Install certificates and config for ``room``; see the module doc. Raises a one-line EdgeAgentError."""
    root = Path(root)
    try:
        parse_config({"server": {"room": room}})
    except ConfigError as exc:
        raise ProvisionError(str(exc).replace("server.room", "room label")) from None
    data, loaded = _device_bundle(bundle, ca_bundle, device_cert, device_key)
    certified = ca.room_of(loaded.cert)
    if not certified:
        raise ProvisionError("the device certificate names no room (issued before rooms were attested); issue a new one with 'edge-agent ca issue-device --room'")
    if certified != room:
        raise ProvisionError(f"the device certificate was issued for room {certified!r}, not {room!r}; give the right bundle or issue one for {room!r}")
    crl_data = _check_crl(crl, loaded) if crl is not None else None
    if crl_data is None and not _under(root, CRL_PATH).is_file():
        raise ProvisionError("give the site's revocation list (--crl crl.pem from the CA host); a device without it would let revoked phones in")
    try:
        model_names = check_models(models_root)
    except ModelError as exc:
        raise ProvisionError(f"models check failed: {exc}") from None

    ids = _service_ids(service_user)
    owner = ids if (ids is not None and os.geteuid() == 0) else None
    inst = _Installer(root, dry_run, owner)
    inst.actions.append(Action("check", "models/MANIFEST", f"{len(model_names)} artefacts match"))
    if ids is None:
        inst.actions.append(Action("note", service_user, "service user does not exist; files stay owned by root (see docs/operations.md)"))
    inst.directory(DEVICE_ETC, 0o755, owned=False)
    inst.directory(TLS_DIR, 0o700, owned=True)
    inst.file(BUNDLE_PATH, data, 0o600, owned=True, detail="device key + certificate + site CA")
    if crl_data is not None:
        inst.file(CRL_PATH, crl_data, 0o600, owned=True, detail="revocation list")
    code_file = _under(root, ROOM_CODE_PATH)
    if code_file.is_file():
        inst.actions.append(Action("unchanged", str(ROOM_CODE_PATH), "room-code secret (kept: printed labels stay valid)"))
    else:
        inst.file(ROOM_CODE_PATH, secrets.token_hex(32).encode() + b"\n", 0o600, owned=True,
                  detail="room-code secret; print the label with 'edge-agent device room-code'")
    config_file = _under(root, DEFAULT_PATH)
    inst.file(DEFAULT_PATH, _config_text(config_file, room, crl_data is not None or _under(root, CRL_PATH).is_file()).encode(), 0o644, owned=False, detail=f"room {room!r}")
    return ProvisionResult(room, dry_run, loaded.fingerprint, loaded.cert.not_valid_after_utc.isoformat(), inst.actions)
