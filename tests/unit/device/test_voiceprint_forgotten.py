"""The device forgets the clinician's voiceprint at stop: no copy of it stays in memory.

docs/security.md ("What the device keeps"): the voiceprint is held for the visit and zeroed
at stop. The runner turns the phone's voiceprint into a ``Voiceprint`` for the capture
(``device/visit.py``); this test runs a real visit (the real pipeline and speaker models, a
short recording as the microphone) with a voiceprint sent as bytes, wipes the context as the
lifecycle does, and then reads this process's memory for the voiceprint, both as the phone
sent it and L2-normalised as the runner used it.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_agent.audio.file_source import FileSource
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
from edge_agent.speakers.encoder import EMBED_DIM
from edge_agent.speakers.enrol import _HEADER, _MAGIC, _VERSION
from tests.memory_probe import hits_in_memory


def test_voiceprint_copies_are_zeroed_after_stop(session_with_speakers, jfk_16k: np.ndarray, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav = tmp_path / "room.wav"
    sf.write(str(wav), jfk_16k[: 16000 * 4], 16000)
    raw = np.random.default_rng(11).standard_normal(EMBED_DIM).astype("<f4") * np.float32(3.0)  # not unit length
    sent = bytearray(_HEADER.size + 4 * EMBED_DIM)
    _HEADER.pack_into(sent, 0, _MAGIC, _VERSION, 12.0, 0.9, 7)
    np.frombuffer(sent, "<f4", offset=_HEADER.size)[:] = raw
    unit = raw.copy()
    unit /= np.float32(np.linalg.norm(raw))  # what the runner uses (in place: no temporary left by the test)
    as_sent = bytes(memoryview(raw.view(np.uint8))[512:576])  # mid-array: a freed block's first bytes hold malloc's list pointers
    as_used = bytes(memoryview(unit.view(np.uint8))[512:576])
    raw.fill(0)
    unit.fill(0)

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(wav), VisitPolicy())
    ctx = VisitContext("v-vptest000000000", int(time.time()), 600, voiceprint_bytes=sent)
    runner.start(ctx)
    assert runner.wait_capture_end(120)
    report = runner.stop()
    ctx.wipe()  # what the lifecycle does after stop
    assert not any(sent)
    report.Clear()
    del report
    gc.collect()
    left = {"as sent": hits_in_memory(as_sent), "normalised": hits_in_memory(as_used)}
    assert not any(left.values()), {k: [hex(a) for a in v] for k, v in left.items()}


def test_a_refused_start_zeroes_the_voiceprint_it_was_given(tmp_path: Path) -> None:
    """A second clinician's start while a visit runs is refused; their voiceprint must not stay in memory."""
    import asyncio

    import pytest

    from edge_agent.crypto import seal
    from edge_agent.device.lifecycle import VisitError, VisitManager
    from edge_agent.device.outbox import Outbox
    from tests.doubles.scripted_runner import ScriptedVisitRunner

    async def scenario() -> tuple[np.ndarray, bytearray]:
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(ScriptedVisitRunner(), outbox)
        _priv, pub = seal.generate_keypair()
        key = seal.load_public_key(pub)
        first = await manager.start("c-aaaaaaaaaaaaaaaa", key, 60, None, None)
        vp = np.random.default_rng(5).standard_normal(EMBED_DIM).astype(np.float32)
        vp_bytes = bytearray(b"\x07" * 64)
        with pytest.raises(VisitError) as refused:
            await manager.start("c-bbbbbbbbbbbbbbbb", key, 60, vp, vp_bytes)
        assert refused.value.kind == "busy"
        await manager.stop(first.visit_id, "c-aaaaaaaaaaaaaaaa")
        outbox.close()
        return vp, vp_bytes

    vp, vp_bytes = asyncio.run(scenario())
    assert not vp.any(), "the refused clinician's voiceprint values were left in memory"
    assert not any(vp_bytes), "the refused clinician's voiceprint bytes were left in memory"
