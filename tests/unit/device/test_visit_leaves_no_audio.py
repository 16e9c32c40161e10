"""A whole visit through the real pipeline leaves no raw audio behind in the process's memory.

The recording is made in a child process (so this process never holds it); the child also
writes a few needles: runs of samples from the middle of the speech, as int16 (what the
microphone and the file source deliver), as float32 (the pipeline's segment buffers) and
squared in float64 (what a level measurement makes of them).
After the visit stops and its context is wiped, this process's memory is read for them: a
hit is a copy of raw audio some stage made and left unzeroed (docs/design.md §3.2).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
from tests.memory_probe import hits_in_memory, keep_freed_heap

_MAKE = r"""
import sys
import numpy as np, soundfile as sf, soxr
src, out, needles = sys.argv[1:4]
audio, rate = sf.read(src, dtype="float32", always_2d=True)
x = soxr.resample(audio.mean(axis=1), rate, 16000)
pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
sf.write(out, pcm, 16000, subtype="PCM_16")
with open(needles, "wb") as f:
    for at in (3 * 16000 + 123, 6 * 16000 + 4567, 9 * 16000 + 89):
        f.write(pcm[at : at + 32].tobytes())
        f.write((pcm[at : at + 32].astype(np.float32) * np.float32(1 / 32768)).tobytes())
        f.write(np.square(pcm[at : at + 32].astype(np.float32) * np.float32(1 / 32768), dtype=np.float64).tobytes())
"""


def test_a_visit_leaves_no_raw_audio_in_memory(session_with_speakers, jfk_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keep_freed_heap()
    wav, needle_file = tmp_path / "room.wav", tmp_path / "needles.bin"
    subprocess.run([sys.executable, "-c", _MAKE, str(jfk_path), str(wav), str(needle_file)], check=True)
    raw = bytearray(3 * 448)  # read in place and zeroed: no copy of the needles but the needles themselves
    with open(needle_file, "rb", buffering=0) as f:
        assert f.readinto(raw) == len(raw)
    needle_file.unlink()
    view = memoryview(raw)
    needles = []
    for i in range(3):
        at = i * 448
        needles += [("int16", bytes(view[at : at + 64])), ("float32", bytes(view[at + 64 : at + 192])),
                    ("squared", bytes(view[at + 192 : at + 448]))]
    view.release()
    raw[:] = bytes(len(raw))
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(wav), VisitPolicy())
    ctx = VisitContext("v-audiotest000000", int(time.time()), 600)
    runner.start(ctx)
    assert runner.wait_capture_end(180)
    report = runner.stop()
    ctx.wipe()
    assert runner.last_pools_clean
    assert sum(r.utterances for r in runner.last_runs) >= 1  # the speech went through ASR and attribution
    report.Clear()
    del report
    gc.collect()
    left = {f"{kind}#{i // 3}": hits_in_memory(n) for i, (kind, n) in enumerate(needles)}
    assert not any(left.values()), {k: [hex(a) for a in v] for k, v in left.items() if v}
