"""User-facing errors of the crypto package (one line: what is wrong + what to do)."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class CertificateError(EdgeAgentError):
    """A CA, certificate, key, bundle or CRL file is missing, invalid or does not match."""


class SealError(EdgeAgentError):
    """A feedback envelope cannot be sealed or opened (wrong key, tampered, replayed)."""
