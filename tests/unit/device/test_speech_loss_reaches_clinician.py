"""Speech the pipeline could not transcribe reaches the clinician on every report path.

The real pipeline and models on a real recording; decode failures are injected into the
real recogniser (the one thing that cannot be provoked on demand). What is checked is
what a clinician reads: the device visit's sealed report (serialised and read back as the
phone does) and its phone rendering, and the report of ``edge-agent analyze FILE``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_agent.asr.events import PipelineEvent, SegmentDiscarded
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.session import TranscriptionSession
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy, file_factory
from edge_agent.phone.client import render_report
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from tests.slow_decoder import SlowDecoder


class _FirstFinalsFail:
    """The real recogniser whose first ``n`` final decodes fail (a look-ahead, the final, its retry)."""

    def __init__(self, real: Any, n: int) -> None:
        self._real = real
        self._left = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def decode_features(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("final") and self._left > 0:
            self._left -= 1
            raise RuntimeError("injected decode failure")
        return self._real.decode_features(*args, **kwargs)


def _failing_session(real: TranscriptionSession) -> TranscriptionSession:
    return replace(real, engine=_FirstFinalsFail(real.engine, 3))  # type: ignore[arg-type]


def test_a_failed_segment_is_in_the_sealed_visit_report_and_on_the_phone(session_with_speakers: Any, jfk_path: Path) -> None:
    events: list[PipelineEvent] = []
    registry = Registry()
    runner = PipelineVisitRunner(_failing_session(session_with_speakers), BehaviourClassifier(), file_factory(jfk_path, realtime=False),
                                 VisitPolicy(), on_event=events.append, metrics=registry)
    runner.start(VisitContext("v-loss000000000a", int(time.time()), 600, request_stop=lambda reason: None))
    assert runner.wait_capture_end(120)
    report = feedback_pb2.Feedback.FromString(runner.stop().SerializeToString())  # as sealed and opened
    failed = [e for e in events if isinstance(e, SegmentDiscarded) and e.reason == "decode_failed"]
    assert failed, "the injected failure must surface as a discarded event"
    assert report.quality.failed_segments == len(failed) and report.quality.speech_lost_s > 0
    assert registry.get("edge_agent_discarded_segments_total", reason="decode_failed") == len(failed)
    # and in the counter an operator alerts on, and in what the metrics endpoint serves
    assert registry.get("edge_agent_dropped_segments_total") == report.quality.dropped_segments == len(failed)
    assert f"edge_agent_dropped_segments_total {len(failed)}" in registry.render()
    assert "could not be transcribed" in render_report(report)


def test_a_failed_segment_is_in_the_analyze_report(session_with_speakers: Any, jfk_path: Path) -> None:
    from edge_agent.cli.analyze import report_for_audio

    fb = report_for_audio(jfk_path, None, _failing_session(session_with_speakers))
    assert "could not be transcribed" in fb.render()
    quality = fb.to_dict()["quality"]
    assert quality["failed_segments"] >= 1 and quality["speech_lost_s"] > 0


class _LiveFile:
    """A recording delivered as a microphone does: it cannot wait for the consumer (``live``)."""

    live = True

    def __init__(self, path: Path) -> None:
        from edge_agent.audio.file_source import FileSource

        self._src = FileSource(path)
        self.description = self._src.description
        self.dropped_frames = 0

    def frames(self, pool: Any) -> Any:
        return self._src.frames(pool)

    def close(self) -> None:
        self._src.close()


def test_speech_dropped_for_want_of_a_buffer_is_reported_as_dropped_not_as_a_failed_decode(session: Any) -> None:
    """A live source with the decoder behind: speech is lost for want of a feature buffer. It must be a
    ``discarded`` event whose reason says so, counted once in dropped_segments, not also as a failed decode."""
    from edge_agent.device.pipeline import PipelineConfig, StreamingPipeline
    from edge_agent.device.visit import audio_quality

    path = Path(__file__).resolve().parents[2] / "data" / "realvoice" / "visit00_cross_1998_2609_close.flac"
    events: list[PipelineEvent] = []
    registry = Registry()
    cfg = replace(PipelineConfig(), segment_buffers=2, partials=False)
    pipeline = StreamingPipeline(cfg, SlowDecoder(session.engine, 0.5, finals_only=True), events.append, metrics=registry,
                                 max_segment_samples=session.engine.max_samples)
    stats = pipeline.run(_LiveFile(path))  # type: ignore[arg-type]
    discarded = [e for e in events if isinstance(e, SegmentDiscarded)]
    no_buffer = [e for e in discarded if e.reason == "no_buffer"]
    assert no_buffer, f"the decoder was behind on a live source; discards: {[e.reason for e in discarded]}"
    assert not [e for e in discarded if e.reason == "decode_failed"], "nothing failed to decode"
    assert stats.dropped_segments >= len(no_buffer) and stats.worker_errors == 0
    assert registry.get("edge_agent_discarded_segments_total", reason="no_buffer") == len(no_buffer)
    quality = audio_quality([stats])
    assert quality.failed_segments == 0 and quality.dropped_segments == stats.dropped_segments and quality.speech_lost_s > 0
    assert pipeline.pools.all_zero()


def test_a_visit_whose_speech_all_failed_is_not_reported_as_silence(session_with_speakers: Any, jfk_path: Path) -> None:
    """Every segment failed to decode: speech was heard. The phone must not say 'No speech was heard ... the
    room microphone may be muted or faulty' (IT would look at the wrong thing) beside 'could not be transcribed'."""
    runner = PipelineVisitRunner(replace(session_with_speakers, engine=_FirstFinalsFail(session_with_speakers.engine, 10_000)),
                                 BehaviourClassifier(), file_factory(jfk_path, realtime=False), VisitPolicy())
    runner.start(VisitContext("v-loss000000000b", int(time.time()), 600, request_stop=lambda reason: None))
    assert runner.wait_capture_end(120)
    report = feedback_pb2.Feedback.FromString(runner.stop().SerializeToString())
    assert not report.observations and report.quality.failed_segments >= 1
    text = render_report(report)
    assert "could not be transcribed" in text
    assert "No speech was heard" not in text and "muted" not in text, text


