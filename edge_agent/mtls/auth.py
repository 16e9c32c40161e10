"""Who is calling: the peer certificate from the mutual-TLS handshake, checked against the CRL.

TLS (BoringSSL) has already verified the chain to the site CA and the validity
period before any handler runs; here we read the role and id the CA put in the
subject, and refuse revoked serials. gRPC Python has no CRL hook in the
handshake, so revocation is enforced per call (UNAUTHENTICATED).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import grpc
from cryptography import x509

from edge_agent.crypto import ca
from edge_agent.crypto.errors import CertificateError

log = logging.getLogger(__name__)


class AuthError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PeerAuthorizer:
    CRL_CHECK_INTERVAL_S = 1.0

    def __init__(self, ca_cert: x509.Certificate, crl_path: Path | None) -> None:
        self._ca_cert = ca_cert
        self._crl_path = Path(crl_path) if crl_path else None
        self._revoked: frozenset[int] = frozenset()
        self._crl_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, ca.Identity] = OrderedDict()  # pem -> identity (parsing is the cost)
        if self._crl_path is not None:
            # At start a missing or foreign CRL is a configuration error: refuse to run.
            self._revoked = ca.load_crl(self._crl_path, ca_cert)
            self._crl_mtime = self._crl_path.stat().st_mtime

    def use_crl(self, crl_path: Path | None) -> None:
        """Switch to another CRL file (config reload); a bad new file keeps the current list."""
        new = Path(crl_path) if crl_path else None
        if new == self._crl_path:
            return
        if new is None:
            log.warning("config reload: no CRL configured any more; revocations stay as last loaded")
            return
        try:
            revoked = ca.load_crl(new, self._ca_cert)
        except CertificateError as exc:
            log.error("config reload: CRL %s refused (%s); keeping the current one", new, exc)
            return
        with self._lock:
            self._crl_path, self._revoked, self._crl_mtime = new, revoked, new.stat().st_mtime
        log.info("CRL switched: %d revoked certificates", len(revoked))

    @property
    def crl_path(self) -> Path | None:
        return self._crl_path

    @property
    def revoked_count(self) -> int:
        self._refresh()
        return len(self._revoked)

    def _refresh(self) -> None:
        if self._crl_path is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at < self.CRL_CHECK_INTERVAL_S:
                return
            self._checked_at = now
            try:
                mtime = os.stat(self._crl_path).st_mtime
            except OSError:
                log.warning("CRL %s unreadable; keeping the last good revocation list", self._crl_path)
                return
            if mtime == self._crl_mtime:
                return
            try:
                self._revoked = ca.load_crl(self._crl_path, self._ca_cert)
                self._crl_mtime = mtime
                log.info("CRL reloaded: %d revoked certificates", len(self._revoked))
            except CertificateError as exc:
                # Keep the previous (stricter-or-equal) list rather than dropping revocations.
                log.warning("new CRL rejected (%s); keeping the last good one", exc)

    def identify(self, context: grpc.aio.ServicerContext) -> ca.Identity:
        auth = context.auth_context()
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "no client certificate; connect with your edge-agent bundle")
        pem = pems[0]
        ident = self._cache.get(pem)
        if ident is None:
            try:
                ident = ca.identity_of(x509.load_pem_x509_certificate(pem))
            except (ValueError, CertificateError):
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "client certificate has no edge-agent role; ask IT for a new one") from None
            with self._lock:
                self._cache[pem] = ident
                while len(self._cache) > 256:
                    self._cache.popitem(last=False)
        self._refresh()
        if ident.serial in self._revoked:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "client certificate has been revoked; ask IT for a new one")
        return ident

    def require(self, context: grpc.aio.ServicerContext, *roles: str) -> ca.Identity:
        ident = self.identify(context)
        if ident.role not in roles:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED, f"this operation needs a {' or '.join(roles)} certificate")
        return ident
