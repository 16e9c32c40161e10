"""The watchdog also covers the ASR worker: a model call that never returns stops the petting."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from edge_agent.asr.events import FinalTranscript
from edge_agent.audio.file_source import FileSource
from edge_agent.ops.notify import BusyHeartbeat, SystemdNotifier, Watchdog
from edge_agent.ops.watched_calls import WatchedCalls, watch_model_calls


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class HungKernel:
    """Fault injection: a decode that blocks until released (what a hung CTranslate2/GPU call looks like)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def decode(self, window: object) -> str:
        self.entered.set()
        self.release.wait(30)
        return "done"


@pytest.fixture
def notify_socket(tmp_path: Path):  # type: ignore[no-untyped-def]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def test_a_hung_model_call_withholds_the_watchdog_until_it_returns(notify_socket) -> None:  # type: ignore[no-untyped-def]
    path, sock = notify_socket
    clock = FakeClock()
    beat = BusyHeartbeat("asr", max_age_s=60.0, clock=clock)
    kernel = HungKernel()
    engine = WatchedCalls(kernel, beat, ("decode",))
    dog = Watchdog(SystemdNotifier(env={"NOTIFY_SOCKET": path}), [beat], interval_s=1.0)
    clock.t += 3600  # waiting for speech for an hour is not a fault
    assert dog.check_once() and sock.recv(4096) == b"WATCHDOG=1"

    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(engine.decode(b"")))
    worker.start()
    assert kernel.entered.wait(10)
    clock.t += 30
    assert dog.check_once() and sock.recv(4096) == b"WATCHDOG=1"  # a slow call is not yet a hang
    clock.t += 31
    assert not dog.check_once()
    assert sock.recv(4096) == b"STATUS=asr stalled"
    kernel.release.set()
    worker.join(10)
    assert result == ["done"] and beat.fresh()
    assert dog.check_once() and sock.recv(4096) == b"WATCHDOG=1"


def test_overlapping_calls_age_from_the_last_progress() -> None:
    clock = FakeClock()
    beat = BusyHeartbeat("asr", max_age_s=10.0, clock=clock)
    beat.begin()
    clock.t += 8
    beat.begin()  # enrolment beside a visit
    clock.t += 8
    assert not beat.fresh()  # the first call has run 16 s
    beat.end()  # one finished: work is moving again
    assert beat.fresh() and beat.age() == 0.0
    clock.t += 11
    assert not beat.fresh()
    beat.end()
    assert beat.fresh() and beat.calls == 2


def test_real_session_runs_through_the_watched_models(jfk_path: Path) -> None:
    from edge_agent.pipeline import PipelineConfig
    from edge_agent.session import TranscriptionSession

    session = TranscriptionSession.load(PipelineConfig(), speakers=True)
    beat = BusyHeartbeat("asr", max_age_s=120.0)
    watch_model_calls(session, beat)
    finals: list[str] = []
    session.run(FileSource(jfk_path), lambda ev: finals.append(ev.utterance.text) if isinstance(ev, FinalTranscript) else None)
    text = " ".join(finals).lower()
    assert "ask not what your country can do for you" in text.replace(",", "")
    assert isinstance(session.engine, WatchedCalls)
    assert session.speakers is not None and isinstance(session.speakers.encoder.session, WatchedCalls)
    assert beat.calls >= 2  # Whisper decodes and speaker-model runs went through the beat
    assert beat.fresh() and beat.age() == 0.0  # idle again once the work is done
