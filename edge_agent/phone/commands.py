"""Plain functions behind ``edge-agent phone init|discover|start|stop|enroll|feedback``.

Simple arguments in, JSON-able dicts (or readable text) out; user mistakes raise
:class:`~edge_agent.phone.keys.ClientError` (an EdgeAgentError). The typer app
wires these up. ``device`` is ``HOST:PORT`` or ``None`` to find the one device
on the network by mDNS (``room`` picks one when several answer).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, init_key_file, install_certificate, request_key_file


def resolve(device: str | None, fingerprint: str | None = None, room: str | None = None, timeout: float = 3.0) -> phone.Target:
    if device:
        return phone.Target.parse(device, fingerprint)
    from edge_agent.phone.discover import discover

    found = [d for d in discover(timeout) if room is None or d.room == room]
    if not found:
        raise ClientError("no edge-agent device found on this network; give --device HOST:PORT or check Wi-Fi")
    if len(found) > 1:
        rooms = ", ".join(sorted(d.room for d in found))
        raise ClientError(f"several devices answered ({rooms}); pick one with --room")
    return found[0].target()


def phone_init(bundle: str | Path, key_file: str | Path, overwrite: bool = False) -> dict[str, Any]:
    keys = init_key_file(bundle, key_file, overwrite)
    return {"key_file": str(keys.path), "pseudonym": keys.pseudonym, "sealing_public_key": keys.sealing_public.hex()}


def phone_request(key_file: str | Path, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    keys = request_key_file(key_file, out, overwrite)
    return {"key_file": str(keys.path), "request": str(out), "next": "give the request to IT: edge-agent ca sign-clinician"}


def phone_install(key_file: str | Path, certificate: str | Path) -> dict[str, Any]:
    keys = install_certificate(key_file, certificate)
    return {"key_file": str(keys.path), "pseudonym": keys.pseudonym, "sealing_public_key": keys.sealing_public.hex()}


def phone_discover(timeout: float = 3.0) -> list[dict[str, Any]]:
    from edge_agent.phone.discover import discover

    return [
        {"room": d.room, "address": f"{d.addresses[0]}:{d.port}" if d.addresses else "", "fingerprint": d.fingerprint, "version": d.version}
        for d in discover(timeout)
    ]


def phone_start(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
                max_duration_s: int = 0) -> dict[str, Any]:
    target = resolve(device, fingerprint, room)
    return {"visit_id": phone.start(key_file, target, max_duration_s=max_duration_s), "device": f"{target.host}:{target.port}"}


def phone_stop(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
               visit_id: str | None = None) -> dict[str, Any]:
    reply = phone.stop(key_file, resolve(device, fingerprint, room), visit_id)
    return {"visit_id": reply.visit_id, "duration_s": round(reply.duration_s, 1), "report_id": reply.cursor}


def phone_enroll(key_file: str | Path, wav: str | Path, device: str | None = None, fingerprint: str | None = None,
                 room: str | None = None) -> dict[str, Any]:
    pcm, rate = phone.read_wav_pcm(wav)
    values = phone.enroll(key_file, resolve(device, fingerprint, room), pcm, rate)
    return {"voiceprint_dims": len(values), "stored_in": str(key_file)}


def phone_feedback(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
                   follow: bool = False, emit: Callable[[str], None] = print) -> int:
    """Print each decrypted report readably as it arrives; returns how many were shown."""
    reports = phone.feedback(key_file, resolve(device, fingerprint, room), follow=follow, on_report=lambda r: emit(r.render()))
    if not reports and not follow:
        emit("No new feedback.")
    return len(reports)


def phone_claim(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None) -> dict[str, Any]:
    seconds = phone.claim_room(key_file, resolve(device, fingerprint, room))
    return {"claimed": True, "press_the_room_button_within_s": seconds}
