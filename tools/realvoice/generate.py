"""Deterministic two-speaker "visits" from real LibriSpeech voices (issue 12).

A visit is a clinician + patient conversation assembled from real read speech:
a short opening question, a long uninterrupted patient opening statement
(several utterances joined with no pause), then alternating turns with gaps
drawn from real turn-taking (mostly 0-0.5 s, some 1-2 s pauses, some
0.2-1 s overlaps), later long turns, and short back-channels cut from the
listener's own recordings. Each visit is rendered

* ``close``: the dry mix (close-talk), and
* ``far``: a simulated room (pyroomacoustics image sources, RT60 0.3-0.6 s,
  talkers 1-2 m from the microphone) plus noise at 10-20 dB SNR made of
  babble from *other* LibriSpeech talkers in the same room and stationary
  (pink) noise.

Enrolment audio for the clinician (close-talk, as a phone records it) comes
from utterances that the visit does not use. Each rendering gets a FLAC (16 kHz mono, 16 bit) and a JSON reference
(who speaks where, turn boundaries, overlaps, back-channels, sources, room).

Everything is drawn from ``numpy.random.default_rng([seed, visit_index])``:
the same seed gives the same bytes.

    python -m tools.realvoice.generate --out DIR [--seed 12] [--visits 4] [--duration 150]
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

SR = 16000
FRAME = SR // 50  # 20 ms analysis frames for trimming and pause finding
REPO = Path(__file__).resolve().parents[2]
TARGET_DBFS = -26.0  # speech level of each utterance before mixing (active frames)
FAR_DBFS = -32.0  # reverberant speech level at the room microphone (active samples)
FORMAT_VERSION = 1

# Clinician/patient pairs over the five test-other readers (1998 F, 3331 F,
# 1688 M, 2033 M, 2609 M). Cross-sex and same-sex pairs alternate by visit index.
CROSS_PAIRS: tuple[tuple[str, str], ...] = (("1998", "2609"), ("1688", "3331"), ("3331", "2033"), ("2609", "1998"), ("2033", "1998"))
SAME_PAIRS: tuple[tuple[str, str], ...] = (("1998", "3331"), ("1688", "2033"), ("3331", "1998"), ("2033", "2609"), ("2609", "1688"))


def shared_dir() -> Path:
    env = os.environ.get("EDGE_AGENT_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def voices_dir() -> Path:
    return shared_dir() / "data" / "librispeech-voices"


# ---------------------------------------------------------------- source audio


@dataclass(frozen=True)
class Piece:
    """A stretch of one utterance between internal pauses, trimmed of silence."""

    utt: str  # file stem, e.g. 1998-15444-0003
    start: int  # samples within the utterance file
    stop: int

    @property
    def seconds(self) -> float:
        return (self.stop - self.start) / SR


@dataclass(frozen=True)
class Reader:
    rid: str
    sex: str


@cache
def speakers_table() -> dict[str, Reader]:
    table: dict[str, Reader] = {}
    for line in (voices_dir() / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        rid, sex = (part.strip() for part in line.split("|")[:2])
        table[rid] = Reader(rid, sex)
    return table


def utterance_path(stem: str) -> Path:
    reader = stem.split("-")[0]
    test = voices_dir() / "test-other" / reader / f"{stem}.flac"
    return test if test.is_file() else voices_dir() / "train-clean-100" / f"{stem}.flac"


@cache
def load_utterance(stem: str) -> np.ndarray:
    """Float32 audio normalised to TARGET_DBFS over its active frames (read-only)."""
    audio, rate = sf.read(str(utterance_path(stem)), dtype="float32")
    if rate != SR or audio.ndim != 1:
        raise ValueError(f"{stem}: expected 16 kHz mono, got {rate} Hz {audio.shape}")
    active = active_frames(audio)
    frames = frame_view(audio)
    power = float(np.mean(frames[active] ** 2)) if active.any() else float(np.mean(audio**2))
    audio = audio * np.float32(10 ** (TARGET_DBFS / 20) / np.sqrt(max(power, 1e-12)))
    audio.flags.writeable = False
    return audio


def frame_view(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    return audio[: n * FRAME].reshape(n, FRAME)


def frame_db(audio: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(frame_view(audio) ** 2, axis=1) + 1e-12)


def active_frames(audio: np.ndarray) -> np.ndarray:
    """Speech frames: 15 dB above the file's noise floor and within 40 dB of its peak.

    LibriSpeech test-other has audible background noise, so a fixed threshold
    would either keep the noise or eat soft consonants.
    """
    db = frame_db(audio)
    floor = float(np.percentile(db, 10))
    return (db > floor + 15.0) & (db > db.max() - 40.0)


@cache
def pieces_of(stem: str, min_pause_s: float = 0.18, min_piece_s: float = 1.0) -> tuple[Piece, ...]:
    """Split an utterance at internal pauses; pieces shorter than min_piece_s merge with the next."""
    active = active_frames(load_utterance(stem))
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return ()
    runs: list[list[int]] = [[int(idx[0]), int(idx[0]) + 1]]
    min_pause = int(min_pause_s * 50)
    for i in idx[1:]:
        if i - runs[-1][1] >= min_pause:
            runs.append([int(i), int(i) + 1])
        else:
            runs[-1][1] = int(i) + 1
    merged: list[list[int]] = []
    for run in runs:
        if merged and (merged[-1][1] - merged[-1][0]) / 50 < min_piece_s:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    if len(merged) > 1 and (merged[-1][1] - merged[-1][0]) / 50 < min_piece_s:
        last = merged.pop()
        merged[-1][1] = last[1]
    # keep 40 ms around the active frames so word edges are not clipped
    pad = 2
    n = len(active)
    return tuple(Piece(stem, max(0, a - pad) * FRAME, min(n, b + pad) * FRAME) for a, b in merged)


def reader_utterances(rid: str) -> list[str]:
    folder = voices_dir() / "test-other" / rid
    return sorted(p.stem for p in folder.glob("*.flac"))


# ---------------------------------------------------------------- visit plan


@dataclass
class Placement:
    """One stretch of real speech placed in the visit."""

    speaker: str  # "clinician" | "patient"
    kind: str  # "turn" | "backchannel"
    turn: int  # index of the turn it belongs to (a back-channel: the turn it overlaps)
    start: int  # samples in the visit
    source: str  # utterance stem
    src_start: int
    src_stop: int
    gain_db: float = 0.0

    @property
    def stop(self) -> int:
        return self.start + self.src_stop - self.src_start


@dataclass
class Turn:
    index: int
    speaker: str
    kind: str  # "opening_question" | "opening_statement" | "long" | "normal"
    start: int = 0
    stop: int = 0
    gap_before_s: float = 0.0  # negative: overlap with the previous turn


@dataclass
class VisitPlan:
    visit_id: str
    seed: int
    index: int
    pair_type: str  # "cross" | "same"
    readers: dict[str, Reader]
    turns: list[Turn] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    enrolment: list[str] = field(default_factory=list)
    speaker_gain_db: dict[str, float] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return max(p.stop for p in self.placements)


@dataclass
class PlanSettings:
    duration_s: float = 150.0
    opening_s: tuple[float, float] = (30.0, 90.0)
    enrol_s: tuple[float, float] = (15.0, 30.0)
    long_turn_s: tuple[float, float] = (12.0, 25.0)


def pair_for(index: int) -> tuple[str, tuple[str, str]]:
    """Visit index -> (pair type, (clinician reader, patient reader)); cross and same alternate."""
    pairs = CROSS_PAIRS if index % 2 == 0 else SAME_PAIRS
    return ("cross" if index % 2 == 0 else "same"), pairs[(index // 2) % len(pairs)]


def draw_gap(rng: np.random.Generator) -> float:
    """Seconds between turns; negative = overlap. Mixture after real turn-taking statistics."""
    u = rng.random()
    if u < 0.60:
        return float(rng.uniform(0.0, 0.5))
    if u < 0.70:
        return float(rng.uniform(0.5, 1.0))
    if u < 0.82:
        return float(rng.uniform(1.0, 2.0))
    return -float(rng.uniform(0.2, 1.0))


class Material:
    """A reader's pieces in a seeded utterance order, consumed front to back."""

    def __init__(self, stems: list[str]) -> None:
        self.queue: list[Piece] = [p for stem in stems for p in pieces_of(stem)]
        self.used: list[Piece] = []

    def take(self) -> Piece | None:
        if not self.queue:
            return None
        piece = self.queue.pop(0)
        self.used.append(piece)
        return piece

    def seconds_left(self) -> float:
        return sum(p.seconds for p in self.queue)


