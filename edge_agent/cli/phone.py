"""`edge-agent phone ...`: the reference clinician client (what the phone app does)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_agent.cli.output import emit

app = typer.Typer(help="Reference clinician phone: discover the room device, start/stop a visit, enrol, read feedback.", no_args_is_help=True)
KeyFile = Annotated[Path, typer.Option("--keys", help="the phone's key file (0600)")]
Device = Annotated[Optional[str], typer.Option("--device", help="HOST:PORT (default: find the device by mDNS)")]
Fingerprint = Annotated[Optional[str], typer.Option("--fingerprint", help="expected device certificate fingerprint")]
Room = Annotated[Optional[str], typer.Option("--room", help="pick this room when several devices answer")]
Json = Annotated[bool, typer.Option("--json", help="JSON output")]


@app.command("init")
def init(bundle: Annotated[Path, typer.Option(help="clinician bundle from `ca issue-clinician`")], keys: KeyFile, overwrite: bool = False, json_out: Json = False) -> None:
    """Create the phone's key file: certificate + sealing key pair (private keys stay here)."""
    from edge_agent.phone.commands import phone_init

    emit(phone_init(bundle, keys, overwrite), json_out)


@app.command("request")
def request(keys: KeyFile, out: Annotated[Path, typer.Option(help="certificate request to give IT (holds no secret)")],
            overwrite: bool = False, json_out: Json = False) -> None:
    """Make the phone's keys here and a certificate request for IT (the private keys never leave the phone)."""
    from edge_agent.phone.commands import phone_request

    emit(phone_request(keys, out, overwrite), json_out)


@app.command("install")
def install(certificate: Annotated[Path, typer.Argument(help="the file IT made with `ca sign-clinician`")], keys: KeyFile,
            json_out: Json = False) -> None:
    """Install the certificate IT signed for this phone's request."""
    from edge_agent.phone.commands import phone_install

    emit(phone_install(keys, certificate), json_out)


@app.command("discover")
def discover(timeout: float = 3.0, json_out: Json = False) -> None:
    """List edge-agent devices advertised on this network."""
    from edge_agent.phone.commands import phone_discover

    emit(phone_discover(timeout), json_out)


@app.command("start")
def start(keys: KeyFile, device: Device = None, fingerprint: Fingerprint = None, room: Room = None,
          max_minutes: Annotated[int, typer.Option(help="stop automatically after this many minutes (0: device default)")] = 0,
          json_out: Json = False) -> None:
    """Start a visit (you confirm the patient has agreed: consent=true is sent)."""
    from edge_agent.phone.commands import phone_start

    emit(phone_start(keys, device, fingerprint, room, max_duration_s=max_minutes * 60), json_out)


@app.command("stop")
def stop(keys: KeyFile, device: Device = None, fingerprint: Fingerprint = None, room: Room = None,
         visit_id: Annotated[Optional[str], typer.Option(help="visit to stop (default: yours)")] = None, json_out: Json = False) -> None:
    """Stop your visit; the report is sealed to your key and queued."""
    from edge_agent.phone.commands import phone_stop

    emit(phone_stop(keys, device, fingerprint, room, visit_id), json_out)


@app.command("enroll")
def enroll(keys: KeyFile, wav: Annotated[Path, typer.Argument(help="10-30 s of you speaking (WAV)")], device: Device = None,
           fingerprint: Fingerprint = None, room: Room = None, json_out: Json = False) -> None:
    """Enrol your voice on the device; the voiceprint is kept in your key file, not on the device."""
    from edge_agent.phone.commands import phone_enroll

    emit(phone_enroll(keys, wav, device, fingerprint, room), json_out)


@app.command("feedback")
def feedback(keys: KeyFile, device: Device = None, fingerprint: Fingerprint = None, room: Room = None,
             follow: Annotated[bool, typer.Option("--follow", help="keep the stream open for new reports")] = False) -> None:
    """Fetch, decrypt and show your coaching reports."""
    from edge_agent.phone.commands import phone_feedback

    phone_feedback(keys, device, fingerprint, room, follow=follow)


@app.command("claim")
def claim(keys: KeyFile, device: Device = None, fingerprint: Fingerprint = None, room: Room = None, json_out: Json = False) -> None:
    """Claim the room: a press of its button then starts a visit whose report comes to you."""
    from edge_agent.phone.commands import phone_claim

    emit(phone_claim(keys, device, fingerprint, room), json_out)
