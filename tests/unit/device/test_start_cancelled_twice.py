"""A start cancelled twice (the phone's deadline, then the daemon's shutdown) still waits for capture to stop.

``VisitManager.start`` shields the runner's start; when cancelled it waits for it and then aborts
the capture it turned on. Before the fix only the first cancellation was absorbed: a second one
arriving while the abort ran in its worker thread ended the start at once, so the clinician's
voiceprint was zeroed under a capture still running with it, and the room's lock was released
while capture was still on (a new visit could start into a runner not yet aborted).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_agent.crypto import seal
from edge_agent.device.lifecycle import VisitContext, VisitError, VisitManager
from edge_agent.device.outbox import Outbox
from edge_agent.speakers.encoder import EMBED_DIM
from tests.doubles.scripted_runner import ScriptedVisitRunner


class GatedRunner(ScriptedVisitRunner):
    """The scripted runner with a start and an abort as slow as a sluggish audio device."""

    def __init__(self) -> None:
        super().__init__()
        self.starting = threading.Event()
        self.let_start = threading.Event()
        self.aborting = threading.Event()
        self.let_abort = threading.Event()

    def start(self, ctx: VisitContext) -> None:
        self.starting.set()
        self.let_start.wait(10)
        super().start(ctx)

    def abort(self) -> None:
        self.aborting.set()
        self.let_abort.wait(10)
        super().abort()


async def _until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10)


def test_a_second_cancel_during_the_abort_does_not_wipe_under_running_capture(tmp_path: Path) -> None:
    async def scenario() -> None:
        runner = GatedRunner()
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(runner, outbox)
        _priv, pub = seal.generate_keypair()
        vp = np.full(EMBED_DIM, 0.25, np.float32)
        task = asyncio.ensure_future(manager.start("c-aaaaaaaaaaaaaaaa", seal.load_public_key(pub), 60, vp, None))
        await _until(runner.starting)
        task.cancel()  # the phone's deadline
        runner.let_start.set()
        await _until(runner.aborting)
        task.cancel()  # then the daemon's shutdown
        await asyncio.sleep(0.1)
        try:
            assert runner.holds_visit_state  # capture is still on: the abort has not returned
            assert not task.done(), "the start ended (and released the room) while capture was still on"
            assert vp.any(), "the voiceprint was zeroed under a capture still using it"
        finally:
            runner.let_abort.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not runner.holds_visit_state and not manager.active and runner.aborted == 1
        assert not vp.any(), "the cancelled start's voiceprint was kept"
        outbox.close()

    asyncio.run(scenario())


def test_shutdown_waits_for_a_start_under_way_and_stops_it(tmp_path: Path) -> None:
    """A start still turning capture on when the daemon stops is stopped with its report queued.

    ``shutdown`` used to look for a running visit without the room's lock: a start under way was
    not running yet, so shutdown found nothing, the start then completed with capture on and
    nothing left to stop it, and its report was lost at exit. Later starts are refused."""
    async def scenario() -> None:
        runner = GatedRunner()
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(runner, outbox)
        _priv, pub = seal.generate_keypair()
        key = seal.load_public_key(pub)
        start = asyncio.ensure_future(manager.start("c-aaaaaaaaaaaaaaaa", key, 60, None, None))
        await _until(runner.starting)
        closing = asyncio.ensure_future(manager.shutdown())
        await asyncio.sleep(0.1)
        runner.let_start.set()
        await start
        await closing
        assert runner.stopped == 1 and not runner.holds_visit_state and not manager.active
        assert outbox.stats()[0] == 1, "the visit's sealed report was not queued"
        with pytest.raises(VisitError, match="shutting down"):
            await manager.start("c-aaaaaaaaaaaaaaaa", key, 60, None, None)
        outbox.close()

    asyncio.run(scenario())
