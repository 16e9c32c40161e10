"""`edge-agent bench delivery --pipeline`: stop -> report on the phone after a real 10-minute visit.

A PriMock57 consultation is voiced by espeak-ng (10 minutes), replayed as the
room microphone through the full pipeline (ASR, speakers, behaviours), and the
visit is stopped once the recording has played out; the figure is the time
from StopVisit to the decrypted report on the phone, over mutual TLS.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import soundfile as sf


def bench_pipeline_delivery(visits: int = 3, minutes: float = 10.0) -> dict[str, Any]:
    from edge_agent.device.main import load_device as build_device
    from edge_agent.device.visit import file_factory
    from tools.bench.outbox_write import bench_delivery
    from tools.corpus.synth import synthesise

    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
        recording = Path(tmp) / "visit.flac"
        conversation = synthesise("day1_consultation02", max_duration_s=minutes * 60)
        sf.write(str(recording), conversation.audio, conversation.sample_rate)
        parts = build_device(file_factory(recording, realtime=False))
        result = bench_delivery(visits, runner=parts.runner, enroller=parts.enroller, before_stop=parts.runner.wait_capture_end)
    result["visit_audio_s"] = round(conversation.duration, 1)
    result["pipeline"] = True
    return result
