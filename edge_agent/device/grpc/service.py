"""gRPC handlers: authorise from the peer certificate, validate every field, map errors to status codes.

No handler lets an exception escape as a traceback to the caller or the loop:
known failures become a status with a one-line message; anything unexpected is
logged by type only (never request content) and answered INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import numpy as np

from edge_agent import __version__
from edge_agent.crypto import ca, seal
from edge_agent.crypto.errors import SealError
from edge_agent.device.lifecycle import MAX_DURATION_S, MIN_DURATION_S, VisitError, VisitManager, VoiceEnroller
from edge_agent.device.ops.metrics import Registry
from edge_agent.device.outbox import Outbox, OutboxError
from edge_agent.device.presence import Presence, PresenceError
from edge_agent.errors import EdgeAgentError
from edge_agent.hardening import REGIONS, LockedRegion, zero_bytes
from edge_agent.mtls.auth import AuthError, PeerAuthorizer
from edge_agent.mtls.server import MALFORMED, Invalid, guarded
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from edge_agent.protocol import MAX_ENROLL_SECONDS, PROTOCOL_VERSION
from edge_agent.speakers.enrol import EnrolmentError, Voiceprint

log = logging.getLogger(__name__)


MAX_VOICEPRINT_BYTES = 16 * 1024
MAX_VOICEPRINT_VALUES = 4096
# a speaker model id as enrolment returns it ("speaker_ge2e.onnx@" + 16 hex digits): printable ASCII, no spaces
_MODEL_ID_RE = re.compile(r"[!-~]{1,128}")  # fullmatch: "$" would let a trailing newline in
# said to the phone (one line) when its voiceprint came from another speaker model and the visit runs without it
STALE_VOICEPRINT_NOTICE = "your voice profile was made by an older speaker model: re-enrol on the phone"
MAX_ACK_IDS = 1000
MAX_ENROLL_CHUNK = 64 * 1024
MIN_ENROLL_SECONDS = 1
FETCH_BATCH = 16
FOLLOW_POLL_S = 5.0  # followers re-check (revocation, expiry) at least this often
_VISIT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CLAIM_ID_RE = re.compile(r"^k-[A-Za-z0-9_-]{1,40}$")
MAX_CURSOR = 2**63 - 1  # outbox ids are SQLite signed 64-bit integers

_VISIT_CODES = {
    "busy": grpc.StatusCode.FAILED_PRECONDITION,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "not_owner": grpc.StatusCode.PERMISSION_DENIED,
    "runner": grpc.StatusCode.FAILED_PRECONDITION,
    "failed": grpc.StatusCode.INTERNAL,
    "outbox": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "shutdown": grpc.StatusCode.UNAVAILABLE,
}


@dataclass(frozen=True)
class Limits:
    max_streams_per_clinician: int = 4
    max_streams_total: int = 64
    max_concurrent_enrolments: int = 1


_PRESENCE_CODES = {
    "missing": grpc.StatusCode.FAILED_PRECONDITION,
    "no_code": grpc.StatusCode.FAILED_PRECONDITION,
    "wrong": grpc.StatusCode.PERMISSION_DENIED,
    "not_allowed": grpc.StatusCode.PERMISSION_DENIED,
    "locked": grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_CLAIM_STATES = {
    "pending": agent_pb2.CLAIM_PENDING,
    "started": agent_pb2.CLAIM_STARTED,
    "contested": agent_pb2.CLAIM_CONTESTED,
    "expired": agent_pb2.CLAIM_EXPIRED,
}


def _status_of(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, VisitError):
        return _VISIT_CODES[exc.kind]
    if isinstance(exc, PresenceError):
        return _PRESENCE_CODES[exc.kind]
    if isinstance(exc, OutboxError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, EnrolmentError):  # silent, no speech, too little speech: the clinician records again
        return grpc.StatusCode.INVALID_ARGUMENT
    return None


_guard = guarded(_status_of)


class _HeldPeer:
    """The caller's certificate as the TLS (or browser) session presented it, to judge again later."""

    def __init__(self, auth_context: Any) -> None:
        self._pems = list(auth_context.get("x509_pem_cert") or [])

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": self._pems}


