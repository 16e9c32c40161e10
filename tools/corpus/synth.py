"""Two-speaker test conversations: PriMock57 lines spoken by espeak-ng at their recorded times.

PriMock57 gives real clinician/patient turn timing but no redistributable
audio we can ship, so we re-voice each turn with espeak-ng (one voice per
role) and place it at the consultation's own start time. Turn-taking, pauses
and cross-role overlaps are therefore the recorded ones, while the exact text
and timing of every placed line is known: ground truth for VAD, ASR, role
attribution and timing-behaviour tests.

Everything happens in memory: espeak-ng writes WAV to a pipe (``--stdout``),
text goes in on stdin (so a line that starts with "-" is never read as an
option and nothing lands in a temp file), and soxr resamples to 16 kHz.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from edge_agent.errors import EdgeAgentError
from tools.corpus.primock import Consultation, Turn, load_consultation

SAMPLE_RATE = 16000
ROLES = ("doctor", "patient")

# espeak-ng words per minute: its default (175) sounds rushed in dialogue; 165
# keeps tiny.en WER low while most PriMock turns still fit their slot.
DEFAULT_RATE = 165
# Fitting never goes outside these: below ~120 wpm espeak drawls, above ~280
# whisper-tiny starts dropping words, and espeak itself accepts 80..450.
MIN_RATE = 120
MAX_RATE = 280
# A turn may run this much past its recorded end before we speed it up
# (espeak is a little slower than people on fillers like "um", and fitting
# every 5 % overshoot would make rates jitter for no audible gain).
FIT_TOLERANCE = 1.08
# Minimum silence between two turns of the same speaker: one person cannot
# overlap themselves, and a VAD needs *some* gap to see two utterances.
SAME_ROLE_GAP_S = 0.12
# Gap kept before the other speaker's next line when the recording had no
# overlap there (real floor handovers are often only 0.1-0.2 s).
OTHER_ROLE_GAP_S = 0.05
# Peak of the final mix (-1 dBFS): loud enough for a VAD, never clipping.
MIX_PEAK = 0.89
# Per-turn peak before mixing, so the two voices are equally loud and two
# overlapping turns cannot sum above 1.0 before normalisation.
TURN_PEAK = 0.5

# Voices checked on the build machine (espeak-ng 1.51): base language voices
# from gmw/ plus a variant from voices/!v. mbrola voices are listed by
# `espeak-ng --voices` but need the mbrola binary, so they are not used.
# Order matters: pairs are drawn as (male, female) or (female, male) so the
# two roles differ in pitch as well as accent (speaker attribution must be
# possible, as with real clinician/patient pairs).
MALE_VOICES: tuple[str, ...] = (
    "en-us+m3",
    "en+m1",
    "en-gb-x-rp+m5",
    "en-029+m2",
    "en-gb-scotland+m4",
    "en-us+m7",
)
FEMALE_VOICES: tuple[str, ...] = (
    "en-gb+f3",
    "en-us+f2",
    "en-gb-scotland+f4",
    "en-us+f1",
    "en-gb-x-rp+f5",
)
VOICES: tuple[str, ...] = MALE_VOICES + FEMALE_VOICES
# (doctor, patient) pairs for the speaker benchmark: a different pair per conversation,
# cycled in this order so its figures are comparable between runs.
VOICE_PAIRS: tuple[tuple[str, str], ...] = (
    ("en-us+m3", "en-gb+f3"),
    ("en-gb+f2", "en-us+m1"),
    ("en-gb-x-rp+m2", "en-us+f4"),
    ("en-us+f1", "en-gb-scotland+m4"),
    ("en-029+m5", "en-gb+f5"),
)

_ESPEAK_MISSING = "espeak-ng not found; install it with: apt-get install espeak-ng"


@dataclass(frozen=True)
class PlacedTurn:
    """One line as it actually sounds in the mix (times in seconds from the start of the audio)."""

    role: str  # "doctor" | "patient"
    t0: float  # first sample of this line's speech
    t1: float  # last sample of this line's speech
    text: str
    voice: str
    rate: int  # espeak-ng -s used (words per minute)
    source_start: float  # recorded start/end in the consultation (seconds)
    source_end: float
    # How far the line was pushed past its recorded start so that its speaker
    # does not overlap their own previous line (0.0 for nearly every turn).
    shift_s: float = 0.0


@dataclass
class SynthConversation:
    audio: np.ndarray  # float32, mono, peak <= MIX_PEAK
    sample_rate: int
    turns: list[PlacedTurn]
    voices: dict[str, str]  # role -> espeak-ng voice
    consultation_id: str = ""
    start_s: float = 0.0  # excerpt start on the consultation's clock

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def reference(self) -> dict[str, Any]:
        """JSON-ready ground truth: the turns as placed, plus where they came from."""
        turns = []
        for t in self.turns:
            d = asdict(t)
            for k in ("t0", "t1", "source_start", "source_end", "shift_s"):
                d[k] = round(d[k], 3)
            turns.append(d)
        return {
            "source": f"PriMock57 {self.consultation_id}" if self.consultation_id else "PriMock57",
            "consultation_id": self.consultation_id,
            "start_s": round(self.start_s, 3),
            "duration_s": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "voices": dict(self.voices),
            "turns": turns,
        }


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EdgeAgentError(_ESPEAK_MISSING)
    return exe


def _trim(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Cut espeak-ng's leading/trailing silence so t0/t1 mark the speech itself."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if not len(loud):
        return audio[:0]
    return audio[loud[0] : loud[-1] + 1]


def speak(text: str, voice: str = "en-us+m3", rate: int = DEFAULT_RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 16 kHz mono, edge silence trimmed.

    Raises EdgeAgentError when espeak-ng is missing, the voice does not exist,
    or the text produces no audio.
    """
    # Newlines would make espeak-ng pause as at a paragraph; a dialogue line is one breath group.
    line = " ".join(text.split())
    if not line:
        return np.zeros(0, np.float32)
    rate = int(min(max(rate, 80), 450))  # espeak-ng's own accepted range
    if not voice_exists(voice):
        raise EdgeAgentError(f"espeak-ng has no voice {voice!r}; list voices with: espeak-ng --voices=en")
    try:
        proc = subprocess.run(
            [_espeak(), "--stdout", "-v", voice, "-s", str(rate)],
            input=line.encode("utf-8"),
            capture_output=True,
            timeout=60,
        )
    except FileNotFoundError:
        raise EdgeAgentError(_ESPEAK_MISSING) from None
    except subprocess.TimeoutExpired:
        raise EdgeAgentError(f"espeak-ng took over 60 s on a {len(line)}-character line; shorten the text") from None
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not proc.stdout:
        raise EdgeAgentError(f"espeak-ng failed for voice {voice!r}: {err or 'no audio'}; list voices with: espeak-ng --voices=en")
    # espeak streams a WAV whose header sizes are placeholders; libsndfile reads it to EOF.
    audio, native = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if native != SAMPLE_RATE:
        mono = soxr.resample(mono, native, SAMPLE_RATE, quality="HQ")
    return _trim(np.ascontiguousarray(mono, dtype=np.float32))


