"""kill -9 the server after queueing and before ack; restart; nothing is lost (and nothing is doubled)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError
from tests.delivery_fixtures import Pki, ServerProcess


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki_restart"))


def _fp(pki: Pki) -> str:
    return ca.load_bundle(pki.device).fingerprint


def test_kill9_after_queueing_loses_nothing_and_resumes_exactly_once(pki: Pki, tmp_path: Path) -> None:
    keys = pki.issue_clinician_keys("kill9")
    srv = ServerProcess(pki, tmp_path / "data").start()
    try:
        target = srv.target(_fp(pki))
        visits = []
        for _ in range(3):
            visits.append(phone.start(keys, target, room_code=pki.room_code()))
            phone.stop(keys, target)
        # Receive one report but do not ack, then the device dies hard.
        first = phone.feedback(keys, target, max_reports=1, ack=False)
        srv.kill9()
        srv.start()
        target = srv.target(_fp(pki))
        rest = phone.feedback(keys, target)
        assert [r.visit_id for r in first + rest] == visits
        assert "Try:" in rest[-1].render()
        # Everything delivered was acked: after another hard restart the outbox holds only the unacked first one.
        srv.kill9()
        srv.start()
        again = phone.feedback(keys, srv.target(_fp(pki)), ack=False)
        assert again == []  # the cursor is past it; nothing shown twice
    finally:
        srv.terminate()


def test_sigterm_during_a_visit_still_queues_its_report(pki: Pki, tmp_path: Path) -> None:
    keys = pki.issue_clinician_keys("sigterm")
    srv = ServerProcess(pki, tmp_path / "data").start()
    try:
        visit = phone.start(keys, srv.target(_fp(pki)), room_code=pki.room_code())
        srv.terminate()  # graceful: the running visit is stopped, sealed and queued first
        srv.start()
        reports = phone.feedback(keys, srv.target(_fp(pki)))
        assert [r.visit_id for r in reports] == [visit]
    finally:
        srv.terminate()


def kill9_trials(pki: Pki, data: Path, trials: int, seed: int = 7) -> tuple[int, int]:
    """Stop visits in a loop while killing the server at random moments.

    Every visit whose StopVisit returned OK must be delivered after restart.
    Returns (visits confirmed, envelopes lost).
    """
    rng = random.Random(seed)
    keys = pki.issue_clinician_keys(f"trials{seed}")
    srv = ServerProcess(pki, data).start()
    confirmed: list[str] = []
    try:
        for _ in range(trials):
            target = srv.target(_fp(pki))
            stop_flag = threading.Event()

            def churn() -> None:
                while not stop_flag.is_set():
                    try:
                        vid = phone.start(keys, target, room_code=pki.room_code())
                        phone.stop(keys, target, visit_id=vid)
                        confirmed.append(vid)
                    except ClientError:
                        return  # the server died under us: whatever was not confirmed may be lost

            th = threading.Thread(target=churn, daemon=True)
            th.start()
            time.sleep(rng.uniform(0.05, 0.4))
            srv.kill9()
            stop_flag.set()
            th.join(10)
            srv.start()
        delivered = [r.visit_id for r in phone.feedback(keys, srv.target(_fp(pki)))]
    finally:
        srv.terminate()
    lost = len(set(confirmed) - set(delivered))
    assert len(delivered) == len(set(delivered)), "a report was delivered twice"
    return len(confirmed), lost


def test_kill9_random_moments_few_trials(pki: Pki, tmp_path: Path) -> None:
    confirmed, lost = kill9_trials(pki, tmp_path / "data", trials=3)
    assert lost == 0


@pytest.mark.slow
def test_kill9_hundred_trials(pki: Pki, tmp_path: Path) -> None:
    confirmed, lost = kill9_trials(pki, tmp_path / "data", trials=100, seed=11)
    print(f"kill -9 trials: 100, visits confirmed: {confirmed}, envelopes lost: {lost}")
    assert confirmed >= 100 and lost == 0
