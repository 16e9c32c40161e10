"""kill -9 of the real daemon (``edge-agent serve --replay`` of the bundled visit: real models, real
pipeline, real outbox) at several phases of real visits; afterwards every visit whose StopVisit
was confirmed is delivered exactly once, and nothing is delivered twice.

Phases: while models load (before READY), mid-capture, while StopVisit is in flight, right
after StopVisit confirmed, and between a report reaching the phone and its ack. Opt-in
(``pytest -m slow``): each daemon start loads Whisper and the speaker models.
"""

from __future__ import annotations

import random
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError, init_key_file
from tests.system.test_daemon import free_port, start_daemon, wait_ready

pytestmark = pytest.mark.slow

PHASES = ("loading", "capture", "stop_in_flight", "after_stop", "before_ack")


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        authority = ca.init_ca(tmp / "ca", site="Test")
        ca.issue_device(authority, "Room 4", tmp / "device.pem", ips=("127.0.0.1",))
        ca.issue_clinician(authority, tmp / "clin.pem")
        self.keys = tmp / "phone.json"
        init_key_file(tmp / "clin.pem", self.keys)
        self.port = free_port()
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\nroom = "Room 4"\nbundle = "{tmp / "device.pem"}"\n'
            f'crl = ""\nadvertise = false\n\n[outbox]\npath = "{tmp / "state"}"\n\n[logging]\njson = true\n'
        )
        self.notify_path = tmp / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.log = tmp / "daemon.log"
        self.proc = None
        self.target = phone.Target("127.0.0.1", self.port, None)

    def start(self, wait: bool = True) -> None:
        self.proc = start_daemon(self.config, self.notify_path, self.log)
        if wait:
            wait_ready(self.notify)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.notify.close()


def test_kill9_at_every_phase_of_real_visits_delivers_confirmed_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(17)
    d = Daemon(tmp_path)
    confirmed: list[str] = []
    started: list[str] = []
    shown: Counter[str] = Counter()
    kills: Counter[str] = Counter()

    def collect(then=None, **kw) -> None:  # type: ignore[no-untyped-def]
        """Count what the phone *shows* (on_report), not what feedback() returns: a kill mid-stream raises."""

        def on_report(report: phone.Report) -> None:
            shown[report.visit_id] += 1
            if then is not None:
                then(report)

        phone.feedback(d.keys, d.target, on_report=on_report, **kw)

    try:
        for round_ in range(2):
            for phase in PHASES:
                if phase == "loading":
                    d.start(wait=False)
                    time.sleep(rng.uniform(0.5, 2.5))  # Python imports / model load, before READY
                    d.kill9()
                    kills[phase] += 1
                    continue
                d.start()
                if phase == "before_ack":
                    vid = phone.start(d.keys, d.target)
                    started.append(vid)
                    time.sleep(3)
                    phone.stop(d.keys, d.target, visit_id=vid)
                    confirmed.append(vid)

                    def kill_on_report(report: phone.Report) -> None:
                        d.kill9()  # the phone has shown it and saved its cursor; the ack never lands

                    try:
                        collect(then=kill_on_report, ack_retry_delays=(0.05,))
                    except ClientError:
                        pass
                    kills[phase] += 1
                    continue
                vid = phone.start(d.keys, d.target)
                started.append(vid)
                time.sleep(rng.uniform(2.0, 6.0))  # speech is being captured and transcribed
                if phase == "capture":
                    d.kill9()
                elif phase == "stop_in_flight":
                    outcome: list[str] = []

                    def stop(v: str = vid, out: list[str] = outcome) -> None:
                        try:
                            phone.stop(d.keys, d.target, visit_id=v)
                            out.append("ok")
                        except ClientError:
                            out.append("failed")

                    t = threading.Thread(target=stop)
                    t.start()
                    time.sleep(rng.uniform(0.0, 0.4))
                    d.kill9()
                    t.join(30)
                    if outcome == ["ok"]:
                        confirmed.append(vid)
                elif phase == "after_stop":
                    phone.stop(d.keys, d.target, visit_id=vid)
                    confirmed.append(vid)
                    d.kill9()
                kills[phase] += 1
        # a last clean start: collect everything left
        d.start()
        collect()
        collect()
    finally:
        d.close()
    assert sum(kills.values()) == 2 * len(PHASES)
    twice = [v for v, n in shown.items() if n > 1]
    assert not twice, f"delivered twice: {twice}"
    missing = [v for v in confirmed if shown[v] != 1]
    assert not missing, f"confirmed but not delivered: {missing}"
    assert set(shown) <= set(started)
    # acks lost to the kill were kept by the phone and sent after the restart: nothing left on the device
    from edge_agent.device.outbox import Outbox

    box = Outbox(tmp_path / "state" / "outbox.db", heal=False)
    assert box.stats() == (0, 0)
    box.close()
    # record the figures for docs/operations.md
    print(f"kills={dict(kills)} visits={len(started)} confirmed={len(confirmed)} delivered={len(shown)}")
