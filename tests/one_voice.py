"""One real person talking alone (a LibriSpeech reader, no second voice): the case no voiceprint can be inferred for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tools.realvoice.generate import SR, load_utterance, reader_utterances

# test-other reader 2033 (a man): his first four utterances, 22 s of speech, separated by 0.6 s pauses
READER = "2033"


def one_reader_wav(path: Path, utterances: slice = slice(0, 4)) -> Path:
    pause = np.zeros(int(0.6 * SR), np.float32)
    parts: list[np.ndarray] = []
    for stem in reader_utterances(READER)[utterances]:
        parts.extend([load_utterance(stem), pause])
    sf.write(str(path), np.concatenate(parts), SR, subtype="PCM_16")
    return path
