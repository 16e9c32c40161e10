"""Two-speaker test conversations: PriMock57 lines spoken by espeak-ng at the recorded times.

A small local helper for the speaker evaluation and tests (the corpus package
may grow a fuller one). Each line is synthesised with one espeak-ng voice per
role and mixed into one 16 kHz float32 track at the turn's recorded start, so
turn-taking, pauses and overlaps are the consultation's own. Only synthetic
audio is produced, in memory.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from edge_agent.errors import EdgeAgentError
from tools.corpus.primock import Consultation, Turn

SAMPLE_RATE = 16000

# (doctor voice, patient voice) pairs: a different pair per conversation.
VOICE_PAIRS: tuple[tuple[str, str], ...] = (
    ("en-us+m3", "en-gb+f3"),
    ("en-gb+f2", "en-us+m1"),
    ("en-gb-x-rp+m2", "en-us+f4"),
    ("en-us+f1", "en-gb-scotland+m4"),
    ("en-029+m5", "en-gb+f5"),
)


@dataclass(frozen=True)
class RefTurn:
    role: str  # "doctor" | "patient" (PriMock57 names)
    t0: float  # seconds: where the synthetic speech of this line starts ...
    t1: float  # ... and ends in the mix
    text: str


@dataclass
class Conversation:
    id: str
    audio: np.ndarray  # 16 kHz mono float32
    turns: list[RefTurn]
    voices: dict[str, str]


def speak(text: str, voice: str, speed: int = 185) -> np.ndarray:
    """``text`` spoken by espeak-ng, 16 kHz float32, leading/trailing silence trimmed."""
    if shutil.which("espeak-ng") is None:
        raise EdgeAgentError("espeak-ng is not installed; apt-get install espeak-ng")
    out = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    audio, rate = sf.read(io.BytesIO(out), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def synthesise(
    consultation: Consultation,
    voices: tuple[str, str],
    max_seconds: float | None = None,
    level: float = 0.5,
) -> Conversation:
    """Mix the consultation's turns (up to ``max_seconds`` of start time) with one voice per role."""
    role_voice = {"doctor": voices[0], "patient": voices[1]}
    turns: list[Turn] = [t for t in consultation.turns if max_seconds is None or t.start < max_seconds]
    if not turns:
        raise EdgeAgentError(f"consultation {consultation.id} has no turns in the first {max_seconds} s")
    origin = turns[0].start - 0.5  # start the mix just before the first line
    clips = [(t, speak(t.text, role_voice[t.role])) for t in turns]
    end = max((t.start - origin) * SAMPLE_RATE + len(c) for t, c in clips)
    mix = np.zeros(int(end) + SAMPLE_RATE // 2, np.float32)
    ref: list[RefTurn] = []
    for turn, clip in clips:
        if not len(clip):
            continue
        at = int(round((turn.start - origin) * SAMPLE_RATE))
        peak = float(np.max(np.abs(clip))) or 1.0
        mix[at : at + len(clip)] += clip * (level / peak)
        ref.append(RefTurn(turn.role, at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE, turn.text))
    np.clip(mix, -1.0, 1.0, out=mix)
    return Conversation(consultation.id, mix, ref, role_voice)


def speak_lines(lines: list[str], voice: str, gap_s: float = 0.3) -> np.ndarray:
    """Several lines by one voice, joined with short pauses (enrolment audio)."""
    parts = []
    for line in lines:
        parts.append(speak(line, voice))
        parts.append(np.zeros(int(gap_s * SAMPLE_RATE), np.float32))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
