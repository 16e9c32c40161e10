"""Numpy front-end and ONNX encoder against references made by the build script (librosa + torch)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.models import verify_model
from edge_agent.speakers.encoder import SpeakerEncoder
from edge_agent.speakers.frontend import MelFrontend, partial_slices, volume_gain


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


def test_load_time_and_cost(ref_clip: np.ndarray) -> None:
    t0 = time.perf_counter()
    enc = SpeakerEncoder()
    load = time.perf_counter() - t0
    assert load <= 1.0, f"model load {load:.2f} s"
    audio = np.tile(ref_clip, 4)  # 12 s
    enc.embed(audio)
    t0 = time.perf_counter()
    for _ in range(3):
        enc.embed(audio)
    per_s = (time.perf_counter() - t0) / (3 * len(audio) / 16000)
    # <= 5 % of one core per second of audio (the budget; measured ~0.3-0.7 % here)
    assert per_s < 0.05, f"{per_s * 1000:.1f} ms per audio second"


def test_encoder_does_not_write_the_callers_audio(ref_clip: np.ndarray) -> None:
    view = ref_clip.view()
    view.flags.writeable = False  # a write would raise
    before = ref_clip.copy()
    SpeakerEncoder().partials(view)
    assert np.array_equal(before, ref_clip)