def test_transcribe_exits_4_when_speech_was_lost(session_with_speakers: Any, jfk_path: Path, monkeypatch: Any, capsys: Any) -> None:
    """`transcribe --jsonl` whose decodes failed prints what it has and the summary, and its exit status says the
    output is incomplete (it exited 0: a program reading the finals took a partial transcript for a whole one)."""
    import importlib
    import json

    from edge_agent.device.pipeline import PipelineConfig

    transcribe = importlib.import_module("edge_agent.cli.transcribe")  # the package exports a command of that name

    failing = _failing_session(session_with_speakers)
    monkeypatch.setattr(TranscriptionSession, "load", classmethod(lambda cls, *a, **k: failing))
    monkeypatch.setattr(transcribe, "harden_process", lambda: None)  # process-wide limits: not for the test runner
    code = transcribe.run_transcribe(PipelineConfig(), jfk_path, mic=False, mic_device=None, realtime=False, jsonl=True)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = records[-1]
    assert summary["type"] == "summary" and summary["discarded"].get("decode_failed", 0) >= 1 and summary["pool_zeroed"]
    assert code == transcribe.SPEECH_LOST_EXIT


def test_transcribe_exits_0_when_nothing_was_lost(session: Any, jfk_path: Path, monkeypatch: Any, capsys: Any) -> None:
    import importlib
    import json

    from edge_agent.device.pipeline import PipelineConfig

    transcribe = importlib.import_module("edge_agent.cli.transcribe")  # the package exports a command of that name

    monkeypatch.setattr(TranscriptionSession, "load", classmethod(lambda cls, *a, **k: session))
    monkeypatch.setattr(transcribe, "harden_process", lambda: None)
    code = transcribe.run_transcribe(PipelineConfig(), jfk_path, mic=False, mic_device=None, realtime=False, jsonl=True)
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["dropped_segments"] == 0 and summary["discarded"] == {} and code == 0
