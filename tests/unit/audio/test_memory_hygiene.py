"""Raw-audio memory: mmap'd, locked, dump-excluded pools that are reused across visits (locked memory
flat over 30 visits, read from /proc/self/status VmLck); no ldconfig fork per visit; enrolment audio
in one zeroed region instead of a growing bytearray."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.audio.pool import BufferPool
from edge_agent.device.pipeline import AudioPools, PipelineConfig
from edge_agent.hardening import REGIONS, LockedRegion
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _vmflags(address: int) -> set[str]:
    lines = Path("/proc/self/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return set(line.split()[1:])
    raise AssertionError("address not mapped")


def _one_visit(cfg: PipelineConfig) -> None:
    pools = AudioPools(cfg)
    held = [pools.frames.acquire() for _ in range(4)]
    for b in held:
        assert b is not None
        b.data[:] = 1234
    seg = pools.segments.acquire()
    assert seg is not None
    seg.data[:100] = 0.5
    for b in held:
        assert b is not None
        b.release()
    seg.release()
    assert pools.all_zero()
    # the pipeline simply drops its pools at the end of a run: that returns the regions too


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_pools_are_locked_mmap_regions_reused_so_locked_memory_stays_flat() -> None:
    cfg = PipelineConfig()
    gc.collect()
    _one_visit(cfg)
    gc.collect()
    created_after_first = REGIONS.created
    locked_after_first = _status_kb("VmLck")
    for _ in range(30):
        _one_visit(cfg)
    gc.collect()
    assert REGIONS.created == created_after_first, "every visit after the first reuses the same regions"
    assert _status_kb("VmLck") == locked_after_first, "locked memory grew across visits"
    pool = BufferPool("probe", 8, 480, np.int16)
    region = pool._region
    assert region.address % os.sysconf("SC_PAGE_SIZE") == 0
    flags = _vmflags(region.address)
    assert "dd" in flags  # MADV_DONTDUMP: never in a core dump
    if region.locked:
        assert "lo" in flags
    pool.close()
    pool.close()  # idempotent


def test_closed_region_is_zeroed_unlocked_and_unmapped() -> None:
    before = _status_kb("VmLck")
    region = LockedRegion(256 * 1024)
    if not region.locked:
        pytest.skip("mlock not permitted here (RLIMIT_MEMLOCK)")
    assert _status_kb("VmLck") == before + 256
    region.array((1024,), np.float32)[:] = 7.0
    address = region.address
    region.close()
    assert _status_kb("VmLck") == before
    with pytest.raises(AssertionError, match="not mapped"):
        _vmflags(address)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_no_ldconfig_fork_when_pools_are_made() -> None:
    """ctypes.util.find_library forks /sbin/ldconfig -p; visits make pools: no process may be started."""
    code = (
        "import numpy as np\n"
        "from edge_agent.hardening import harden_process\n"
        "from edge_agent.audio.pool import BufferPool\n"
        "import edge_agent.device.pipeline as p\n"
        "harden_process()\n"
        "print('MARK', flush=True)\n"
        "for _ in range(10):\n"
        "    p.AudioPools(p.PipelineConfig())\n"
        "    BufferPool('x', 8, 480, np.int16).close()\n"
        "harden_process()\n"
    )
    result = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr[-2000:]
    execs = [line for line in result.stderr.splitlines() if "execve(" in line and "ldconfig" in line]
    assert not execs, execs
    assert "MARK" in result.stdout


def test_enrolment_audio_lives_in_one_zeroed_region(tmp_path: Path) -> None:
    from edge_agent.device.grpc.background import BackgroundServer
    from edge_agent.device.grpc.server import EdgeAgentServer
    from edge_agent.phone import client as phone
    from tests.delivery_fixtures import Pki, RecordingRunner, server_config

    seen: list[np.ndarray] = []

    class Capturing:
        def enroll(self, pcm: np.ndarray, sample_rate: int) -> list[float]:
            assert pcm.dtype == np.int16 and int(np.abs(pcm).max()) > 0
            seen.append(pcm)  # kept only to prove the server zeroed it in place
            return [0.5] * 8

    pki = Pki.make(tmp_path / "pki")
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), RecordingRunner(), Capturing())
    bg = BackgroundServer(server)
    bg.start()
    try:
        rate = 16000
        t = np.arange(rate * 3) / rate
        pcm = (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16).tobytes()
        values = phone.enroll(pki.keys_a, phone.Target("127.0.0.1", bg.port, server.fingerprint), pcm, rate)
        assert values == [0.5] * 8
    finally:
        bg.stop()
    (view,) = seen
    base = view
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    assert not isinstance(base, (bytes, bytearray)), "enrolment audio must not sit in a heap bytearray"
    assert view.ctypes.data % os.sysconf("SC_PAGE_SIZE") == 0
    assert not view.any(), "enrolment audio was not zeroed after the embedding"


def _results_of(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list:  # type: ignore[type-arg]
    """Every value ``owner.name(...)`` returns from now on (the real function still runs)."""
    made: list = []  # type: ignore[type-arg]
    real = getattr(owner, name)

    def keep(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real(*args, **kwargs)
        made.append(out)
        return out

    monkeypatch.setattr(owner, name, keep)
    return made


def test_enrolment_at_a_browser_rate_zeroes_the_resampled_voice(session_with_speakers, jfk_16k: np.ndarray,  # type: ignore[no-untyped-def]
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A phone records at 48 kHz: the 16 kHz copy soxr makes of the clinician's voice is zeroed too."""
    import soxr

    from edge_agent.device.visit import PipelineEnroller

    real = soxr.resample
    made = _results_of(monkeypatch, soxr, "resample")
    pcm48 = np.clip(real(jfk_16k.astype(np.float32), 16000, 48000) * 32767, -32768, 32767).astype(np.int16)
    made.clear()
    values = PipelineEnroller(session_with_speakers).enroll(pcm48, 48000)
    assert len(values) > 16 and any(v != 0 for v in values)
    assert made and all(not m.any() for m in made), "the resampled enrolment audio was freed without being zeroed"


