"""`edge-agent phone-web serve` (the site's phone web app) and `edge-agent device qr|room-code|status|force-stop|purge-expired`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="The clinician phone web app, served once per site over HTTPS (docs/phone.md).", no_args_is_help=True)
device_app = typer.Typer(help="Room device helpers for IT.", no_args_is_help=True)


@app.command("serve")
def serve(
    bundle: Annotated[Path, typer.Option(help="TLS bundle for the site's web name, from the site CA (`ca issue-web --dns phones.example`)")],
    crl: Annotated[Path, typer.Option(help="the site CRL (crl.pem from the CA directory, re-signed weekly): served to the app at /crl.pem")],
    host: Annotated[str, typer.Option(help="listen address")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="listen port")] = 8443,
    device_origin: Annotated[list[str], typer.Option("--device-origin", help="a room device's browser endpoint, https://HOST:PORT "
                                                     "(repeatable): the app may connect only to these; none = any https origin")] = [],
    state_dir: Annotated[Optional[Path], typer.Option(help="remembers the highest CRL number served (a restart never serves an older CRL)")] = None,
) -> None:
    """Serve the phone web app (static files, strict CSP), the site CA and the CRL over HTTPS until Ctrl-C."""
    from edge_agent.phone.web.site import serve_forever

    serve_forever(bundle, crl, host, port, tuple(device_origin), state_dir)


@device_app.command("qr")
def qr(
    config: Annotated[Optional[Path], typer.Option("--config", help="device config the QR code is read from (default /etc/edge-agent/config.toml, "
                                                   "as serve; EDGE_AGENT_* env overrides): web.allowed_origin, web.port, server.room, server.bundle")] = None,
    site: Annotated[Optional[str], typer.Option(help="https origin of the phone web app (default: config web.allowed_origin)")] = None,
    address: Annotated[Optional[str], typer.Option(help="the device's browser endpoint, https://HOST:PORT (default: a name in the device "
                                                   "certificate and config web.port)")] = None,
    host: Annotated[Optional[str], typer.Option(help="the name or IP phones reach this device at, one the certificate names "
                                                "(default: server.host, else the certificate's first name)")] = None,
    room: Annotated[Optional[str], typer.Option(help="room label (default: config server.room)")] = None,
    bundle: Annotated[Optional[Path], typer.Option(help="device bundle, to read its certificate fingerprint (default: config server.bundle)")] = None,
    fingerprint: Annotated[Optional[str], typer.Option(help="device certificate SHA-256, if the bundle is not at hand")] = None,
    png: Annotated[Optional[Path], typer.Option(help="also write a printable PNG of the QR code here")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON instead of the QR code")] = False,
) -> None:
    """Print the room's join link and QR code (address + certificate fingerprint + room) for phones, from the device config."""
    import os

    from edge_agent.device.config import load_config, parse_config
    from edge_agent.device.web.qr import join_code, qr_png, qr_text
    from edge_agent.device.web.qr_config import qr_parameters
    from edge_agent.errors import EdgeAgentError

    if host is not None and address is not None:
        raise EdgeAgentError("give --address or --host, not both (--host picks the name inside the address)")
    complete = None not in (site, address, room) and (bundle is not None or fingerprint is not None)
    cfg = parse_config({}) if complete and config is None else load_config(config, os.environ)  # every part given: no config needed
    p = qr_parameters(cfg, site=site, address=address, room=room, host=host, bundle=bundle, fingerprint=fingerprint)
    code = join_code(p.site, p.address, p.room, p.bundle, p.fingerprint)
    if png is not None:
        qr_png(code.link, png)
    if json_out:
        print(json.dumps({"link": code.link, "device": code.device, "fingerprint": code.fingerprint, "room": code.room}))
        return
    print(qr_text(code.link))
    print(f"{code.room}: scan with the phone camera, or paste this link into the Coaching app:")
    print(code.link)


@device_app.command("room-code")
def room_code(
    secret: Annotated[Optional[Path], typer.Option(help="the room-code secret (default: config presence.code_secret)")] = None,
    step_s: Annotated[Optional[int], typer.Option("--step-s", help="seconds each code is valid (default: config presence.code_step_s)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="device config (default /etc/edge-agent/config.toml; EDGE_AGENT_* env overrides)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """Print this room's current and next room code (for the device's display or its printed label)."""
    import datetime as dt
    import os

    from edge_agent.device.config import load_config
    from edge_agent.device.presence import RoomCodes
    from edge_agent.errors import ConfigError

    if secret is None or step_s is None:  # the codes the daemon accepts: its own config's secret and step
        presence = load_config(config, os.environ).presence
        if secret is None and presence.code_secret is None:
            raise ConfigError("presence.code_secret is empty: this room has no room code (visits start by claim + room button)")
        secret = secret if secret is not None else presence.code_secret
        step_s = step_s if step_s is not None else presence.code_step_s
    assert secret is not None and step_s is not None
    codes = RoomCodes.load(secret, step_s)
    now, nxt = codes.window(0), codes.window(1)

    def when(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    if json_out:
        print(json.dumps({"code": now.code, "valid_until": when(now.valid_until), "next_code": nxt.code,
                          "next_valid_until": when(nxt.valid_until)}))
        return
    print(f"room code {now.code[:4]} {now.code[4:]}  (valid until {when(now.valid_until)}, and one step after as the previous code)")
    print(f"next code {nxt.code[:4]} {nxt.code[4:]}  (from {when(nxt.valid_from)}): print the next label before then")


_AdminBundle = Annotated[Path, typer.Option("--admin-bundle", help="IT's admin bundle from `edge-agent ca issue-admin` (0600)")]
_Address = Annotated[str, typer.Option("--device", help="the room device, HOST:PORT (config server.port)")]
_Fingerprint = Annotated[Optional[str], typer.Option(help="expected device certificate SHA-256 (from provisioning); refuses any other")]
_Json = Annotated[bool, typer.Option("--json", help="JSON output")]


@device_app.command("status")
def status(admin_bundle: _AdminBundle, device: _Address, fingerprint: _Fingerprint = None, json_out: _Json = False) -> None:
    """A room device's status over mutual TLS (admin certificate): visit running, outbox, certificate, CRL."""
    from edge_agent.cli.output import emit
    from edge_agent.site.admin_client import status as get_status

    emit(get_status(admin_bundle, device, fingerprint), json_out)


@device_app.command("force-stop")
def force_stop(admin_bundle: _AdminBundle, device: _Address, fingerprint: _Fingerprint = None, json_out: _Json = False) -> None:
    """Stop the running visit (its report is still sealed to its clinician and queued)."""
    from edge_agent.cli.output import emit
    from edge_agent.site.admin_client import force_stop as stop

    emit(stop(admin_bundle, device, fingerprint), json_out)


@device_app.command("purge-expired")
def purge_expired(admin_bundle: _AdminBundle, device: _Address, fingerprint: _Fingerprint = None, json_out: _Json = False) -> None:
    """Delete the sealed reports past outbox.retention_days now (the device also does it hourly)."""
    from edge_agent.cli.output import emit
    from edge_agent.site.admin_client import purge_expired as purge

    emit(purge(admin_bundle, device, fingerprint), json_out)
