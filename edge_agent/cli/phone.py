"""`edge-agent phone ...`: the reference clinician client (what the phone app does)."""

from __future__ import annotations

import sys
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


CaFingerprint = Annotated[Optional[str], typer.Option("--ca-fingerprint", help="SHA-256 of the site CA certificate, as IT published it")]


@app.command("request")
def request(keys: KeyFile, out: Annotated[Path, typer.Option(help="certificate request to give IT (holds no secret)")],
            ca: Annotated[Optional[Path], typer.Option("--ca", help="the site CA certificate from IT (ca.cert.pem): pinned now")] = None,
            ca_fingerprint: CaFingerprint = None, overwrite: bool = False, json_out: Json = False) -> None:
    """Make the phone's keys here and a certificate request for IT (the private keys never leave the phone)."""
    from edge_agent.phone.commands import phone_request

    emit(phone_request(keys, out, overwrite, ca, ca_fingerprint), json_out)


@app.command("install")
def install(certificate: Annotated[Path, typer.Argument(help="the file IT made with `ca sign-clinician`")], keys: KeyFile,
            ca_fingerprint: CaFingerprint = None, json_out: Json = False) -> None:
    """Install the certificate IT signed for this phone's request (its CA must be the site CA)."""
    from edge_agent.phone.commands import phone_install

    emit(phone_install(keys, certificate, ca_fingerprint), json_out)


@app.command("pin")
def pin(keys: KeyFile, room: Annotated[str, typer.Option("--room", help="room label")],
        fingerprint: Annotated[str, typer.Option("--fingerprint", help="the room device's certificate fingerprint from IT")],
        json_out: Json = False) -> None:
    """Pin a room's device fingerprint from provisioning (mDNS is never trusted for it)."""
    from edge_agent.phone.commands import phone_pin

    emit(phone_pin(keys, room, fingerprint), json_out)


@app.command("crl")
def crl(keys: KeyFile, crl_file: Annotated[Path, typer.Argument(help="crl.pem from IT")], json_out: Json = False) -> None:
    """Install the site's revocation list (devices also hand newer ones to the phone)."""
    from edge_agent.phone.commands import phone_crl

    emit(phone_crl(keys, crl_file), json_out)


@app.command("discover")
def discover(timeout: float = 3.0, json_out: Json = False) -> None:
    """List edge-agent devices advertised on this network."""
    from edge_agent.phone.commands import phone_discover

    found = phone_discover(timeout)
    if not found and not json_out:
        print(f"no room devices answered within {timeout:g} s; join the clinic network, or give --device HOST:PORT", file=sys.stderr)
    emit(found, json_out)


@app.command("start")
def start(keys: KeyFile, device: Device = None, fingerprint: Fingerprint = None, room: Room = None,
          room_code: Annotated[str, typer.Option("--room-code", help="the code shown on (or printed on) the device in the room")] = "",
          max_minutes: Annotated[int, typer.Option(help="stop automatically after this many minutes (0: device default)")] = 0,
          json_out: Json = False) -> None:
    """Start a visit in the room you are in (you confirm the patient has agreed: consent=true is sent)."""
    from edge_agent.phone.commands import phone_start

    emit(phone_start(keys, device, fingerprint, room, max_duration_s=max_minutes * 60, room_code=room_code,
                     emit=lambda line: typer.echo(line, err=True)), json_out)


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
def claim(keys: KeyFile, device: Device = None, fingerprint: Fingerprint = None, room: Room = None,
          wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the press and confirm the start")] = True,
          json_out: Json = False) -> None:
    """Claim the room: a press of its button then starts a visit whose report comes to you."""
    from edge_agent.phone.commands import phone_claim

    emit(phone_claim(keys, device, fingerprint, room, wait=wait, emit=lambda line: typer.echo(line, err=True)), json_out)
