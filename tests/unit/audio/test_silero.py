"""The Silero VAD engine on real speech: streaming scores, segments, state, zeroing, model errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.audio.featurize import StreamFeaturizer
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.silero import CHUNK, SileroModel, default_model_path
from edge_agent.audio.vad import SegmentClosed, VadConfig, VadSegmenter
from edge_agent.errors import ModelError

SR = 16000
VOICES = ("data", "librispeech-voices", "test-other")


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def utterance(shared: Path, name: str) -> np.ndarray:
    speaker = name.split("-")[0]
    audio, rate = sf.read(str(shared.joinpath(*VOICES, speaker, f"{name}.flac")), dtype="float32")
    assert rate == SR
    return audio


def int16_frames(audio: np.ndarray, frame: int) -> list[np.ndarray]:
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    return [pcm[i : i + frame] for i in range(0, len(pcm) - frame + 1, frame)]


def run_segmenter(path: Path, cfg: VadConfig, model: SileroModel) -> tuple[list[tuple[float, float, str, bool]], VadSegmenter]:
    frames = BufferPool("frames", 64, cfg.frame_samples, np.int16)
    vad = VadSegmenter(cfg, StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity), silero=model)
    closed: list[tuple[float, float, str, bool]] = []

    def handle(events) -> None:  # type: ignore[no-untyped-def]
        for ev in events:
            if isinstance(ev, SegmentClosed):
                closed.append((ev.segment.t0, ev.segment.t1, ev.reason, ev.is_speech))

    held = False
    for frame in FileSource(path).frames(frames):
        handle(vad.process(frame))
        held = held or vad.classifier.holds_audio()
    assert held or cfg.engine != "silero"  # the scorer does keep the unscored remainder (< 36 ms) while running ...
    handle(vad.flush())
    assert frames.all_zero() and frames.in_use() == 0 and not vad.featurizer.holds_audio()
    assert not vad.holds_audio(), "... and its buffers must be zeroed at the end of the run"
    return closed, vad


def voiced_frames(audio: np.ndarray, offset_s: float, below_peak_db: float = 20.0, min_run: int = 5) -> list[float]:
    """Start times of the 30 ms frames of a clean utterance that are clearly speech.

    Within 20 dB of its loudest frame (above the -40 dB room noise of these test-other
    recordings), in runs of at least 150 ms (a syllable): shorter bursts are breaths
    and clicks, which a VAD should not pass.
    """
    frame = 480
    rms = np.array([np.sqrt(np.mean(audio[i : i + frame] ** 2)) for i in range(0, len(audio) - frame + 1, frame)])
    loud = rms > rms.max() * 10 ** (-below_peak_db / 20)
    out: list[float] = []
    run: list[int] = []
    for i, is_loud in enumerate([*loud, False]):
        if is_loud:
            run.append(i)
            continue
        if len(run) >= min_run:
            out += [offset_s + j * frame / SR for j in run]
        run = []
    return out


def test_silero_segments_real_voices_and_covers_their_speech(shared: Path, model: SileroModel, write_wav) -> None:  # type: ignore[no-untyped-def]
    """Two LibriSpeech readers with a 1.2 s pause between them: their speech lies in segments, the pause splits them."""
    a = utterance(shared, "1688-142285-0000")[: 6 * SR]
    b = utterance(shared, "2609-156975-0001")[: 5 * SR]
    gap = np.zeros(int(1.2 * SR), np.float32)
    audio = np.concatenate([gap, a, gap, b, gap])
    b0 = (2 * len(gap) + len(a)) / SR
    loud = voiced_frames(a, len(gap) / SR) + voiced_frames(b, b0)
    cfg = VadConfig(engine="silero")
    closed, vad = run_segmenter(write_wav("two_readers.wav", audio), cfg, model)
    speech = [c for c in closed if c[3]]
    inside = [t for t in loud if any(t0 <= t and t + 0.03 <= t1 for t0, t1, _, _ in speech)]
    assert len(inside) / len(loud) >= 0.97, (len(inside) / len(loud), speech)
    # no segment spans the pause between the two readers
    a_end = (len(gap) + len(a)) / SR
    assert not any(t0 < a_end - 0.3 and t1 > b0 + 0.3 for t0, t1, _, _ in speech), speech
    # the model ran once per 512 samples of the run (the file source pads its last frame)
    assert vad.classifier.stream.chunks == -(-len(audio) // cfg.frame_samples) * cfg.frame_samples // CHUNK  # type: ignore[attr-defined]


def test_silero_ends_in_a_noisy_pause(shared: Path, model: SileroModel, write_wav) -> None:  # type: ignore[no-untyped-def]
    """Steady noise between two utterances (ventilation-like, 20 dB under the speech) is not speech for Silero."""
    a = utterance(shared, "1998-15444-0000")[: 5 * SR]
    b = utterance(shared, "1998-15444-0004")[: 5 * SR]
    rng = np.random.default_rng(7)
    level = float(np.sqrt(np.mean(a * a))) * 0.1
    pause = (rng.standard_normal(int(1.5 * SR)) * level).astype(np.float32)
    lead = np.zeros(SR // 2, np.float32)
    audio = np.concatenate([lead, a, pause, b, lead])
    path = write_wav("noisy_pause.wav", audio)
    pause_start = (len(lead) + len(a)) / SR
    pause_end = pause_start + len(pause) / SR

    def first_end(engine: str) -> float:
        closed, _ = run_segmenter(path, VadConfig(engine=engine), model)
        speech = [c for c in closed if c[3]]
        assert any(t0 > pause_start for t0, _, _, _ in speech), "the second utterance opens its own segment"
        return max(t1 for t0, t1, _, _ in speech if t0 < pause_start)

    assert first_end("silero") < pause_start + 0.5, "Silero held the segment open into the noisy pause"
    # the reason for the engine: webrtcvad hears the noise as speech and holds the first segment through it
    assert first_end("webrtc") > pause_end - 0.5


def test_state_is_per_run_and_reset(shared: Path, model: SileroModel) -> None:
    audio = utterance(shared, "2609-156975-0001")[: 4 * SR]
    frames = int16_frames(audio, 480)

    def scores(stream) -> list[float]:  # type: ignore[no-untyped-def]
        return [stream.score(f) for f in frames]

    first = model.stream()
    a = scores(first)
    assert max(a) > 0.8 and first.holds_audio()
    # the same stream, without a reset, carries the LSTM state and context: different scores
    carried = scores(first)
    assert carried != a
    first.reset()
    assert not first.holds_audio()
    assert scores(first) == a  # after reset: exactly a fresh run
    assert scores(model.stream()) == a  # a second run of the process starts from zero state too
    first.close()
    assert not first.holds_audio()


def test_frame_lengths_give_the_same_chunks(shared: Path, model: SileroModel) -> None:
    """10, 20 and 30 ms frames are buffered into the same 512-sample chunks: the final scores agree."""
    audio = utterance(shared, "1688-142285-0000")[: 3 * SR - 3 * SR % 480]
    last = []
    for frame in (160, 320, 480):
        stream = model.stream()
        for f in int16_frames(audio, frame):
            p = stream.score(f)
        assert stream.chunks == len(audio) // CHUNK
        last.append(p)
        stream.close()
    assert last[0] == last[1] == last[2]


def test_missing_or_corrupt_model_is_a_one_line_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as missing:
        SileroModel(tmp_path / "silero_vad_v6.onnx")
    assert "missing" in missing.value.message and "\n" not in missing.value.message
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(default_model_path().read_bytes()[:5000])  # a truncated copy
    with pytest.raises(ModelError) as damaged:
        SileroModel(corrupt)
    assert "cannot be loaded" in damaged.value.message and "\n" not in damaged.value.message
    assert "faster-whisper" in damaged.value.message  # says how to get it back


def test_another_onnx_model_is_refused(tmp_path: Path) -> None:
    from edge_agent.models import models_dir

    with pytest.raises(ModelError, match="is not Silero VAD v6"):
        SileroModel(models_dir() / "role_classifier.onnx")


def test_segmenter_opens_the_model_itself_when_none_is_given(jfk_path: Path) -> None:
    cfg = VadConfig(engine="silero")
    frames = BufferPool("frames", 64, cfg.frame_samples, np.int16)
    vad = VadSegmenter(cfg, StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity))
    closed = []
    for frame in FileSource(jfk_path).frames(frames):
        closed += [e for e in vad.process(frame) if isinstance(e, SegmentClosed)]
    closed += [e for e in vad.flush() if isinstance(e, SegmentClosed)]
    assert any(e.is_speech for e in closed)
    assert not vad.holds_audio()


def test_streaming_scores_equal_faster_whispers_batch_run(shared: Path, model: SileroModel) -> None:
    """30 ms frames in, one score per 512-sample chunk out: exactly what faster-whisper's own Silero runner gives."""
    from faster_whisper.vad import SileroVADModel

    audio = utterance(shared, "2033-164914-0000")[: 8 * SR]
    frames = int16_frames(audio, 480)
    pcm = np.concatenate(frames).astype(np.float32) / 32768.0
    reference = SileroVADModel(str(default_model_path()))(pcm[: len(pcm) // CHUNK * CHUNK]).reshape(-1)
    stream = model.stream()
    ours: list[float] = []
    for frame in frames:
        before = stream.chunks
        p = stream.score(frame)
        if stream.chunks != before:
            ours.append(p)
    stream.close()
    assert len(ours) == len(reference)
    assert np.allclose(ours, reference, atol=1e-6)
