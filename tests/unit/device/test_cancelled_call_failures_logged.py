"""A StartVisit/StopVisit whose caller went away still has its failure in the journal.

Since the lifecycle lets a cancelled start or stop run to its end (``_settled``), a failure of that
work reaches nobody: the phone's call is gone, so the servicer's guard, which logs every unexpected
failure, never sees it. Before the fix it was absorbed without a line: a report lost at stop, or a
microphone that could not be opened at start, left no trace for IT.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from edge_agent.crypto import seal
from edge_agent.device.lifecycle import VisitContext, VisitManager
from edge_agent.device.outbox import Outbox
from edge_agent.errors import AudioInputError
from tests.doubles.scripted_runner import ScriptedVisitRunner

CLINICIAN = "c-aaaaaaaaaaaaaaaa"


class FaultyRunner(ScriptedVisitRunner):
    """Start: the microphone is gone. Stop: a report that is not a Feedback. Each waits for the test's go."""

    def __init__(self, fail_start: bool) -> None:
        super().__init__()
        self.fail_start = fail_start
        self.entered = threading.Event()
        self.go = threading.Event()

    def start(self, ctx: VisitContext) -> None:
        if self.fail_start:
            self.entered.set()
            self.go.wait(10)
            raise AudioInputError("no microphone found")
        super().start(ctx)

    def stop(self, quotes: bool = False):  # type: ignore[no-untyped-def]
        super().stop(quotes)
        self.entered.set()
        self.go.wait(10)
        return b"\xff\xff\xff"  # not a Feedback message


def _run_cancelled(tmp_path: Path, fail_start: bool) -> None:
    async def scenario() -> None:
        runner = FaultyRunner(fail_start)
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(runner, outbox)
        _priv, pub = seal.generate_keypair()
        key = seal.load_public_key(pub)
        if fail_start:
            call = asyncio.ensure_future(manager.start(CLINICIAN, key, 60, None, None))
        else:
            ctx = await manager.start(CLINICIAN, key, 60, None, None)
            call = asyncio.ensure_future(manager.stop(ctx.visit_id, CLINICIAN))
        assert await asyncio.to_thread(runner.entered.wait, 10)
        call.cancel()  # the phone's deadline passed
        runner.go.set()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert not manager.active
        outbox.close()

    asyncio.run(scenario())


def test_a_start_failing_after_its_caller_left_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_agent"):
        _run_cancelled(tmp_path, fail_start=True)
    assert any("capture could not start" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_stop_failing_after_its_caller_left_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_agent"):
        _run_cancelled(tmp_path, fail_start=False)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("stop" in m for m in errors), [r.getMessage() for r in caplog.records]
