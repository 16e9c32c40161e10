"""Numpy front-end and ONNX encoder against references made by the build script (librosa + torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.audio.speaker_frontend import MelFrontend, partial_slices, volume_gain
from edge_agent.models import verify_model
from edge_agent.speakers.encoder import SpeakerEncoder


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(verify_model("speaker_ge2e_ref.npz")) as ref:
        return {k: ref[k] for k in ref.files}


@pytest.fixture(scope="module")
def ref_clip(shared: Path, reference: dict[str, np.ndarray]) -> np.ndarray:
    audio, rate = sf.read(str(shared / "audio" / "stereo_diarization.wav"), dtype="float32", always_2d=True)
    assert rate == 16000
    return np.ascontiguousarray(audio[: int(reference["n_samples"]), 0])


def test_mel_matches_librosa_reference(ref_clip: np.ndarray, reference: dict[str, np.ndarray]) -> None:
    wav_slices, _ = partial_slices(len(ref_clip))
    gain = volume_gain(ref_clip)
    assert gain == pytest.approx(float(reference["gain"]), rel=1e-5)
    mel = MelFrontend()(ref_clip, gain=gain, total_samples=max(len(ref_clip), wav_slices[-1].stop))
    ref = reference["mel"]
    assert mel.shape == ref.shape == (len(mel), 40)
    assert np.abs(mel - ref).max() / ref.max() < 1e-5


def test_frontend_leaves_no_audio_in_scratch(ref_clip: np.ndarray) -> None:
    fe = MelFrontend(max_samples=16000)  # smaller than the clip: forces a grow
    fe(ref_clip)
    assert all(not buf.any() for buf in fe.scratch_buffers())


def test_embedding_matches_torch_reference(ref_clip: np.ndarray, reference: dict[str, np.ndarray]) -> None:
    enc = SpeakerEncoder()
    emb = enc.embed(ref_clip)
    assert emb.shape == (256,) and emb.dtype == np.float32
    assert float(emb @ reference["embed"]) > 0.9999
    assert abs(float(np.linalg.norm(emb)) - 1) < 1e-5


def test_cost_is_measured_per_audio_second(ref_clip: np.ndarray) -> None:
    """Load time and cost are benchmark figures (edge-agent bench speakers); here the counters that feed them."""
    enc = SpeakerEncoder()
    assert enc.load_seconds > 0
    audio = np.tile(ref_clip, 4)  # 12 s
    enc.embed(audio)
    assert enc.audio_seconds == pytest.approx(len(audio) / 16000) and enc.embed_seconds > 0
    assert 0 < enc.seconds_per_audio_second


def test_encoder_does_not_write_the_callers_audio(ref_clip: np.ndarray) -> None:
    view = ref_clip.view()
    view.flags.writeable = False  # a write would raise
    before = ref_clip.copy()
    SpeakerEncoder().partials(view)
    assert np.array_equal(before, ref_clip)
