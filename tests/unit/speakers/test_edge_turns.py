"""The other voice in the first or last second of a VAD segment gets its own label.

Real turn-taking rarely leaves a pause as long as the VAD's hang-over, so the next
speaker's first words (or a back-channel) often end a segment, and a reply's first words
can open one. The 1.6 s windows that find changes inside a segment step 0.8 s and stop
short of its end, so a 0.3-1.5 s part at an edge never dominates one: before the edge
test the whole segment went to the majority voice (a newly generated cross-sex close-talk
visit: 0.93 enrolled; docs/speakers.md "Edges").

Here a man (LibriSpeech 2609) and a woman (1998) alternate with clear pauses until both
voices are known; then a segment of his ends with ~1 s of hers, and a segment of his opens
with ~1 s of hers (0.1 s gaps, far below the hang-over). Real Whisper, real encoder, the
report's labels; unpaced, nothing timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from edge_agent.speakers.encoder import SpeakerEncoder
from edge_agent.speakers.enrol import enrol
from tests.streamed_words import final_words
from tools.realvoice.generate import SR, frame_db, load_utterance, pieces_of, reader_utterances

HE, SHE = "2609", "1998"


def _level(audio: np.ndarray) -> np.ndarray:
    return (audio / (np.sqrt(np.mean(audio**2)) + 1e-9) * 10 ** (-26 / 20)).astype(np.float32)


def _pieces(rid: str, utterances: slice) -> list[np.ndarray]:
    out = []
    for stem in reader_utterances(rid)[utterances]:
        audio = load_utterance(stem)
        out.extend(_level(audio[p.start : p.stop]) for p in pieces_of(stem) if p.seconds >= 1.5)
    return out


def _shorts(rid: str) -> list[np.ndarray]:
    """The first 0.9-1.4 s of her pieces (utterances the turns do not use), cut at the quietest 20 ms there."""
    out = []
    for stem in reader_utterances(rid)[4:]:
        audio = load_utterance(stem)
        for p in pieces_of(stem):
            if p.seconds >= 2.0:
                db = frame_db(audio[p.start : p.stop])
                cut = 45 + int(np.argmin(db[45:70]))  # 20 ms frames
                out.append(_level(audio[p.start : p.start + cut * SR // 50]))
    return out


def _conversation(path: Path) -> tuple[Path, list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]:
    """The WAV, her ~1 s edge parts, his stretches next to them, and her own turns (seconds)."""
    his, hers, shorts = _pieces(HE, slice(0, 4)), _pieces(SHE, slice(0, 4)), _shorts(SHE)
    parts: list[np.ndarray] = []
    t = 0.0
    edges: list[tuple[float, float]] = []
    beside: list[tuple[float, float]] = []
    her_turns: list[tuple[float, float]] = []

    def add(audio: np.ndarray, pause: float) -> tuple[float, float]:
        nonlocal t
        span = (t, t + len(audio) / SR)
        parts.extend([audio, np.zeros(int(pause * SR), np.float32)])
        t = span[1] + int(pause * SR) / SR
        return span

    for i in range(2):  # both voices established, each alone in its segment
        add(his[i], 1.2)
        her_turns.append(add(hers[i], 1.2))
    long_his = np.concatenate([his[2], np.zeros(int(0.15 * SR), np.float32), his[3]])
    beside.append(add(long_his[: int(5.5 * SR)], 0.1))
    edges.append(add(shorts[0], 1.5))  # her first words before his segment closes
    edges.append(add(shorts[1], 0.1))  # her words open a segment of his
    beside.append(add(np.concatenate([his[4], his[5]])[: int(5.5 * SR)], 1.5))
    her_turns.append(add(hers[2], 1.5))
    sf.write(str(path), np.concatenate(parts), SR, subtype="PCM_16")
    return path, edges, beside, her_turns


def _labels_in(words: list[Any], spans: list[tuple[float, float]], slack: float = 0.1) -> list[str]:
    return [w.speaker for w in words if any(a - slack <= (w.t0 + w.t1) / 2 <= b + slack for a, b in spans)]


@pytest.mark.parametrize("enrolled", [False, True], ids=["no-enrolment", "enrolled"])
def test_the_other_voice_at_a_segment_edge_is_split_off(session_with_speakers: Any, tmp_path: Path, enrolled: bool) -> None:
    wav, edges, beside, her_turns = _conversation(tmp_path / "edges.wav")
    voiceprint = None
    if enrolled:  # he is the clinician: enrolled from utterances the conversation does not use
        voiceprint = enrol(np.concatenate([load_utterance(s) for s in reader_utterances(HE)[7:10]]), SpeakerEncoder())
    words = final_words(session_with_speakers, wav, voiceprint)
    hers = _labels_in(words, her_turns)
    assert hers, "no words decoded in her own turns"
    her_label = max(set(hers), key=hers.count)
    at_edges = _labels_in(words, edges)
    his_beside = _labels_in(words, beside, slack=-0.2)
    assert len(at_edges) >= 3, at_edges
    # before: none of her edge words carried her label (the whole segment went to him)
    assert sum(s == her_label for s in at_edges) >= 0.6 * len(at_edges), (at_edges, her_label)
    assert sum(s != her_label for s in his_beside) >= 0.9 * len(his_beside), (his_beside, her_label)
    if enrolled:
        assert her_label == "patient"