class RoomClaimsLike(Protocol):
    """edge_agent.device.ops.gpio.RoomClaims (kept structural: the server does not import GPIO code)."""

    window_s: float

    def claim(self, clinician_id: str, public_key: Any, now: float | None = None, person: str = "",
              recheck: Any = None) -> Any: ...

    def status(self, claim_id: str, clinician_id: str) -> Any: ...


class EdgeAgentService(agent_pb2_grpc.EdgeAgentServicer):
    def __init__(
        self,
        room: str,
        auth: PeerAuthorizer,
        visits: VisitManager,
        outbox: Outbox,
        enroller: VoiceEnroller | None,
        limits: Limits = Limits(),
        claims: RoomClaimsLike | None = None,
        presence: Presence | None = None,
        metrics: Registry | None = None,
    ) -> None:
        self._claims = claims
        self._metrics = metrics
        # the speaker model the runner attributes with (the enroller shares its encoder); "" = unknown
        self.speaker_model = str(getattr(enroller, "model_id", "") or "")
        self.protocol_version = PROTOCOL_VERSION  # what GetDeviceInfo states (edge_agent.protocol; tests set another)
        self.presence = presence or Presence(None)  # no room code: phones start only by claim + button
        self._room = room
        self._auth = auth
        self._visits = visits
        self._outbox = outbox
        self._enroller = enroller
        self._limits = limits
        self._streams: Counter[str] = Counter()
        self._enrolling = 0

    # ---- device info -----------------------------------------------------------

    @_guard
    async def GetDeviceInfo(self, request: agent_pb2.GetDeviceInfoRequest, context: grpc.aio.ServicerContext) -> agent_pb2.DeviceInfo:
        ident = self._auth.identify(context)
        caps = ["visit", "feedback-" + seal.SUITE_NAME, "resume-cursor", "own-visit", "no-report"]
        if self._enroller is not None:
            caps.append("enrol")
        if self.presence.codes is not None:
            caps.append("room-code")
        if self._claims is not None:
            caps.append("button")
        crl = self._auth.crl
        # the caller's own running visit (same certificate), so a phone that lost its StartVisit answer can stop it
        own = self._visits.own_visit(ident.subject_id) if ident.role == ca.ROLE_CLINICIAN else None
        # the caller's own visits whose report will never come, so its phone stops waiting and says why
        ended = self._visits.no_reports.of(ident.subject_id) if ident.role == ca.ROLE_CLINICIAN else []
        return agent_pb2.DeviceInfo(
            protocol_version=self.protocol_version, room=self._room, capabilities=caps,
            software_version=__version__, visit_active=self._visits.active, outbox_id=self._outbox.outbox_id,
            crl=crl.pem if crl is not None else b"",
            # the model's id (the same on every device of a release; no clinician in it): phones pick the voiceprint
            # made by it, or say before the start that this room needs its own enrolment
            speaker_model=self.speaker_model,
            own_visit_id=own.visit_id if own is not None else "",
            own_visit_started_unix_s=own.started_unix_s if own is not None else 0,
            ended_without_report=[agent_pb2.EndedVisit(visit_id=e.visit_id, reason=e.reason, ended_unix_s=e.ended_unix_s)
                                  for e in ended],
        )

    # ---- visits ------------------------------------------------------------------

    @_guard
    async def ClaimRoom(self, request: agent_pb2.ClaimRoomRequest, context: grpc.aio.ServicerContext) -> agent_pb2.ClaimRoomResponse:
        ident = self._auth.require(context, ca.ROLE_CLINICIAN)
        if self._claims is None:
            raise VisitError("runner", "this room has no start button; start the visit from the phone")
        self.presence.allow(ident)
        try:
            recipient = seal.load_public_key(bytes(request.sealing_public_key))
        except SealError as exc:
            raise Invalid(str(exc)) from None
        peer = _HeldPeer(context.auth_context())

        def recheck() -> None:  # at the press: the same certificate through the same checks (clock, CRL, allow-list)
            self.presence.allow(self._auth.require(peer, ca.ROLE_CLINICIAN))

        claim = self._claims.claim(ident.subject_id, recipient, person=ident.person, recheck=recheck)
        return agent_pb2.ClaimRoomResponse(valid_for_s=int(self._claims.window_s), claim_id=claim.claim_id,
                                           contested=claim.state == "contested")

    @_guard
    async def GetClaim(self, request: agent_pb2.GetClaimRequest, context: grpc.aio.ServicerContext) -> agent_pb2.ClaimStatus:
        ident = self._auth.require(context, ca.ROLE_CLINICIAN)
        if self._claims is None:
            raise VisitError("runner", "this room has no start button; start the visit from the phone")
        if not _CLAIM_ID_RE.match(request.claim_id):
            raise Invalid("claim_id must be the id ClaimRoom returned")
        claim = self._claims.status(request.claim_id, ident.subject_id)
        if claim is None:
            raise VisitError("not_found", "no such claim of yours in this room (claims are kept for a few minutes)")
        left = 0
        if claim.state == "pending":
            left = max(0, int(self._claims.window_s - (time.monotonic() - claim.at)))
        return agent_pb2.ClaimStatus(state=_CLAIM_STATES[claim.state], visit_id=claim.visit_id, valid_for_s=left,
                                     failure=claim.failure if claim.state == "pending" else "")

    @_guard
    async def StartVisit(self, request: agent_pb2.StartVisitRequest, context: grpc.aio.ServicerContext) -> agent_pb2.StartVisitResponse:
        ident = self._auth.require(context, ca.ROLE_CLINICIAN)
        if not request.consent:
            raise Invalid("consent must be true: tell the patient capture is on, then start the visit")
        if len(request.room_code) > 32:
            raise Invalid("room_code is at most 32 characters")
        try:
            recipient = seal.load_public_key(bytes(request.sealing_public_key))
        except SealError as exc:
            raise Invalid(str(exc)) from None
        if request.voiceprint and request.voiceprint_values:
            raise Invalid("send the voiceprint either as bytes or as values, not both")
        if len(request.voiceprint) > MAX_VOICEPRINT_BYTES:
            raise Invalid(f"voiceprint bytes exceed {MAX_VOICEPRINT_BYTES}")
        if len(request.voiceprint_values) > MAX_VOICEPRINT_VALUES:
            raise Invalid(f"voiceprint has more than {MAX_VOICEPRINT_VALUES} values")
        stated = request.voiceprint_model
        if stated and not _MODEL_ID_RE.fullmatch(stated):
            raise Invalid("voiceprint_model must be the id enrolment returned (printable ASCII, at most 128 characters)")
        if stated and not (request.voiceprint or request.voiceprint_values):
            raise Invalid("voiceprint_model names the model of a voiceprint: send it with the voiceprint, or neither")
        limit = int(request.max_duration_s)
        if limit and not MIN_DURATION_S <= limit <= MAX_DURATION_S:
            raise Invalid(f"max_duration_s must be 0 (device default) or {MIN_DURATION_S}..{MAX_DURATION_S}")
        vp: np.ndarray | None = None
        if request.voiceprint_values:
            vp = np.asarray(request.voiceprint_values, dtype=np.float32)
            if not np.all(np.isfinite(vp)):
                vp.fill(0)
                raise Invalid("voiceprint values must be finite numbers")
        vp_bytes = bytearray(request.voiceprint) if request.voiceprint else None
        if vp_bytes is not None:
            # a damaged voiceprint is the request's fault (INVALID_ARGUMENT, "enrol again"), not a capture failure
            try:
                Voiceprint.from_bytes(vp_bytes).wipe()
            except EdgeAgentError as exc:
                zero_bytes(vp_bytes)
                raise Invalid(str(exc)) from None
        try:
            self.presence.check_code(ident, request.room_code)  # proof the clinician is in this room (or refused)
        except PresenceError:
            if vp is not None:
                vp.fill(0)
            if vp_bytes is not None:
                zero_bytes(vp_bytes)
            raise
        use = self._voiceprint_use(vp is not None or vp_bytes is not None, stated)
        if use == agent_pb2.VOICEPRINT_STALE:
            # Another encoder's voiceprint: its cosines to this encoder's embeddings mean nothing and would
            # mis-attribute clinician and patient with confidence. Not used, and forgotten now; the visit still
            # starts (coaching is not lost: attribution works without enrolment) and the phone is told to re-enrol.
            if vp is not None:
                vp.fill(0)
            if vp_bytes is not None:
                zero_bytes(vp_bytes)
            vp = vp_bytes = None
        ctx = await self._visits.start(ident.subject_id, recipient, limit, vp, vp_bytes, person=ident.person)
        self._count_voiceprint(use)
        return agent_pb2.StartVisitResponse(
            visit_id=ctx.visit_id, started_unix_s=ctx.started_unix_s, max_duration_s=ctx.max_duration_s, voiceprint_use=use,
            notice=STALE_VOICEPRINT_NOTICE if use == agent_pb2.VOICEPRINT_STALE else "",
        )

    def _voiceprint_use(self, sent: bool, stated: str) -> int:
        """What this start does with the voiceprint: none sent, used (same model), unchecked (no id), stale (other model)."""
        if not sent:
            return agent_pb2.VOICEPRINT_NONE
        if not stated or not self.speaker_model:  # an old phone, or a device that cannot say: as before
            return agent_pb2.VOICEPRINT_UNCHECKED
        return agent_pb2.VOICEPRINT_USED if stated == self.speaker_model else agent_pb2.VOICEPRINT_STALE

    def _count_voiceprint(self, use: int) -> None:
        # a count only (no clinician, no model id), published on the metrics clock; the line is per visit: debug
        check = {agent_pb2.VOICEPRINT_USED: "matched", agent_pb2.VOICEPRINT_STALE: "stale",
                 agent_pb2.VOICEPRINT_UNCHECKED: "unstated"}.get(use)
        if check is None:
            return
        if self._metrics is not None:
            self._metrics.inc("edge_agent_start_voiceprints_total", check=check)
        if check == "stale":
            log.debug("a phone start sent a voiceprint of another speaker model: the visit runs without it (phone told to re-enrol)")
        elif check == "unstated":
            log.debug("a phone start sent a voiceprint without its speaker model id (a phone from before): used unchecked")

    @_guard
    async def StopVisit(self, request: agent_pb2.StopVisitRequest, context: grpc.aio.ServicerContext) -> agent_pb2.StopVisitResponse:
        ident = self._auth.require(context, ca.ROLE_CLINICIAN)
        if not _VISIT_ID_RE.match(request.visit_id):
            raise Invalid("visit_id must be the 1-64 character id StartVisit returned")
        result = await self._visits.stop(request.visit_id, ident.subject_id)
        return agent_pb2.StopVisitResponse(visit_id=result.visit_id, cursor=result.cursor, duration_s=result.duration_s)

    # ---- enrolment ------------------------------------------------------------------

    @_guard
    async def EnrollVoice(
        self, request_iterator: AsyncIterator[agent_pb2.EnrollVoiceChunk], context: grpc.aio.ServicerContext
    ) -> agent_pb2.EnrollVoiceResponse:
        self._auth.require(context, ca.ROLE_CLINICIAN)
        if self._enroller is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this device has no voice enrolment")
        if self._enrolling >= self._limits.max_concurrent_enrolments:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "another enrolment is running; try again in a minute")
        self._enrolling += 1
        # The clinician's voice goes into one zeroable, locked, page-aligned region outside the heap
        # (sized from the first chunk's rate, reused across enrolments) instead of a growing bytearray,
        # whose reallocations left unzeroed copies behind. What Python cannot zero: the gRPC receive
        # buffer and each protobuf message's own copy of its chunk (<= 64 KiB; freed as soon as the
        # next chunk arrives), and the one `bytes` protobuf hands out per chunk, dropped at once.
        region: LockedRegion | None = None
        filled = 0
        try:
            rate = 0
            buf: np.ndarray | None = None
            async for chunk in request_iterator:
                if chunk is MALFORMED:
                    raise Invalid("audio chunk is not a valid EnrollVoiceChunk message")
                if not rate:
                    rate = chunk.sample_rate
                    if not 8000 <= rate <= 48000:
                        raise Invalid("first chunk must set sample_rate between 8000 and 48000")
                elif chunk.sample_rate and chunk.sample_rate != rate:
                    raise Invalid("sample_rate changed mid-stream")
                data = chunk.pcm_s16le  # the one copy out of the message
                size = len(data)
                if size > MAX_ENROLL_CHUNK:
                    raise Invalid(f"audio chunk over {MAX_ENROLL_CHUNK} bytes; send smaller chunks")
                if buf is None:
                    region = REGIONS.take(MAX_ENROLL_SECONDS * rate * 2)
                    buf = region.array((region.nbytes,), np.uint8)
                if filled + size > buf.size:
                    raise Invalid(f"enrolment audio longer than {MAX_ENROLL_SECONDS} s")
                buf[filled : filled + size] = np.frombuffer(data, dtype=np.uint8)
                filled += size
                del data
            if not rate or buf is None:
                raise Invalid("no audio received")
            if filled % 2:
                raise Invalid("PCM s16le audio must have an even number of bytes")
            if filled < MIN_ENROLL_SECONDS * rate * 2:
                raise Invalid(f"need at least {MIN_ENROLL_SECONDS} s of speech to enrol")
            pcm = buf[:filled].view(np.int16)  # a view: zeroing the region zeroes it
            assert self._enroller is not None
            try:
                values = await asyncio.to_thread(self._enroller.enroll, pcm, rate)
            except EdgeAgentError as exc:  # audio it cannot enrol from (silent, too little speech): say what to record
                raise Invalid(exc.message) from None
            del pcm
            return agent_pb2.EnrollVoiceResponse(voiceprint_values=list(values), audio_s=filled / 2 / rate,
                                                 voiceprint_model=self.speaker_model)
        finally:
            if region is not None:
                REGIONS.give(region)  # zeroed, then reused by the next enrolment (the clinician's voice is not kept)
            self._enrolling -= 1

    # ---- feedback -----------------------------------------------------------------

    async def StreamFeedback(
        self, request: agent_pb2.StreamFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.FeedbackItem]:
        try:
            ident = self._auth.require(context, ca.ROLE_CLINICIAN)
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
            return
        if request is MALFORMED:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid StreamFeedbackRequest")
            return
        if request.cursor > MAX_CURSOR:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cursor is beyond any item id; use 0 or the last id you received")
            return
        me = ident.subject_id
        if self._streams[me] >= self._limits.max_streams_per_clinician or sum(self._streams.values()) >= self._limits.max_streams_total:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many open feedback streams; close one and retry")
            return
        self._streams[me] += 1
        cursor = int(request.cursor)
        # a visit of this clinician's ending with no report ends a followed stream: the phone then reads DeviceInfo
        # (ended_without_report) and stops waiting for that report
        no_report = self._visits.no_reports.generation.get(me)
        try:
            while True:
                # no retry of held reports here: fetches must never take the space an ack needs
                items = await asyncio.to_thread(self._outbox.fetch, me, cursor, FETCH_BATCH)
                for item in items:
                    yield agent_pb2.FeedbackItem(id=item.id, envelope=seal.to_proto(item.envelope))
                    cursor = item.id
                if items:
                    continue
                if not request.follow:
                    return
                async with self._visits.queued:
                    try:
                        await asyncio.wait_for(self._visits.queued.wait(), FOLLOW_POLL_S)
                    except TimeoutError:
                        pass
                if self._visits.no_reports.generation.get(me) != no_report:
                    return
                try:
                    self._auth.require(context, ca.ROLE_CLINICIAN)  # revoked mid-stream: end it
                except AuthError as exc:
                    await context.abort(exc.code, exc.message)
                    return
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001
            log.error("StreamFeedback failed unexpectedly: %s", type(exc))
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the device logged it")
        finally:
            self._streams[me] -= 1
            if self._streams[me] <= 0:
                del self._streams[me]

    @_guard
    async def Ack(self, request: agent_pb2.AckRequest, context: grpc.aio.ServicerContext) -> agent_pb2.AckResponse:
        ident = self._auth.require(context, ca.ROLE_CLINICIAN)
        if not request.ids:
            raise Invalid("ids must list at least one delivered item id")
        if len(request.ids) > MAX_ACK_IDS:
            raise Invalid(f"at most {MAX_ACK_IDS} ids per Ack")
        if any(i == 0 for i in request.ids):
            raise Invalid("item ids start at 1")
        ids = [int(i) for i in dict.fromkeys(request.ids) if i < 2**63]  # SQLite integers are signed 64-bit
        # idempotent: ids already deleted (an ack retried after a lost answer) count 0, never an error
        deleted = await asyncio.to_thread(self._outbox.ack, ident.subject_id, ids)
        if deleted:
            self._visits.space_freed()  # held reports are retried after acks go quiet, never ahead of them
            await asyncio.to_thread(self._visits.record_outbox)
        return agent_pb2.AckResponse(deleted=deleted)


