"""``edge-agent phone-web serve``: the one site origin that serves the phone web app over HTTPS.

Why one origin for the whole site: a browser keeps IndexedDB and WebCrypto keys
per origin, so if every room device served the app a clinician would have one
key set per room. The app is served here, once per site, and talks
cross-origin to each room device's browser endpoint (which allows exactly this
origin, see ``edge_agent.device.web``).

Static files only, from the package (no build at install time), each with a
strict Content-Security-Policy: scripts and styles from this origin only, no
inline script, Trusted Types (no HTML string sinks), and network calls only to
this origin and the room devices: the ones IT lists (``--device-origin``), or
any HTTPS origin when no list is given (room devices are reached by the address
in their QR code, which this service never sees: docs/phone.md "CSP").

Two dynamic files, at fixed paths, for the app to pin and check trust as the
Python phone does: ``/ca.pem``, the site CA certificate (pinned by the app at
enrolment), and ``/crl.pem``, the site CRL in force, re-read within a second of
a change with the device's rules (CA-signed, numbered, current, never older
than one already served).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.crypto import ca
from edge_agent.errors import ConfigError
from edge_agent.mtls.auth import PeerAuthorizer
from edge_agent.mtls.memfile import pem_memfile
from edge_agent.wording import a_or_an

log = logging.getLogger(__name__)

CA_PATH, CRL_PATH = "/ca.pem", "/crl.pem"
TRUSTED_TYPES_POLICY = "edge-agent"  # the app's one policy: script URLs of its own service worker and audio worklet, no HTML


def csp(device_origins: tuple[str, ...] = ()) -> str:
    """The app's policy; ``connect-src`` is 'self' plus the listed room devices, or any https origin without a list."""
    connect = " ".join(("'self'", *device_origins)) if device_origins else "'self' https:"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            f"connect-src {connect}; media-src 'self' blob: mediastream:; worker-src 'self'; manifest-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
            f"require-trusted-types-for 'script'; trusted-types {TRUSTED_TYPES_POLICY}")


CSP = csp()


def check_device_origin(origin: str) -> str:
    """``https://HOST[:PORT]`` exactly (what a room's QR code names as the device address)."""
    from urllib.parse import urlsplit

    parts = urlsplit(origin)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment \
            or any(c in origin for c in " ;,'\"") or parts.username or parts.password:
        raise ConfigError(f"device origin {origin!r} must be exactly https://HOST[:PORT], as in the room's QR code")
    return origin.rstrip("/")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".webmanifest": "application/manifest+json", ".png": "image/png"}
NO_CACHE = {"index.html", "sw.js", "manifest.webmanifest"}  # the service worker decides what is cached on the phone


def static_dir() -> Path:
    return Path(str(resources.files("edge_agent.phone.web") / "static"))


@dataclass(frozen=True)
class Asset:
    body: bytes
    headers: list[tuple[bytes, bytes]]


