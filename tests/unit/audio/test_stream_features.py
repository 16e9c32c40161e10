"""The stream featurizer: the same features as the per-window extractors, raw audio zeroed as it is used.

Real audio (jfk), the real Whisper mel bands and the GE2E front-end; nothing is mocked or timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.asr.features import LogMel
from edge_agent.audio.featurize import ArrayFeatures, FeatureLayout, StreamFeaturizer, speaker_span, whisper_window
from edge_agent.audio.speaker_frontend import MelFrontend, SpeakerFeatures
from edge_agent.audio.stft import HOP, N_FFT

FRAME = 480


@pytest.fixture(scope="module")
def filters() -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=80).mel_filters.astype(np.float32)


def _int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize(("start", "stop"), [(16000, 80000), (16160, 52480), (0, 96000 - 480)])
def test_a_decode_window_cut_out_of_the_stream_is_the_per_window_extractor_s(
    jfk_16k: np.ndarray, filters: np.ndarray, start: int, stop: int
) -> None:
    """Any hop-aligned window cut out of the continuous stream (mid-speech at both ends, or the stream's very
    start and end) has exactly the features Whisper's per-window extractor computes for its audio: the frames
    whose window reaches before its start are the reflected start variants, those reaching past its end the
    zero-padded end variants. Without them the edge frames saw the audio beyond the cut, which changed the
    partials and the sentences committed from them (LibriSpeech WER vs offline 0.079 -> 0.098)."""
    audio = jfk_16k[: 6 * 16000].astype(np.float32)
    feats = ArrayFeatures(audio, filters, lambda final: 16000 if final else 8000)
    own = LogMel(filters, len(audio) + 16000)(audio[start:stop], 16000)
    ours = feats.features(start, stop, True)
    assert ours.shape == own.shape
    assert np.abs(ours - own).max() < 2e-3


def test_speaker_features_match_the_ge2e_front_end_inside_the_span(jfk_16k: np.ndarray, filters: np.ndarray) -> None:
    audio = jfk_16k[: 6 * 16000].astype(np.float32)
    feats = ArrayFeatures(audio, filters, lambda final: 16000)
    start, stop = 16000, 16000 * 4
    own = SpeakerFeatures.of(audio[start:stop], MelFrontend())
    with feats.speaker_window(start, stop) as ours:
        assert ours.mel.shape == own.mel.shape and ours.n_samples == own.n_samples
        inner = slice(2, (stop - start) // HOP - 2)
        scale = float(own.mel[inner].max())
        assert np.abs(ours.mel[inner] - own.mel[inner]).max() < 1e-4 * scale  # same gain, same frames
        assert np.allclose(ours.energy, own.energy, rtol=1e-4, atol=1e-7)


def test_raw_audio_is_zeroed_within_a_chunk_and_the_ring_never_holds_it(jfk_16k: np.ndarray, filters: np.ndarray) -> None:
    """Fed frame by frame, the featurizer never holds more raw samples than a chunk plus the STFT overlap
    and a frame, and each zeroing records its oldest sample's age; seal() leaves no raw sample at all."""
    from edge_agent.audio.speaker_frontend import mel_filterbank

    chunk = 1600
    frames = len(jfk_16k) // HOP + 64
    ring = np.zeros(FeatureLayout.ring(frames).slot_len, np.float32)
    fz = StreamFeaturizer(filters, mel_filterbank(), ring, frames, chunk, FRAME)
    samples = _int16(jfk_16k)
    bound = chunk + N_FFT + FRAME
    held = []
    for i in range(0, len(samples) - FRAME + 1, FRAME):
        fz.push(samples[i : i + FRAME], float(i))
        held.append(int(np.count_nonzero(fz._carry)))
    assert max(held) <= bound, max(held)
    assert min(held[len(held) // 4 :]) > 0  # it does hold the overlap: the check looks at the real buffer
    fz.seal()
    assert not fz.holds_audio() and not fz._carry.any()
    assert fz.rows.available >= len(samples) // HOP  # every frame of the audio was computed
    # the ring holds features only: no frame equals a stretch of the audio
    assert not np.isin(ring[:1000], samples[:1000].astype(np.float32) / 32768.0).all()


def test_a_seal_is_a_seam_like_a_segment_edge(jfk_16k: np.ndarray, filters: np.ndarray) -> None:
    """Sealed mid-stream (a recording waiting for its decoder), the frames around the seam see silence on one
    side; frames a window away from it are the continuous stream's, unchanged."""
    from edge_agent.audio.speaker_frontend import mel_filterbank

    samples = _int16(jfk_16k[: 4 * 16000])
    frames = len(samples) // HOP + 64
    loud = np.square(samples[: 3 * 16000].astype(np.float64)).reshape(-1, FRAME).sum(axis=1)
    at = int(np.argmax(loud[10:])) * FRAME + 10 * FRAME  # the seam in the middle of a word
    rings = [np.zeros(FeatureLayout.ring(frames).slot_len, np.float32) for _ in range(2)]
    out = []
    for sealed, ring in zip((False, True), rings):
        fz = StreamFeaturizer(filters, mel_filterbank(), ring, frames, 1600, FRAME)
        for i in range(0, len(samples), FRAME):
            if sealed and i == at:
                fz.seal()
            fz.push(samples[i : i + FRAME], 0.0)
        fz.seal()
        out.append(fz.rows)
    seam = at // HOP
    a = whisper_window(out[0], 0, len(samples), 0, np.zeros((frames, 80), np.float32)).copy()
    b = whisper_window(out[1], 0, len(samples), 0, np.zeros((frames, 80), np.float32)).copy()
    differ = np.flatnonzero(np.abs(a - b).max(axis=0) > 1e-4)
    assert len(differ) and differ.min() >= seam - 2 and differ.max() <= seam + 3, differ
    mel_a, _ = speaker_span(out[0], 0, len(samples))
    mel_b, _ = speaker_span(out[1], 0, len(samples))
    assert np.allclose(mel_a[: seam - 2], mel_b[: seam - 2]) and np.allclose(mel_a[seam + 4 :], mel_b[seam + 4 :])


def test_a_partial_at_the_stream_edge_ends_as_a_per_window_extractor_ends_it(jfk_16k: np.ndarray, filters: np.ndarray) -> None:
    """A partial decodes up to the newest audio: its last frames' windows reach past the edge, and are there
    (the end variants need only the audio before the edge) as the per-window extractor computes them."""
    from edge_agent.audio.speaker_frontend import mel_filterbank

    samples = _int16(jfk_16k[: 5 * 16000])
    audio = samples.astype(np.float32) / 32768.0
    frames = len(samples) // HOP + 64
    fz = StreamFeaturizer(filters, mel_filterbank(), np.zeros(FeatureLayout.ring(frames).slot_len, np.float32), frames,
                          1600, FRAME)
    end = 141 * FRAME  # 4.23 s: mid-word, not on a chunk boundary
    for i in range(0, end, FRAME):
        fz.push(samples[i : i + FRAME], 0.0)
    fz.compute()
    start = 16000
    own = LogMel(filters, len(audio) + 8000)(audio[start:end], 8000)
    ours = whisper_window(fz.rows, start // HOP, end - start, 8000, np.zeros((frames, 80), np.float32))
    assert np.abs(ours - own).max() < 2e-3
