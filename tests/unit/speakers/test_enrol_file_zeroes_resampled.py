"""Enrolment from a recording at another rate (`edge-agent enroll FILE`, `--voiceprint enrol.wav`): the 16 kHz
copy soxr makes of the clinician's voice is zeroed before it is freed, as the device's enroller does.

``_read_16k_mono`` took soxr's output and ``.astype(np.float32)``-ed it: a second copy, so soxr's own array
(the whole voice, resampled) was dropped unzeroed and stayed in freed memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_agent.data import bundled
from edge_agent.speakers.enrol import voiceprint_from


def test_enrolment_file_at_44k_zeroes_every_resampled_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soxr

    real = soxr.resample
    voice, rate = sf.read(str(bundled("demo_enrol.flac")), dtype="float32")
    assert rate == 16000
    path = tmp_path / "enrol-44k.wav"
    sf.write(str(path), real(voice, 16000, 44100), 44100, subtype="PCM_16")  # a phone or laptop recording's rate
    voice.fill(0.0)

    made: list[np.ndarray] = []

    def keep(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real(*args, **kwargs)
        made.append(out)
        return out

    monkeypatch.setattr(soxr, "resample", keep)
    vp = voiceprint_from(path=path)
    assert vp.speech_seconds >= 8 and float(np.linalg.norm(vp.embedding)) > 0.5
    assert made, "the recording was not resampled: the test did not exercise the path"
    assert all(not m.any() for m in made), "the resampled enrolment audio was freed without being zeroed"
