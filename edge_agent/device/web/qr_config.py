"""What the room's QR code says, from the device's own config: the same file ``edge-agent serve`` reads.

``edge-agent device qr`` used to need every part on the command line, so an admin who had changed
``web.port`` (or the site's origin) printed a code with the built-in default that phones could not use.
The parts now come from the config, and an option given on the command line wins over it:

============= ==========================================================================================
QR part        from
============= ==========================================================================================
site           ``web.allowed_origin``: the phone web app's https origin, the only page the device answers
device         ``https://HOST:web.port``; HOST is ``--host``, else ``server.host`` when it is one address the
               device certificate names, else the certificate's first DNS name, else its first IP address
               (the browser checks the device's certificate against HOST, so only a name it carries works)
fingerprint    the certificate in ``server.bundle``
room           ``server.room`` (which must be the room the certificate names, as serve requires)
============= ==========================================================================================
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from edge_agent.crypto import ca
from edge_agent.device.config import ANY_ADDRESS_HOSTS, EdgeConfig
from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class QrParameters:
    """The arguments of :func:`edge_agent.device.web.qr.join_code`."""

    site: str
    address: str  # https://HOST:PORT of the browser endpoint
    room: str
    bundle: Path | None = None
    fingerprint: str | None = None


def certificate_hosts(cert: x509.Certificate) -> list[str]:
    """The names a browser can reach this device by: the certificate's DNS names (not the fixed gRPC name), then IPs."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [n for n in san.get_values_for_type(x509.DNSName) if n != ca.DEVICE_TLS_NAME]
    return names + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")


def _where(cfg: EdgeConfig) -> str:
    return f" in {cfg.source}" if cfg.source else " (no config file: built-in defaults)"


def qr_parameters(cfg: EdgeConfig, site: str | None = None, address: str | None = None, room: str | None = None,
                  host: str | None = None, bundle: Path | None = None, fingerprint: str | None = None) -> QrParameters:
    """The QR code's parts from ``cfg``; each given argument (the command's options) replaces the config's value.
    A part neither gives is refused in one line naming the key to set or the option to give."""
    where = _where(cfg)
    if site is None:
        if not cfg.web.allowed_origin:
            raise ConfigError(f"web.allowed_origin is not set{where}: it is the phone web app's address the QR code opens; "
                              "set it (e.g. https://phones.clinic.example:8443) or give --site")
        site = cfg.web.allowed_origin
    if fingerprint is None and bundle is None:
        bundle = cfg.server.bundle
    cert = ca.load_bundle(bundle, ca.ROLE_DEVICE).cert if bundle is not None else None
    if room is None:
        room = cfg.server.room
        if cert is not None:
            from edge_agent.device.grpc.server import check_certified_room

            check_certified_room(cert, room)  # serve refuses these two disagreeing; phones would refuse the code
    if address is None:
        if not cfg.web.enabled:
            raise ConfigError(f"web.enabled is false{where}: phones join by QR code through the browser endpoint; "
                              "set [web] enabled = true and restart the service (docs/phone.md), or give --address")
        address = f"https://{_url_host(_pick_host(cfg, cert, host))}:{cfg.web.port}"
    return QrParameters(site, address, room, bundle, fingerprint)


def _pick_host(cfg: EdgeConfig, cert: x509.Certificate | None, host: str | None) -> str:
    names = certificate_hosts(cert) if cert is not None else []
    if host is not None:
        if cert is not None and not any(_same_host(host, n) for n in names):
            listed = ", ".join(names) or "none"
            raise ConfigError(f"--host {host} is not a name in the device certificate (it names: {listed}): browsers would refuse "
                              "the connection; give one of those, or issue the certificate with --dns/--ip for it")
        return host
    listen = cfg.server.host
    if listen not in ANY_ADDRESS_HOSTS and any(_same_host(listen, n) for n in names):
        return listen  # the daemon listens on this one address only, and the certificate names it
    if names:
        return names[0]
    if cert is None:
        raise ConfigError("without the device bundle the device's address is unknown; give --host HOST (or --address)")
    raise ConfigError(f"the device certificate names no address phones can use (only the fixed name {ca.DEVICE_TLS_NAME!r}), and "
                      "browsers check the name they connect to: issue the device a certificate with --dns HOST or --ip ADDR "
                      "(edge-agent ca issue-device) and provision it")