def _voice_table(which: str) -> set[str]:
    """Names espeak-ng accepts from ``espeak-ng --voices[=variant]``: language codes and file names."""
    try:
        out = subprocess.run([_espeak(), f"--voices{which}"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        raise EdgeAgentError(_ESPEAK_MISSING) from None
    names: set[str] = set()
    for row in out.splitlines()[1:]:
        cols = row.split()
        if len(cols) >= 5 and not cols[4].startswith("mb/"):  # mbrola voices need the mbrola binary
            names.update({cols[1].lower(), cols[4].lower(), cols[4].rsplit("/", 1)[-1].lower()})
    return names


@lru_cache(maxsize=1)
def _known_voices() -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(_voice_table("")), frozenset(_voice_table("=variant"))


@lru_cache(maxsize=None)
def voice_exists(voice: str) -> bool:
    """True when espeak-ng has ``voice`` ("base" or "base+variant").

    Checked against espeak-ng's own voice lists, not by trying it: espeak-ng
    1.51 silently falls back to another voice for many unknown names
    ("en-zz", "en-us+zz", "no-such-voice" all speak), so a typo would
    otherwise give a wrong but plausible conversation.
    """
    bases, variants = _known_voices()
    base, _, variant = voice.lower().partition("+")
    return base in bases and (not variant or variant in variants)


def available_voices() -> list[str]:
    """The project's candidate voices that this espeak-ng install really has."""
    return [v for v in VOICES if voice_exists(v)]


def choose_voices(seed: int | str = 0) -> dict[str, str]:
    """A (doctor, patient) voice pair of opposite voice gender, chosen deterministically from ``seed``.

    Different seeds (e.g. consultation ids) give different pairs, so a test set
    built from several conversations does not reuse one pair everywhere.
    """
    key = seed if isinstance(seed, int) else zlib.crc32(seed.encode("utf-8"))
    rng = random.Random(key)
    males = [v for v in MALE_VOICES if voice_exists(v)]
    females = [v for v in FEMALE_VOICES if voice_exists(v)]
    if not males or not females:
        raise EdgeAgentError("espeak-ng has none of the expected English voices; reinstall espeak-ng-data")
    male, female = rng.choice(males), rng.choice(females)
    doctor, patient = (male, female) if rng.random() < 0.5 else (female, male)
    return {"doctor": doctor, "patient": patient}


def _fit(text: str, voice: str, slot_s: float, hard_s: float, rate: int) -> tuple[np.ndarray, int]:
    """Speak ``text`` so it roughly fits ``slot_s`` and, if possible, ends before ``hard_s``.

    ``slot_s`` is the recorded duration (overrun by FIT_TOLERANCE is fine);
    ``hard_s`` is where a new overlap would start (the other speaker's next
    line, or this speaker's own next line). The rate is raised at most twice.
    """
    clip = speak(text, voice, rate)
    allowed = min(slot_s * FIT_TOLERANCE, hard_s)
    target = min(slot_s, hard_s)
    for _ in range(2):
        dur = len(clip) / SAMPLE_RATE
        if target <= 0 or dur <= allowed or rate >= MAX_RATE:
            break
        # espeak's duration is close to inversely proportional to -s, but pauses
        # scale less, so aim 3 % short and allow one correction pass.
        rate = int(min(MAX_RATE, max(MIN_RATE, np.ceil(rate * dur / (target * 0.97)))))
        clip = speak(text, voice, rate)
    return clip, rate


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.?!;:])")
_REPEATED_PUNCT = re.compile(r"([,.?!;:])(?:\s*[,.;:])+")
_NO_SPACE_AFTER_PUNCT = re.compile(r"([,?!;:]|(?<![A-Z])\.)(?=[A-Za-z])")


