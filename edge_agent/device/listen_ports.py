"""The ports ``serve`` listens on, checked before anything loads, listens or is announced.

A busy ``web.port`` or ``metrics.port`` used to show only after the models had loaded and the gRPC port was already
accepting connections: a half-started daemon, for the seconds before it failed (and every restart of the unit). Each
configured port is now bound once (and released) at the very start, the way the daemon binds it, and the start is
refused in one line naming the port and the config key to change. ``edge-agent doctor``'s ``ports`` check
(:mod:`edge_agent.site.ports`) uses the same list and bind, and also names the program holding a port.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.device.config import ANY_ADDRESS_HOSTS, EdgeConfig
from edge_agent.errors import ConfigError

METRICS_HOST = "127.0.0.1"  # the metrics endpoint listens on loopback only


@dataclass(frozen=True)
class ConfiguredPort:
    key: str  # the config key that sets it, e.g. "server.port"
    host: str  # the listen address it is bound on
    port: int
    kind: str  # "grpc" | "web" | "metrics": how the holder is asked who it is


def configured_ports(cfg: EdgeConfig) -> list[ConfiguredPort]:
    """The ports ``edge-agent serve`` would listen on with this config (port 0, tests' ephemeral port: none)."""
    out = []
    if cfg.server.port:
        out.append(ConfiguredPort("server.port", cfg.server.host, cfg.server.port, "grpc"))
    if cfg.web.enabled and cfg.web.port:
        out.append(ConfiguredPort("web.port", cfg.server.host, cfg.web.port, "web"))
    if cfg.metrics.enabled and cfg.metrics.port:
        out.append(ConfiguredPort("metrics.port", METRICS_HOST, cfg.metrics.port, "metrics"))
    return out


def try_bind(host: str, port: int) -> OSError | None:
    """Bind (not listen) as the daemon's listener does; the error if it cannot (socket.gaierror for a bad name)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return exc
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's start_server: TIME_WAIT is not "in use"
        try:
            sock.bind(addr)
        except OSError as exc:
            return exc
    return None


def duplicate_ports(uses: Sequence[ConfiguredPort]) -> list[tuple[ConfiguredPort, ConfiguredPort]]:
    """Two keys naming the same port (the daemon would take the first and fail on the second)."""
    out = []
    for i, a in enumerate(uses):
        for b in uses[i + 1 :]:
            if a.port == b.port and (a.host == b.host or a.host in ANY_ADDRESS_HOSTS or b.host in ANY_ADDRESS_HOSTS):
                out.append((a, b))
    return out


def check_listen_ports(cfg: EdgeConfig) -> None:
    """Refuse the start in one line if a configured port cannot be listened on: in use, shared by two keys, not an
    address of this device, or refused by the system. Nothing stays bound."""
    where = f" in {cfg.source}" if cfg.source else " in the config"
    uses = configured_ports(cfg)
    for first, second in duplicate_ports(uses):
        raise ConfigError(f"{first.key} and {second.key} are both {second.port}: the daemon cannot listen twice on one port; "
                          f"set {second.key}{where} to another port")
    for use in uses:
        error = try_bind(use.host, use.port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {use.port} ({use.key}) is already in use by another program (or another edge-agent): "
                              f"set {use.key}{where} to a free port, or stop that program (`edge-agent doctor` names it)")
        if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"cannot listen on {use.host}:{use.port} ({use.key}): {use.host} is not an address of this "
                              f"device; set server.host{where} to one of its addresses (ip addr) or 0.0.0.0")
        raise ConfigError(f"cannot listen on {use.host}:{use.port} ({use.key}): {error.strerror}; set {use.key}{where} "
                          "to another port")
