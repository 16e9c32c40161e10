"""Every VAD configuration the config accepts segments real continuous speech without an exception.

``vad.max_segment_s`` may be as small as ``2 x vad.split_search_s`` (0.06 s with a one-frame search),
and ``vad.preroll_ms`` / ``vad.onset_ms`` change on a SIGHUP (up to 2 s each) while the segment
buffers keep the size they had at start-up. A segment opens holding its onset window and pre-roll;
when those did not fit in one segment the VAD wrote past its buffer (numpy ValueError in
``VadSegmenter._append``), the worker failed and the visit's speech was gone. Such a combination
must be refused when the config is read (or reloaded), naming the keys; everything accepted must run.

Real speech: a LibriSpeech reader (../shared/data/librispeech-voices), utterances back to back.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.audio.featurize import StreamFeaturizer
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.vad import SegmentClosed, VadConfig, VadSegmenter
from edge_agent.errors import ConfigError


@pytest.fixture(scope="module")
def speech(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = sorted(glob.glob(str(shared / "data" / "librispeech-voices" / "test-other" / "2033" / "*.flac")))[:2]
    path = tmp_path_factory.mktemp("vad") / "reader.flac"
    sf.write(path, np.concatenate([sf.read(f, dtype="float32")[0] for f in files]), 16000)
    return path


def _segment(path: Path, cfg: VadConfig) -> list[SegmentClosed]:
    frames = BufferPool("frames", max(8, 3000 // cfg.frame_ms), cfg.frame_samples, np.int16)  # the pipeline's default 3 s
    vad = VadSegmenter(cfg, StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity))
    closed: list[SegmentClosed] = []

    def handle(events) -> None:  # type: ignore[no-untyped-def]
        closed.extend(ev for ev in events if isinstance(ev, SegmentClosed))

    for frame in FileSource(path).frames(frames):
        handle(vad.process(frame))
    handle(vad.flush())
    assert frames.all_zero() and frames.in_use() == 0 and not vad.featurizer.holds_audio()
    return closed


@pytest.mark.parametrize(
    "keys",
    [
        {"max_segment_s": 0.06, "split_search_s": 0.03},  # the smallest limit the range allows
        {"max_segment_s": 0.3, "split_search_s": 0.03},
        # start-up limit 2 s, then a SIGHUP raises the live pre-roll and onset window to their maxima
        {"max_segment_s": 2.0, "split_search_s": 1.0, "preroll_ms": 2000, "onset_ms": 2000},
    ],
    ids=["60ms", "300ms", "reloaded-preroll"],
)
def test_a_segment_too_small_for_its_own_preroll_is_refused_naming_the_keys(speech: Path, keys: dict) -> None:
    with pytest.raises(ConfigError, match=r"vad\.max_segment_s.*vad\.preroll_ms.*vad\.onset_ms"):
        _segment(speech, VadConfig(**keys))


@settings(max_examples=30, deadline=None)
@given(
    frame_ms=st.sampled_from([10, 20, 30]),
    search_s=st.floats(0.03, 3.0),
    extra_s=st.floats(0.0, 6.0),
    preroll_ms=st.integers(0, 2000),
    onset_ms=st.integers(0, 2000),
)
def test_every_accepted_config_segments_real_speech(speech: Path, frame_ms: int, search_s: float, extra_s: float,
                                                    preroll_ms: int, onset_ms: int) -> None:
    try:
        cfg = VadConfig(frame_ms=frame_ms, split_search_s=max(search_s, frame_ms / 1000), max_segment_s=2 * max(search_s, frame_ms / 1000) + extra_s,
                        preroll_ms=preroll_ms, onset_ms=onset_ms)
    except ConfigError:
        return  # refused with a message: nothing runs
    closed = _segment(speech, cfg)
    assert closed and all(c.segment.t1 - c.segment.t0 <= cfg.segment_capacity / 16000 + 1e-6 for c in closed)
