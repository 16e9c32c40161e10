"""The visit report is computed on final speaker labels, also for a capture resumed after a lost microphone.

A resumed capture run starts its clock at 0; the visit shifts its finals and their relabels onto
the visit's clock. The relabel names the final by (segment, t0 rounded to the millisecond as
emitted): shifting the rounded time and the exact time by the same offset can round apart, and
the relabel was then silently not applied (the report kept a provisional label).
"""

from __future__ import annotations

from typing import Any

from edge_agent.asr.events import FinalTranscript, SpeakerRelabel
from edge_agent.behaviours.classifier import BehaviourClassifier
from edge_agent.device.lifecycle import VisitContext
from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy, _VisitState
from edge_agent.proto.edge_agent.v1 import feedback_pb2
from edge_agent.transcript import Utterance, Word


def _final(seg: int, t0: float, t1: float, text: str, speaker: str) -> FinalTranscript:
    words = tuple(Word(w, t0 + i * 0.3, t0 + i * 0.3 + 0.25) for i, w in enumerate(text.split()))
    return FinalTranscript(Utterance(t0, t1, text, words, speaker, 0.6, seg), 0.01, 0.2)


def test_relabels_of_a_resumed_capture_reach_the_report(session_with_speakers: Any) -> None:
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: None, VisitPolicy())  # type: ignore[arg-type,return-value]
    state = _VisitState(VisitContext("v-relabel0000000", 0, 600))
    # the first run (visit clock = run clock)
    first = runner._sink(state, 0.0)
    first(_final(0, 0.5, 2.0, "Hello, what brings you in today?", "clinician"))
    first(_final(1, 2.5, 6.0, "I have had a cough for two weeks now.", "patient"))
    # the microphone came back 7.0002 s into the visit: a second run, its clock from 0 again
    second = runner._sink(state, 7.0002)
    t0s = [1.0004, 4.2006, 8.3004]  # run-clock starts whose rounding differs once shifted
    second(_final(0, t0s[0], 3.9, "And has it been getting worse at night?", "clinician"))
    second(_final(1, t0s[1], 7.9, "Yes, it keeps me awake most nights.", "clinician"))  # provisional: wrong
    second(_final(2, t0s[2], 11.0, "It gets worse when I lie down.", "clinician"))  # provisional: wrong
    # the run's final decision: those two were the patient (emitted with the time as the pipeline rounds it)
    second(SpeakerRelabel(1, round(t0s[1], 3), "patient", 0.9))
    second(SpeakerRelabel(2, round(t0s[2], 3), "patient", 0.9))
    state.stop_event.set()
    runner._state = state
    report = feedback_pb2.Feedback.FromString(runner.stop().SerializeToString())
    speakers = [(round(t.start_s, 1), t.speaker) for t in report.timeline]
    assert [s for _, s in speakers] == [feedback_pb2.SPEAKER_CLINICIAN, feedback_pb2.SPEAKER_PATIENT, feedback_pb2.SPEAKER_CLINICIAN,
                                         feedback_pb2.SPEAKER_PATIENT, feedback_pb2.SPEAKER_PATIENT], speakers


def test_a_visit_cut_short_by_a_worker_bug_still_reports_on_final_labels(session_with_speakers: Any) -> None:
    """A worker fault ends the run and the report covers the audio before it: that report too is built on
    the speakers decided with all the evidence heard, never on the live (provisional) labels."""
    import time
    from pathlib import Path

    from edge_agent.audio.file_source import FileSource

    path = Path(__file__).resolve().parents[2] / "data" / "realvoice" / "visit01_same_1998_3331_far.flac"
    seen: list[object] = []

    def live_view_with_a_bug(event: object) -> None:
        seen.append(event)
        if sum(isinstance(e, FinalTranscript) for e in seen) == 18:
            raise RuntimeError("bug in a consumer of finals")

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(path), VisitPolicy(),
                                 on_event=live_view_with_a_bug)
    runner.start(VisitContext("v-relabel0000001", int(time.time()), 600))
    assert runner.wait_capture_end(180)
    report = runner.stop()
    assert runner.last_runs[0].worker_errors == 1
    finals = [e.utterance for e in seen if isinstance(e, FinalTranscript)]  # the 18th was kept by the visit, then the view raised
    relabels = {(e.segment_id, round(e.t0, 3)): e.speaker for e in seen if isinstance(e, SpeakerRelabel)}
    assert relabels, "no-enrolment far-field visit: some live labels are revised with the whole run's evidence"
    names = {"clinician": feedback_pb2.SPEAKER_CLINICIAN, "patient": feedback_pb2.SPEAKER_PATIENT}
    expected = [names.get(relabels.get((u.segment_id, round(u.t0, 3)), u.speaker), feedback_pb2.SPEAKER_OTHER) for u in finals]
    assert [t.speaker for t in report.timeline] == expected


def test_a_microphone_that_never_came_back_is_in_the_report(session_with_speakers: Any, jfk_16k: Any, tmp_path: Any) -> None:
    """The capture was lost mid-visit and the microphone did not return before the stop: everything after the
    loss is missing, and the report must say so (it counted interruptions as capture runs minus one: 0 here)."""
    import time

    import soundfile as sf

    from edge_agent.audio.file_source import FileSource
    from edge_agent.errors import AudioInputError
    from edge_agent.phone.client import render_report

    whole = tmp_path / "whole.flac"
    sf.write(str(whole), jfk_16k, 16000)
    dying = tmp_path / "dying.flac"  # a device that stops delivering after a few seconds
    dying.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    opened: list[int] = []

    def microphone() -> FileSource:
        opened.append(1)
        if len(opened) > 1:
            raise AudioInputError("no capture device")  # unplugged, and not back
        return FileSource(dying)

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), microphone, VisitPolicy(mic_retry_s=0.1))
    runner.start(VisitContext("v-miclost0000000", int(time.time()), 600))
    deadline = time.monotonic() + 60
    while len(opened) < 3 and time.monotonic() < deadline:  # lost, then looked for again (and not found)
        time.sleep(0.1)
    report = feedback_pb2.Feedback.FromString(runner.stop().SerializeToString())
    assert report.quality.capture_interruptions == 1, report.quality
    assert "the microphone dropped out 1 time(s)" in render_report(report)
