"""Zeroconf advertisement: ``_edge-agent._tcp.local.`` with TXT exactly {v, room, fp}.

Nothing about clinicians or visits is advertised (docs/design.md §3.5). The instance
name is derived from the certificate fingerprint, so it is stable per device
and says nothing the TXT does not. Addresses are polled; when they change
(DHCP renew, Wi-Fi roam) the record is re-announced; ``stop`` withdraws it
(goodbye packets with TTL 0).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence

import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from edge_agent.errors import ConfigError
from edge_agent.protocol import PROTOCOL_VERSION as _PROTOCOL

log = logging.getLogger(__name__)

SERVICE_TYPE = "_edge-agent._tcp.local."
PROTOCOL_VERSION = str(_PROTOCOL)  # TXT "v": the device's protocol version (edge_agent.protocol)
TXT_KEYS = ("v", "room", "fp")


def local_addresses() -> list[str]:
    """This host's unicast addresses; loopback only when nothing else exists (tests, isolated boxes)."""
    found: list[str] = []
    loop: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            raw = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                continue
            if addr.is_link_local or addr.is_multicast:
                continue
            (loop if addr.is_loopback else found).append(str(addr))
    return sorted(set(found or loop))


def instance_name(fingerprint: str) -> str:
    return f"edge-agent-{fingerprint[:12]}.{SERVICE_TYPE}"


def txt_record(room: str, fingerprint: str) -> dict[str, str]:
    record = {"v": PROTOCOL_VERSION, "room": room, "fp": fingerprint}
    for key, value in record.items():
        if len(key) + 1 + len(value.encode()) > 255:
            raise ConfigError(f"mDNS TXT value for {key!r} is too long (255 bytes max); shorten the room label")
    return record


class Advertiser:
    def __init__(
        self,
        room: str,
        port: int,
        fingerprint: str,
        addresses: Callable[[], Sequence[str]] = local_addresses,
        interfaces: Sequence[str] | InterfaceChoice = InterfaceChoice.All,
        poll_s: float = 5.0,
    ) -> None:
        self.room = room
        self.port = port
        self.fingerprint = fingerprint
        self._addresses = addresses
        self._interfaces = interfaces
        self._poll_s = poll_s
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._current: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self.announcements = 0

    def _make_info(self, addrs: Sequence[str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            instance_name(self.fingerprint),
            port=self.port,
            properties=txt_record(self.room, self.fingerprint),
            parsed_addresses=list(addrs),
            server=f"edge-agent-{self.fingerprint[:12]}.local.",
        )

    async def start(self) -> None:
        """Advertise now, or - no network interface up yet (a device booting off the network) - as soon as one is."""
        try:
            await self._register()
        except (OSError, RuntimeError) as exc:  # zeroconf: "No interfaces to listen on", or a socket error
            log.warning("mDNS: cannot advertise yet (%s; no network interface up?); retrying, phones can still connect "
                        "by address", type(exc))
        self._task = asyncio.create_task(self._watch())

    async def _register(self) -> None:
        zc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.All)
        try:
            self._current = tuple(self._addresses())
            info = self._make_info(self._current)
            # zeroconf returns a task that finishes when the announcements are sent; wait for it.
            await (await zc.async_register_service(info))
        except BaseException:
            await zc.async_close()
            raise
        self._zc, self._info = zc, info
        self.announcements += 1
        log.info("advertising %s on %d address(es)", SERVICE_TYPE, len(self._current))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            if self._zc is None:
                try:
                    await self._register()
                except (OSError, RuntimeError):
                    pass  # still no interface to advertise on: start() said so once
                continue
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a network hiccup must not stop the daemon
                log.warning("mDNS re-announce failed: %s", exc)

    async def refresh(self) -> bool:
        """Re-announce if the host's addresses changed; returns whether it did."""
        addrs = tuple(self._addresses())
        if addrs == self._current or self._zc is None:
            return False
        self._current = addrs
        self._info = self._make_info(addrs)
        await (await self._zc.async_update_service(self._info))
        self.announcements += 1
        log.info("addresses changed; re-announced on %d address(es)", len(addrs))
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._zc is not None:
            if self._info is not None:
                # Goodbye packets (TTL 0) go out before the sockets close.
                await (await self._zc.async_unregister_service(self._info))
            await self._zc.async_close()
            self._zc = None
