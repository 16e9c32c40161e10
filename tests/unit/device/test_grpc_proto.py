"""The checked-in generated code matches proto/edge_agent/v1 exactly."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


def test_regenerating_yields_identical_files() -> None:
    result = subprocess.run([sys.executable, "-m", "tools.gen_proto", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_messages_round_trip() -> None:
    from edge_agent.proto.edge_agent.v1 import agent_pb2, feedback_pb2

    fb = feedback_pb2.Feedback(schema_version=1, visit_id="v1", timing={"talk_share": 0.4}, label_counts={"open_question": 3})
    fb.observations.add(behaviour="interruptions", at_s=14.0, moment="m", alternative="a")
    assert feedback_pb2.Feedback.FromString(fb.SerializeToString()) == fb
    env = agent_pb2.Envelope(suite="s", visit_id="v1", seq=1, recipient_key_id=b"k" * 16, sealed=b"x")
    assert agent_pb2.Envelope.FromString(env.SerializeToString()).seq == 1
