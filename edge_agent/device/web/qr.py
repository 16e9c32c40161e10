"""The room's join code: a link to the site's phone web app carrying the device address,
its certificate fingerprint and the room label, printed as text and as a QR code.

Browsers cannot browse mDNS, so this is how a phone finds (and pins) a room device.
The device part sits in the URL fragment (after '#'), which browsers never send
to the site server: the site does not learn which rooms a phone joins.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from edge_agent.crypto import ca
from edge_agent.errors import ConfigError

_FP = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class JoinCode:
    site: str  # https origin of the phone web app
    device: str  # https://HOST:PORT of the device's browser endpoint
    fingerprint: str  # SHA-256 of the device certificate, hex
    room: str

    @property
    def link(self) -> str:
        return f"{self.site}/#join?d={quote(self.device, safe='')}&fp={self.fingerprint}&room={quote(self.room, safe='')}"


def _origin(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{what} must be https://HOST[:PORT], got {url!r}")
    return f"https://{parts.netloc}"


def join_code(site: str, device: str, room: str, bundle: Path | None = None, fingerprint: str | None = None) -> JoinCode:
    """From the device bundle (IT has it when provisioning) or a fingerprint printed by ``doctor``/mDNS."""
    if bundle is not None:
        b = ca.load_bundle(bundle, ca.ROLE_DEVICE)
        fp = b.fingerprint
    elif fingerprint:
        fp = fingerprint.lower().replace(":", "")
    else:
        raise ConfigError("give the device bundle (--bundle) or its certificate fingerprint (--fingerprint)")
    if not _FP.match(fp):
        raise ConfigError("the fingerprint must be 64 hex characters (SHA-256 of the device certificate)")
    if not room or len(room) > 40:
        raise ConfigError("room label must be 1-40 characters")
    return JoinCode(_origin(site, "--site"), _origin(device, "--address"), fp, room)


def qr_text(link: str) -> str:
    """The QR code as terminal text (two rows per character line, so it stays square)."""
    import qrcode

    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(link)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def qr_png(link: str, path: Path) -> None:
    """A printable PNG of the QR code (needs Pillow, as qrcode's image factory does)."""
    import qrcode

    img = qrcode.make(link, border=4, box_size=10, error_correction=qrcode.constants.ERROR_CORRECT_M)
    img.save(str(path))