def _security_headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode()), (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"), (b"x-frame-options", b"DENY"),
        (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
        (b"strict-transport-security", b"max-age=31536000"),
    ]


def load_assets(directory: Path | None = None, policy: str = CSP) -> dict[str, Asset]:
    """Every file of the built app, read once at start (the set of paths is fixed: no directory walking per request)."""
    directory = directory or static_dir()
    if not (directory / "index.html").is_file():
        raise ConfigError(f"the phone web app is missing from {directory}; reinstall edge-agent")
    assets: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix not in TYPES:
            continue
        body = path.read_bytes()
        cache = b"no-cache" if path.name in NO_CACHE else b"public, max-age=3600"
        headers = [
            (b"content-type", TYPES[path.suffix].encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", cache), (b"etag", b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'),
            *_security_headers(policy),
        ]
        assets["/" + path.name] = Asset(body, headers)
    assets["/"] = assets["/index.html"]
    return assets


class SiteTrust:
    """The site CA certificate and the CRL in force, for ``/ca.pem`` and ``/crl.pem``.

    The CRL is held by the same :class:`PeerAuthorizer` the devices use: checked
    at start (a missing, foreign, stale or unnumbered CRL is a start-up error),
    re-read within a second of a change, a bad or older new file ignored.
    """

    def __init__(self, bundle: ca.Bundle, crl: Path, state_dir: Path | None = None) -> None:
        self.ca_pem = bundle.ca_pem
        if state_dir is not None:
            _make_state_dir(Path(state_dir))
        self._auth = PeerAuthorizer(bundle.ca_cert, crl, state_dir)

    def crl_pem(self) -> bytes:
        held = self._auth.crl
        return held.pem if held is not None else b""

    def asset(self, path: str, policy: str) -> Asset | None:
        if path == CA_PATH:
            body, kind = self.ca_pem, b"application/x-pem-file"
        elif path == CRL_PATH:
            body, kind = self.crl_pem(), b"application/x-pem-file"
        else:
            return None
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-cache"),
                   (b"etag", b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'), *_security_headers(policy)]
        return Asset(body, headers)


class SiteApp:
    """ASGI: GET/HEAD of the app's files, the site CA and the CRL; everything else 404/405."""

    def __init__(self, assets: dict[str, Asset], trust: SiteTrust | None = None, policy: str = CSP) -> None:
        self._assets = assets
        self._trust = trust
        self._policy = policy

    def use_policy(self, policy: str) -> None:
        self._assets = load_assets(policy=policy)
        self._policy = policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        asset = self._assets.get(scope["path"])
        if asset is None and self._trust is not None:
            asset = self._trust.asset(scope["path"], self._policy)
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            status, body, headers = 405, b"method not allowed", [(b"allow", b"GET, HEAD")]
        elif asset is None:
            status, body, headers = 404, b"not found", []
        else:
            etag = dict(asset.headers)[b"etag"]
            if dict((k.lower(), v) for k, v in scope.get("headers", [])).get(b"if-none-match") == etag:
                status, body, headers = 304, b"", [(k, v) for k, v in asset.headers if k != b"content-length"]
            else:
                status, body, headers = 200, asset.body, asset.headers
        if status >= 400:
            headers = headers + [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                                 (b"content-security-policy", self._policy.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _make_state_dir(path: Path) -> None:
    """--state-dir must be a folder the service can write: else the CRL number is never recorded, and a restart
    would serve an older CRL (a warning in the log was all it got)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        what = "is a file" if path.is_file() else f"cannot be used ({exc.strerror})"
        raise ConfigError(f"--state-dir {path} {what}; give a folder the service can write (created if missing), "
                          "e.g. /var/lib/edge-agent-site") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--state-dir {path} is not writable by this user; give a folder the service can write "
                          "(created if missing), e.g. /var/lib/edge-agent-site")


class SiteServer:
    """The site service on its own asyncio loop (``serve_forever``) or inside another (tests, demo)."""

    def __init__(self, bundle: Path, crl: Path, host: str = "0.0.0.0", port: int = 8443,
                 device_origins: tuple[str, ...] = (), state_dir: Path | None = None) -> None:
        import uvicorn

        self.bundle = ca.load_bundle(bundle, ca.ROLE_WEB)
        role = ca.identity_of(self.bundle.cert).role
        if role != ca.ROLE_WEB:
            raise ConfigError(f"{bundle} is {a_or_an(role)} bundle, not the site web server's; "
                              f"{ca.issue_hint(ca.ROLE_WEB)}")
        self.trust = SiteTrust(self.bundle, crl, state_dir)
        self.policy = csp(tuple(check_device_origin(o) for o in device_origins))
        self.host, self.port = host, port
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except (OSError, OverflowError) as exc:  # OverflowError: a port outside 0..65535
            self._sock.close()
            reason = getattr(exc, "strerror", None) or "ports are 1..65535"
            raise ConfigError(f"cannot listen on {host}:{port} ({reason}); pick another --port") from None
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        with pem_memfile(self.bundle.key_pem + self.bundle.cert_pem, "edge-agent-site-tls") as path:
            self.app = SiteApp(load_assets(policy=self.policy), self.trust, self.policy)
            # log_config=None: no uvicorn stderr handler of its own (in the demo the device shares this process,
            # and that handler would route its browser endpoint's lines around the redacting log handler)
            config = uvicorn.Config(self.app, ssl_certfile=path, lifespan="off", log_level="warning", log_config=None,
                                    access_log=False, server_header=False, date_header=False, http="h11", ws="none",
                                    timeout_graceful_shutdown=1)
            config.load()
        self._server = uvicorn.Server(config)

    def set_device_origins(self, device_origins: tuple[str, ...]) -> None:
        """Narrow ``connect-src`` to these room devices (before :meth:`serve`; the demo and tests learn ports late)."""
        self.policy = csp(tuple(check_device_origin(o) for o in device_origins))
        self.app.use_policy(self.policy)

    @property
    def origin(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"https://{host}:{self.port}"

    async def serve(self) -> None:
        await self._server.serve(sockets=[self._sock])

    def stop(self) -> None:
        self._server.should_exit = True


def serve_forever(bundle: Path, crl: Path, host: str, port: int, device_origins: tuple[str, ...] = (),
                  state_dir: Path | None = None) -> None:
    server = SiteServer(bundle, crl, host, port, device_origins, state_dir)
    print(f"phone web app on https://{host}:{server.port}/ (site CA certificate; stop with Ctrl-C)", flush=True)
    asyncio.run(server.serve())