def plan_visit(seed: int, index: int, settings: PlanSettings) -> VisitPlan:
    rng = np.random.default_rng([seed, index])
    pair_type, (clin_id, pat_id) = pair_for(index)
    table = speakers_table()
    plan = VisitPlan(f"visit{index:02d}_{pair_type}_{clin_id}_{pat_id}", seed, index, pair_type,
                     {"clinician": table[clin_id], "patient": table[pat_id]})
    plan.speaker_gain_db = {"clinician": float(rng.uniform(-3, 3)), "patient": float(rng.uniform(-3, 3))}
    clin_stems = list(rng.permutation(reader_utterances(clin_id)))
    pat_stems = list(rng.permutation(reader_utterances(pat_id)))
    # enrolment first: whole clinician utterances the visit will never use
    enrol_target = rng.uniform(*settings.enrol_s)
    total = 0.0
    while clin_stems and total < enrol_target:
        stem = clin_stems.pop(0)
        plan.enrolment.append(stem)
        total += sum(p.seconds for p in pieces_of(stem))
    material = {"clinician": Material(clin_stems), "patient": Material(pat_stems)}
    _build_turns(plan, material, rng, settings)
    return plan


def _build_turns(plan: VisitPlan, material: dict[str, Material], rng: np.random.Generator, settings: PlanSettings) -> None:
    cursor = 0  # end of the latest turn, in samples
    target = int(settings.duration_s * SR)
    opening_target = rng.uniform(*settings.opening_s)
    # keep ~25 s of patient speech for the rest of the visit
    opening_target = min(opening_target, max(20.0, material["patient"].seconds_left() - 25.0))
    script: list[tuple[str, str, float]] = [("clinician", "opening_question", 0.0), ("patient", "opening_statement", opening_target)]
    turn_no = 0
    speaker = "clinician"
    while True:
        if script:
            speaker, kind, length = script.pop(0)
        else:
            speaker = "patient" if speaker == "clinician" else "clinician"
            length = rng.uniform(*settings.long_turn_s)
            # later long turns, but none that would run far past the visit's length
            long_turn = turn_no >= 4 and rng.random() < 0.18 and cursor / SR + length < settings.duration_s + 5
            kind = "long" if long_turn else "normal"
            length = length if long_turn else 0.0
        gap = 0.0 if turn_no == 0 else draw_gap(rng)
        start = max(0, cursor + int(gap * SR)) if turn_no else int(rng.uniform(0.3, 0.8) * SR)
        turn = Turn(turn_no, speaker, kind, start=start, gap_before_s=gap)
        if not _fill_turn(plan, turn, material[speaker], rng, length):
            break
        plan.turns.append(turn)
        if kind in ("opening_statement", "long") or (turn.stop - turn.start) / SR >= 6.0:
            _add_backchannels(plan, turn, material, rng)
        cursor = max(cursor, turn.stop)
        turn_no += 1
        if cursor >= target:
            break
    # a visit ends with a turn; drop back-channels that outlast it
    end = max(t.stop for t in plan.turns)
    plan.placements = [p for p in plan.placements if p.stop <= end]