def test_a_visit_trims_the_heap_on_its_cadence(session_with_speakers, jfk_path: Path,  # type: ignore[no-untyped-def]
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Freed decoder memory goes back to the kernel during a visit and after it (RSS flat over long visits)."""
    import time

    from edge_agent.audio.file_source import FileSource
    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.device import visit as visit_module
    from edge_agent.device.lifecycle import VisitContext
    from edge_agent.hardening import release_free_heap

    assert release_free_heap()  # glibc here: malloc_trim is there and runs
    calls: list[float] = []
    monkeypatch.setattr(visit_module, "release_free_heap", lambda: calls.append(time.monotonic()) or True)
    runner = visit_module.PipelineVisitRunner(session_with_speakers, BehaviourClassifier(),
                                              lambda: FileSource(jfk_path, realtime=True),
                                              visit_module.VisitPolicy(heap_trim_s=1.0))
    runner.start(VisitContext("v-trim00000000000", int(time.time()), 600, request_stop=lambda reason: None))
    assert runner.wait_capture_end(120)
    during = len(calls)
    runner.stop()
    assert during >= 3  # jfk plays 11 s in real time: a trim about every second
    assert len(calls) == during + 1  # and one after the report is built


def test_enrolment_zeroes_the_devices_own_copy_of_the_voiceprint(session_with_speakers, jfk_16k: np.ndarray,  # type: ignore[no-untyped-def]
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedding goes back to the phone as values; the device's array of it was freed unzeroed (heap residue
    of the clinician's voiceprint, docs/design.md §3.6: the device forgets it)."""
    from edge_agent.device import visit as visit_module

    made = _results_of(monkeypatch, visit_module, "enrol")
    pcm = np.clip(jfk_16k * 32767, -32768, 32767).astype(np.int16)
    values = visit_module.PipelineEnroller(session_with_speakers).enroll(pcm, 16000)
    assert len(values) > 16 and any(v != 0 for v in values)
    assert len(made) == 1 and not made[0].embedding.any(), "the device kept a copy of the voiceprint it returned"  # type: ignore[attr-defined]
