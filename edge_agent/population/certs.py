"""A client certificate for a room device to submit contributions to the aggregator.

The site CA's device certificates carry only the serverAuth EKU (they are TLS
servers for phones), and TLS refuses them as client certificates ("unsupported
certificate purpose"). So IT issues each device a second, client-only bundle here: same CA,
role ``device`` (the aggregator accepts submissions from that role only), a
random id unrelated to the room label, P-256, one year, recorded in
``issued.jsonl`` and revocable with ``edge-agent ca revoke`` like any other.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from edge_agent.crypto import ca


def issue_contributor(authority: ca.CertificateAuthority, out: Path, days: int = ca.DEVICE_DAYS) -> ca.Issued:
    """Client bundle (key + cert + CA) for a device's deliveries to the aggregator."""
    # a random id unrelated to the room label: the aggregator learns nothing about rooms
    return ca._issue(authority, ca.ROLE_DEVICE, "d-" + secrets.token_hex(6), Path(out), days, client=True)
