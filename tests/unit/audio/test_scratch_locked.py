"""Every long-lived scratch buffer that holds audio or audio-derived samples is locked in RAM and excluded
from core dumps, like the pools: the STFT frames of both mel front-ends (Whisper's, live and closer, and
the speaker encoder's), Whisper's encoder input, the resampler's carry and the Silero VAD's model input.

They were plain heap arrays: 20 MB of speech-derived pages that a machine without the unit's
MemorySwapMax=0 (``edge-agent serve`` by hand, a container) could swap out. Checked in a fresh process
with the production classes sized to fit the default 8 MB RLIMIT_MEMLOCK (a device's pools and full-size
scratch need about 26 MB: the unit's LimitMEMLOCK=64M).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT


def _unprivileged() -> list[str]:
    """Run the probe without CAP_IPC_LOCK, as the unit's user runs (root would lock past any limit)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: RLIMIT_MEMLOCK would not apply to the probe")
    return ["setpriv", "--bounding-set=-ipc_lock"]

PROBE = r"""
import json, resource
from pathlib import Path
import numpy as np
from edge_agent.asr.backend import AsrConfig
from edge_agent.asr.whisper_ct2 import WhisperCT2
from edge_agent.audio.framer import Framer
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.silero import SileroModel
from edge_agent.audio.speaker_frontend import MelFrontend

def flags(array):
    address = array.ctypes.data
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return sorted(set(line.split()[1:]) & {"lo", "dd"})
    return ["unmapped"]

# the production classes, sized small so that all of them fit in what the default 8 MB RLIMIT_MEMLOCK leaves
# beside the pools' reserve (hardening.POOL_LOCK_RESERVE)
engine = WhisperCT2(AsrConfig(pad_s=0.5), 8000)
speaker = MelFrontend(max_samples=8000)
found = {}
for name, owner in (("whisper live", engine._live_mel), ("whisper closer", engine._close_mel), ("speaker", speaker)):
    for i, buf in enumerate(owner.scratch_buffers()):
        found[f"{name} stft {i}"] = flags(buf)
found["encoder input"] = flags(engine._encoder_input)
framer = Framer(BufferPool("frames", 8, 480, np.int16), 44100, 4096)
found["resampler carry"] = flags(framer._carry)
stream = SileroModel().stream()
found["silero input"] = flags(stream._input)
found["silero pending"] = flags(stream._pending)
print("PROBE " + json.dumps(found))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_audio_scratch_buffers_are_locked_and_not_dumped() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft != resource.RLIM_INFINITY and soft < 8 * 1024 * 1024:
        pytest.skip("RLIMIT_MEMLOCK below 8 MB here (the unit's LimitMEMLOCK raises it on a device)")
    result = subprocess.run([*_unprivileged(), sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1"), cwd=REPO_ROOT)
    line = next((x for x in result.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, result.stderr[-3000:]
    found = json.loads(line[len("PROBE "):])
    assert len(found) == 16, found  # 3 front-ends x 4 STFT buffers, the encoder input, the carry, Silero's two
    exposed = {name: f for name, f in found.items() if f != ["dd", "lo"]}
    assert not exposed, f"audio-derived scratch that may be swapped out or dumped: {exposed}"


def test_the_unit_lets_the_daemon_lock_all_of_its_audio_memory(session_with_speakers) -> None:  # type: ignore[no-untyped-def]
    """The pools and the scratch of a default session, page-rounded, with room for a longer segment limit."""
    from edge_agent.device.pipeline import AudioPools

    page = os.sysconf("SC_PAGE_SIZE")
    engine = session_with_speakers.engine
    scratch = [*engine._live_mel.scratch_buffers(), *engine._close_mel.scratch_buffers(), engine._encoder_input,
               *session_with_speakers.speakers.encoder.frontend.scratch_buffers()]
    pools = AudioPools(session_with_speakers.config, engine.feature_shape(session_with_speakers.config.vad.segment_capacity))
    regions = [p._region.size for p in (pools.frames, pools.segments, pools.features)]
    need = sum(-(-b.nbytes // page) * page for b in scratch) + sum(regions)
    limit = ""
    for line in (REPO_ROOT / "systemd" / "edge-agent.service").read_text().splitlines():
        if line.startswith("LimitMEMLOCK="):
            limit = line.partition("=")[2].strip()
    assert limit.endswith("M"), f"the unit sets no LimitMEMLOCK in megabytes ({limit!r}): the 8 MB default locks {8 * 2**20 / need:.0%} of {need / 2**20:.0f} MB"
    assert int(limit[:-1]) * 2**20 >= 2 * need, (limit, need)


def test_scratch_never_takes_the_pools_share_of_a_low_lock_limit() -> None:
    """Under the default 8 MB limit (a daemon run by hand, a container) the raw-audio pools keep their lock:
    full-size scratch is left unlocked rather than locked first and the pools refused."""
    probe = (
        "import resource\n"
        "from edge_agent.device.pipeline import AudioPools, PipelineConfig\n"
        "from edge_agent.audio.speaker_frontend import MelFrontend\n"
        "resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 * 2**20, resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]))\n"
        "scratch = [MelFrontend() for _ in range(3)]  # 22 MB of speaker-mel scratch, made before any pool\n"
        "pools = AudioPools(PipelineConfig())\n"
        "print('PROBE', all(p._region.locked for p in (pools.frames, pools.segments, pools.features)))\n"
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if hard != resource.RLIM_INFINITY and hard < 8 * 2**20:
        pytest.skip("RLIMIT_MEMLOCK hard limit below 8 MB here")
    result = subprocess.run([*_unprivileged(), sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1"), cwd=REPO_ROOT)
    assert "PROBE True" in result.stdout, (result.stdout, result.stderr[-2000:])
