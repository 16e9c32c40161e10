"""Real PortAudio capture: ALSA's file plugin plays a raw file as a microphone."""

from __future__ import annotations

import numpy as np

from edge_agent.asr.events import FinalTranscript
from edge_agent.audio.file_source import FileSource
from edge_agent.audio.mic_source import MicSource


def test_mic_transcript_matches_file_source(session, jfk_path, jfk_16k: np.ndarray, alsa_file_mic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home = alsa_file_mic(jfk_16k)
    monkeypatch.setenv("HOME", str(home))
    # PortAudio reads ~/.asoundrc when it initialises; start a fresh instance.
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
    try:
        mic_events: list = []
        source = MicSource("micin", duration_s=len(jfk_16k) / 16000, lossless=True)
        assert source.input_rate == 16000
        _, clean = session.run(source, mic_events.append)
        file_events: list = []
        session.run(FileSource(jfk_path), file_events.append)
    finally:
        sd._terminate()
        sd._initialize()
    mic_text = [e.utterance.text for e in mic_events if isinstance(e, FinalTranscript)]
    file_text = [e.utterance.text for e in file_events if isinstance(e, FinalTranscript)]
    assert mic_text and mic_text == file_text
    assert clean


def test_missing_microphone_is_one_line_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.cli_runner import run_cli

    result = run_cli("transcribe", "--mic", "no-such-mic", env={"HOME": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "microphone 'no-such-mic' not found" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
