"""Who is calling: the peer certificate from the mutual-TLS handshake, rechecked on every call.

TLS (BoringSSL) verified the chain to the site CA and the validity period when
the connection was made. A connection can outlive both, so every call checks
again here: the certificate's validity window against the clock, the CRL (gRPC
Python has no CRL hook in the handshake), and the role. Refusals are
UNAUTHENTICATED / PERMISSION_DENIED with one line saying what to do.

CRL rules (docs/security.md): a CRL must be signed by the site CA, carry a CRL
number, and be current (next update in the future). A CRL numbered below the one
already held is refused (an old list swapped in must not un-revoke anyone); with
``state_dir`` the highest number seen survives restarts. When the held CRL runs
past its next update and no newer one arrives, every call is refused
(FAILED_PRECONDITION): revocation status is unknown, so nothing is trusted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography import x509

from edge_agent.crypto import ca
from edge_agent.crypto.errors import CertificateError
from edge_agent.crypto.files import write_private
from edge_agent.errors import EdgeAgentError
from edge_agent.wording import a_or_an

log = logging.getLogger(__name__)

CRL_NUMBER_FILE = "crl-number"


class AuthError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PeerAuthorizer:
    CRL_CHECK_INTERVAL_S = 1.0

    def __init__(
        self,
        ca_cert: x509.Certificate,
        crl_path: Path | None,
        state_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._ca_cert = ca_cert
        self._crl_path = Path(crl_path) if crl_path else None
        self._clock = clock
        self._crl: ca.Crl | None = None
        self._crl_mtime: float | None = None
        self._stale_said: int | None = None  # number of the held CRL whose running out was logged (once per CRL)
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, ca.Identity] = OrderedDict()  # pem -> identity (parsing is the cost)
        self._number_file = Path(state_dir) / CRL_NUMBER_FILE if state_dir else None
        self._floor = self._read_floor()
        if self._crl_path is not None:
            # At start a missing, foreign, stale or rolled-back CRL is a configuration error: refuse to run.
            crl = ca.read_crl(self._crl_path, ca_cert, self._clock())
            if crl.number < self._floor:
                raise CertificateError(
                    f"CRL {self._crl_path} is number {crl.number}, older than number {self._floor} this server already used; "
                    "copy the current crl.pem from the CA host"
                )
            self._accept(crl, self._crl_path.stat().st_mtime)

    # ---- the CRL ------------------------------------------------------------------------

    def _read_floor(self) -> int:
        if self._number_file is None:
            return 0
        try:
            return int(self._number_file.read_text().strip() or 0)
        except OSError:
            # missing, or a folder that cannot be used: recording the CRL accepted next (any number is above 0)
            # fails too, and that line says where and what to do
            return 0
        except ValueError:
            log.warning("CRL number record unreadable; it is rewritten with the next CRL")
            return 0

    def _accept(self, crl: ca.Crl, mtime: float) -> None:
        self._crl, self._crl_mtime = crl, mtime
        if crl.number > self._floor and self._number_file is not None:
            try:
                self._number_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_private(self._number_file, f"{crl.number}\n".encode())
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                # an EdgeAgentError, whose message the journal keeps (device/ops/logs; mtls cannot import Safe):
                # a folder and an OS reason, no visit data
                note = EdgeAgentError(f"cannot record the CRL number in {self._number_file.parent} ({reason}); a restart "
                                      "would accept an older CRL: make that folder writable by the service and free space on it")
                log.warning("%s", note)
        self._floor = max(self._floor, crl.number)

    def _judge(self, path: Path) -> ca.Crl:
        """A candidate CRL file, checked (signature, number, dates) and not older than the held one."""
        crl = ca.read_crl(path, self._ca_cert, self._clock())
        floor = max(self._floor, self._crl.number if self._crl else 0)
        if crl.number < floor:
            raise CertificateError(f"CRL {path} is number {crl.number}, older than number {floor} already in use")
        return crl

    def check_crl(self, crl_path: Path | None) -> None:
        """Would :meth:`use_crl` take this file? Raises CertificateError (one line) if not; changes nothing."""
        new = Path(crl_path) if crl_path else None
        if new == self._crl_path:
            return
        if new is None:
            raise CertificateError("server.crl cannot be removed while running: revocations would stop being checked; "
                                   "point it at the current crl.pem")
        self._judge(new)

    def use_crl(self, crl_path: Path | None) -> None:
        """Switch to another CRL file (config reload); a bad or older new file keeps the current list."""
        new = Path(crl_path) if crl_path else None
        if new == self._crl_path:
            return
        if new is None:
            log.warning("config reload: no CRL configured any more; revocations stay as last loaded")
            return
        try:
            crl = self._judge(new)
        except CertificateError as exc:
            log.error("config reload: CRL %s refused (%s); keeping the current one", new, exc)
            return
        with self._lock:
            self._crl_path = new
            self._accept(crl, new.stat().st_mtime)
        log.info("CRL switched: %d revoked certificates", len(crl.revoked))

    @property
    def crl_path(self) -> Path | None:
        return self._crl_path

    @property
    def crl(self) -> ca.Crl | None:
        """The CRL in force (after a reload check); phones get a copy in DeviceInfo."""
        self._refresh()
        return self._crl

    @property
    def revoked_count(self) -> int:
        self._refresh()
        return len(self._crl.revoked) if self._crl else 0

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
                crl = self._judge(self._crl_path)
            except CertificateError as exc:
                # Keep the previous (stricter-or-equal) list rather than dropping revocations.
                self._crl_mtime = mtime  # judged once; a later change is judged again
                log.warning("new CRL rejected (%s); keeping the last good one", exc)
                return
            self._accept(crl, mtime)
            log.info("CRL reloaded: %d revoked certificates", len(crl.revoked))

    # ---- callers ----------------------------------------------------------------------

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
        now = self._clock()
        # The handshake checked validity once; a long-lived connection must not outlive the certificate.
        if ident.not_after is not None and now >= ident.not_after:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            f"client certificate expired on {ident.not_after:%Y-%m-%d %H:%M} UTC; ask IT for a new one")
        if ident.not_before is not None and now < ident.not_before:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "client certificate is not valid yet; check the phone's clock")
        self._refresh()
        crl = self._crl
        if crl is not None:
            if not crl.current(now):
                if self._stale_said != crl.number:  # every call is refused from now on: IT must hear it, once
                    self._stale_said = crl.number
                    log.error("the revocation list (CRL #%d) passed its next update (%s UTC): every call is refused "
                              "until IT copies a fresh crl.pem from the CA host to %s", crl.number,
                              f"{crl.next_update:%Y-%m-%d %H:%M}", self._crl_path)
                raise AuthError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"this server's revocation list expired on {crl.next_update:%Y-%m-%d}; IT must copy a fresh crl.pem to it",
                )
            if ident.serial in crl.revoked:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "client certificate has been revoked; ask IT for a new one")
        return ident

    def require(self, context: grpc.aio.ServicerContext, *roles: str) -> ca.Identity:
        ident = self.identify(context)
        if ident.role not in roles:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED, f"this operation needs {a_or_an(' or '.join(roles))} certificate")
        return ident
