"""A scripted visit runner and a spectral enroller: stand-ins for the audio
pipeline in tests that are about delivery, lifecycle or the button, not about
what was said. Never used by the product.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.device.lifecycle import VisitContext
from edge_agent.feedback.proto import SCHEMA_VERSION
from edge_agent.proto.edge_agent.v1 import feedback_pb2


@dataclass(frozen=True)
class ScriptLine:
    speaker: str  # "clinician" | "patient"
    t0: float
    t1: float
    text: str


_OPEN_STARTS = ("what", "how", "why", "tell me", "can you tell", "could you describe", "describe")
_EMPATHY = re.compile(r"\b(sounds (really )?(hard|frightening|difficult|worrying)|must be|i can see)\b", re.I)


class ScriptedVisitRunner:
    """A real, simple runner: builds a Feedback from a given transcript script.

    It computes a few timing metrics and question labels from the text so tests
    exercise the full report path (and the wipe) without the audio pipeline.
    """

    def __init__(self, script: Sequence[ScriptLine] | None = None) -> None:
        self._script_source = list(script or DEMO_SCRIPT)
        self._lines: list[ScriptLine] | None = None
        self._ctx: VisitContext | None = None
        self._lock = threading.Lock()
        self.started = 0
        self.stopped = 0
        self.aborted = 0
        self.quotes_seen: list[bool] = []  # the quote policy each stop was asked to build under

    @property
    def holds_visit_state(self) -> bool:
        return self._lines is not None or self._ctx is not None

    def start(self, ctx: VisitContext) -> None:
        with self._lock:
            self._ctx = ctx
            self._lines = list(self._script_source)  # "captured" during the visit
            self.started += 1

    def stop(self, quotes: bool = False) -> feedback_pb2.Feedback:
        with self._lock:
            lines, ctx = self._lines or [], self._ctx
            self._lines, self._ctx = None, None  # wipe per-visit state before returning
            self.stopped += 1
            self.quotes_seen.append(quotes)
        fb = build_feedback(lines)
        if ctx is not None:
            fb.visit_id = ctx.visit_id
        lines.clear()
        return fb

    def quote_clearance(self) -> list[str]:
        """A script's labels are its truth: every clinician line may be quoted (the device's gate is per utterance)."""
        return [ln.text for ln in self._script_source if ln.speaker == "clinician"]

    def abort(self) -> None:
        with self._lock:
            self._lines, self._ctx = None, None
            self.aborted += 1


def build_feedback(lines: Sequence[ScriptLine]) -> feedback_pb2.Feedback:
    fb = feedback_pb2.Feedback(schema_version=SCHEMA_VERSION)
    clin = [ln for ln in lines if ln.speaker == "clinician"]
    pat = [ln for ln in lines if ln.speaker == "patient"]
    talk_c = sum(ln.t1 - ln.t0 for ln in clin)
    talk_all = talk_c + sum(ln.t1 - ln.t0 for ln in pat)
    fb.duration_s = max((ln.t1 for ln in lines), default=0.0)
    if talk_all > 0:
        fb.timing["talk_share"] = round(talk_c / talk_all, 3)
    if talk_c > 0:
        fb.timing["speech_rate_wpm"] = round(sum(len(ln.text.split()) for ln in clin) / talk_c * 60, 1)
    interruptions = sum(1 for c in clin for p in pat if p.t0 < c.t0 < p.t1)
    fb.timing["interruptions"] = float(interruptions)
    first_closed: ScriptLine | None = None
    for ln in clin:
        for sentence in re.split(r"(?<=[?.!])\s+", ln.text):
            if sentence.endswith("?"):
                if sentence.lower().startswith(_OPEN_STARTS):
                    fb.label_counts["open_question"] += 1
                else:
                    fb.label_counts["closed_question"] += 1
                    first_closed = first_closed or ln
            if _EMPATHY.search(sentence):
                fb.label_counts["empathy"] += 1
    if interruptions:
        cut = next(c for c in clin for p in pat if p.t0 < c.t0 < p.t1)
        fb.observations.add(
            behaviour="interruptions", at_s=cut.t0, moment="you started speaking while the patient was still talking",
            clinician_quote=cut.text[:120], alternative="let the patient finish; a pause of two seconds usually signals they are done",
        )
    if first_closed is not None and fb.label_counts["open_question"] == 0:
        fb.observations.add(
            behaviour="closed_question", at_s=first_closed.t0, moment="your first question could be answered with yes or no",
            clinician_quote=first_closed.text[:120], alternative="open with 'What brings you in today?' and let the answer run",
        )
    return fb


DEMO_SCRIPT = (
    ScriptLine("clinician", 0.0, 2.0, "Hello, I'm the doctor today. What brings you in?"),
    ScriptLine("patient", 2.5, 12.0, "I've had this pain in my side for a week and it keeps me up at night."),
    ScriptLine("clinician", 9.0, 10.5, "Any fever?"),
    ScriptLine("patient", 11.0, 12.5, "No, no fever."),
    ScriptLine("clinician", 13.0, 16.0, "That sounds really hard. How has it affected your sleep?"),
    ScriptLine("patient", 16.5, 22.0, "I wake up every few hours."),
)


class SpectralVoiceEnroller:
    """A real, simple enroller: 32 log band energies, L2-normalised (not a speaker model)."""

    bands = 32
    # its "speaker model" (the device returns it with each voiceprint and checks phone starts against it)
    model_id = "spectral-bands-32@test"

    def enroll(self, pcm: np.ndarray, sample_rate: int) -> list[float]:
        x = pcm.astype(np.float32) / 32768.0
        frame = 512
        usable = (len(x) // frame) * frame
        spec = np.abs(np.fft.rfft(x[:usable].reshape(-1, frame) * np.hanning(frame), axis=1)) ** 2
        edges = np.linspace(0, spec.shape[1], self.bands + 1, dtype=int)
        energies = np.array([spec[:, a:b].mean() for a, b in zip(edges[:-1], edges[1:])], dtype=np.float64)
        vec = np.log1p(energies * 1e3)
        norm = float(np.linalg.norm(vec)) or 1.0
        x.fill(0)  # our own float copy of the audio
        spec.fill(0)
        return [float(v) for v in vec / norm]
