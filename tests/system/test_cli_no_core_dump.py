"""The CLI verbs that hold audio are hardened (no core dump) before they read a single sample.

The daemon hardens at model load; the CLI verbs used to harden only when their transcription
session loaded, so `enroll` never did, and `transcribe`/`analyze --voiceprint enrol.flac` read and
embedded the enrolment voice (and opened the recording) while a crash could still dump it.
The probe runs the real console entry point and records, at every audio file the process opens
(every read goes through ``soundfile.SoundFile``), the core-dump limit and the dumpable flag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

ENROL = REPO_ROOT / "edge_agent" / "data" / "demo_enrol.flac"

PROBE = """
import atexit, ctypes, json, resource, sys
import soundfile

libc = ctypes.CDLL(None)
seen = []

def state():
    return [list(resource.getrlimit(resource.RLIMIT_CORE)), libc.prctl(3, 0, 0, 0, 0)]  # PR_GET_DUMPABLE

opened = soundfile.SoundFile.__init__

def observed(self, *args, **kwargs):
    seen.append(state())
    return opened(self, *args, **kwargs)

soundfile.SoundFile.__init__ = observed

from edge_agent.audio import mic_source  # the room microphone, opened (doctor's audio check, --mic)

mic_opened = mic_source.MicSource.__init__

def observed_mic(self, *args, **kwargs):
    seen.append(state())
    return mic_opened(self, *args, **kwargs)

mic_source.MicSource.__init__ = observed_mic
atexit.register(lambda: sys.stderr.write("PROBE " + json.dumps({"seen": seen, "exit": state()}) + "\\n"))
sys.argv = ["edge-agent", *sys.argv[1:]]
from edge_agent.cli import main
main()
"""


def _probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[list[list[object]], list[object], str]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {})), cwd=tmp_path)
    line = next((x for x in result.stderr.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, result.stderr[-2000:]
    probe = json.loads(line[len("PROBE "):])
    return probe["seen"], probe["exit"], result.stdout


HARDENED = [[0, 0], 0]  # RLIMIT_CORE (soft, hard) = 0 and not dumpable


@pytest.mark.parametrize("verb", [
    ("enroll", str(ENROL)),
    ("transcribe", "{jfk}", "--jsonl", "--voiceprint", str(ENROL)),
    ("analyze", "{jfk}", "--json", "--voiceprint", str(ENROL)),
    ("demo", "--fast", "--jsonl"),  # the daemon's own load_device(), as `serve` runs it
], ids=["enroll", "transcribe", "analyze", "demo"])
def test_audio_verbs_disable_core_dumps_before_reading_audio(tmp_path: Path, jfk_path: Path, verb: tuple[str, ...]) -> None:
    args = [a.replace("{jfk}", str(jfk_path)) for a in verb]
    seen, at_exit, stdout = _probe(tmp_path, *args)
    assert stdout.strip(), "the verb produced nothing: the probe did not exercise it"
    assert seen, "no audio file was opened: the probe did not see the reads"
    assert all(s == HARDENED for s in seen), f"audio read while a crash could dump it: {seen}"
    assert at_exit == HARDENED


def test_doctor_disables_core_dumps_before_it_reads_the_room_microphone(tmp_path: Path, jfk_16k, alsa_file_mic) -> None:  # type: ignore[no-untyped-def]
    """`edge-agent doctor` reads a second of the room microphone (whoever is in the room is on it)."""
    from edge_agent.site.doctor import CHECK_NAMES

    home = alsa_file_mic(jfk_16k[: 3 * 16000])
    skips = [a for name in CHECK_NAMES if name != "audio" for a in ("--skip", name)]
    seen, at_exit, stdout = _probe(tmp_path, "doctor", *skips, env={"HOME": str(home), "EDGE_AGENT_AUDIO__DEVICE": "micin"})
    assert "micin" in stdout, stdout  # the audio check really read the (file-backed ALSA) microphone
    assert seen, "the microphone was not opened: the probe did not see it"
    assert all(s == HARDENED for s in seen), f"room audio read while a crash could dump it: {seen}"
    assert at_exit == HARDENED
