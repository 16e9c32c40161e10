"""A two-voice visit of real people for the quote gate's tests (docs/privacy.md §4b).

LibriSpeech test-other reader 1998 (a woman, who reads a text on poisoning and the medical man's duties) is the
clinician; reader 2609 (a man, who reads on biblical history) is the patient. After the patient's opening
statement the turns follow one another with real turn-taking gaps and overlaps (-0.4 to 0.2 s, as
tools/realvoice/generate.py draws them), so a speaker change placed early or late puts one voice's words in the
other's utterance (on the build machine: the patient's "... patience | is genius" became "is cheating. The days
for an adult ..." under the clinician, with her voice verified); the clinician's last turn is long (~15 s), so
its middle is far from the patient. The clinician's voiceprint is the committed enrolment of the realvoice set
(``visit00_cross_1998_2609_enrol.flac``: utterances 1998-15444-0000 and -0004, which this visit does not use).

``transcripts.json`` beside it holds the pseudo-reference text of each source utterance (offline tiny.en on the
dry utterance; LibriSpeech ships no transcripts here): what each person said, to check which words are whose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.paths import REPO_ROOT
from tools.realvoice.generate import SR, load_utterance, pieces_of

DATA = REPO_ROOT / "tests" / "data" / "realvoice"
ENROL = DATA / "visit00_cross_1998_2609_enrol.flac"
PAUSE_IN_TURN_S = 0.35  # between two utterances of one turn (a reader's pause)

# (speaker, source utterances, gap before the turn in seconds; negative: the turn starts over the end of the one before)
TURNS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("clinician", ("1998-15444-0006",), 0.0),  # "... is it the duty of the doctor to inform the police?"
    ("patient", ("2609-156975-0007", "2609-156975-0004"), 0.3),  # the opening statement, ~36 s
    ("clinician", ("1998-15444-0003",), -0.4),
    ("patient", ("2609-156975-0002",), 0.0),
    ("clinician", ("1998-15444-0002",), 0.2),
    ("patient", ("2609-156975-0001",), -0.2),  # "Hold on. Hold fast. Hold out. Patience is genius."
    ("clinician", ("1998-15444-0008", "1998-15444-0007"), -0.2),  # ... of which "is genius" became the clinician's
    ("patient", ("2609-156975-0005",), -0.4),
    ("clinician", ("1998-15444-0001",), -0.2),
    ("patient", ("2609-156975-0009",), -0.4),
    ("clinician", ("1998-15444-0009", "1998-15444-0005"), 0.2),  # ~15 s: "... he should obtain technical assistance ..."
    ("patient", ("2609-156975-0000",), 0.2),
)


@dataclass(frozen=True)
class QuoteVisit:
    audio: Path
    turns: list[tuple[str, float, float]]  # (speaker, start s, end s)
    said: dict[str, list[str]]  # speaker -> pseudo-reference text of each of their utterances in the visit


def _trimmed(stem: str) -> np.ndarray:
    pieces = pieces_of(stem)
    return np.asarray(load_utterance(stem)[pieces[0].start : pieces[-1].stop], np.float32)


def quote_visit_wav(path: Path) -> QuoteVisit:
    return build_visit(path, TURNS)


def build_visit(path: Path, plan: tuple[tuple[str, tuple[str, ...], float], ...]) -> QuoteVisit:
    texts = json.loads((DATA / "transcripts.json").read_text())["texts"]
    placed: list[tuple[int, np.ndarray]] = []  # (start sample, audio): a negative gap overlaps the turn before
    turns: list[tuple[str, float, float]] = []
    said: dict[str, list[str]] = {"clinician": [], "patient": []}
    pos = 0
    for speaker, stems, gap in plan:
        pos = max(0, pos + int(gap * SR))
        start = pos
        for k, stem in enumerate(stems):
            if k:
                pos += int(PAUSE_IN_TURN_S * SR)
            audio = _trimmed(stem)
            placed.append((pos, audio))
            pos += len(audio)
            said[speaker].append(texts[stem])
        turns.append((speaker, start / SR, pos / SR))
    mix = np.zeros(max(a + len(x) for a, x in placed) + SR, np.float32)  # a second of silence closes the last turn
    for a, x in placed:
        mix[a : a + len(x)] += x
    sf.write(str(path), np.clip(mix, -1.0, 1.0), SR, subtype="PCM_16")
    return QuoteVisit(path, turns, said)
