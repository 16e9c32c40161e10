"""`edge-agent demo --phone`: the same story, with the phone web app in a browser on this machine.

A throwaway site CA, the room device on loopback (mutual-TLS gRPC plus its
browser endpoint), and the site service for the phone web app. The demo
acts as IT: it signs the certificate request the app makes (pasted here) with
the project's own CA code. Each visit replays the bundled consultation through
the real pipeline as the room microphone. Runs until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOM = "Demo room"


def _sign_loop(authority, root: Path) -> None:  # type: ignore[no-untyped-def]
    """IT's side: read PEM requests from stdin and print the signed answer for the app."""
    from edge_agent.crypto import ca
    from edge_agent.errors import EdgeAgentError

    buf: list[str] = []
    for line in sys.stdin:
        buf.append(line)
        if "-----END CERTIFICATE REQUEST-----" not in line:
            continue
        req = root / "request.pem"
        req.write_text("".join(buf))
        buf.clear()
        try:
            issued = ca.sign_clinician_request(authority, req, root / "answer.pem")
        except EdgeAgentError as exc:
            print(f"edge-agent: {exc.message}", file=sys.stderr)
            continue
        print(f"\nIT: signed for pseudonym {issued.subject_id}. Paste this into the app's 'Install the certificate' box:\n")
        print((root / "answer.pem").read_text(), flush=True)


def nss_home(home: Path, ca_pem: Path) -> Path:
    """A HOME whose NSS database trusts the site CA for TLS servers: Chromium's real trust path on Linux."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "edge-agent site CA", "-i", str(ca_pem)],
                   check=True, capture_output=True)
    return home


def _open_browser(url: str, ca_cert: Path, root: Path) -> bool:
    """Chromium with a throwaway profile whose NSS database trusts the demo CA, if there is a display."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or not shutil.which("certutil"):
        return False
    home = nss_home(root / "browser-home", ca_cert)
    subprocess.Popen([chromium, f"--user-data-dir={root / 'browser-profile'}", "--no-first-run", "--window-size=400,820", f"--app={url}"],
                     env={**os.environ, "HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def run_demo_phone(fast: bool) -> int:
    from edge_agent.crypto import ca
    from edge_agent.data import bundled as demo_audio_path
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer, ServerConfig
    from edge_agent.device.main import load_device as build_device
    from edge_agent.device.presence import RoomCodes, make_secret
    from edge_agent.device.visit import file_factory
    from edge_agent.device.web.endpoint import DeviceWithWeb, WebEndpointConfig
    from edge_agent.device.web.qr import join_code
    from edge_agent.phone.web.site import SiteServer

    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-phone-") as tmp:
        root = Path(tmp)
        authority = ca.init_ca(root / "ca", site="Demo clinic")
        ca.issue_device(authority, ROOM, root / "device.pem", ips=("127.0.0.1",))
        ca.issue_web(authority, root / "site.pem", ips=("127.0.0.1",))
        site = SiteServer(root / "site.pem", root / "ca" / ca.CRL, "127.0.0.1", 0)
        print("device: loading the speech, speaker and behaviour models…", file=sys.stderr)
        parts = build_device(file_factory(demo_audio_path(), realtime=not fast))
        make_secret(root / "room-code.key")
        config = ServerConfig(bundle=root / "device.pem", data_dir=root / "state", room=ROOM, crl=root / "ca" / ca.CRL,
                              host="127.0.0.1", port=0, room_code_secret=root / "room-code.key")
        room_code = RoomCodes.load(root / "room-code.key", config.room_code_step_s).window().code
        device = DeviceWithWeb(
            EdgeAgentServer(config, parts.runner, parts.enroller),
            WebEndpointConfig((site.origin,), host="127.0.0.1", port=0),
        )
        background = BackgroundServer(device)
        background.start()
        # the app may connect to this room's device only (the site lists its devices: docs/phone.md "CSP")
        site.set_device_origins((f"https://127.0.0.1:{device.web.port}",))
        site_thread = threading.Thread(target=lambda: asyncio.run(site.serve()), daemon=True, name="site")
        site_thread.start()
        code = join_code(site.origin, f"https://127.0.0.1:{device.web.port}", ROOM, bundle=root / "device.pem")
        ca_cert = root / "ca" / ca.CA_CERT
        opened = _open_browser(site.origin + "/#/setup", ca_cert, root)
        print(f"""
The phone web app: {site.origin}/
{'(opened in Chromium with a throwaway profile that trusts the demo CA)' if opened else
 f'Open it in Chromium on this machine after trusting the demo CA {ca_cert} (Settings > Privacy and security > Manage certificates > Authorities > Import).'}

1. In the app, tap "Make my keys", copy the certificate request and paste it here (this terminal plays IT).
2. Paste the signed answer this terminal prints into the app and install it.
3. Join the room with this link (what the room's QR code holds):
   {code.link}
4. Enrol your voice if you like, tick consent, type the room code {room_code[:4]} {room_code[4:]} (a real room shows it on the
   device or its label), Start visit. The room microphone is the bundled recording
   ({'as fast as possible' if fast else 'in real time, about a minute'}); Stop visit when it has played, and the report opens.
Ctrl-C ends the demo and deletes everything it made.
""", flush=True)
        try:
            _sign_loop(authority, root)
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            background.stop()
            site.stop()
    return 0
