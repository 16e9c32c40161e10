"""Find room devices on the local network by mDNS (``_edge-agent._tcp.local.``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceListener, Zeroconf

from edge_agent.device.mdns import SERVICE_TYPE
from edge_agent.phone.client import Target
from edge_agent.phone.keys import ClientError
from edge_agent.protocol import Compatibility, compatibility


@dataclass(frozen=True)
class DiscoveredDevice:
    name: str
    room: str
    version: str
    fingerprint: str
    port: int
    addresses: tuple[str, ...]

    @property
    def compatibility(self) -> Compatibility:
        """The protocol rule (edge_agent.protocol) on the advertised ``v``: a hint for the list only (mDNS is
        unauthenticated); the decision is made again on the device's own answer over mutual TLS."""
        return compatibility(self.version)

    @property
    def usable(self) -> bool:
        return self.compatibility.usable

    @property
    def reason(self) -> str:
        return self.compatibility.reason

    def target(self, room: str | None = None, fingerprint: str | None = None) -> Target:
        """Where to connect. The advertised ``room`` and ``fp`` are unauthenticated (anyone on the network
        can answer mDNS): they pick a device, they never vouch for it. The device must then prove the
        room the clinician chose (``room``) with its certificate, and match a fingerprint from provisioning."""
        if not self.addresses:
            raise ValueError("device advertised no address")
        return Target(self.addresses[0], self.port, fingerprint, room)


def _decode(props: dict[bytes, bytes | None], key: str) -> str:
    value = props.get(key.encode())
    return value.decode("utf-8", "replace") if value else ""


def discover(
    timeout: float = 3.0,
    interfaces: Sequence[str] | InterfaceChoice = InterfaceChoice.All,
    want: int | None = None,
) -> list[DiscoveredDevice]:
    """Browse for ``timeout`` seconds (or until ``want`` devices answered); sorted by room."""
    # zeroconf logs each unusable socket as a WARNING with a traceback (an interface down, no IPv6): not for a user
    logging.getLogger("zeroconf").setLevel(logging.ERROR)
    try:
        zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.All)
    except OSError as exc:
        raise ClientError(f"cannot browse the local network ({exc.strerror}); give --device HOST:PORT instead") from None
    except RuntimeError:  # zeroconf: "No interfaces to listen on" (Wi-Fi off, no network)
        raise ClientError("no network interface is up to look for room devices on; join the clinic network "
                          "or give --device HOST:PORT") from None
    names: set[str] = set()

    class _Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.add(name)

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.add(name)

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            names.discard(name)

    found: dict[str, DiscoveredDevice] = {}
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, listener=_Listener())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in list(names - found.keys()):
                info = zc.get_service_info(SERVICE_TYPE, name, timeout=500)
                if info is None or not info.port:
                    continue
                fp = _decode(info.properties, "fp").lower()
                if len(fp) != 64:
                    continue  # not an edge-agent record we can verify: ignore
                found[name] = DiscoveredDevice(
                    name, _decode(info.properties, "room"), _decode(info.properties, "v"), fp, info.port,
                    tuple(info.parsed_scoped_addresses()),
                )
            if want is not None and len(found) >= want:
                break
            time.sleep(0.05)
        browser.cancel()
    finally:
        zc.close()
    return sorted(found.values(), key=lambda d: (d.room, d.name))
