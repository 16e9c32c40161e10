"""`edge-agent enroll`: a voiceprint for the caller; the device keeps nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.pool import BufferPool
from edge_agent.hardening import harden_process
from edge_agent.speakers.enrol import voiceprint_from


def record_mic(device: str | None, seconds: float) -> np.ndarray:
    """Record from the microphone into one buffer the caller zeroes."""
    from edge_agent.audio.mic_source import MicSource

    source = MicSource(device, duration_s=seconds)
    frame_samples = SAMPLE_RATE * 30 // 1000
    pool = BufferPool("enrol", 64, frame_samples, np.int16)
    audio = np.zeros(int(seconds * SAMPLE_RATE) + frame_samples, np.float32)
    filled = 0
    for frame in source.frames(pool):
        n = min(frame_samples, len(audio) - filled)
        np.multiply(frame.samples[:n], np.float32(1 / 32768), out=audio[filled : filled + n], dtype=np.float32)
        filled += n
        frame.release()
    return audio[:filled]


def run_enroll(file: Path | None, mic_device: str | None, seconds: float) -> None:
    harden_process()  # before the first sample: a crash must not dump the clinician's voice
    if file is not None:
        voiceprint = voiceprint_from(path=file)
    else:
        audio = record_mic(mic_device, seconds)
        try:
            voiceprint = voiceprint_from(audio=audio)
        finally:
            audio.fill(0.0)
    sys.stdout.write(json.dumps(voiceprint.to_list()) + "\n")