def _fill_turn(plan: VisitPlan, turn: Turn, material: Material, rng: np.random.Generator, length_s: float) -> bool:
    """Place pieces for one turn. Long turns: pieces joined with no pause until length_s."""
    joined_long = turn.kind in ("opening_statement", "long")
    if joined_long:
        wanted = 10_000
    elif turn.kind == "opening_question":
        wanted = 1
    else:
        wanted = int(rng.choice([1, 1, 1, 2, 2, 3])) if turn.speaker == "patient" else int(rng.choice([1, 1, 2]))
    pos = turn.start
    placed: list[Placement] = []
    previous: Piece | None = None
    while len(placed) < wanted:
        if joined_long and placed and (pos - turn.start) / SR >= length_s:
            break
        piece = material.take()
        if piece is None:
            break
        if previous is not None:
            if previous.utt == piece.utt:
                pos += piece.start - previous.stop  # the reader's own pause
            elif not joined_long:
                pos += int(rng.uniform(0.15, 0.4) * SR)
            # joined long turns: the next utterance starts right away ("no pause")
        placed.append(Placement(turn.speaker, "turn", turn.index, pos, piece.utt, piece.start, piece.stop))
        pos += piece.stop - piece.start
        previous = piece
    if not placed or (joined_long and (pos - turn.start) / SR < 0.5 * length_s and turn.kind == "long"):
        return False
    turn.stop = pos
    plan.placements.extend(placed)
    return True


