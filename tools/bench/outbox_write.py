"""Delivery figures: outbox write latency (SQLite WAL+FULL vs atomic files+fsync).

Called by ``edge-agent bench delivery`` (wired in the CLI); returns JSON-able dicts.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.crypto import seal
from edge_agent.crypto.files import write_private
from edge_agent.device.lifecycle import VisitRunner, VoiceEnroller
from edge_agent.device.outbox import Outbox


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
        "max_ms": round(ms[-1], 3),
    }


def bench_outbox(directory: str | Path | None = None, n: int = 200, size: int = 4096) -> dict[str, Any]:
    """Durable enqueue latency for ``n`` sealed reports of ``size`` bytes, both ways."""
    _, pub = seal.generate_keypair()
    envs = [seal.seal(os.urandom(size), pub, f"v{i}", 1) for i in range(n)]
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        box = Outbox(Path(tmp) / "outbox.db")
        sqlite_times = []
        for env in envs:
            t0 = time.perf_counter()
            box.put("c-bench", env)
            sqlite_times.append(time.perf_counter() - t0)
        box.close()
        files_dir = Path(tmp) / "files"
        files_times = []
        for i, env in enumerate(envs):
            t0 = time.perf_counter()
            # The alternative design: one file per envelope, temp + fsync + rename + dir fsync.
            write_private(files_dir / f"{i:012d}.env", env.sealed)
            files_times.append(time.perf_counter() - t0)
        return {
            "n": n,
            "envelope_bytes": len(envs[0].sealed),
            "filesystem_dir": str(directory or tempfile.gettempdir()),
            "sqlite_wal_full": _summary(sqlite_times),
            "atomic_files_fsync": _summary(files_times),
        }


if __name__ == "__main__":  # pragma: no cover - manual measurement
    import json
    import sys

    print(json.dumps(bench_outbox(sys.argv[1] if len(sys.argv) > 1 else None), indent=2))


def bench_delivery(
    visits: int = 20,
    directory: str | Path | None = None,
    runner: VisitRunner | None = None,
    enroller: VoiceEnroller | None = None,
    before_stop: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Stop -> report decrypted on the phone, over real mutual TLS on 127.0.0.1.

    With the default reference runner this measures the delivery path (seal,
    durable queue, follow-stream wake-up, decrypt); pass the pipeline's runner
    (and ``before_stop`` to let its recording play out) to include building the
    report from a real visit.
    """
    import threading

    from edge_agent.crypto import ca
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer, ServerConfig
    from edge_agent.device.presence import RoomCodes, make_secret
    from edge_agent.phone import client as phone
    from edge_agent.phone.keys import init_key_file
    from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        root = Path(tmp)
        authority = ca.init_ca(root / "ca")
        ca.issue_device(authority, "bench", root / "dev.pem")
        ca.issue_clinician(authority, root / "clin.pem")
        init_key_file(root / "clin.pem", root / "phone.json")
        make_secret(root / "room-code.key")
        config = ServerConfig(bundle=root / "dev.pem", data_dir=root / "data", room="bench", crl=root / "ca" / ca.CRL,
                              host="127.0.0.1", port=0, room_code_secret=root / "room-code.key")
        code = RoomCodes.load(root / "room-code.key", config.room_code_step_s).window().code
        server = EdgeAgentServer(config, runner or ScriptedVisitRunner(), enroller or SpectralVoiceEnroller())
        background = BackgroundServer(server)
        port = background.start()
        target = phone.Target("127.0.0.1", port, server.fingerprint)
        latencies = []
        try:
            for _ in range(visits):
                got = threading.Event()
                reader = threading.Thread(
                    target=phone.feedback, args=(root / "phone.json", target),
                    kwargs={"follow": True, "max_reports": 1, "on_report": lambda r: got.set()}, daemon=True,
                )
                reader.start()
                phone.start(root / "phone.json", target, room_code=code)
                time.sleep(0.05)
                if before_stop is not None:
                    before_stop()
                t0 = time.perf_counter()
                phone.stop(root / "phone.json", target)
                got.wait(60)
                latencies.append(time.perf_counter() - t0)
                reader.join(30)
        finally:
            background.stop()
        return {"visits": visits, "stop_to_report_on_phone": _summary(latencies), "outbox": bench_outbox(directory, n=100)}
