#!/usr/bin/env python3
"""Export Resemblyzer's GE2E speaker encoder to models/speaker_ge2e.onnx.

Build-time only (torch never becomes a runtime dependency):

    pip install --no-deps resemblyzer==0.1.4
    pip install --no-deps "torch==2.13.0+cpu"   # CPU wheel; plus:
    pip install filelock sympy networkx jinja2 fsspec typing-extensions onnx
    pip install librosa                          # optional: front-end parity reference
    python -m tools.training.build_speaker_model

Resemblyzer's package ``__init__`` imports librosa and scipy, so we only locate
its files with ``importlib.util.find_spec`` and rebuild the network here:
LSTM(40, 256, 3 layers, batch_first) -> Linear(256, 256) -> ReLU -> L2 norm.

The script checks ONNX vs torch parity, and writes a small reference file
(models/speaker_ge2e_ref.npz: mel frames computed by librosa and the torch
embedding of one channel of shared/audio/stereo_diarization.wav) so the tests
can check the numpy front-end and the whole runtime path without librosa or
torch. Both files are then (re)listed in models/MANIFEST.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

from edge_agent.audio.speaker_frontend import MelFrontend, partial_slices, volume_gain  # noqa: E402
from edge_agent.models import Source, record_artefact  # noqa: E402
from tools.corpus.primock import shared_dir  # noqa: E402

BUILD = "python -m tools.training.build_speaker_model"
REF_CLIP = "audio/stereo_diarization.wav"  # channel 0, first REF_SECONDS
REF_SECONDS = 3.0


def _weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("resemblyzer is not installed: pip install --no-deps resemblyzer==0.1.4")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        sys.exit(f"pretrained.pt not found in {path.parent}")
    return path


def _build_torch_model(weights: Path):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class GE2E(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True)

    try:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception:  # older pickles may hold non-tensor objects; the file comes from a pinned package
        checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity_")}
    model = GE2E()
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def _reference_clip() -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(str(shared_dir() / REF_CLIP), dtype="float32", always_2d=True)
    if rate != 16000:
        sys.exit(f"{REF_CLIP} is {rate} Hz, expected 16000")
    return np.ascontiguousarray(audio[: int(REF_SECONDS * rate), 0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "models" / "speaker_ge2e.onnx")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    weights = _weights_path()
    model = _build_torch_model(weights)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 160, 40)
    torch.onnx.export(
        model,
        (dummy,),
        str(out),
        input_names=["mels"],
        output_names=["embeds"],
        dynamic_axes={"mels": {0: "batch"}, "embeds": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )

    # Parity: random positive "mel" batches and the real reference clip.
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    mels = (rng.random((8, 160, 40), dtype=np.float32) ** 4) * 5
    with torch.no_grad():
        ref = model(torch.from_numpy(mels)).numpy()
    got = sess.run(None, {"mels": mels})[0]
    max_diff = float(np.abs(ref - got).max())
    print(f"ONNX vs torch max |diff| on random batch: {max_diff:.2e}")
    if max_diff > 1e-4:
        sys.exit("parity check failed")

    # Reference clip: librosa mel (if installed) vs our numpy front-end, and torch embedding.
    clip = _reference_clip()
    wav_slices, mel_slices = partial_slices(len(clip))
    total = max(len(clip), wav_slices[-1].stop)
    gain = volume_gain(clip)
    frontend = MelFrontend()
    mel_numpy = frontend(clip, gain=gain, total_samples=total)
    mel_source = "numpy"
    mel_ref = mel_numpy
    try:
        import librosa

        padded = np.pad(clip * np.float32(gain), (0, total - len(clip)))
        mel_ref = librosa.feature.melspectrogram(y=padded, sr=16000, n_fft=400, hop_length=160, n_mels=40).astype(np.float32).T
        mel_source = f"librosa {librosa.__version__}"
        rel = float(np.abs(mel_ref - mel_numpy).max() / mel_ref.max())
        print(f"numpy front-end vs librosa: max relative diff {rel:.2e}")
        if rel > 1e-5:
            sys.exit("front-end parity check failed")
    except ImportError:
        print("librosa not installed: reference mel comes from the numpy front-end (parity not re-checked)")
    batch = np.stack([mel_ref[s] for s in mel_slices])
    with torch.no_grad():
        partials = model(torch.from_numpy(batch)).numpy()
    embed_ref = partials.mean(axis=0)
    embed_ref /= np.linalg.norm(embed_ref)
    got_partials = sess.run(None, {"mels": np.stack([mel_numpy[s] for s in mel_slices])})[0]
    got_embed = got_partials.mean(axis=0)
    got_embed /= np.linalg.norm(got_embed)
    cos = float(embed_ref @ got_embed)
    print(f"runtime path (numpy mel + ONNX) vs torch on reference clip: cosine {cos:.7f}")
    if cos < 0.9999:
        sys.exit("end-to-end parity check failed")

    ref_path = out.parent / "speaker_ge2e_ref.npz"
    with ref_path.open("wb") as fh:  # np.savez adds no timestamps: the file is reproducible
        np.savez(fh, mel=mel_ref, embed=embed_ref.astype(np.float32), gain=np.float32(gain), n_samples=np.int64(len(clip)))

    version = importlib.metadata.version("resemblyzer")
    src = Source(package="Resemblyzer", version=version, url="https://pypi.org/project/Resemblyzer/")
    record_artefact(
        out,
        source=src,
        licence="Apache-2.0",
        build=BUILD,
        description="GE2E speaker encoder: mels (batch, 160, 40) float32 -> embeds (batch, 256) L2-normalised",
        extra={"torch": torch.__version__, "opset": 17, "parity_max_abs_diff": max_diff, "reference_cosine": cos},
    )
    record_artefact(
        ref_path,
        source=src,
        licence="Apache-2.0 (model); clip from faster-whisper test data (MIT)",
        build=BUILD,
        description=f"test reference: mel ({mel_source}) and torch embedding of {REF_CLIP} channel 0, first {REF_SECONDS:g} s",
    )
    print(f"wrote {out} ({out.stat().st_size} bytes) and {ref_path}; MANIFEST updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
