"""Segment boundaries on speech/silence patterns built from real speech."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.audio.featurize import StreamFeaturizer
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.pool import BufferPool
from edge_agent.audio.vad import SegmentClosed, SegmentUpdate, VadConfig, VadSegmenter
from edge_agent.errors import ConfigError

SR = 16000
ENGINES = pytest.mark.parametrize("engine", ["webrtc", "silero", "hybrid"])


def with_hangover(engine: str, ms: int, **kw) -> VadConfig:  # type: ignore[no-untyped-def]
    """A config for ``engine`` whose hang-over in force is ``ms``."""
    key = "silero_hangover_ms" if engine == "silero" else "hangover_ms"
    return VadConfig(engine=engine, **{key: ms}, **kw)


def segments_of(path, cfg: VadConfig):  # type: ignore[no-untyped-def]
    frames = BufferPool("frames", 64, cfg.frame_samples, np.int16)
    vad = VadSegmenter(cfg, StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity))
    closed: list[tuple[float, float, str, bool]] = []
    updates: list[SegmentUpdate] = []

    def handle(events) -> None:  # type: ignore[no-untyped-def]
        for ev in events:
            if isinstance(ev, SegmentClosed):
                closed.append((ev.segment.t0, ev.segment.t1, ev.reason, ev.is_speech))
            else:
                updates.append(ev)

    source = FileSource(path)
    for frame in source.frames(frames):
        handle(vad.process(frame))
    handle(vad.flush())
    assert frames.all_zero() and frames.in_use() == 0 and not vad.featurizer.holds_audio()
    return closed, updates


def speech_islands(jfk_16k: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Two real speech clips separated by silence, with their true extents."""
    clip_a = jfk_16k[int(0.3 * SR) : int(2.4 * SR)]  # "And so my fellow Americans"
    clip_b = jfk_16k[int(8.0 * SR) : int(10.8 * SR)]  # "ask what you can do for your country"
    gap = np.zeros(int(1.5 * SR), np.float32)
    audio = np.concatenate([gap, clip_a, gap, clip_b, gap])
    a0 = len(gap) / SR
    b0 = (2 * len(gap) + len(clip_a)) / SR
    return audio, [(a0, a0 + len(clip_a) / SR), (b0, b0 + len(clip_b) / SR)]


@ENGINES
def test_boundaries_with_preroll_and_hangover(jfk_16k: np.ndarray, write_wav, engine: str) -> None:  # type: ignore[no-untyped-def]
    audio, truth = speech_islands(jfk_16k)
    cfg = with_hangover(engine, 450, preroll_ms=240, tail_ms=150)
    closed, updates = segments_of(write_wav("islands.wav", audio), cfg)
    speech = [c for c in closed if c[3]]
    assert len(speech) == 2, closed
    for (t0, t1, reason, _), (s0, s1) in zip(speech, truth):
        assert reason == "silence"
        # pre-roll: the segment starts before the speech, by at most pre-roll + onset window
        assert s0 - (cfg.preroll_ms + cfg.onset_ms) / 1000 - 0.05 <= t0 <= s0 + 0.1
        # hang-over trimmed to the tail: ends shortly after the speech, never a full hang-over later
        # (webrtcvad hears a little of the reverberant decay as speech)
        assert s1 - 0.3 <= t1 <= s1 + cfg.tail_ms / 1000 + 0.3
        assert t1 < s1 + cfg.engine_hangover_ms / 1000
    assert any(u.final_candidate for u in updates), "the end of speech must be announced before the close"


@ENGINES
def test_longer_hangover_merges_islands(jfk_16k: np.ndarray, write_wav, engine: str) -> None:  # type: ignore[no-untyped-def]
    audio, _ = speech_islands(jfk_16k)
    closed, _ = segments_of(write_wav("islands.wav", audio), with_hangover(engine, 2400, tail_ms=150))
    assert len([c for c in closed if c[3]]) == 1


@ENGINES
def test_max_length_split_at_a_quiet_point(jfk_16k: np.ndarray, write_wav, engine: str) -> None:  # type: ignore[no-untyped-def]
    speech = np.concatenate([jfk_16k[: int(10.8 * SR)]] * 2)  # ~21.6 s of continuous talk
    cfg = with_hangover(engine, 900, max_segment_s=6.0, split_search_s=2.5, tail_ms=150)
    closed, _ = segments_of(write_wav("long.wav", speech), cfg)
    assert len(closed) >= 4
    for t0, t1, _, _ in closed:
        assert t1 - t0 <= cfg.max_segment_s + cfg.frame_ms / 1000 + 1e-6
    splits = [c for c in closed if c[2] == "max_length"]
    assert splits
    # consecutive segments are contiguous: nothing lost at a split
    for (a0, a1, reason, _), (b0, _, _, _) in zip(closed, closed[1:]):
        if reason == "max_length":
            assert b0 == pytest.approx(a1, abs=1e-6)
    # a split lands in a quieter frame than the speech around it
    frame = cfg.frame_samples
    for _, t1, reason, _ in splits:
        i = int(round(t1 * SR))
        at_split = np.sqrt(np.mean(speech[i - frame : i] ** 2))
        around = np.sqrt(np.mean(speech[max(0, i - int(2.5 * SR)) : i] ** 2))
        assert at_split < around


