"""``edge-agent bench soak --minutes 60``: one long visit through the real device path, paced like a microphone.

The visit runs exactly as on a room device (``device.main.load_device``: Whisper,
speaker encoder, role and behaviour models; the visit runner; the report built
at stop), fed by real voices (LibriSpeech readers and the bundled consultation,
looped, with the conversation's own pauses) in 100 ms blocks at real-time pace.
Every ``--every`` seconds it prints one JSON line: minutes in, RSS, threads,
segments so far, the worst raw-audio residency so far. At the end: RSS after
the first 5 minutes and at the end (growth %), peak RSS, residency p95/p100,
dropped/failed segments, worker errors, and whether every pool ended zeroed.

Targets (issue 17): growth <= 5 % after the first 5 minutes, peak <= 400 MB with
all models, residency p100 <= 1.0 s also with the test suite running beside it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from edge_agent.audio import SAMPLE_RATE
from edge_agent.audio.framer import Framer
from edge_agent.audio.frames import AudioFrame
from edge_agent.audio.pool import BufferPool
from edge_agent.data import bundled
from tools.corpus.primock import shared_dir


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024.0


def voice_loop() -> np.ndarray:
    """Real speech, int16: the bundled consultation and LibriSpeech readers, once (the soak loops it).

    Only the loop is held, never the whole visit: an hour of audio in memory is 115 MB of the
    bench's own input, which the device's RSS would then be charged with."""
    files = [bundled()] + sorted(Path(p) for p in glob.glob(str(shared_dir() / "data" / "librispeech-voices" / "test-other" / "*" / "*.flac")))
    clips = []
    for f in files:
        audio, rate = sf.read(str(f), dtype="int16")
        if rate != SAMPLE_RATE or audio.ndim != 1:
            continue
        clips.append(audio)
        clips.append(np.zeros(int(0.6 * SAMPLE_RATE), np.int16))  # a pause between speakers' pieces
    return np.concatenate(clips).astype(np.int16)


class PacedArray:
    """int16 audio in memory, delivered in 100 ms blocks at real-time pace, like the room microphone."""

    # Live, as the device's microphone is: a closed segment that finds every feature buffer
    # still queued is dropped and counted instead of holding its raw audio until one frees
    # (a lossless source waits, and its residency then measures the decoder's backlog).
    live = True
    description = "soak audio (paced)"
    dropped_frames = 0  # frames are handed over, never queued: a full pool is counted by the framer

    def __init__(self, loop: np.ndarray, seconds: float, block_ms: int = 100) -> None:
        self.loop = loop
        self.samples = int(seconds * SAMPLE_RATE)
        self.block = SAMPLE_RATE * block_ms // 1000
        self.started = 0.0

    def frames(self, pool: BufferPool) -> Iterator[AudioFrame]:
        framer = Framer(pool, SAMPLE_RATE, self.block)
        self.started = time.monotonic()
        try:
            n = self.samples
            for i, start in enumerate(range(0, n, self.block)):
                due = self.started + (i + 1) * self.block / SAMPLE_RATE
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                block = np.take(self.loop, np.arange(start, min(start + self.block, n)), mode="wrap")
                for frame in framer.push(block, last=start + self.block >= n):
                    frame.arrival = time.monotonic()
                    yield frame
        finally:
            framer.close()

    def close(self) -> None:
        pass


def process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _mean_share(shares: list[tuple[float, float]], lo: float, hi: float) -> float | None:
    inside = [s for minute, s in shares if lo <= minute < hi]
    return round(float(np.mean(inside)), 3) if inside else None


def run_soak(minutes: float, every_s: float, out: Any) -> dict[str, Any]:
    from edge_agent.asr.events import FinalTranscript, PipelineEvent
    from edge_agent.device.lifecycle import VisitContext
    from edge_agent.device.main import load_device

    loop = voice_loop()
    segments = {"n": 0, "residency_max": 0.0}

    def on_event(event: PipelineEvent) -> None:
        if isinstance(event, FinalTranscript):
            segments["n"] += 1
            segments["residency_max"] = max(segments["residency_max"], event.residency_s)

    device = load_device(lambda: PacedArray(loop, minutes * 60), on_event=on_event)
    idle_rss = rss_mb()
    samples: list[tuple[float, float]] = []
    cpu_shares: list[tuple[float, float]] = []  # (minute, share of one core over the interval before it)
    done = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        # the process's CPU per interval: a cost that grows with the visit's history (clustering,
        # the watcher's midpoint) shows as a rising share long before it starves the worker
        last_wall, last_cpu = time.monotonic(), process_cpu_s()
        while not done.wait(every_s):
            now, cpu = time.monotonic(), process_cpu_s()
            minute = (now - t0) / 60
            share = (cpu - last_cpu) / max(now - last_wall, 1e-9)
            last_wall, last_cpu = now, cpu
            samples.append((minute, rss_mb()))
            cpu_shares.append((minute, share))
            out.write(json.dumps({"minute": round(minute, 2), "rss_mb": round(samples[-1][1], 1), "cpu_share": round(share, 3),
                                  "threads": threading.active_count(),
                                  "finals": segments["n"], "residency_max_s": round(segments["residency_max"], 3)}) + "\n")
            out.flush()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ctx = VisitContext("v-soak", int(time.time()), int(minutes * 60) + 600)
    device.runner.start(ctx)
    device.runner.wait_capture_end()
    done.set()
    stop_started = time.monotonic()
    report = device.runner.stop()
    stop_s = time.monotonic() - stop_started
    sampler.join()
    after_5 = [rss for minute, rss in samples if minute >= 5.0]
    base = after_5[0] if after_5 else (samples[0][1] if samples else idle_rss)
    end = samples[-1][1] if samples else rss_mb()
    runs = device.runner.last_runs
    residency = sorted(r for run in runs for r in run.residency_s)
    result = {
        "minutes": minutes,
        "rss_idle_mb": round(idle_rss, 1),
        "input_loop_mb": round(loop.nbytes / 2**20, 1),  # the bench's own audio, inside every RSS figure
        "rss_at_5_min_mb": round(base, 1),
        "rss_end_mb": round(end, 1),
        "growth_after_5_min_pct": round((end - base) / base * 100, 2) if base else None,
        "rss_peak_mb": round(max([rss for _, rss in samples] + [end]), 1),
        # CPU share of one core, minutes 1-5 against the last 5 minutes: a visit must not get dearer as it goes on
        "cpu_share_early": _mean_share(cpu_shares, 1.0, 5.0),
        "cpu_share_late": _mean_share(cpu_shares, minutes - 5.0, float("inf")),
        "stop_to_report_s": round(stop_s, 2),
        "residency_p95_s": round(float(np.percentile(residency, 95)), 3) if residency else None,
        "residency_p100_s": round(residency[-1], 3) if residency else None,
        "segments": sum(r.segments for r in runs),
        "dropped_segments": sum(r.dropped_segments for r in runs),
        "failed_segments": sum(r.discarded_by_reason.get("decode_failed", 0) for r in runs),
        "discarded": {k: sum(r.discarded_by_reason.get(k, 0) for r in runs) for k in sorted({k for r in runs for k in r.discarded_by_reason})},
        "worker_errors": sum(r.worker_errors for r in runs),
        "pools_zeroed": device.runner.last_pools_clean,
        "report_observations": len(report.observations),
        "targets": {"growth_after_5_min_pct": 5.0, "rss_peak_mb": 400.0, "residency_p100_s": 1.0},
        "pid": os.getpid(),
    }
    return result


def main(argv: list[str] | None = None) -> None:
    import sys

    parser = argparse.ArgumentParser(prog="edge-agent bench soak")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between RSS samples")
    args = parser.parse_args(argv)
    print(json.dumps(run_soak(args.minutes, args.every, sys.stdout)))


if __name__ == "__main__":
    main()
