"""Visit lifecycle: one visit at a time; at stop build → seal → queue → wipe.

A :class:`VisitRunner` (the pipeline's visit, ``device/visit.py``) does what
happens during the visit; this module decides when it runs and where its
report goes. Contract for a runner:

* ``start(ctx)`` is called in a worker thread once the visit is accepted; it
  turns capture on and returns promptly (do the work in your own threads).
  Raising :class:`~edge_agent.errors.EdgeAgentError` refuses the start (the
  phone sees FAILED_PRECONDITION with your message).
* ``stop()`` is called in a worker thread (at StopVisit, the max duration, an
  admin stop, or after ``ctx.request_stop``); it stops capture, builds the
  report and returns it as ``feedback_pb2.Feedback`` (or its serialised bytes),
  and wipes the transcript and all per-visit state before returning. The server
  overwrites ``visit_id`` and then seals it; it never logs it.
* ``abort()`` wipes everything without a report (used if sealing cannot happen).
* ``ctx.request_stop(reason)`` may be called from any thread (e.g. on long
  silence); the server then runs the normal stop path.
* ``ctx.voiceprint`` (float32 array) / ``ctx.voiceprint_bytes`` are the
  clinician's, sent with the start; the server zeroes both after ``stop``.

State lives in memory only. The clinician's pseudonym and sealing public key
are held for the visit so the report can be sealed and routed, and are dropped
at stop with the rest (the outbox keeps the pseudonym as the routing key).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge_agent.crypto import seal
from edge_agent.device.held import DEFAULT_MAX_HELD_BYTES, DEFAULT_SHUTDOWN_GRACE_S, SHUTDOWN_RETRY_S, HeldReports
from edge_agent.device.lost import mount_point, reason_of, report_lost
from edge_agent.device.no_report import CAPTURE_FAILED, DISCARDED, FAULT, STORAGE_FULL, NoReports
from edge_agent.device.ops.logs import Safe
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.outbox import Outbox, OutboxError
from edge_agent.errors import EdgeAgentError
from edge_agent.feedback.proto import SCHEMA_VERSION
from edge_agent.feedback.quotes import enforce_quote_policy
from edge_agent.hardening import zero_bytes
from edge_agent.proto.edge_agent.v1 import feedback_pb2

log = logging.getLogger(__name__)


ACK_QUIET_S = 1.0  # held reports are retried only after acks have been quiet this long (acks first)
DEFAULT_MAX_DURATION_S = 3600
MIN_DURATION_S = 10
MAX_DURATION_S = 4 * 3600


@dataclass
class VisitContext:
    """What a runner knows about the visit. No clinician identifier on purpose."""

    visit_id: str
    started_unix_s: int
    max_duration_s: int
    # the voiceprint stays out of repr(): a context that reaches a log line or a traceback carries no voice
    voiceprint: np.ndarray | None = field(default=None, repr=False)  # float32, the clinician's embedding
    voiceprint_bytes: bytearray | None = field(default=None, repr=False)  # opaque voiceprint, if the phone sent bytes
    request_stop: Callable[[str], None] = field(default=lambda reason: None, repr=False)

    def wipe(self) -> None:
        """Zero the voiceprint in place and drop references (privacy: voiceprints belong to the clinician)."""
        if self.voiceprint is not None:
            self.voiceprint.fill(0)
            self.voiceprint = None
        if self.voiceprint_bytes is not None:
            zero_bytes(self.voiceprint_bytes)
            self.voiceprint_bytes = None


@runtime_checkable
class VisitRunner(Protocol):
    def start(self, ctx: VisitContext) -> None: ...

    def stop(self, quotes: bool = False) -> feedback_pb2.Feedback | bytes:
        """End capture and build the report; ``quotes=False``: phrased without the clinician's words.

        A runner whose report may quote also has ``quote_clearance() -> list[str]``: the sentences its
        per-utterance quote gate cleared, taken once after ``stop`` (docs/privacy.md §4b)."""
        ...

    def abort(self) -> None: ...


def _quote_clearance(runner: VisitRunner) -> list[str]:
    """The sentences the runner's quote gate let its last report quote (``runner.quote_clearance()``, optional:
    a runner without it vouches for no sentence, and its report leaves with no quote)."""
    take = getattr(runner, "quote_clearance", None)
    return list(take()) if callable(take) else []


@runtime_checkable
class VoiceEnroller(Protocol):
    # The speaker model its voiceprints (and the runner's attribution) are made with, e.g.
    # "speaker_ge2e.onnx@<16 hex>" (SpeakerEncoder.model_id). Returned with each voiceprint; a phone start whose
    # voiceprint names another model has it ignored. "" = unknown (a voiceprint is then never judged stale).
    model_id: str

    def enroll(self, pcm: np.ndarray, sample_rate: int) -> Sequence[float]:
        """Voiceprint from int16 mono ``pcm`` (a view the server zeroes afterwards; do not keep it)."""
        ...


async def _settled(work: "asyncio.Future[Any]") -> bool:
    """Wait for work already under way to finish, even while being cancelled; True if it succeeded."""
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            continue
        except Exception:  # noqa: BLE001 - the caller only needs to know whether it succeeded
            return False
    return not work.cancelled() and work.exception() is None


def _log_capture_refused(exc: BaseException) -> None:
    """The phone is told; IT must find it too (a microphone unplugged before the visit leaves no other trace)."""
    log.warning("visit refused: capture could not start: %s", exc)


def _log_unattended(what: str, work: "asyncio.Future[Any]") -> None:
    """A visit start or stop failed after its caller went away: nobody else will log it."""
    if work.cancelled():
        return
    exc = work.exception()
    if isinstance(exc, VisitError):
        return  # logged where it was raised (a refused or failed stop)
    if what == "start" and isinstance(exc, EdgeAgentError):  # as when the phone is still there
        _log_capture_refused(exc)
    else:
        log.error("visit %s failed unexpectedly after its caller went away (%s)", what, type(exc))


# stop reasons as the metrics name them (a closed set)
_STOP_REASON = {"max duration": "max_duration", "long_silence": "long_silence", "stop": "stop", "button": "button",
                "admin": "admin", "shutdown": "shutdown"}


class VisitError(EdgeAgentError):
    """A lifecycle rule refused the request; ``kind`` maps to a gRPC status."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "busy" | "not_found" | "not_owner" | "runner" | "failed" | "outbox" | "shutdown"


