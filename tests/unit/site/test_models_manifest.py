"""MANIFEST checks on the real bundled models: presence, size, sha256, one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_agent.errors import EdgeAgentError, ModelError
from edge_agent.models import ENV_MODELS_DIR, Source, load_manifest, models_dir, record_artefact, sha256_of, verify_model


@pytest.fixture
def models_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of models/ that a test may damage; the code finds it through the env override."""
    dst = tmp_path / "models"
    shutil.copytree(models_dir(), dst)
    monkeypatch.setenv(ENV_MODELS_DIR, str(dst))
    return dst


def test_every_listed_artefact_verifies() -> None:
    entries = load_manifest()
    assert {"speaker_ge2e.onnx", "role_classifier.onnx"} <= set(entries)
    for name, entry in entries.items():
        path = verify_model(name)
        assert path.stat().st_size == entry.size
        assert entry.licence and entry.build and entry.source.package and entry.source.version


def test_name_without_extension_resolves() -> None:
    assert verify_model("speaker_ge2e").name == "speaker_ge2e.onnx"


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_corrupt_model_same_size_is_refused(models_copy: Path) -> None:
    path = models_copy / "speaker_ge2e.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, different hash
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        verify_model("speaker_ge2e.onnx")
    msg = _one_line(err.value)
    assert "does not match its MANIFEST sha256" in msg and "tools.training.build_speaker_model" in msg


def test_truncated_model_is_refused_by_the_encoder(models_copy: Path) -> None:
    from edge_agent.speakers.encoder import SpeakerEncoder

    path = models_copy / "speaker_ge2e.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError) as err:
        SpeakerEncoder()
    assert "is corrupt" in _one_line(err.value)


def test_missing_model_and_unknown_name(models_copy: Path) -> None:
    (models_copy / "role_classifier.onnx").unlink()
    with pytest.raises(ModelError) as err:
        verify_model("role_classifier.onnx")
    assert "is missing" in _one_line(err.value) and "tools.training.train_role_classifier" in str(err.value)
    with pytest.raises(ModelError) as err:
        verify_model("no_such_model")
    assert "not listed" in _one_line(err.value)


def test_wrong_sha256_in_manifest(models_copy: Path) -> None:
    manifest = models_copy / "MANIFEST"
    text = manifest.read_text()
    real = sha256_of(models_copy / "role_classifier.onnx")
    manifest.write_text(text.replace(real, "0" * 64))
    with pytest.raises(ModelError) as err:
        verify_model("role_classifier.onnx")
    assert "does not match" in _one_line(err.value)


def test_missing_or_broken_manifest(models_copy: Path) -> None:
    (models_copy / "MANIFEST").write_text("{not json")
    with pytest.raises(ModelError) as err:
        verify_model("speaker_ge2e.onnx")
    assert "unreadable" in _one_line(err.value)
    (models_copy / "MANIFEST").unlink()
    with pytest.raises(EdgeAgentError) as err:
        verify_model("speaker_ge2e.onnx")
    assert "manifest not found" in _one_line(err.value)


def test_record_artefact_adds_and_updates(tmp_path: Path) -> None:
    art = tmp_path / "thing.onnx"
    art.write_bytes(b"abc")
    src = Source(package="pkg", version="1.0")
    record_artefact(art, source=src, licence="MIT", build="python make.py")
    assert verify_model("thing", root=tmp_path) == art
    art.write_bytes(b"abcd")
    with pytest.raises(ModelError):
        verify_model("thing", root=tmp_path)
    entry = record_artefact(art, source=src, licence="MIT", build="python make.py", extra={"f1": 0.9})
    assert entry.size == 4 and load_manifest(tmp_path)["thing.onnx"].extra == {"f1": 0.9}
    assert verify_model("thing.onnx", root=tmp_path) == art


def test_cuda_requested_without_cuda_is_a_clear_error() -> None:
    import onnxruntime as ort

    from edge_agent.speakers.encoder import EncoderConfig, SpeakerEncoder

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError) as err:
        SpeakerEncoder(EncoderConfig(provider="cuda"))
    assert "cuda" in _one_line(err.value) and "provider" in str(err.value)