def test_invalid_vad_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="vad.frame_ms is 25; allowed values: 10, 20, 30"):
        VadConfig(frame_ms=25)
    with pytest.raises(ConfigError, match="vad.aggressiveness"):
        VadConfig(aggressiveness=5)
    with pytest.raises(ConfigError, match="vad.engine is 'rnnoise'; allowed values: webrtc, silero, hybrid"):
        VadConfig(engine="rnnoise")
    with pytest.raises(ConfigError, match="silero_neg_threshold <= silero_threshold"):
        VadConfig(silero_threshold=0.3, silero_neg_threshold=0.4)
    with pytest.raises(ConfigError, match="vad.tail_ms must not exceed vad.silero_hangover_ms"):
        VadConfig(silero_hangover_ms=90, tail_ms=150)


def test_engine_hangover_and_lookahead() -> None:
    """Silero closes on its own hang-over; the look-ahead point never lies past the hang-over in force."""
    assert VadConfig().engine_hangover_ms == 450 and VadConfig().engine_candidate_ms == 300
    cfg = VadConfig(engine="silero", silero_hangover_ms=240)
    assert cfg.engine_hangover_ms == 240 and cfg.engine_candidate_ms == 240  # capped: no look-ahead before the close


@pytest.mark.parametrize("search_s", [0.0, 0.01, -1.0, 100.0])
def test_split_search_outside_its_range_is_refused_naming_it(search_s: float) -> None:
    """vad.split_search_s shorter than one frame used to pass and crash the first max-length split
    (np.argmin of an empty window); too long blamed max_segment_s with an impossible range ('200.0..28')."""
    with pytest.raises(ConfigError, match=r"vad\.split_search_s") as exc:
        VadConfig(split_search_s=search_s)
    assert "200.0..28" not in str(exc.value)


def test_shortest_allowed_split_search_still_splits(jfk_16k: np.ndarray, write_wav) -> None:  # type: ignore[no-untyped-def]
    speech = np.concatenate([jfk_16k[: int(10.8 * SR)]] * 2)
    cfg = with_hangover("webrtc", 900, max_segment_s=6.0, split_search_s=0.03, tail_ms=150)  # one 30 ms frame
    closed, _ = segments_of(write_wav("long.wav", speech), cfg)
    assert [c for c in closed if c[2] == "max_length"]


def test_a_max_length_split_loses_nothing_and_leaves_no_gap(shared, write_wav) -> None:  # type: ignore[no-untyped-def]
    """Continuous speech split at the length limit: the continuation starts where the closed segment ended (a
    split moves no audio, only where the next segment's range of feature frames starts), and nothing is counted
    lost (the visit report would tell the clinician 'speech could not be transcribed'). It once needed a free
    segment buffer for the continuation; segments now hold no audio, so there is none to wait for."""
    import glob

    import soundfile as sf

    files = sorted(glob.glob(str(shared / "data" / "librispeech-voices" / "test-other" / "1688" / "*.flac")))
    parts, total = [], 0
    for f in files:
        audio, _ = sf.read(f, dtype="float32")
        parts.append(audio)
        total += len(audio)
        if total >= 14 * SR:
            break
    path = write_wav("turn.wav", np.concatenate(parts)[: 14 * SR])
    cfg = VadConfig(max_segment_s=5.0, split_search_s=2.5)
    frames = BufferPool("frames", 64, cfg.frame_samples, np.int16)
    vad = VadSegmenter(cfg, StreamFeaturizer.standalone(cfg.frame_samples, cfg.segment_capacity))
    closed: list[tuple[float, float, str]] = []
    for frame in FileSource(path).frames(frames):
        for ev in vad.process(frame):
            if isinstance(ev, SegmentClosed):
                closed.append((ev.segment.t0, ev.segment.t1, ev.reason))
    for ev in vad.flush():
        if isinstance(ev, SegmentClosed):
            closed.append((ev.segment.t0, ev.segment.t1, ev.reason))
    assert any(reason == "max_length" for _, _, reason in closed), closed
    assert vad.dropped_segments == 0 and vad.dropped_samples == 0, (vad.dropped_segments, closed)
    gaps = [b[0] - a[1] for a, b in zip(closed, closed[1:])]
    assert all(g <= 0.01 for g in gaps), (gaps, closed)  # the continuation starts where the closed segment ended