# Called at stop with the outbox, the clinician's pseudonymous id and the report;
# queues the de-identified contribution record and returns its text for the phone.
Contributor = Callable[[Outbox, str, feedback_pb2.Feedback], str]


@dataclass
class _Active:
    ctx: VisitContext
    clinician: str = field(repr=False)  # identifiers stay out of repr() (log lines, tracebacks)
    recipient: seal.X25519PublicKey = field(repr=False)
    started_monotonic: float
    timer: asyncio.TimerHandle | None = None
    stopping: bool = False
    person: str = field(default="", repr=False)  # the clinician's stable subject id (population unit); the routing pseudonym otherwise


@dataclass(frozen=True)
class StopResult:
    visit_id: str
    cursor: int
    duration_s: float
    reason: str


class VisitManager:
    def __init__(
        self,
        runner: VisitRunner,
        outbox: Outbox,
        default_max_duration_s: int = DEFAULT_MAX_DURATION_S,
        contributor: Contributor | None = None,
        metrics: Registry | None = None,
        max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
        shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S,
    ) -> None:
        self._runner = runner
        self._contributor = contributor
        self._outbox = outbox
        self.default_max_duration_s = default_max_duration_s  # live: SIGHUP may change it for later visits
        self.quotes = False  # feedback.quotes (live): verbatim words in reports; off = paraphrase only
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._active: _Active | None = None
        # the visit whose capture is being turned on, and whose it is: a phone whose StartVisit answer is lost asks
        # right away (GetDeviceInfo), possibly before the start has finished, and must hear that its visit runs
        self._starting: tuple[str, VisitContext] | None = None
        self._closing = False  # the daemon is stopping: no new visit may start
        self._held = HeldReports(max_held_bytes)  # sealed, outbox refused: kept in memory and retried
        self.shutdown_grace_s = shutdown_grace_s  # live: read when the daemon stops
        # where a wait at stop is shown besides the journal (the daemon: systemd's STATUS=, so `systemctl status`
        # says why `systemctl stop` is waiting); a text with no clinician, visit or report content
        self.on_status: Callable[[str], object] | None = None
        self._refusal: BaseException | None = None  # why the outbox last refused a write (the LOST line says it)
        self._retry_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_ack = 0.0
        self.queued = asyncio.Condition()  # notified whenever an envelope lands in the outbox
        self.last_stop: StopResult | None = None
        self.no_reports = NoReports()  # visits that ended with no report, for their clinicians' phones (DeviceInfo)

    @property
    def active(self) -> bool:
        return self._active is not None

    def own_visit(self, clinician: str) -> VisitContext | None:
        """The visit running or starting here if ``clinician`` (a certificate's pseudonym) started it, else None.

        Another clinician's visit is None as much as no visit: whose a visit is, and its id, are never said to anyone
        but the one who started it (who alone may stop it)."""
        active = self._active
        if active is not None:
            return active.ctx if active.clinician == clinician else None
        starting = self._starting
        return starting[1] if starting is not None and starting[0] == clinician else None

    @property
    def unqueued(self) -> int:
        """Sealed reports held in memory because the outbox refused them."""
        return len(self._held)

    @property
    def held_bytes(self) -> int:
        return self._held.nbytes

    async def start(
        self,
        clinician: str,
        recipient: seal.X25519PublicKey,
        max_duration_s: int,
        voiceprint: np.ndarray | None,
        voiceprint_bytes: bytearray | None,
        trigger: str = "phone",
        person: str = "",
    ) -> VisitContext:
        loop = asyncio.get_running_loop()
        try:
            return await self._start(loop, clinician, recipient, max_duration_s, voiceprint, voiceprint_bytes, trigger, person)
        except BaseException:
            # refused (busy, storage full, capture failed, or anything unexpected): the voiceprint the clinician
            # sent is theirs and must not stay in memory either
            VisitContext("", 0, 0, voiceprint, voiceprint_bytes).wipe()
            raise

    async def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        clinician: str,
        recipient: seal.X25519PublicKey,
        max_duration_s: int,
        voiceprint: np.ndarray | None,
        voiceprint_bytes: bytearray | None,
        trigger: str,
        person: str,
    ) -> VisitContext:
        async with self._lock:
            if self._closing:
                raise VisitError("shutdown", "the room device is shutting down; start the visit again once it is back")
            if self._active is not None:
                raise VisitError("busy", "a visit is already running in this room; stop it first (or wait for its maximum duration)")
            if self._held.full:
                # a new report could not be kept either: capture nothing rather than lose it
                log.warning("visit refused: %d sealed reports are held in memory and the outbox still refuses them", len(self._held))
                raise VisitError(
                    "outbox", f"this room's storage is full and {len(self._held)} reports are waiting in memory; "
                    "tell IT to free space on the device, then start the visit",
                )
            visit_id = "v-" + secrets.token_urlsafe(12)
            limit = max_duration_s or self.default_max_duration_s

            def request_stop(reason: str, _vid: str = visit_id) -> None:
                # Any thread (pipeline: long silence) may ask; the stop runs on the event loop.
                try:
                    loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._auto_stop(_vid, reason)))
                except RuntimeError:
                    pass  # the daemon is shutting down; its shutdown path stops the visit

            ctx = VisitContext(visit_id, int(time.time()), limit, voiceprint, voiceprint_bytes, request_stop)
            starting = asyncio.ensure_future(asyncio.to_thread(self._runner.start, ctx))
            self._starting = (clinician, ctx)
            try:
                await asyncio.shield(starting)
            except EdgeAgentError as exc:
                _log_capture_refused(exc)  # IT's line (config key, device list) goes to the journal
                raise VisitError("runner", f"capture could not start: {exc.for_clinician}") from None
            except asyncio.CancelledError:
                self._starting = None  # being undone: a phone asking now must not be told its visit runs
                # The caller went away while capture was starting (a phone's deadline, a dropped connection). The
                # worker thread carries on and turns capture on; a visit recorded nowhere could never be stopped
                # (no stop, admin stop, silence or duration limit finds it), so turn capture off again.
                if not await _settled(starting):
                    # the phone is gone, so the servicer's guard never sees this failure: the journal must say it
                    _log_unattended("start", starting)
                else:
                    # settled too: a second cancellation (shutdown) must not end the start, wipe the voiceprint
                    # and free the room while the abort is still turning capture off
                    aborting = asyncio.ensure_future(asyncio.to_thread(self._runner.abort))
                    if not await _settled(aborting) and not aborting.cancelled():
                        log.error("ALARM: capture could not be turned off after a cancelled start (%s)", type(aborting.exception()))
                    # the phone may have learnt this visit's id meanwhile (DeviceInfo.own_visit_id): no report comes
                    self._ended_without_report(clinician, visit_id, DISCARDED)
                raise
            finally:
                self._starting = None
            active = _Active(ctx, clinician, recipient, time.monotonic(), person=person)
            active.timer = loop.call_later(limit, lambda: asyncio.ensure_future(self._auto_stop(visit_id, "max duration")))
            self._active = active
            if self._metrics is not None:
                self._metrics.inc("edge_agent_visits_total", trigger=trigger)
            # debug only: timestamped start/stop lines in the journal would be a room schedule
            log.debug("visit started (max %d s)", limit)
            return ctx

    async def stop(self, visit_id: str | None, clinician: str | None, reason: str = "stop") -> StopResult:
        """Stop the running visit. ``clinician=None`` is a system/admin stop (no owner check)."""
        async with self._lock:
            active = self._active
            if active is None or (visit_id is not None and active.ctx.visit_id != visit_id):
                raise VisitError("not_found", "no such visit is running in this room")
            if clinician is not None and active.clinician != clinician:
                raise VisitError("not_owner", "this visit was started by another clinician")
            # The stop runs to its end even if the caller goes away (a phone's deadline, a dropped connection):
            # the report is sealed and queued, and the phone gets it from its feedback stream. Cut short, the
            # visit was ended and its report thrown away.
            stopping = asyncio.ensure_future(self._stop_locked(active, reason))
            try:
                return await asyncio.shield(stopping)
            except asyncio.CancelledError:
                if not await _settled(stopping):  # keep the lock until the report is queued
                    _log_unattended("stop", stopping)
                raise

    async def _auto_stop(self, visit_id: str, reason: str) -> None:
        try:
            await self.stop(visit_id, None, reason)
        except VisitError as exc:
            if exc.kind != "not_found":  # already stopped by hand: nothing to do
                log.warning("automatic stop failed: %s", exc)

    async def _stop_locked(self, active: _Active, reason: str) -> StopResult:
        if active.timer is not None:
            active.timer.cancel()
        ctx = active.ctx
        duration = time.monotonic() - active.started_monotonic
        try:
            try:
                result = await asyncio.to_thread(self._runner.stop, self.quotes)
            except Exception as exc:  # noqa: BLE001 - a pipeline fault must not keep the room busy or crash the server
                log.error("runner failed at stop (%s); visit state wiped, no report", type(exc))
                await asyncio.to_thread(self._runner.abort)
                # the runner's own refusal (capture failed before any speech: EdgeAgentError) or a fault
                self._ended_without_report(active.clinician, ctx.visit_id,
                                           CAPTURE_FAILED if isinstance(exc, EdgeAgentError) else FAULT)
                # "failed", not "runner": the device broke, nothing the phone asked was refused (INTERNAL on the wire)
                raise VisitError("failed", "the report could not be built; the visit was ended and wiped") from None
            fb = feedback_pb2.Feedback.FromString(result) if isinstance(result, bytes | bytearray) else result
            fb.visit_id = ctx.visit_id
            # the lifecycle owns the visit's clock; the report may only extend it (speech timed past it)
            fb.duration_s = round(max(fb.duration_s, duration), 2)
            fb.started_unix_s = ctx.started_unix_s
            fb.schema_version = fb.schema_version or SCHEMA_VERSION
            # the site's quote policy holds whatever built the report; no quote at all when the report says the voices
            # could not be told apart (a "clinician" quote may then be the patient's words); with quotes on, every quote
            # must be words of a sentence the runner's per-utterance quote gate cleared (none cleared: no quote)
            unsure = fb.quality.speakers_uncertain or fb.quality.voiceprint_unheard
            enforce_quote_policy(fb, self.quotes and not unsure, _quote_clearance(self._runner))
            if self._contributor is not None:
                fb.contribution = await self._contribute(active.person or active.clinician, fb)
            plaintext = fb.SerializeToString()
            fb.Clear()
            env = seal.seal(plaintext, active.recipient, ctx.visit_id, 1)
            del plaintext  # Python bytes cannot be zeroed; drop the only reference at once
            cursor = await self._enqueue(active.clinician, env)
        except BaseException:
            self._record_stop("error")
            raise
        finally:
            ctx.wipe()
            self._active = None
        result_ = StopResult(ctx.visit_id, cursor, duration, reason)
        self.last_stop = result_
        self._record_stop(reason)
        log.debug("visit stopped (%s); report sealed and queued", reason)
        return result_

    def _ended_without_report(self, clinician: str, visit_id: str, reason: int) -> None:
        """Remember, for that clinician's phone, that this visit's report will never come; wake their feedback streams."""
        self.no_reports.add(clinician, visit_id, reason)
        asyncio.ensure_future(self._notify_queued())

    async def _notify_queued(self) -> None:
        async with self.queued:
            self.queued.notify_all()

    def _record_stop(self, reason: str) -> None:
        if self._metrics is None:
            return
        self._metrics.inc("edge_agent_visits_stopped_total", reason=_STOP_REASON.get(reason, "error"))
        self.record_outbox()

    def purge_expired(self) -> int:
        """Delete what passed the outbox's retention; a report lost that way is counted and logged (no ids)."""
        from edge_agent.population.record import AGGREGATOR_RECIPIENT

        counts = self._outbox.purge_expired_by_recipient()
        records = counts.pop(AGGREGATOR_RECIPIENT, 0)
        reports = sum(counts.values())
        if reports:
            if self._metrics is not None:
                self._metrics.inc("edge_agent_reports_expired_total", reports)
            days = self._outbox.config.retention_s / 86400
            log.warning("%d sealed reports expired undelivered after %g days in the outbox and were deleted "
                        "(their phones never collected them); outbox.retention_days sets how long reports wait", reports, days)
        if records:
            log.warning("%d population records expired undelivered and were deleted (is the aggregator reachable?)", records)
        if reports or records:
            self.record_outbox()
        return reports + records

    def record_outbox(self) -> None:
        """Outbox depth and reports held in memory, for the metrics (called after every change)."""
        if self._metrics is None:
            return
        items, size = self._outbox.stats()
        self._metrics.record_outbox(items, size)
        self._record_held()

    def _record_held(self) -> None:
        if self._metrics is not None:
            self._metrics.set("edge_agent_reports_held", len(self._held))
            self._metrics.set("edge_agent_reports_held_bytes", self._held.nbytes)

    async def _contribute(self, clinician: str, fb: feedback_pb2.Feedback) -> str:
        """The de-identified population record for this visit; its text goes to the clinician."""
        assert self._contributor is not None
        try:
            return await asyncio.to_thread(self._contributor, self._outbox, clinician, fb)
        except Exception as exc:  # noqa: BLE001 - the clinician's own report must never be lost to this
            log.warning("population contribution skipped (%s)", type(exc))
            return ""

    async def _enqueue(self, clinician: str, env: seal.Envelope) -> int:
        """Write the sealed report to the outbox, or hold it in memory (and say so) if the outbox refuses it."""
        if not self._held:
            try:
                cursor = await asyncio.to_thread(self._outbox.put, clinician, env)
            except OutboxError as exc:
                why = str(exc)
                self._refusal = exc
            else:
                async with self.queued:
                    self.queued.notify_all()
                return cursor
        else:
            why = "earlier reports are still waiting for space in the outbox"
        held = self._held.add(clinician, env)
        if held is None:
            # Over the memory bound as well: the one place a report can be lost. Counted and logged.
            if self._metrics is not None:
                self._metrics.inc("edge_agent_reports_dropped_total", reason="held_full")
            # one LOST line, and a note: the journal rotates and the count resets at a restart, doctor keeps failing
            await asyncio.to_thread(report_lost, self._outbox.path.parent, 1, self._refusal, "running")
            self._ended_without_report(clinician, env.visit_id, STORAGE_FULL)
            raise VisitError("outbox", f"{why}; the device's memory for waiting reports is full too, so this report "
                                       "could not be kept; tell IT to free space on the device") from None
        if len(self._held) == 1:
            log.warning("outbox refused a sealed report (%s): holding it in memory and retrying with back-off; "
                        "free space on %s", Safe(reason_of(self._refusal)), self._outbox.path.parent)
        else:
            log.debug("another sealed report held in memory (%d held)", len(self._held))
        self._record_held()
        self._ensure_retry_task()
        raise VisitError("outbox", f"{why} (the sealed report is held in memory and retried)") from None

    def _ensure_retry_task(self) -> None:
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    def space_freed(self) -> None:
        """An ack deleted items: held reports may fit now, but acks go first (retry after a quiet moment)."""
        self._last_ack = time.monotonic()
        if self._held:
            self._held.soon(ACK_QUIET_S, self._last_ack)
            self._wake.set()
            self._ensure_retry_task()  # (re)start the loop if it ended on an unexpected error

    async def _retry_loop(self) -> None:
        try:
            while self._held:
                now = time.monotonic()
                wait = max(self._held.next_try - now, self._last_ack + ACK_QUIET_S - now, 0.0)
                if wait > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except TimeoutError:
                        pass
                    continue
                await self.retry_held()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must not die silently: say so, it restarts at the next hold
            log.error("retry of held reports failed unexpectedly (%s)", type(exc))

    async def retry_held(self, reserve: int | None = None) -> int:
        """Write held reports to the outbox in order until it refuses one; returns how many went in."""
        done = 0
        while (held := self._held.first()) is not None:
            try:
                await asyncio.to_thread(self._outbox.put, held.clinician, held.envelope, None, reserve)
            except OutboxError as exc:
                self._refusal = exc
                self._held.failed()
                break
            self._held.pop_written(held)
            done += 1
        if done:
            self.record_outbox()
            async with self.queued:
                self.queued.notify_all()
        lasted = self._held.cleared()
        if lasted is not None:
            log.info("all held reports are now in the outbox (the outbox refused writes for %.0f s)", lasted)
        return done

    async def close(self) -> tuple[int, BaseException | None]:
        """At exit: retry held reports for ``shutdown_grace_s``, then count and zero the rest.

        Returns (reports lost, the error that refused the last write); the caller reports the loss once the
        outbox is closed (:func:`edge_agent.device.lost.report_lost`). No ack can come any more, so the writes
        use no ack reserve. Retrying every second, not once: IT freeing space during ``systemctl stop`` is the
        last chance to keep these reports, and a single try lost them to a disk that was full for seconds.
        """
        if self._retry_task is not None:
            self._retry_task.cancel()
            try:
                await self._retry_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._held:
            await self._retry_for(self.shutdown_grace_s)
        count, _size = self._held.drop_all()
        if count and self._metrics is not None:
            self._metrics.inc("edge_agent_reports_dropped_total", count, reason="exit")
        self._record_held()
        return count, self._refusal if count else None

    async def _retry_for(self, grace_s: float) -> None:
        """Write held reports (no reserve) every SHUTDOWN_RETRY_S until all are in or ``grace_s`` has passed."""
        deadline = time.monotonic() + grace_s
        announced = False
        while self._held:
            try:
                await self.retry_held(reserve=0)
            except Exception as exc:  # noqa: BLE001 - an unexpected error is one more refused write: keep trying, then report
                self._refusal = exc
            left = deadline - time.monotonic()
            if not self._held or left <= 0:
                return
            if not announced:
                announced = True
                directory, reason = self._outbox.path.parent, reason_of(self._refusal)
                mount = mount_point(directory)
                if self.on_status is not None:
                    self.on_status(f"stopping: {len(self._held)} sealed report(s) cannot be written ({reason}); "
                                   f"retrying for up to {left:.0f} s: free space on {mount} now")
                log.warning("stopping: %d sealed report(s) cannot be written to %s (%s); retrying every %g s for up to "
                            "%.0f s before they are lost: free space on %s now", len(self._held), directory,
                            Safe(reason), SHUTDOWN_RETRY_S, left, mount)
            await asyncio.sleep(min(SHUTDOWN_RETRY_S, left))

    async def shutdown(self) -> None:
        """On daemon stop, a running visit is stopped normally so its report is not lost.

        Taken under the room's lock: a start still under way (capture turning on) finishes first and
        is then stopped like any running visit; checked without the lock it was missed, ran on with
        nothing left to stop it, and its report was lost at exit. Later starts are refused."""
        async with self._lock:
            self._closing = True
        if self._active is not None:
            try:
                await self.stop(None, None, "shutdown")
            except VisitError as exc:
                if exc.kind != "outbox":  # "outbox": the report is held; the hold's own lines, then close(), say the rest
                    log.warning("stop at shutdown failed: %s", exc)