def tidy_text(text: str) -> str:
    """Close the " ," / ", ." gaps left where transcriber tags were stripped.

    The reference text is what espeak-ng says, so both use this form.
    """
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))
    text = _REPEATED_PUNCT.sub(r"\1", text)
    # "um...yeah" became "um.yeah": a WER normaliser would read one word there.
    return _NO_SPACE_AFTER_PUNCT.sub(r"\1 ", text).strip(" ,;:")


def _window_turns(consultation: Consultation, start_s: float, end_s: float | None) -> list[Turn]:
    # Only whole turns: a line cut at the window edge would not match its reference text.
    return [t for t in consultation.turns if t.start >= start_s and (end_s is None or t.start < end_s)]


def synthesise(
    consultation: Consultation | str,
    start_s: float = 0.0,
    max_duration_s: float | None = None,
    voices: dict[str, str] | tuple[str, str] | None = None,
    seed: int | str | None = None,
    rate: int = DEFAULT_RATE,
    tail_s: float = 0.5,
) -> SynthConversation:
    """Voice a consultation (or a window of it) as a two-speaker mix.

    ``start_s``/``max_duration_s`` pick an excerpt on the consultation clock;
    with ``max_duration_s`` the audio is exactly that long and turns whose
    speech would run past the end are left out (never cut mid-line). Without
    it the audio ends ``tail_s`` after the last turn. ``voices`` maps role to
    espeak-ng voice (or is a (doctor, patient) tuple); otherwise a pair is
    chosen from ``seed`` (default: the consultation id).
    """
    cons = load_consultation(consultation) if isinstance(consultation, str) else consultation
    if max_duration_s is not None and max_duration_s <= 0:
        raise EdgeAgentError(f"max_duration_s must be positive, got {max_duration_s}")
    if isinstance(voices, tuple):
        voices = dict(zip(ROLES, voices, strict=True))
    role_voice = dict(voices) if voices else choose_voices(cons.id if seed is None else seed)
    for role in ROLES:
        if role not in role_voice:
            raise EdgeAgentError(f"no voice given for role {role!r}; pass voices for doctor and patient")
        if not voice_exists(role_voice[role]):
            raise EdgeAgentError(f"espeak-ng has no voice {role_voice[role]!r}; list voices with: espeak-ng --voices=en")

    end_s = None if max_duration_s is None else start_s + max_duration_s
    turns = _window_turns(cons, start_s, end_s)
    limit = None if max_duration_s is None else int(round(max_duration_s * SAMPLE_RATE))

    placed: list[tuple[int, np.ndarray, PlacedTurn]] = []
    last_end: dict[str, int] = {}  # role -> sample after that role's last placed turn
    for i, turn in enumerate(turns):
        # The slot ends at the recorded end, or earlier if this role's next line
        # starts sooner (transcribers sometimes let a speaker's intervals touch).
        later = turns[i + 1 :]
        nxt_same = next((u.start for u in later if u.role == turn.role), None)
        nxt_other = next((u.start for u in later if u.role != turn.role), None)
        slot_end = turn.end if nxt_same is None else min(turn.end, nxt_same - SAME_ROLE_GAP_S)
        # Hard limit: do not invent overlaps. If the recorded line ended before
        # the other speaker's next line, the voiced one should too (a slow TTS
        # line would otherwise look like an interruption in timing metrics).
        hard_end = float("inf") if nxt_same is None else nxt_same - SAME_ROLE_GAP_S
        if nxt_other is not None and turn.end <= nxt_other:
            hard_end = min(hard_end, nxt_other - OTHER_ROLE_GAP_S)
        voice = role_voice[turn.role]
        text = tidy_text(turn.text)
        if not text.strip(".?!"):
            continue
        clip, used_rate = _fit(text, voice, slot_end - turn.start, hard_end - turn.start, rate)
        if not len(clip):
            continue
        recorded_at = int(round((turn.start - start_s) * SAMPLE_RATE))
        at = recorded_at
        # A role never overlaps itself: if its previous line still runs, wait for it.
        floor = last_end.get(turn.role, 0) + int(SAME_ROLE_GAP_S * SAMPLE_RATE)
        if turn.role in last_end and at < floor:
            at = floor
        if limit is not None and at + len(clip) > limit:
            continue
        last_end[turn.role] = at + len(clip)
        ref = PlacedTurn(
            role=turn.role,
            t0=at / SAMPLE_RATE,
            t1=(at + len(clip)) / SAMPLE_RATE,
            text=text,
            voice=voice,
            rate=used_rate,
            source_start=turn.start,
            source_end=turn.end,
            shift_s=(at - recorded_at) / SAMPLE_RATE,
        )
        placed.append((at, clip, ref))

    if not placed:
        span = "" if max_duration_s is None else f" between {start_s:g} s and {start_s + max_duration_s:g} s"
        raise EdgeAgentError(f"consultation {cons.id} has no turn that fits{span}; widen the window")

    total = limit if limit is not None else max(at + len(c) for at, c, _ in placed) + int(tail_s * SAMPLE_RATE)
    mix = np.zeros(total, np.float32)
    for at, clip, _ in placed:
        peak = float(np.max(np.abs(clip))) or 1.0
        mix[at : at + len(clip)] += clip * (TURN_PEAK / peak)
    peak = float(np.max(np.abs(mix)))
    if peak > 0:
        mix *= MIX_PEAK / peak
    placed.sort(key=lambda p: (p[2].t0, p[2].t1))
    return SynthConversation(
        audio=mix,
        sample_rate=SAMPLE_RATE,
        turns=[p[2] for p in placed],
        voices={r: role_voice[r] for r in ROLES},
        consultation_id=cons.id,
        start_s=start_s,
    )


def speak_lines(lines: list[str], voice: str, gap_s: float = 0.3) -> np.ndarray:
    """Several lines by one voice, joined with short pauses (enrolment audio)."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    parts = [part for line in lines for part in (speak(line, voice), gap)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def opening(consultation: Consultation, seconds: float, voices: tuple[str, str]) -> SynthConversation:
    """The first ``seconds`` of a consultation (from just before its first line), one voice per role."""
    start = max(0.0, consultation.turns[0].start - 0.5) if consultation.turns else 0.0
    return synthesise(consultation, start_s=start, max_duration_s=seconds, voices=voices)