def _add_backchannels(plan: VisitPlan, turn: Turn, material: dict[str, Material], rng: np.random.Generator) -> None:
    """Short clips of the listener's own speech ("mm-hm"-like) overlapping the speaker's turn."""
    listener = "patient" if turn.speaker == "clinician" else "clinician"
    used = material[listener].used or material[listener].queue
    if not used:
        return
    seconds = (turn.stop - turn.start) / SR
    count = int(rng.integers(1, 4)) if turn.kind == "opening_statement" else int(rng.random() < 0.5)
    for _ in range(count):
        piece = used[int(rng.integers(len(used)))]
        clip = backchannel_clip(piece, float(rng.uniform(0.25, 0.6)))
        at = turn.start + int(rng.uniform(2.0, max(2.5, seconds - 2.0)) * SR)
        plan.placements.append(Placement(listener, "backchannel", turn.index, at, piece.utt, clip[0], clip[1], gain_db=-4.0))


def backchannel_clip(piece: Piece, length_s: float) -> tuple[int, int]:
    """The first syllable(s) of a piece, cut at the quietest 20 ms frame near length_s."""
    audio = load_utterance(piece.utt)[piece.start : piece.stop]
    db = frame_db(audio)
    lo, hi = int(0.2 * 50), min(len(db) - 1, int((length_s + 0.15) * 50))
    if hi <= lo:
        return piece.start, min(piece.stop, piece.start + int(length_s * SR))
    cut = lo + int(np.argmin(db[lo:hi]))
    return piece.start, piece.start + (cut + 1) * FRAME


# ---------------------------------------------------------------- rendering


