"""``edge-agent phone-web serve``: the one site origin that serves the phone web app over HTTPS.

Why one origin for the whole site: a browser keeps IndexedDB and WebCrypto keys
per origin, so if every room device served the app a clinician would have one
key set per room. The app is served here, once per site, and talks
cross-origin to each room device's browser endpoint (which allows exactly this
origin, see ``edge_agent.device.web``).

Static files only, from the package (no build at install time), each with a
strict Content-Security-Policy: scripts and styles from this origin only, no
inline script, network calls only over HTTPS (room devices are reached by the
address in their QR code, so their hosts are not known here).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.crypto import ca
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self' https:; "
       "media-src 'self' blob: mediastream:; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".webmanifest": "application/manifest+json", ".png": "image/png"}
NO_CACHE = {"index.html", "sw.js", "manifest.webmanifest"}  # the service worker decides what is cached on the phone


def static_dir() -> Path:
    return Path(str(resources.files("edge_agent.phone.web") / "static"))


@dataclass(frozen=True)
class Asset:
    body: bytes
    headers: list[tuple[bytes, bytes]]


def load_assets(directory: Path | None = None) -> dict[str, Asset]:
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
            (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"), (b"x-frame-options", b"DENY"),
            (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
            (b"strict-transport-security", b"max-age=31536000"),
        ]
        assets["/" + path.name] = Asset(body, headers)
    assets["/"] = assets["/index.html"]
    return assets


class SiteApp:
    """ASGI: GET/HEAD of the app's files; everything else 404/405."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self._assets = assets

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        asset = self._assets.get(scope["path"])
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
                                 (b"content-security-policy", CSP.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


@contextlib.contextmanager
def _memfile(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("edge-agent-site-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


class SiteServer:
    """The site service on its own asyncio loop (``serve_forever``) or inside another (tests, demo)."""

    def __init__(self, bundle: Path, host: str = "0.0.0.0", port: int = 8443) -> None:
        import uvicorn

        self.bundle = ca.load_bundle(bundle)
        self.host, self.port = host, port
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        with _memfile(self.bundle.key_pem + self.bundle.cert_pem) as path:
            config = uvicorn.Config(SiteApp(load_assets()), ssl_certfile=path, lifespan="off", log_level="warning",
                                    access_log=False, server_header=False, date_header=False, http="h11", ws="none",
                                    timeout_graceful_shutdown=1)
            config.load()
        self._server = uvicorn.Server(config)

    @property
    def origin(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"https://{host}:{self.port}"

    async def serve(self) -> None:
        await self._server.serve(sockets=[self._sock])

    def stop(self) -> None:
        self._server.should_exit = True


def serve_forever(bundle: Path, host: str, port: int) -> None:
    server = SiteServer(bundle, host, port)
    print(f"phone web app on https://{host}:{server.port}/ (site CA certificate; stop with Ctrl-C)", flush=True)
    asyncio.run(server.serve())
