"""Raw-audio residency is measured for every segment the VAD closes, from the segment's last *kept* sample,
and no segment's audio outlives a worker fault (docs/design.md §3.2, docs/architecture.md "Residency").

Real pipeline and models on a real recording; faults are injected where they cannot happen on demand.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.asr.events import FinalTranscript, SegmentDiscarded
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.vad import SegmentClosed, speech_end_arrival
from edge_agent.device import pipeline as pipeline_module
from edge_agent.device.session import CaptureLost, RunFault
from edge_agent.errors import AudioInputError
from edge_agent.speakers import attribution


def test_a_segment_closer_fault_leaves_no_closed_segment_unzeroed_or_unmeasured(
    session_with_speakers: Any, jfk_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The closer dies on its first segment (in the speaker front-end, after the Whisper features were taken);
    every segment the VAD closes after that (its flush at the end of the run included) still has its raw audio
    zeroed by the pipeline itself, and its residency recorded; the dead segment's features are zeroed too."""
    calls: list[int] = []
    handed: list[int] = []
    queued = threading.Event()  # a second closed segment waits for the closer

    def failing_features(self: Any, audio: np.ndarray) -> Any:
        calls.append(len(audio))
        queued.wait(60)  # the recording is read on meanwhile (not paced): the VAD hands over the next segment
        raise RuntimeError("bug in the speaker front-end")

    monkeypatch.setattr(attribution.SpeakerAttributor, "features", failing_features)
    hand_off = pipeline_module.StreamingPipeline._hand_off

    def counting_hand_off(self: Any, event: Any) -> None:
        if isinstance(event, SegmentClosed):
            handed.append(event.segment.id)
        hand_off(self, event)
        if len(handed) >= 2:
            queued.set()

    monkeypatch.setattr(pipeline_module.StreamingPipeline, "_hand_off", counting_hand_off)
    with pytest.raises(RunFault) as fault:
        session_with_speakers.run(FileSource(jfk_path), lambda event: None)
    assert len(calls) == 1 and len(handed) >= 2, (calls, handed)
    assert fault.value.pools_clean, "a closed segment's raw audio was left for the end-of-run wipe (the ALARM path)"
    assert len(fault.value.stats.residency_s) == len(handed), (fault.value.stats.residency_s, handed)
    assert np.all(np.isfinite(fault.value.stats.residency_s))


def test_residency_counts_from_the_last_kept_sample_also_for_max_length_splits(
    session_with_speakers: Any, jfk_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jfk paced in real time with a 5 s segment limit: the VAD cuts its long run of speech by max-length splits.

    A split segment keeps audio up to its quiet point; what came after (up to ``split_search_s``) was carried
    into the next segment. Its last kept sample therefore arrived that much before the frame that triggered the
    split, and a silence close's trimmed hang-over arrived after its last kept sample. Residency is measured
    from the last kept sample: it was measured from the last frame received, which showed a split segment's
    audio up to 2.5 s younger than it was."""
    cfg = replace(session_with_speakers.config, vad=replace(session_with_speakers.config.vad, max_segment_s=5.0))
    entered: dict[int, tuple[float, float, str]] = {}
    close = pipeline_module.StreamingPipeline._close

    def timed_close(self: Any, event: SegmentClosed) -> Any:
        # when the closer took it, and when its last kept sample arrived (before the closer zeroes it)
        entered[event.segment.id] = (time.monotonic(), speech_end_arrival(event.segment), event.reason)
        return close(self, event)

    monkeypatch.setattr(pipeline_module.StreamingPipeline, "_close", timed_close)
    closed: dict[int, float] = {}

    def sink(event: Any) -> None:
        if isinstance(event, FinalTranscript | SegmentDiscarded):
            closed[event.utterance.segment_id if isinstance(event, FinalTranscript) else event.segment_id] = event.residency_s

    pipeline = pipeline_module.StreamingPipeline(cfg, session_with_speakers.engine, sink,
                                                 max_segment_samples=session_with_speakers.engine.max_samples)
    stats = pipeline.run(FileSource(jfk_path, realtime=True))
    reasons = {reason for _, _, reason in entered.values()}
    assert "max_length" in reasons, reasons  # the probe exercised splits
    assert len(stats.residency_s) == len(entered)  # every closed segment measured, discarded ones included
    for seg_id, (taken, kept_end, reason) in entered.items():
        at_least = taken - kept_end  # the closer zeroes after it took the segment
        assert seg_id in closed, (seg_id, closed)
        assert closed[seg_id] >= at_least, (seg_id, reason, closed[seg_id], at_least)
    bound = cfg.vad.split_search_s + 1.0
    assert max(stats.residency_s) <= bound, stats.residency_s  # paced: a split's carry plus the closer's time
    silence = [closed[i] for i, (_, _, r) in entered.items() if r in ("silence", "end_of_stream")]
    assert silence and max(silence) <= 1.0, silence  # a pause-ended segment: the design's bound


class _Unplugged(FileSource):
    """jfk paced in real time, and the microphone gone 2.1 s in: mid-word of its first sentence."""

    def frames(self, pool):  # type: ignore[no-untyped-def]
        for i, frame in enumerate(super().frames(pool)):
            if i * 0.03 >= 2.1:
                frame.release()
                raise AudioInputError("microphone 'test' stopped delivering audio (unplugged?)")
            yield frame


def test_the_segment_open_when_the_microphone_goes_away_is_zeroed_and_measured(
    session_with_speakers: Any, jfk_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reasons: list[str] = []
    hand_off = pipeline_module.StreamingPipeline._hand_off

    def counting_hand_off(self: Any, event: Any) -> None:
        if isinstance(event, SegmentClosed):
            reasons.append(event.reason)
        hand_off(self, event)

    monkeypatch.setattr(pipeline_module.StreamingPipeline, "_hand_off", counting_hand_off)
    with pytest.raises(CaptureLost) as lost:
        session_with_speakers.run(_Unplugged(jfk_path, realtime=True), lambda event: None)
    assert reasons and reasons[-1] == "end_of_stream", reasons  # speech was under way at the unplug
    assert lost.value.pools_clean
    assert len(lost.value.stats.residency_s) == len(reasons)
    assert max(lost.value.stats.residency_s) <= 1.0, lost.value.stats.residency_s