def _fade(clip: np.ndarray, ms: float = 10.0) -> np.ndarray:
    n = min(len(clip) // 2, int(ms * SR / 1000))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        clip[:n] *= ramp
        clip[-n:] *= ramp[::-1]
    return clip


def dry_tracks(plan: VisitPlan) -> dict[str, np.ndarray]:
    """One track per speaker with every placement at its position and level."""
    n = plan.length
    tracks = {name: np.zeros(n, np.float32) for name in ("clinician", "patient")}
    for p in plan.placements:
        clip = _fade(load_utterance(p.source)[p.src_start : p.src_stop].copy())
        gain = 10 ** ((plan.speaker_gain_db[p.speaker] + p.gain_db) / 20)
        tracks[p.speaker][p.start : p.stop] += clip * np.float32(gain)
    return tracks


def enrolment_audio(plan: VisitPlan) -> np.ndarray:
    parts: list[np.ndarray] = []
    gap = np.zeros(int(0.3 * SR), np.float32)
    for stem in plan.enrolment:
        for piece in pieces_of(stem):
            parts.extend([_fade(load_utterance(stem)[piece.start : piece.stop].copy()), gap])
    return np.concatenate(parts) * np.float32(10 ** (plan.speaker_gain_db["clinician"] / 20))


@dataclass
class RoomSpec:
    dims: list[float]
    rt60_target_s: float
    rt60_measured_s: dict[str, float]
    absorption: float
    max_order: int
    mic: list[float]
    talkers: dict[str, list[float]]
    distances_m: dict[str, float]
    babble_sources: list[list[float]]
    babble_utterances: list[list[str]]
    snr_db: float
    babble_to_stationary_db: float


def _inside(point: np.ndarray, dims: np.ndarray, margin: float = 0.4) -> bool:
    return bool(np.all(point[:2] > margin) and np.all(point[:2] < dims[:2] - margin))


def draw_room(rng: np.random.Generator) -> dict[str, Any]:
    """Room, microphone (on a desk), two talkers 1-2 m away, three babble talkers further off."""
    dims = np.array([rng.uniform(3.5, 5.5), rng.uniform(3.0, 4.5), rng.uniform(2.5, 3.0)])
    mic = np.array([rng.uniform(1.0, dims[0] - 1.0), rng.uniform(1.0, dims[1] - 1.0), rng.uniform(0.9, 1.1)])
    talkers: dict[str, np.ndarray] = {}
    for name in ("clinician", "patient"):
        for _ in range(1000):
            dist, angle = rng.uniform(1.0, 2.0), rng.uniform(0, 2 * np.pi)
            height = rng.uniform(1.15, 1.3)  # seated mouth height
            horizontal = np.sqrt(max(dist**2 - (height - mic[2]) ** 2, 0.01))
            point = mic + np.array([horizontal * np.cos(angle), horizontal * np.sin(angle), height - mic[2]])
            far_enough = all(np.linalg.norm(point - other) > 0.8 for other in talkers.values())
            if _inside(point, dims) and far_enough:
                talkers[name] = point
                break
        else:
            raise RuntimeError("could not place a talker in the room")
    babble: list[np.ndarray] = []
    for _ in range(3):
        for _ in range(1000):
            point = np.array([rng.uniform(0.3, dims[0] - 0.3), rng.uniform(0.3, dims[1] - 0.3), rng.uniform(1.2, 1.7)])
            if np.linalg.norm(point - mic) > 2.3:
                babble.append(point)
                break
        else:  # small room: the farthest corner
            babble.append(np.array([0.3 if mic[0] > dims[0] / 2 else dims[0] - 0.3, 0.3 if mic[1] > dims[1] / 2 else dims[1] - 0.3, 1.5]))
    return {"dims": dims, "mic": mic, "talkers": talkers, "babble": babble, "rt60": float(rng.uniform(0.3, 0.6))}


def room_rirs(room: dict[str, Any]) -> tuple[list[np.ndarray], float, int]:
    """RIRs for [clinician, patient, babble...], each shifted so its direct path is at sample 0.

    Sabine's formula overestimates the absorption an image-source room needs
    (measured RT60 came out ~1.4x the target), so the design RT60 is corrected
    once by the ratio measured on the clinician's RIR.
    """
    import pyroomacoustics as pra

    rirs, absorption, max_order = _simulate(room, room["rt60"])
    measured = float(pra.experimental.measure_rt60(rirs[0], fs=SR))
    if abs(measured / room["rt60"] - 1) > 0.1:
        rirs, absorption, max_order = _simulate(room, room["rt60"] ** 2 / measured)
    return rirs, absorption, max_order


def _simulate(room: dict[str, Any], design_rt60: float) -> tuple[list[np.ndarray], float, int]:
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(design_rt60, room["dims"].tolist())
    sim = pra.ShoeBox(room["dims"].tolist(), fs=SR, materials=pra.Material(absorption), max_order=max_order)
    sources = [room["talkers"]["clinician"], room["talkers"]["patient"], *room["babble"]]
    for src in sources:
        sim.add_source(src.tolist())
    sim.add_microphone(room["mic"].tolist())
    sim.compute_rir()
    rirs = []
    for i in range(len(sources)):
        rir = np.asarray(sim.rir[0][i], dtype=np.float64)
        direct = int(np.argmax(np.abs(rir)))
        # keep the reference timing exact: the reverberant speech starts where the dry speech does
        rirs.append(rir[direct:].astype(np.float32))
    return rirs, float(absorption), int(max_order)


def convolve(signal: np.ndarray, rir: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(signal.astype(np.float64), rir.astype(np.float64))[: len(signal)].astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary 1/f noise (ventilation, electronics), unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def babble_track(n: int, rng: np.random.Generator, exclude: set[str]) -> tuple[np.ndarray, list[str]]:
    """Back-to-back utterances of other LibriSpeech talkers (train-clean-100), unit power."""
    pool = sorted(p.stem for p in (voices_dir() / "train-clean-100").glob("*.flac") if p.stem.split("-")[0] not in exclude)
    track = np.zeros(n, np.float32)
    used: list[str] = []
    pos = int(rng.uniform(0, 2.0) * SR)
    while pos < n:
        stem = pool[int(rng.integers(len(pool)))]
        audio = load_utterance(stem)
        take = min(len(audio), n - pos)
        track[pos : pos + take] += audio[:take]
        used.append(stem)
        pos += take + int(rng.uniform(0.1, 0.8) * SR)
    return track / np.float32(np.sqrt(np.mean(track**2)) + 1e-9), used


def render_far(plan: VisitPlan, tracks: dict[str, np.ndarray]) -> tuple[np.ndarray, RoomSpec]:
    import pyroomacoustics as pra

    rng = np.random.default_rng([plan.seed, plan.index, 1])
    room = draw_room(rng)
    rirs, absorption, max_order = room_rirs(room)
    n = plan.length
    speech = convolve(tracks["clinician"], rirs[0]) + convolve(tracks["patient"], rirs[1])
    exclude = {r.rid for r in plan.readers.values()}
    babble = np.zeros(n, np.float32)
    babble_used = []
    for rir in rirs[2:]:
        track, used = babble_track(n, rng, exclude)
        babble += convolve(track, rir)
        babble_used.append(used)
    babble /= np.float32(np.sqrt(np.mean(babble**2)) + 1e-9)
    stationary = pink_noise(n, rng)
    b2s_db = float(rng.uniform(-3.0, 3.0))
    w_b = 10 ** (b2s_db / 20)
    noise = (babble * w_b + stationary) / np.float32(np.sqrt(1 + w_b**2))
    snr_db = float(rng.uniform(10.0, 20.0))
    # a room microphone hears the talkers ~6 dB below a headset (and a quieter
    # file compresses better): reverberant speech at FAR_DBFS on active samples
    speech_power = float(np.mean(speech[_active_mask(plan)] ** 2))
    speech *= np.float32(10 ** (FAR_DBFS / 20) / np.sqrt(speech_power))
    speech_power = 10 ** (FAR_DBFS / 10)
    noise *= np.float32(np.sqrt(speech_power / 10 ** (snr_db / 10)) / (np.sqrt(np.mean(noise**2)) + 1e-12))
    mix = speech + noise
    spec = RoomSpec(
        dims=_r(room["dims"]), rt60_target_s=round(room["rt60"], 3),
        rt60_measured_s={name: round(float(pra.experimental.measure_rt60(rirs[i], fs=SR)), 3) for i, name in enumerate(("clinician", "patient"))},
        absorption=round(absorption, 4), max_order=max_order, mic=_r(room["mic"]),
        talkers={k: _r(v) for k, v in room["talkers"].items()},
        distances_m={k: round(float(np.linalg.norm(v - room["mic"])), 3) for k, v in room["talkers"].items()},
        babble_sources=[_r(b) for b in room["babble"]], babble_utterances=babble_used,
        snr_db=round(snr_db, 2), babble_to_stationary_db=round(b2s_db, 2),
    )
    return mix, spec


def _r(values: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in values]


def _active_mask(plan: VisitPlan) -> np.ndarray:
    mask = np.zeros(plan.length, bool)
    for p in plan.placements:
        mask[p.start : p.stop] = True
    return mask


def to_pcm16(audio: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale down only if the mix would clip, then quantise (deterministic rounding)."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    limit = 10 ** (peak_dbfs / 20)
    if peak > limit:
        audio = audio * np.float32(limit / peak)
    return np.clip(np.round(audio.astype(np.float64) * 32767), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------- reference


def speaker_intervals(plan: VisitPlan) -> list[dict[str, Any]]:
    """Who is talking where: each turn's extent (its own pauses included) and each back-channel."""
    out = []
    for turn in plan.turns:
        out.append({"speaker": turn.speaker, "kind": "turn", "turn": turn.index,
                    "start_sample": turn.start, "stop_sample": turn.stop,
                    "start_s": round(turn.start / SR, 3), "stop_s": round(turn.stop / SR, 3)})
    for p in plan.placements:
        if p.kind == "backchannel":
            out.append({"speaker": p.speaker, "kind": "backchannel", "turn": p.turn,
                        "start_sample": p.start, "stop_sample": p.stop,
                        "start_s": round(p.start / SR, 3), "stop_s": round(p.stop / SR, 3)})
    return sorted(out, key=lambda s: (s["start_sample"], s["stop_sample"]))


def overlaps(intervals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(intervals):
        for b in intervals[i + 1 :]:
            if b["start_sample"] >= a["stop_sample"]:
                break
            if a["speaker"] == b["speaker"]:
                continue
            start, stop = b["start_sample"], min(a["stop_sample"], b["stop_sample"])
            kind = "backchannel" if "backchannel" in (a["kind"], b["kind"]) else "turn_overlap"
            out.append({"start_s": round(start / SR, 3), "stop_s": round(stop / SR, 3), "kind": kind,
                        "speakers": [a["speaker"], b["speaker"]]})
    return out


def reference(plan: VisitPlan, condition: str, audio_file: str, enrol_file: str, room: RoomSpec | None) -> dict[str, Any]:
    intervals = speaker_intervals(plan)
    turns = [{"index": t.index, "speaker": t.speaker, "kind": t.kind, "start_s": round(t.start / SR, 3),
              "stop_s": round(t.stop / SR, 3), "gap_before_s": round(t.gap_before_s, 3)} for t in plan.turns]
    changes = []
    for prev, nxt in zip(plan.turns, plan.turns[1:]):
        if prev.speaker != nxt.speaker:
            changes.append({"from": prev.speaker, "to": nxt.speaker, "prev_stop_s": round(prev.stop / SR, 3),
                            "next_start_s": round(nxt.start / SR, 3)})
    return {
        "format": FORMAT_VERSION,
        "generator": "tools.realvoice.generate",
        "visit": plan.visit_id,
        "seed": plan.seed,
        "index": plan.index,
        "condition": condition,
        "pair_type": plan.pair_type,
        "audio": audio_file,
        "sample_rate": SR,
        "duration_s": round(plan.length / SR, 3),
        "speakers": {role: {"reader": r.rid, "sex": r.sex, "gain_db": round(plan.speaker_gain_db[role], 2)} for role, r in plan.readers.items()},
        "enrolment": {"speaker": "clinician", "file": enrol_file, "utterances": plan.enrolment,
                      "duration_s": round(sum(p.seconds for s in plan.enrolment for p in pieces_of(s)), 2)},
        "intervals": intervals,
        "turns": turns,
        "turn_changes": changes,
        "overlaps": overlaps(intervals),
        "backchannels": [i for i in intervals if i["kind"] == "backchannel"],
        "placements": [asdict(p) | {"stop": p.stop} for p in sorted(plan.placements, key=lambda p: p.start)],
        "room": asdict(room) if room is not None else None,
        "credit": "LibriSpeech ASR corpus (c) 2014 Vassil Panayotov et al., CC BY 4.0",
    }


# ---------------------------------------------------------------- driver


def write_flac(path: Path, audio: np.ndarray) -> None:
    sf.write(str(path), to_pcm16(audio), SR, subtype="PCM_16", format="FLAC")


def generate_visit(out: Path, seed: int, index: int, settings: PlanSettings, conditions: tuple[str, ...]) -> list[Path]:
    plan = plan_visit(seed, index, settings)
    tracks = dry_tracks(plan)
    enrol = enrolment_audio(plan)
    # One close-talk enrolment per visit for both renderings: the clinician
    # enrols on the phone (`edge-agent phone enroll` sends a WAV), not in the room.
    enrol_file = f"{plan.visit_id}_enrol.flac"
    write_flac(out / enrol_file, enrol)
    written = []
    for condition in conditions:
        stem = f"{plan.visit_id}_{condition}"
        if condition == "close":
            mix, room = tracks["clinician"] + tracks["patient"], None
        else:
            mix, room = render_far(plan, tracks)
        write_flac(out / f"{stem}.flac", mix)
        ref = reference(plan, condition, f"{stem}.flac", enrol_file, room)
        (out / f"{stem}.json").write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
        written.append(out / f"{stem}.json")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--visits", type=int, default=4, help="visits 0..N-1 (even: cross-sex pair, odd: same-sex)")
    parser.add_argument("--first", type=int, default=0, help="index of the first visit")
    parser.add_argument("--duration", type=float, default=150.0, help="approximate visit length in seconds")
    parser.add_argument("--opening", type=float, nargs=2, default=(30.0, 90.0), metavar=("MIN", "MAX"))
    parser.add_argument("--enrol", type=float, nargs=2, default=(15.0, 30.0), metavar=("MIN", "MAX"), help="enrolment seconds")
    parser.add_argument("--conditions", default="close,far")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = PlanSettings(duration_s=args.duration, opening_s=tuple(args.opening), enrol_s=tuple(args.enrol))
    conditions = tuple(c for c in args.conditions.split(",") if c)
    for index in range(args.first, args.first + args.visits):
        for path in generate_visit(args.out, args.seed, index, settings, conditions):
            ref = json.loads(path.read_text())
            print(f"{path.name}: {ref['duration_s']:.1f} s, {len(ref['turns'])} turns, "
                  f"{len(ref['backchannels'])} back-channels, {len(ref['overlaps'])} overlaps")


if __name__ == "__main__":
    main()
