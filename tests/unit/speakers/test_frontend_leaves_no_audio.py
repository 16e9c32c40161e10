"""The speaker front end leaves no audio-derived array behind (its module doc: everything holding
audio-derived samples is zeroed after each call).

``volume_gain`` squared the whole segment into a float64 temporary to take its RMS and dropped it
unzeroed: the square of every sample, i.e. the waveform's magnitude sample by sample (a
full-wave-rectified copy of the speech). It runs on every segment of every visit
(``SpeakerFeatures.of``). The test reads this process's memory for squared samples afterwards.
"""

from __future__ import annotations

import gc

import numpy as np

from edge_agent.audio.speaker_frontend import MelFrontend, SpeakerFeatures, volume_gain
from tests.memory_probe import hits_in_memory, keep_freed_heap


def _segment(seed: int) -> np.ndarray:
    keep_freed_heap()
    # 0.6 s: the float64 square (77 KB) is a heap block, not a mapping of its own that vanishes when freed
    return (np.random.default_rng(seed).standard_normal(9600) * 0.01).astype(np.float32)


def _squared_needle(audio: np.ndarray) -> bytes:
    sq = np.empty(16, np.float64)
    np.square(audio[4000:4016], out=sq, dtype=np.float64)
    needle = bytes(memoryview(sq.view(np.uint8)))
    sq.fill(0)
    return needle


def test_volume_gain_leaves_no_squared_samples() -> None:
    audio = _segment(21)
    needle = _squared_needle(audio)
    gain = volume_gain(audio)
    assert gain > 1.0
    audio.fill(0)
    gc.collect()
    assert not hits_in_memory(needle), "squared samples of the segment were left in freed memory"


def test_speaker_features_leave_no_squared_samples() -> None:
    audio = _segment(22)
    needle = _squared_needle(audio)
    feats = SpeakerFeatures.of(audio, MelFrontend())
    feats.wipe()
    audio.fill(0)
    gc.collect()
    assert not hits_in_memory(needle), "squared samples of the segment were left in freed memory"


def test_enrolment_leaves_no_rectified_audio(jfk_16k: np.ndarray) -> None:
    """``enrol`` checked for silence with ``np.max(np.abs(audio))``: a full |audio| copy of the clinician's
    voice, dropped unzeroed. Refused enrolments (too little speech: a common first try) left it in place."""
    import pytest

    from edge_agent.speakers.encoder import SpeakerEncoder
    from edge_agent.speakers.enrol import EnrolmentError, enrol

    keep_freed_heap()
    encoder = SpeakerEncoder()
    audio = np.zeros(16000 * 9, np.float32)  # 3 s of speech, then quiet: too little to enrol
    audio[: 16000 * 3] = jfk_16k[16000 : 16000 * 4]
    at = 16000 + 101
    while not (audio[at : at + 16] < 0).any():
        at += 16
    mag = np.empty(16, np.float32)
    np.abs(audio[at : at + 16], out=mag)
    needle = bytes(memoryview(mag.view(np.uint8)))
    mag.fill(0)
    with pytest.raises(EnrolmentError, match="only"):
        enrol(audio, encoder)
    audio.fill(0)
    gc.collect()
    assert not hits_in_memory(needle), "a rectified copy of the enrolment audio was left in freed memory"
