"""Are the ports the config names free, held by this device's edge-agent, or held by another program?

``edge-agent doctor``'s ``ports`` check. For each listening port the config names (``server.port`` on
``server.host``; ``web.port`` on ``server.host`` when ``web.enabled``; ``metrics.port`` on loopback when
``metrics.enabled``), a real socket is bound the way the daemon binds it (``SO_REUSEADDR``, never
``SO_REUSEPORT``, which would share a port another listener holds):

* it binds: **free** (the daemon can start; nothing is left listening);
* the address is in use: the holder is asked who it is. The gRPC and browser ports must complete TLS with
  this device's certificate (its fingerprint, from ``server.bundle``), the metrics port must answer
  ``/metrics`` with edge-agent's series: then it is **this device's edge-agent** (running: fine). Anything
  else is **another program** (fail), named from ``/proc`` (root sees every process) with one line saying
  the port, the config key and what to do;
* it cannot be bound for another reason (``server.host`` is not an address of this device, a port below
  the unprivileged range the service user cannot open): fail, with the key to change.

Nothing here writes anywhere; a probe connection is closed at once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge_agent.device.config import EdgeConfig
from edge_agent.device.listen_ports import ConfiguredPort, configured_ports, duplicate_ports, try_bind
from edge_agent.errors import EdgeAgentError

FREE, OURS, OTHER, UNUSABLE = "free", "edge-agent", "other", "unusable"
UNPRIVILEGED_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


@dataclass(frozen=True)
class PortFinding:
    use: ConfiguredPort
    state: str  # FREE | OURS | OTHER | UNUSABLE
    message: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.state in (FREE, OURS)


def _where(cfg_source: Path | None) -> str:
    return f" in {cfg_source}" if cfg_source else " in the config"


def _unprivileged_start() -> int:
    try:
        return int(UNPRIVILEGED_START.read_text().strip())
    except (OSError, ValueError):
        return 1024


def _loopback_for(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


# ---- who holds it --------------------------------------------------------------------------------------


def _tls_fingerprint(host: str, port: int, ca_pem: str, timeout: float) -> str | None:
    """SHA-256 of the certificate a TLS server on host:port presents, if it verifies under the site CA."""
    from edge_agent.crypto import ca

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem)
    ctx.check_hostname = False  # the browser port's certificate names the room's host, the gRPC name is fixed: the fingerprint decides
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw, server_hostname=ca.DEVICE_TLS_NAME) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, ValueError):
        return None
    return hashlib.sha256(der).hexdigest() if der else None


def _answers_metrics(host: str, port: int, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as reply:  # noqa: S310 - loopback only
            return b"edge_agent_published_unix_seconds" in reply.read(1 << 20)
    except (OSError, ValueError):
        return False


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on ``port`` (any address), from /proc/net/tcp and tcp6."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                found.add(parts[9])
    return found


def holder(port: int) -> tuple[int, str] | None:
    """(pid, name) of the process listening on ``port``, if /proc lets this user see it (root sees all)."""
    inodes = {f"socket:[{i}]" for i in _listening_inodes(port)}
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                try:
                    if os.readlink(fd) in inodes:
                        return int(pid_dir.name), _process_name(pid_dir)
                except OSError:
                    continue
        except OSError:  # not ours to look at, or gone
            continue
    return None


def _process_name(pid_dir: Path) -> str:
    """What IT would recognise: the program's name, and for an interpreter what it runs (``python3 edge-agent serve``)."""
    try:
        name = (pid_dir / "comm").read_text().strip()
    except OSError:
        name = "?"
    if not name.startswith(("python", "node", "java", "perl", "ruby")):
        return name[:40]
    try:
        argv = [a.decode("utf-8", "replace") for a in (pid_dir / "cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return name[:40]
    words = [name]
    for arg in argv[1:5]:
        if arg == "-c":  # the program text itself is not a name
            words.append("-c …")
            break
        if arg.startswith("-") and arg != "-m":
            continue
        words.append(Path(arg).name if "/" in arg else arg)
    text = " ".join(w[:40] for w in words)
    return "".join(c if c.isprintable() else " " for c in text)[:80]


# ---- the check -----------------------------------------------------------------------------------------


def probe(use: ConfiguredPort, fingerprint: str | None, ca_pem: str | None, source: Path | None = None,
          timeout: float = 3.0) -> PortFinding:
    """One configured port: free, this device's edge-agent, another program, or not usable at all."""
    where = _where(source)
    restart = "then `systemctl restart edge-agent`"
    error = try_bind(use.host, use.port)
    if isinstance(error, socket.gaierror) or (error is not None and error.errno == errno.EADDRNOTAVAIL):
        return PortFinding(use, UNUSABLE, f"cannot listen on {use.host}:{use.port} ({use.key}): {use.host} is not an address of this device",
                           f"set server.host{where} to one of this device's addresses (ip addr) or 0.0.0.0, {restart}")
    low = _unprivileged_start()
    if error is None or error.errno == errno.EACCES:
        if use.port < low:  # the unit gives the service no capabilities: it cannot open this port, even if root can
            return PortFinding(use, UNUSABLE, f"port {use.port} ({use.key}) is below {low}: the service runs without privileges "
                               "and cannot listen on it", f"set {use.key}{where} to a port from {low} up, {restart}")
        if error is None:
            return PortFinding(use, FREE, f"{use.key} {use.port} free")
    if error is not None and error.errno != errno.EADDRINUSE:
        return PortFinding(use, UNUSABLE, f"cannot listen on {use.host}:{use.port} ({use.key}): {error.strerror}",
                           f"set {use.key}{where} to another port, {restart}")
    target = _loopback_for(use.host)
    if use.kind == "metrics":
        ours = _answers_metrics(target, use.port, timeout)
    else:
        ours = fingerprint is not None and ca_pem is not None and _tls_fingerprint(target, use.port, ca_pem, timeout) == fingerprint
    who = holder(use.port)
    pid = f" (pid {who[0]})" if who else ""
    if ours:
        return PortFinding(use, OURS, f"{use.key} {use.port} held by this device's edge-agent{pid} (running)")
    if use.kind != "metrics" and (fingerprint is None or ca_pem is None):
        # no certificate to recognise our daemon by (the certificates check says why): do not call it a stranger
        if who is None or "edge-agent" in who[1] or "edge_agent" in who[1]:
            named = f" by {who[1]}{pid}" if who else ""
            return PortFinding(use, OURS, f"{use.key} {use.port} in use{named}; not identified (no readable device bundle): "
                               "if edge-agent is running this is expected")
    if who is not None and ("edge-agent" in who[1] or "edge_agent" in who[1]) and use.kind != "metrics":
        return PortFinding(use, OTHER, f"port {use.port} ({use.key}) is held by {who[1]}{pid}, which does not serve this device's "
                           "certificate: an edge-agent started before the bundle was replaced, or a second one",
                           "`systemctl restart edge-agent` (and stop any other edge-agent started by hand)")
    name = f"another program: {who[1]}{pid}" if who else "another program (run doctor as root to name it)"
    if use.kind == "metrics":
        answer = "does not answer /metrics as edge-agent"
    elif fingerprint is None:
        answer = "is not edge-agent by its name (this device's bundle is unreadable: see the certificates check)"
    else:
        answer = "does not answer with this device's certificate"
    return PortFinding(use, OTHER, f"port {use.port} ({use.key}) is held by {name}, which {answer}: the daemon cannot listen there",
                       f"stop that program, or set {use.key}{where} to a free port, {restart}")


def check_ports(cfg: EdgeConfig, timeout: float = 3.0) -> list[PortFinding]:
    """Every configured port's finding; a port two keys share is one finding (fail) for the second key."""
    from edge_agent.crypto import ca

    fingerprint = ca_pem = None
    try:
        bundle = ca.load_bundle(cfg.server.bundle, ca.ROLE_DEVICE)
        fingerprint, ca_pem = bundle.fingerprint, bundle.ca_pem.decode()
    except EdgeAgentError:
        pass  # the certificates check reports it; an in-use port is then not called a stranger's
    uses = configured_ports(cfg)
    clashes = {b.key: a for a, b in duplicate_ports(uses)}
    out = []
    for use in uses:
        first = clashes.get(use.key)
        if first is not None:
            out.append(PortFinding(use, UNUSABLE, f"{first.key} and {use.key} are both {use.port}: the daemon cannot listen twice on one port",
                                   f"set {use.key}{_where(cfg.source)} to another port, then `systemctl restart edge-agent`"))
            continue
        out.append(probe(use, fingerprint, ca_pem, cfg.source, timeout))
    return out
