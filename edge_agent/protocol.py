"""The room-device protocol's version, and the one rule that says whether a client may use a device.

The rule (docs/operations.md, "Updating and rolling back"):

* A device states one integer, its protocol version: ``DeviceInfo.protocol_version`` over mutual TLS (and,
  unauthenticated, the mDNS TXT key ``v``). It is raised only by a change an older client would
  misunderstand (a field removed or its meaning changed, an RPC removed or changed). Additions (a new
  field, a new RPC) do not raise it; they are announced in ``DeviceInfo.capabilities``.
  ``GetDeviceInfo`` and ``DeviceInfo.protocol_version`` (field 1) never change, so any client can read
  any device's version.
* A client understands the device versions from :data:`OLDEST_DEVICE_PROTOCOL` to
  :data:`PROTOCOL_VERSION`, both included. A device outside that range is refused before any other
  call, in one line that says which side to update: newer than the client knows -> update the app;
  older than the client still supports -> update the device.
* Devices do not check clients (a client sends no version): the rule lives in the clients, the same
  in the Python phone client (``edge_agent.phone``) and the web app (``tools/phone-web/src/compat.js``;
  a test runs both on the same cases).
* A release that raises :data:`PROTOCOL_VERSION` keeps the previous version inside its clients' range,
  so a fleet is updated clients first (the site's phone web app, the phone client), then devices, room
  by room; rolling a device back is safe while the clients still support its version.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_VERSION = 1  # what this release's device states; the newest this release's clients understand
OLDEST_DEVICE_PROTOCOL = 1  # the oldest device protocol this release's clients still understand
MAX_ENROLL_SECONDS = 30  # EnrollVoice refuses more audio than this; clients refuse a longer recording before sending it

UPDATE_APP = "update-app"
UPDATE_DEVICE = "update-device"


@dataclass(frozen=True)
class Compatibility:
    """Whether a client may use a device of ``device_version``; else ``reason`` (one line) and ``action``."""

    device_version: int | None  # None: the device did not state one we can read
    usable: bool
    action: str = ""  # "" | UPDATE_APP | UPDATE_DEVICE
    reason: str = ""


def _parse(version: int | str | None) -> int | None:
    if isinstance(version, bool):
        return None
    if isinstance(version, int):
        return version if version > 0 else None
    if isinstance(version, str) and version.strip().isdigit() and len(version.strip()) <= 9:
        return int(version.strip()) or None
    return None


def compatibility(version: int | str | None, oldest: int = OLDEST_DEVICE_PROTOCOL,
                  newest: int = PROTOCOL_VERSION) -> Compatibility:
    """The rule, for a device stating ``version`` (DeviceInfo's integer, or the mDNS TXT ``v`` string).

    0 (proto3's "not set"), a missing or unreadable value: the device states no version this client can read,
    i.e. it is older than any versioned release (or not an edge-agent device): update the device.
    """
    found = _parse(version)
    if found is None:
        return Compatibility(None, False, UPDATE_DEVICE,
                             "this room device does not state a protocol version this app can read (older software); "
                             "ask IT to update the room device")
    if found > newest:
        return Compatibility(found, False, UPDATE_APP,
                             f"this room device speaks protocol {found}, newer than this app understands (up to {newest}): "
                             "update the app, then try again")
    if found < oldest:
        return Compatibility(found, False, UPDATE_DEVICE,
                             f"this room device speaks protocol {found}, older than this app supports (from {oldest}): "
                             "ask IT to update the room device")
    return Compatibility(found, True)
