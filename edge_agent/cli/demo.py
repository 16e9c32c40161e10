"""`edge-agent demo`: the whole story on one machine.

A throwaway site CA, the room device on loopback (mutual TLS), a clinician
phone that enrols its voice and starts a visit, the bundled consultation
streamed through the real pipeline as the room microphone, stop, and the
decrypted coaching report on the phone side.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from rich.console import Console
from rich.rule import Rule

from edge_agent.audio import SAMPLE_RATE
from edge_agent.cli.render import JsonLinesSink, LiveTranscriptView
from edge_agent.data import bundled as demo_audio_path
from edge_agent.device.main import load_device
from edge_agent.device.visit import file_factory

ROOM = "Demo room"


def run_demo(fast: bool, jsonl: bool) -> int:
    from edge_agent.crypto import ca
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer, ServerConfig
    from edge_agent.device.population import PopulationContributor
    from edge_agent.device.presence import RoomCodes, make_secret
    from edge_agent.phone import client as phone
    from edge_agent.phone.keys import install_certificate, request_key_file
    from edge_agent.population.commands import aggregator_keygen
    from edge_agent.population.pseudonym import PeriodKeyRing

    console = Console(stderr=True)
    say = (lambda msg: None) if jsonl else (lambda msg: console.print(f"[dim]{msg}[/dim]"))
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as tmp:
        root = Path(tmp)
        say("IT: creating a throwaway site CA and a room-device certificate")
        authority = ca.init_ca(root / "ca", site="Demo clinic")
        ca.issue_device(authority, ROOM, root / "device.pem", ips=("127.0.0.1",))
        say("phone: making its own keys and a certificate request; IT signs it under a pseudonym")
        keys = root / "phone.json"
        request_key_file(keys, root / "clinician.req", site_ca=root / "ca" / ca.CA_CERT)  # the phone pins the site CA
        ca.sign_clinician_request(authority, root / "clinician.req", root / "clinician.cert")
        install_certificate(keys, root / "clinician.cert")
        say("IT: creating the population aggregator's key and the site's rotating period key")
        aggregator_keygen(root / "aggregator.key", root / "aggregator.pub")
        PeriodKeyRing.create(root / "period.key")
        contributor = PopulationContributor.from_files(root / "period.key", root / "aggregator.pub", service_line="general-practice")

        say("device: loading the speech, speaker and behaviour models")
        sink = JsonLinesSink(sys.stdout) if jsonl else LiveTranscriptView()
        parts = load_device(file_factory(demo_audio_path(), realtime=not fast), on_event=sink)
        make_secret(root / "room-code.key")
        config = ServerConfig(bundle=root / "device.pem", data_dir=root / "state", room=ROOM, crl=root / "ca" / ca.CRL,
                              host="127.0.0.1", port=0, room_code_secret=root / "room-code.key")
        server = BackgroundServer(
            EdgeAgentServer(
                config,
                parts.runner,
                parts.enroller,
                contributor,
            )
        )
        port = server.start()
        target = phone.Target("127.0.0.1", port, server.server.fingerprint, ROOM)
        try:
            say(f"device: listening on 127.0.0.1:{port}, mutual TLS only")
            pcm = _pcm16(demo_audio_path("demo_enrol.flac"))
            phone.enroll(keys, target, pcm, SAMPLE_RATE)
            say("phone: enrolled the clinician's voice; the voiceprint is kept on the phone, not the device")
            code = RoomCodes.load(root / "room-code.key", config.room_code_step_s).window().code
            phone.start(keys, target, room_code=code)
            say(f"phone: visit started with the room code {code[:4]} {code[4:]} read off the device (consent confirmed) "
                "— the room microphone is the bundled recording")
            if isinstance(sink, LiveTranscriptView):
                with sink:
                    parts.runner.wait_capture_end()
            else:
                parts.runner.wait_capture_end()
            reply = phone.stop(keys, target)
            say(f"phone: visit stopped after {reply.duration_s:.0f} s; the report was sealed to the clinician's key and queued")
            reports = phone.feedback(keys, target, follow=False)
        finally:
            server.stop()
        if jsonl:
            sink.emit({"type": "report", "text": "\n".join(r.render() for r in reports)})
        else:
            console.print(Rule("on the clinician's phone"))
            for report in reports:
                print(report.render())
        return 0 if reports else 1


def _pcm16(path: Path) -> bytes:
    """Int16 PCM of a recording, as the phone's microphone would deliver it."""
    audio, rate = sf.read(str(path), dtype="int16", always_2d=True)
    mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1).astype(np.int16)
    assert rate == SAMPLE_RATE
    return mono.tobytes()
