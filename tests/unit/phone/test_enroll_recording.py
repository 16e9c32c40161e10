"""The reference phone reads an enrolment recording the way every other command reads audio.

Python's ``wave`` refused a 16-bit PCM WAV with an extensible header (sox writes one for stereo and for 8/48 kHz):
'cannot read X as a WAV file (unknown format: 65534); record 16-bit PCM WAV' — the user had done exactly that. A
long recording was read whole into memory and sent, and only then refused by the device after 30 s of it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_agent.phone.client import read_wav_pcm
from tests.cli_runner import run_cli


def test_a_stereo_48k_pcm_wav_with_an_extensible_header_is_read_as_mono(tmp_path: Path, jfk_16k: np.ndarray) -> None:
    path = tmp_path / "me.wav"
    left = np.interp(np.arange(len(jfk_16k) * 3) / 3, np.arange(len(jfk_16k)), jfk_16k).astype(np.float32)
    sf.write(str(path), np.stack([left, left], axis=1), 48000, format="WAVEX", subtype="PCM_16")
    assert struct.unpack("<H", path.read_bytes()[20:22])[0] == 0xFFFE  # WAVE_FORMAT_EXTENSIBLE, as sox writes it
    pcm, rate = read_wav_pcm(path)
    mono = np.frombuffer(pcm, "<i2")
    assert rate == 48000 and len(mono) == len(left)
    expected = np.round(np.clip(left, -1, 1) * 32767)
    assert np.max(np.abs(mono.astype(np.float64) - expected)) <= 2  # the speech itself, mixed to one channel


def test_a_long_recording_is_refused_before_it_is_read_or_sent(tmp_path: Path) -> None:
    path = tmp_path / "visit.wav"
    frames = 16000 * 3600 * 2  # two hours, promised by the header of a sparse file: nothing is read to refuse it
    header = b"RIFF" + struct.pack("<I", 36 + 2 * frames) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    with path.open("wb") as out:
        out.write(header + b"data" + struct.pack("<I", 2 * frames))
        out.truncate(44 + 2 * frames)
    result = run_cli("phone", "enroll", str(path), "--keys", str(tmp_path / "phone.json"), "--device", "127.0.0.1:1")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "is 7200 s long" in lines[0] and "10–30 s" in lines[0] and "sox" in lines[0], lines[0]
