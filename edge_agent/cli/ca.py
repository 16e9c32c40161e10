"""`edge-agent ca ...`: the site CA that IT keeps (on one CA host, not a room device)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_agent.cli.output import emit

app = typer.Typer(help="Site certificate authority: init, issue device/clinician/admin certificates, revoke.", no_args_is_help=True)
CaDir = Annotated[Path, typer.Option("--ca-dir", help="folder holding the site CA (keep it offline, 0700)")]
Json = Annotated[bool, typer.Option("--json", help="JSON output for scripts")]


@app.command("init")
def init(ca_dir: CaDir, site: Annotated[str, typer.Option(help="site name in the CA certificate")] = "edge-agent site", json_out: Json = False) -> None:
    """Create the site CA (key 0600)."""
    from edge_agent.site.ca_admin import ca_init

    emit(ca_init(ca_dir, site=site), json_out)


@app.command("issue-device")
def issue_device(
    ca_dir: CaDir,
    room: Annotated[str, typer.Option(help="room label, e.g. 'Clinic B room 4'")],
    out: Annotated[Path, typer.Option(help="device bundle to write (key + cert + CA)")],
    dns: Annotated[list[str], typer.Option("--dns", help="DNS name the device answers on (repeatable)")] = [],
    ip: Annotated[list[str], typer.Option("--ip", help="IP address the device answers on (repeatable)")] = [],
    json_out: Json = False,
) -> None:
    """Issue a room device's server certificate as one bundle file."""
    from edge_agent.site.ca_admin import ca_issue_device

    emit(ca_issue_device(ca_dir, room=room, out=out, dns=dns or None, ip=ip or None), json_out)


Renew = Annotated[Optional[str], typer.Option("--renew", help="the clinician's earlier pseudonym, serial or subject id: keep the same person")]


@app.command("issue-clinician")
def issue_clinician(ca_dir: CaDir, out: Annotated[Path, typer.Option(help="clinician bundle for the phone")], renew: Renew = None,
                    json_out: Json = False) -> None:
    """Issue a clinician phone certificate (pseudonymous id, never a name)."""
    from edge_agent.site.ca_admin import ca_issue_clinician

    emit(ca_issue_clinician(ca_dir, out, renew=renew), json_out)


@app.command("sign-clinician")
def sign_clinician(
    ca_dir: CaDir,
    request: Annotated[Path, typer.Argument(help="request from `edge-agent phone request`")],
    out: Annotated[Path, typer.Option(help="certificate file to give back to the phone (no key inside)")],
    renew: Renew = None,
    json_out: Json = False,
) -> None:
    """Certify a phone's own key under a fresh pseudonym (the CA never sees the private key)."""
    from edge_agent.site.ca_admin import ca_sign_clinician

    emit(ca_sign_clinician(ca_dir, request, out, renew=renew), json_out)


@app.command("issue-quality")
def issue_quality(ca_dir: CaDir, out: Annotated[Path, typer.Option(help="bundle for the Quality & Safety analyst")], json_out: Json = False) -> None:
    """Issue a Quality & Safety certificate: population queries only (90 days)."""
    from edge_agent.site.ca_admin import ca_issue_quality

    emit(ca_issue_quality(ca_dir, out), json_out)


@app.command("issue-aggregator")
def issue_aggregator(
    ca_dir: CaDir,
    out: Annotated[Path, typer.Option(help="server bundle for the aggregator host")],
    dns: Annotated[list[str], typer.Option("--dns", help="DNS name of the aggregator (repeatable)")] = [],
    ip: Annotated[list[str], typer.Option("--ip", help="IP address of the aggregator (repeatable)")] = [],
    json_out: Json = False,
) -> None:
    """Issue the population aggregator's server certificate (TLS name edge-agent-aggregator)."""
    from edge_agent.site.ca_admin import ca_issue_aggregator

    emit(ca_issue_aggregator(ca_dir, out, dns or None, ip or None), json_out)


@app.command("issue-web")
def issue_web(
    ca_dir: CaDir,
    out: Annotated[Path, typer.Option(help="server bundle for the site's phone web app (edge-agent phone-web serve)")],
    dns: Annotated[list[str], typer.Option("--dns", help="the site host phones open, e.g. phones.clinic.example (repeatable)")] = [],
    ip: Annotated[list[str], typer.Option("--ip", help="IP address of the site host (repeatable)")] = [],
    json_out: Json = False,
) -> None:
    """Issue the site web server's certificate (OU=web, serverAuth, the site host only): not a room device's."""
    from edge_agent.site.ca_admin import ca_issue_web

    emit(ca_issue_web(ca_dir, out, dns or None, ip or None), json_out)


@app.command("crl")
def crl(ca_dir: CaDir, days: Annotated[int, typer.Option(help="days until the next update")] = 30, json_out: Json = False) -> None:
    """Re-sign crl.pem with a new number and next-update (devices refuse an out-of-date CRL): run weekly."""
    from edge_agent.site.ca_admin import ca_crl

    emit(ca_crl(ca_dir, days), json_out)


@app.command("issue-admin")
def issue_admin(ca_dir: CaDir, out: Annotated[Path, typer.Option(help="admin bundle for IT")], json_out: Json = False) -> None:
    """Issue an IT admin certificate (90 days)."""
    from edge_agent.site.ca_admin import ca_issue_admin

    emit(ca_issue_admin(ca_dir, out), json_out)


@app.command("revoke")
def revoke(ca_dir: CaDir, who: Annotated[str, typer.Argument(help="certificate serial, pseudonym or bundle path")], json_out: Json = False) -> None:
    """Revoke a certificate and re-sign crl.pem."""
    from edge_agent.site.ca_admin import ca_revoke

    emit(ca_revoke(ca_dir, who), json_out)
