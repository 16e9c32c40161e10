"""EnrollVoice answers audio it cannot enrol from with a clear status, not INTERNAL.

The device's enroller refuses silent or too-short audio with ``EnrolmentError`` (a one-line
message saying what to record). The servicer's guard did not know that error, so the phone got
INTERNAL "internal error; the device logged it" and the journal an "unexpected failure" alarm
for a clinician who merely spoke too little. Real gRPC over mutual TLS, the real enroller.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_agent.device.grpc.background import BackgroundServer
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.device.visit import PipelineEnroller
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.delivery_fixtures import Pki, RecordingRunner, raw_channel, server_config


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def test_silent_enrolment_is_invalid_argument_with_advice(session_with_speakers, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), RecordingRunner(), PipelineEnroller(session_with_speakers))
    bg = BackgroundServer(server)
    bg.start()
    try:
        pcm = (np.random.default_rng(3).standard_normal(16000 * 3) * 2).astype("<i2").tobytes()  # 3 s of near-silence
        chunks = [agent_pb2.EnrollVoiceChunk(sample_rate=16000 if i == 0 else 0, pcm_s16le=pcm[i : i + 32000])
                  for i in range(0, len(pcm), 32000)]
        with raw_channel(pki.clinician_a, bg.port) as ch:
            with pytest.raises(grpc.RpcError) as refused:
                agent_pb2_grpc.EdgeAgentStub(ch).EnrollVoice(iter(chunks), timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert "record 10" in refused.value.details()
    finally:
        bg.stop()


def test_grpc_enrolment_leaves_no_copy_of_the_voice(session_with_speakers, jfk_16k: np.ndarray, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A guard for the gRPC port's enrolment region: after a real EnrollVoice, no run of the clinician's
    audio that spans two chunks (so only a whole copy could hold it: never one chunk's message) is left
    in memory, as int16 (the region) or float32 (the enroller's own copy)."""
    import gc

    from tests.memory_probe import hits_in_memory, keep_freed_heap

    keep_freed_heap()
    server = EdgeAgentServer(server_config(pki, tmp_path / "data"), RecordingRunner(), PipelineEnroller(session_with_speakers))
    bg = BackgroundServer(server)
    bg.start()
    try:
        pcm = bytearray(len(jfk_16k) * 2)
        samples = np.frombuffer(pcm, "<i2")
        np.multiply(jfk_16k[: len(samples)], 32767, out=samples, casting="unsafe")
        step = 32000
        view = memoryview(pcm)
        chunks = [agent_pb2.EnrollVoiceChunk(sample_rate=16000 if i == 0 else 0, pcm_s16le=bytes(view[i : i + step]))
                  for i in range(0, len(pcm), step)]
        cut = 5 * step  # a chunk boundary in the middle of speech
        as_int16 = bytes(view[cut - 32 : cut + 32])
        f32 = np.empty(32, np.float32)
        np.multiply(samples[cut // 2 - 16 : cut // 2 + 16], np.float32(1 / 32768), out=f32, dtype=np.float32)
        as_float = bytes(memoryview(f32.view(np.uint8)))
        f32.fill(0)
        view.release()
        del samples
        pcm[:] = bytes(len(pcm))
        with raw_channel(pki.clinician_a, bg.port) as ch:
            reply = agent_pb2_grpc.EdgeAgentStub(ch).EnrollVoice(iter(chunks), timeout=120)
        assert len(reply.voiceprint_values) == 256
        for c in chunks:
            c.Clear()
        chunks.clear()
        gc.collect()
        left = {"int16": hits_in_memory(as_int16), "float32": hits_in_memory(as_float)}
        assert not any(left.values()), {k: [hex(a) for a in v] for k, v in left.items() if v}
    finally:
        bg.stop()