class AdminService(agent_pb2_grpc.EdgeAgentAdminServicer):
    def __init__(self, room: str, auth: PeerAuthorizer, visits: VisitManager, outbox: Outbox, server_cert_not_after: int) -> None:
        self._room = room
        self._auth = auth
        self._visits = visits
        self._outbox = outbox
        self._not_after = server_cert_not_after
        self._started = time.monotonic()

    @_guard
    async def GetStatus(self, request: agent_pb2.GetStatusRequest, context: grpc.aio.ServicerContext) -> agent_pb2.DeviceStatus:
        self._auth.require(context, ca.ROLE_ADMIN)
        items, size = await asyncio.to_thread(self._outbox.stats)
        cfg = self._outbox.config
        return agent_pb2.DeviceStatus(
            room=self._room, software_version=__version__, uptime_s=time.monotonic() - self._started,
            visit_active=self._visits.active, outbox_items=items, outbox_bytes=size,
            outbox_capacity_items=cfg.max_items, outbox_capacity_bytes=cfg.max_bytes,
            server_cert_not_after_unix_s=self._not_after, revoked_serials=self._auth.revoked_count,
        )

    @_guard
    async def ForceStopVisit(self, request: agent_pb2.ForceStopVisitRequest, context: grpc.aio.ServicerContext) -> agent_pb2.ForceStopVisitResponse:
        self._auth.require(context, ca.ROLE_ADMIN)
        if not self._visits.active:
            return agent_pb2.ForceStopVisitResponse(stopped=False)
        await self._visits.stop(None, None, "admin")
        return agent_pb2.ForceStopVisitResponse(stopped=True)

    @_guard
    async def PurgeExpired(self, request: agent_pb2.PurgeExpiredRequest, context: grpc.aio.ServicerContext) -> agent_pb2.PurgeExpiredResponse:
        self._auth.require(context, ca.ROLE_ADMIN)
        purged = await asyncio.to_thread(self._visits.purge_expired)
        await asyncio.to_thread(self._visits.record_outbox)
        return agent_pb2.PurgeExpiredResponse(purged=purged)

