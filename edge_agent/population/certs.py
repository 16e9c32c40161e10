"""A client certificate for a room device to submit contributions to the aggregator.

The site CA's device certificates carry only the serverAuth EKU (they are TLS
servers for phones), and TLS refuses them as client certificates ("unsupported
certificate purpose"). So IT issues each device a second, client-only bundle
here: same CA, role ``contributor`` (the aggregator accepts submissions from
that role only), bound to the device's service line (``businessCategory``: the
aggregator refuses records of any other line from it), a random id unrelated
to the room label, P-256, one year, recorded in ``issued.jsonl`` and revocable
with ``edge-agent ca revoke`` like any other.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.crypto import ca


def issue_contributor(authority: ca.CertificateAuthority, out: Path, service_line: str, days: int = ca.DEVICE_DAYS) -> ca.Issued:
    """Client bundle (key + cert + CA) for a device's deliveries to the aggregator, for one service line."""
    return ca.issue_contributor(authority, service_line, Path(out), days)
