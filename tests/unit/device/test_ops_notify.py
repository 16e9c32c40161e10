"""sd_notify and the heartbeat watchdog (capture, and the ASR worker's model calls) against a real Unix datagram socket."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from pathlib import Path

import pytest

from edge_agent.asr.events import FinalTranscript
from edge_agent.audio.file_source import FileSource
from edge_agent.device.ops.notify import BusyHeartbeat, Heartbeat, SystemdNotifier, Watchdog
from edge_agent.device.ops.watched_calls import WatchedCalls, watch_model_calls


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def notify_socket(tmp_path: Path):  # type: ignore[no-untyped-def]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_watchdog_stopping_reach_the_socket(notify_socket) -> None:  # type: ignore[no-untyped-def]
    path, sock = notify_socket
    n = SystemdNotifier(env={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("listening on 50443")
    assert _recv(sock) == ["READY=1", "STATUS=listening on 50443", f"MAINPID={os.getpid()}"]
    assert n.watchdog() and _recv(sock) == ["WATCHDOG=1"]
    assert n.status("visit running") and _recv(sock) == ["STATUS=visit running"]
    assert n.reloading()
    msg = _recv(sock)
    assert msg[0] == "RELOADING=1" and msg[1].startswith("MONOTONIC_USEC=")
    assert n.stopping() and _recv(sock) == ["STOPPING=1"]
    with pytest.raises(ValueError):
        n.notify("STATUS=two\nlines")
    n.close()


def test_abstract_socket_address() -> None:
    name = f"edge-agent-test-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        n = SystemdNotifier(env={"NOTIFY_SOCKET": "@" + name})
        assert n.watchdog()
        assert _recv(sock) == ["WATCHDOG=1"]
    finally:
        sock.close()


def test_without_systemd_everything_is_a_no_op(tmp_path: Path) -> None:
    n = SystemdNotifier(env={})
    assert not n.enabled and not n.ready() and not n.watchdog()
    assert n.watchdog_interval() is None
    # a socket that went away is logged, not raised
    gone = SystemdNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert gone.watchdog() is False


def test_watchdog_interval_from_environment() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(env=env).watchdog_interval() == 30.0
    assert SystemdNotifier(env={**env, "WATCHDOG_PID": "1"}).watchdog_interval() is None  # meant for another process
    assert Watchdog(SystemdNotifier(env=env), []).interval_s == 15.0  # pet at half the timeout


def test_stuck_pipeline_stops_the_petting(notify_socket) -> None:  # type: ignore[no-untyped-def]
    path, sock = notify_socket
    clock = FakeClock()
    pipeline = Heartbeat("pipeline", max_age_s=5.0, clock=clock)
    stalls: list[str] = []
    dog = Watchdog(SystemdNotifier(env={"NOTIFY_SOCKET": path}), [pipeline], interval_s=1.0, on_stall=lambda hb: stalls.append(hb.name))

    assert dog.check_once() and _recv(sock) == ["WATCHDOG=1"]  # idle (no visit) is healthy
    pipeline.tick()
    clock.t += 4.0
    assert dog.check_once() and _recv(sock) == ["WATCHDOG=1"]
    clock.t += 2.0  # 6 s without a tick while a visit runs: stuck
    assert not dog.check_once()
    assert _recv(sock) == ["STATUS=pipeline stalled"]
    assert not dog.check_once()  # still no WATCHDOG=1 (systemd will restart us)
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(4096)
    assert stalls == ["pipeline"] and dog.stalls == 1
    pipeline.tick()  # recovered before the timeout: petting resumes
    sock.settimeout(2.0)
    assert dog.check_once() and _recv(sock) == ["WATCHDOG=1"]
    pipeline.idle()
    clock.t += 100.0
    assert dog.check_once()


def test_async_watchdog_loop_pets_while_fresh(notify_socket) -> None:  # type: ignore[no-untyped-def]
    path, sock = notify_socket
    # generous ages: a loaded CI machine may oversleep a 50 ms sleep several times over
    hb = Heartbeat("pipeline", max_age_s=1.0)
    dog = Watchdog(SystemdNotifier(env={"NOTIFY_SOCKET": path}), [hb], interval_s=0.05)
    received: list[str] = []

    def reader() -> None:  # systemd reads as messages arrive
        sock.settimeout(3.0)
        try:
            while True:
                received.append(sock.recv(4096).decode())
        except (socket.timeout, OSError):
            pass

    thread = threading.Thread(target=reader)
    thread.start()

    async def main() -> None:
        task = asyncio.create_task(dog.run())
        for _ in range(6):
            hb.tick()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.8)  # no ticks: stale
        task.cancel()

    asyncio.run(main())
    thread.join(5)
    assert received.count("WATCHDOG=1") >= 4
    assert "STATUS=pipeline stalled" in received
    assert received[-1] == "STATUS=pipeline stalled"  # nothing was petted after the stall


def test_full_receiver_queue_never_blocks_the_daemon(notify_socket) -> None:  # type: ignore[no-untyped-def]
    path, _sock = notify_socket  # bound but never read: its queue fills up
    n = SystemdNotifier(env={"NOTIFY_SOCKET": path})
    results = [n.watchdog() for _ in range(200)]
    assert results[0] and not results[-1]


# ---- the ASR worker's model calls -------------------------------------------------------


class HungKernel:
    """Fault injection: a decode that blocks until released (what a hung CTranslate2/GPU call looks like)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def decode(self, window: object) -> str:
        self.entered.set()
        self.release.wait(30)
        return "done"


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
    from edge_agent.device.pipeline import PipelineConfig
    from edge_agent.device.session import TranscriptionSession

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
