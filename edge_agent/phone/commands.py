"""Plain functions behind ``edge-agent phone init|discover|start|stop|enroll|feedback``.

Simple arguments in, JSON-able dicts (or readable text) out; user mistakes raise
:class:`~edge_agent.phone.keys.ClientError` (an EdgeAgentError). The typer app
wires these up. ``device`` is ``HOST:PORT`` or ``None`` to find the one device
on the network by mDNS (``room`` picks one when several answer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.phone import client as phone
from edge_agent.phone.answers import button_line
from edge_agent.phone.keys import ClientError, init_key_file, install_certificate, load_key_file, request_key_file, update_key_file


def resolve(device: str | None, fingerprint: str | None = None, room: str | None = None, timeout: float = 3.0) -> phone.Target:
    """Where to connect, and what the device must prove: ``room`` (checked against its certificate) and
    ``fingerprint`` (given, or pinned for the room with ``phone pin``). mDNS only supplies addresses."""
    if device:
        return phone.Target.parse(device, fingerprint, room)
    from edge_agent.phone.discover import discover

    found = [d for d in discover(timeout) if room is None or d.room == room]
    if not found:
        raise ClientError("no edge-agent device found on this network; give --device HOST:PORT or check Wi-Fi")
    if len(found) > 1:
        rooms = ", ".join(sorted(d.room for d in found))
        raise ClientError(f"several devices answered ({rooms}); pick one with --room")
    return found[0].target(room=room, fingerprint=fingerprint)


def _room_needed(room: str | None, what: str) -> None:
    if not room:
        raise ClientError(f"say which room you are in (--room): {what} only in the room whose device you reach")


def phone_init(bundle: str | Path, key_file: str | Path, overwrite: bool = False) -> dict[str, Any]:
    keys = init_key_file(bundle, key_file, overwrite)
    return {"key_file": str(keys.path), "pseudonym": keys.pseudonym, "sealing_public_key": keys.sealing_public.hex()}


def phone_request(key_file: str | Path, out: str | Path, overwrite: bool = False, site_ca: str | Path | None = None,
                  ca_fingerprint: str | None = None) -> dict[str, Any]:
    keys = request_key_file(key_file, out, overwrite, site_ca, ca_fingerprint)
    return {"key_file": str(keys.path), "request": str(out), "site_ca_pinned": bool(keys.ca_pem),
            "next": "give the request to IT: edge-agent ca sign-clinician"}


def phone_install(key_file: str | Path, certificate: str | Path, ca_fingerprint: str | None = None) -> dict[str, Any]:
    keys = install_certificate(key_file, certificate, ca_fingerprint)
    return {"key_file": str(keys.path), "pseudonym": keys.pseudonym, "sealing_public_key": keys.sealing_public.hex()}


def phone_discover(timeout: float = 3.0) -> list[dict[str, Any]]:
    from edge_agent.phone.discover import discover

    # usable/reason: the protocol rule (edge_agent.protocol) on the advertised version, so IT and clinicians see
    # which rooms this client cannot use (and what to update) before trying one
    return [
        {"room": d.room, "address": f"{d.addresses[0]}:{d.port}" if d.addresses else "", "fingerprint": d.fingerprint, "version": d.version,
         "usable": d.usable, "reason": d.reason}
        for d in discover(timeout)
    ]


def phone_start(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
                max_duration_s: int = 0, room_code: str = "", emit: Callable[[str], None] = lambda _line: None) -> dict[str, Any]:
    """Start a visit; ``emit`` hears, before the start is sent, that this room needs its own enrolment (if it does)."""
    _room_needed(room, "a visit starts")
    if not 0 <= max_duration_s < 2**32:  # the request's uint32; the device applies its own limits to the rest
        raise ClientError("--max-minutes must be 0 (the device's default) or a number of minutes, e.g. 30")
    target = resolve(device, fingerprint, room)
    visit = phone.start_visit(key_file, target, max_duration_s=max_duration_s, room_code=room_code,
                              before_start=lambda line: emit(line[0].upper() + line[1:] + "."))
    out = {"visit_id": visit.visit_id, "room": room, "device": f"{target.host}:{target.port}", "voiceprint": visit.voiceprint}
    if visit.notice:
        out["notice"] = visit.notice  # e.g. no voiceprint for this room's speaker model: enrol here
    if visit.recovered:
        out["recovered"] = True  # the start's answer was lost (or refused as busy); the device says this visit is ours
    return out


def phone_stop(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
               visit_id: str | None = None) -> dict[str, Any]:
    reply = phone.stop(key_file, resolve(device, fingerprint, room), visit_id)
    return {"visit_id": reply.visit_id, "duration_s": round(reply.duration_s, 1), "report_id": reply.cursor}


def phone_enroll(key_file: str | Path, wav: str | Path, device: str | None = None, fingerprint: str | None = None,
                 room: str | None = None) -> dict[str, Any]:
    pcm, rate = phone.read_wav_pcm(wav)
    values = phone.enroll(key_file, resolve(device, fingerprint, room), pcm, rate)
    keys = load_key_file(key_file)
    return {"voiceprint_dims": len(values), "speaker_model": keys.voiceprint_model,
            "speaker_models_kept": len(keys.voiceprints), "stored_in": str(key_file)}


def phone_feedback(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
                   follow: bool = False, emit: Callable[[str], None] = print) -> int:
    """Print each decrypted report readably as it arrives, and each visit of this phone's that ended with no report
    (one line: why); returns how many reports were shown."""
    target = resolve(device, fingerprint, room)
    told: list[str] = []

    def no_report(visit_id: str, line: str) -> None:
        told.append(visit_id)
        emit(f"{line} (visit {visit_id})")

    reports = phone.feedback(key_file, target, follow=follow, on_report=lambda r: emit(r.render()), on_no_report=no_report)
    while follow:  # the device ends a followed stream after its server-side deadline, or when a visit has no report
        reports += phone.feedback(key_file, target, follow=True, on_report=lambda r: emit(r.render()), on_no_report=no_report)
    if not reports and not told:
        emit("No new feedback.")
    return len(reports)


def phone_claim(key_file: str | Path, device: str | None = None, fingerprint: str | None = None, room: str | None = None,
                wait: bool = True, poll_s: float = 1.0, emit: Callable[[str], None] = lambda _line: None) -> dict[str, Any]:
    """Claim the room, then (``wait``) follow the claim until a press starts the visit, it is contested, or it expires."""
    _room_needed(room, "the room is claimed")
    target = resolve(device, fingerprint, room)
    claim = phone.claim_room(key_file, target)
    out: dict[str, Any] = {"claim_id": claim.claim_id, "press_the_room_button_within_s": claim.valid_for_s,
                           "state": "contested" if claim.contested else "pending"}
    if claim.contested:
        out["note"] = "another clinician claimed this room too: the button will refuse; use the room code instead"
    if not wait or claim.contested:
        return out
    emit(f"Press the button on the device in {room} within {claim.valid_for_s} s.")
    deadline = time.monotonic() + claim.valid_for_s + 2
    failure = ""
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        status = phone.claim_status(key_file, target, claim.claim_id)
        state = phone.CLAIM_STATE_NAMES.get(status.state, "expired")
        if state == "pending" and status.failure and status.failure != failure:  # a press could not start it: said now
            failure = status.failure
            out["note"] = button_line(failure)
            emit(out["note"])
        if state != "pending":
            out["state"] = state
            out.pop("note", None)  # a press that failed before is not this outcome's note
            if status.visit_id:
                out["visit_id"] = status.visit_id
            if state == "contested":
                out["note"] = "another clinician claimed this room too: the button refused; use the room code instead"
            return out
    out["state"] = "expired"
    return out


def phone_pin(key_file: str | Path, room: str, fingerprint: str) -> dict[str, Any]:
    """Pin the device certificate fingerprint IT provisioned for a room (never learned from the network)."""
    fp = fingerprint.lower().replace(":", "")
    if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
        raise ClientError("fingerprint must be the 64 hex digits of SHA-256 IT gave for the room's device")
    with update_key_file(key_file) as keys:
        keys.pins[room] = fp
    return {"room": room, "fingerprint": fp}


def phone_crl(key_file: str | Path, crl: str | Path) -> dict[str, Any]:
    """Install a site CRL file from IT (it must verify under the site CA and be newer than the one held)."""
    keys = load_key_file(key_file)
    try:
        data = Path(crl).read_bytes()
    except FileNotFoundError:
        raise ClientError(f"CRL {crl} not found; IT publishes crl.pem") from None
    from cryptography import x509

    from edge_agent.crypto import ca
    from edge_agent.crypto.errors import CertificateError

    try:
        parsed = ca.parse_crl(data, x509.load_pem_x509_certificate(keys.ca_pem.encode()), f"CRL {crl}")
    except CertificateError as exc:
        raise ClientError(str(exc)) from None
    taken = phone.learn_crl(keys, data)
    return {"crl_number": parsed.number, "installed": taken, "revoked": len(parsed.revoked),
            "next_update": parsed.next_update.isoformat()}
