"""One person alone, no voiceprint: the report must not pretend to know who is the patient.

Without a voiceprint nothing tells the device how many people spoke: the whole-visit
clustering finds its best two groups, and one real reader split in two is about as far
apart as two similar real voices (centroid cosine 0.52-0.97 against 0.49-0.90,
docs/speakers.md "One voice or two"). Before this, ``edge-agent transcribe`` on one
reader called a quarter of his speech "patient" and said nothing. Now the run (and the
visit report's audio quality) says the labels are uncertain, and a voiceprint settles it.

Real Whisper, real speaker encoder, real LibriSpeech voices; nothing here is timed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.asr.events import FinalTranscript, SpeakerRelabel
from edge_agent.audio.file_source import FileSource
from edge_agent.speakers.encoder import SpeakerEncoder
from edge_agent.speakers.enrol import enrol
from tests.one_voice import READER, one_reader_wav
from tests.paths import REPO_ROOT
from tools.realvoice.generate import load_utterance, reader_utterances


def _run(session: Any, audio: Path, voiceprint: Any = None) -> tuple[Any, set[str]]:
    speakers: dict[tuple[int, float], str] = {}

    def sink(event: object) -> None:
        if isinstance(event, FinalTranscript):
            speakers[(event.utterance.segment_id, round(event.utterance.t0, 3))] = event.utterance.speaker
        elif isinstance(event, SpeakerRelabel):
            speakers[(event.segment_id, round(event.t0, 3))] = event.speaker

    stats, _ = session.run(FileSource(audio), sink, voiceprint)
    return stats, set(speakers.values())


def test_one_reader_without_a_voiceprint_is_reported_uncertain(session_with_speakers: Any, tmp_path: Path) -> None:
    stats, roles = _run(session_with_speakers, one_reader_wav(tmp_path / "one-reader.wav"))
    assert stats.utterances >= 3
    assert stats.speakers_uncertain, roles


def test_one_reader_with_his_voiceprint_is_one_clinician(session_with_speakers: Any, tmp_path: Path) -> None:
    enrolment = np.concatenate([load_utterance(s) for s in reader_utterances(READER)[6:9]])  # utterances the visit does not use
    voiceprint = enrol(enrolment, SpeakerEncoder())
    stats, roles = _run(session_with_speakers, one_reader_wav(tmp_path / "one-reader.wav"), voiceprint)
    assert not stats.speakers_uncertain
    assert roles == {"clinician"}, roles


def test_two_distinct_real_voices_are_not_reported_uncertain(session_with_speakers: Any) -> None:
    data = REPO_ROOT / "tests" / "data" / "realvoice"
    ref = json.loads((data / "visit00_cross_1998_2609_close.json").read_text())
    stats, roles = _run(session_with_speakers, data / ref["audio"])
    assert roles == {"clinician", "patient"}, roles
    assert not stats.speakers_uncertain


def test_the_visit_report_tells_the_clinician_and_the_phone_shows_it(session_with_speakers: Any, tmp_path: Path) -> None:
    """The device's own visit runner: the flag rides in the sealed report's audio quality to the phone's text."""
    import time

    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.device.lifecycle import VisitContext
    from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
    from edge_agent.phone.client import render_report

    wav = one_reader_wav(tmp_path / "one-reader.wav")
    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(wav), VisitPolicy())
    runner.start(VisitContext("v-onevoice0000000", int(time.time()), 600, request_stop=lambda reason: None))
    assert runner.wait_capture_end(120)
    report = runner.stop()
    assert report.quality.speakers_uncertain
    text = render_report(report)
    assert "could not reliably tell your voice from the patient's" in text and "Enrol your voice" in text, text


def test_another_clinicians_voiceprint_is_never_heard_and_the_report_says_so(session_with_speakers: Any, tmp_path: Path) -> None:
    """The patient alone in the room (reader 2033) while another clinician's voiceprint (reader 1998) is enrolled.

    Before: nothing noticed that the enrolled voice never spoke; the voiceprint named one half of
    the patient's voice "clinician" (27 % of his words) and the report said nothing. Now the
    voiceprint is reported as never heard, the labels are decided without it, and the sealed
    report's quality carries the flag to the phone's text; no quote rests on those labels.
    """
    import time

    from edge_agent.behaviours.classifier import BehaviourClassifier
    from edge_agent.device.lifecycle import VisitContext
    from edge_agent.device.visit import PipelineVisitRunner, VisitPolicy
    from edge_agent.feedback.quality import VOICEPRINT_UNHEARD
    from edge_agent.phone.client import render_report

    other = np.concatenate([load_utterance(s) for s in reader_utterances("1998")[6:9]])
    voiceprint = enrol(other, SpeakerEncoder())
    wav = one_reader_wav(tmp_path / "one-reader.wav")
    stats, _ = _run(session_with_speakers, wav, voiceprint)
    assert stats.voiceprint_unheard

    runner = PipelineVisitRunner(session_with_speakers, BehaviourClassifier(), lambda: FileSource(wav), VisitPolicy())
    ctx = VisitContext("v-unheard00000000", int(time.time()), 600, voiceprint=np.array(voiceprint.embedding, np.float32),
                       request_stop=lambda reason: None)
    runner.start(ctx)
    assert runner.wait_capture_end(120)
    report = runner.stop()
    assert report.quality.voiceprint_unheard
    assert not any(o.clinician_quote for o in report.observations)
    assert VOICEPRINT_UNHEARD in render_report(report)


def test_the_clinicians_own_voiceprint_is_heard(session_with_speakers: Any, tmp_path: Path) -> None:
    enrolment = np.concatenate([load_utterance(s) for s in reader_utterances(READER)[6:9]])
    stats, _ = _run(session_with_speakers, one_reader_wav(tmp_path / "one-reader.wav"), enrol(enrolment, SpeakerEncoder()))
    assert not stats.voiceprint_unheard
