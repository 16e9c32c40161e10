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
