"""Shared fixtures: real models, real audio from ../shared, test-made audio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import edge_agent  # noqa: F401  (first: it pins BLAS threads before numpy loads)
from tools.corpus.primock import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "audio" / "jfk.flac").is_file():
        pytest.fail(f"shared test data not found at {path}; set EDGE_AGENT_SHARED")
    return path


@pytest.fixture(scope="session")
def jfk_path(shared: Path) -> Path:
    return shared / "audio" / "jfk.flac"


@pytest.fixture(scope="session")
def jfk_16k(jfk_path: Path) -> np.ndarray:
    """jfk.flac as 16 kHz mono float32 (via the project's own file source framing)."""
    import soxr

    audio, rate = sf.read(str(jfk_path), dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), rate, 16000).astype(np.float32)


@pytest.fixture(scope="session")
def session():  # type: ignore[no-untyped-def]
    """One loaded Whisper engine for the whole test run (loading is the slow part)."""
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession

    return TranscriptionSession.load(PipelineConfig())


@pytest.fixture(scope="session")
def session_with_speakers():  # type: ignore[no-untyped-def]
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession

    return TranscriptionSession.load(PipelineConfig(), speakers=True)


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    def _write(name: str, audio: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
        path = tmp_path / name
        sf.write(str(path), audio, rate, subtype=subtype)
        return path

    return _write


@pytest.fixture
def alsa_file_mic(tmp_path: Path) -> Callable[[np.ndarray], Path]:
    """A HOME whose .asoundrc exposes a raw file as the ALSA capture device 'micin'."""

    def _make(audio_16k: np.ndarray) -> Path:
        raw = tmp_path / "mic_input_s16le_16k_mono.raw"
        (np.clip(audio_16k, -1, 1) * 32767).astype("<i2").tofile(raw)
        (tmp_path / ".asoundrc").write_text(
            "pcm.filemic {\n type file\n slave.pcm \"null\"\n file \"/dev/null\"\n"
            f" infile \"{raw}\"\n format \"raw\"\n}}\n"
            "pcm.micin {\n type plug\n slave.pcm \"filemic\"\n}\n"
        )
        return tmp_path

    return _make
