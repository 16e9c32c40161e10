"""A small gRPC-Web (application/grpc-web+proto) adapter as an ASGI app.

Why not ``sonora``: its CORS answer reflects the request's Host header as the
allowed origin (any page could call the device), it pins urllib3<2 and pulls
aiohttp, and its ``abort`` raises a plain ``grpc.RpcError`` that the
servicer's guard would turn into INTERNAL. The protocol itself is small:
length-prefixed frames (flag byte, 4-byte big-endian length) in the body, and
a last frame with flag 0x80 carrying the trailers (``grpc-status``,
``grpc-message``). This module implements exactly that over the *same*
servicer objects the gRPC port uses, so every RPC runs the same code.

Browsers cannot stream a request body; a client-streaming method (EnrollVoice)
is therefore answered from a single POST whose body holds several frames, each
one message of the stream. The servicer applies its usual per-chunk and total
limits; the body is capped before any parsing.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import grpc
import numpy as np

from edge_agent.hardening import zero_bytes
from edge_agent.mtls.auth import AuthError

log = logging.getLogger(__name__)

CONTENT_TYPES = (b"application/grpc-web+proto", b"application/grpc-web")
SESSION_HEADER = "x-edge-agent-session"
ALLOWED_REQUEST_HEADERS = "content-type, x-grpc-web, x-user-agent, grpc-timeout, " + SESSION_HEADER
TRAILER_FLAG = 0x80

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Method:
    """One RPC as the browser endpoint serves it."""

    handler: Callable[..., Any]  # bound servicer method (async function or async generator)
    parse: Callable[[bytes], Any]  # tolerant deserializer (returns a MALFORMED marker on garbage)
    serialize: Callable[[Any], bytes]
    client_streaming: bool = False
    server_streaming: bool = False
    max_body: int = 128 * 1024  # same as the gRPC port's receive limit
    authenticated: bool = True  # False only for the sign-in handshake itself


@dataclass
class WebContext:
    """What a servicer sees instead of ``grpc.aio.ServicerContext``.

    ``auth_context()`` answers like mutual TLS does, with the certificate the
    session was opened with, so ``PeerAuthorizer`` (role, CRL) and every
    handler run unchanged. ``identity`` is a callable so an expired session or
    certificate is noticed on every check, also inside long feedback streams.
    """

    metadata: tuple[tuple[str, str], ...]
    peer: Callable[[], bytes | None] = lambda: None
    client: str = ""  # the phone's network address, as the connection gate saw it (per-address limits)
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    _trailing: list[tuple[str, str]] = field(default_factory=list)

    def auth_context(self) -> Mapping[str, list[bytes]]:
        pem = self.peer()  # may raise AuthError (session or certificate expired)
        return {"x509_pem_cert": [pem]} if pem else {}

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.code, self.details = code, details
        raise grpc.aio.AbortError()

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, md: Iterable[tuple[str, str]]) -> None:
        self._trailing.extend(md)

    def time_remaining(self) -> float | None:
        return None


def frame(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def unframe(body: bytes | bytearray | memoryview) -> list[memoryview]:
    """Split a request body into message payloads (views into ``body``, no copies); raises ValueError if malformed."""
    body = memoryview(body)
    out, i = [], 0
    while i < len(body):
        if len(body) - i < 5:
            raise ValueError("truncated gRPC-Web frame header")
        flags, n = struct.unpack_from(">BI", body, i)
        if flags & 0x01:
            raise ValueError("compressed gRPC-Web frames are not accepted")
        if flags & TRAILER_FLAG:
            raise ValueError("a request cannot carry trailers")
        if i + 5 + n > len(body):
            raise ValueError("truncated gRPC-Web frame")
        out.append(body[i + 5 : i + 5 + n])
        i += 5 + n
    return out


def trailers(code: grpc.StatusCode, details: str) -> bytes:
    lines = [f"grpc-status: {code.value[0]}"]
    if details:
        lines.append(f"grpc-message: {quote(details, safe=' ,.;:!?()/-_')}")
    return frame(("\r\n".join(lines) + "\r\n").encode("ascii"), TRAILER_FLAG)


class GrpcWebApp:
    """ASGI application: CORS for one configured site origin, gRPC-Web framing, session lookup."""

    def __init__(
        self,
        methods: Mapping[str, Method],
        allowed_origins: Iterable[str],
        session_peer: Callable[[str], Callable[[], bytes | None]],
    ) -> None:
        self._methods = dict(methods)
        self._origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self._session_peer = session_peer  # token -> peer callable (raises AuthError if unknown/expired)

    # ---- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/") not in self._origins:
            # a page from another origin gets nothing, not even an error it could read
            await _plain(send, 403, b"origin not allowed", [])
            return
        cors = _cors_headers(origin)
        method = self._methods.get(scope["path"])
        if scope["method"] == "OPTIONS":
            status = 204 if method is not None else 404
            await _plain(send, status, b"", cors + [
                (b"access-control-allow-methods", b"POST"),
                (b"access-control-allow-headers", ALLOWED_REQUEST_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
            ])
            return
        if method is None:
            await _plain(send, 404, b"not found", cors)
            return
        if scope["method"] != "POST" or headers.get("content-type", "").split(";")[0].strip().encode() not in CONTENT_TYPES:
            await _plain(send, 415, b"gRPC-Web (application/grpc-web+proto) POST only", cors)
            return
        client = scope.get("client")
        ctx = WebContext(metadata=tuple(headers.items()), client=str(client[0]) if client else "")
        if method.authenticated:
            ctx.peer = self._session_peer(headers.get(SESSION_HEADER, ""))
            try:
                ctx.peer()  # no valid session: refused before its body (up to 2.9 MB for EnrollVoice) is taken in
            except AuthError as exc:
                await self._reply(send, cors, ctx, [], exc.code, exc.message)
                return
        try:
            body = await _read_body(receive, method.max_body, headers.get("content-length", ""))
        except BodyTooLarge:
            await self._reply(send, cors, ctx, [], grpc.StatusCode.RESOURCE_EXHAUSTED, f"request larger than {method.max_body} bytes")
            return
        try:
            await self._call(method, body, ctx, cors, scope, send, receive, headers)
        finally:
            zero_bytes(body)  # an EnrollVoice body is the clinician's voice: zeroed like the gRPC port's enrolment region

    async def _call(self, method: Method, body: bytearray, ctx: WebContext, cors: list[tuple[bytes, bytes]],
                    scope: dict[str, Any], send: Send, receive: Receive, headers: Mapping[str, str]) -> None:
        try:
            payloads = unframe(body)
        except ValueError as exc:
            await self._reply(send, cors, ctx, [], grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        if method.server_streaming:
            await self._stream(method, payloads, ctx, cors, send, receive)
            return
        try:
            if method.client_streaming:
                reply = await method.handler(_aiter(method.parse(p) for p in payloads), ctx)
            else:
                reply = await method.handler(method.parse(payloads[0] if payloads else b""), ctx)
        except grpc.aio.AbortError:
            await self._reply(send, cors, ctx, [], ctx.code, ctx.details)
            return
        except Exception as exc:  # noqa: BLE001 - the servicer guards its own; this is the adapter's last line
            log.error("web %s failed unexpectedly: %s", scope["path"], type(exc))
            await self._reply(send, cors, ctx, [], grpc.StatusCode.INTERNAL, "internal error; the device logged it")
            return
        await self._reply(send, cors, ctx, [method.serialize(reply)], grpc.StatusCode.OK, "")

    async def _reply(self, send: Send, cors: list[tuple[bytes, bytes]], ctx: WebContext, messages: list[bytes],
                     code: grpc.StatusCode, details: str) -> None:
        body = b"".join(frame(m) for m in messages) + trailers(code, details)
        await send({"type": "http.response.start", "status": 200, "headers": _grpc_headers(cors, len(body))})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _stream(self, method: Method, payloads: list[bytes], ctx: WebContext, cors: list[tuple[bytes, bytes]],
                      send: Send, receive: Receive) -> None:
        agen = method.handler(method.parse(payloads[0] if payloads else b""), ctx)
        await send({"type": "http.response.start", "status": 200, "headers": _grpc_headers(cors, None)})
        gone = asyncio.ensure_future(_disconnected(receive))
        code, details = grpc.StatusCode.OK, ""
        nxt: asyncio.Future[Any] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(agen.__anext__())
                done, _ = await asyncio.wait({nxt, gone}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    return  # the phone went away: the finally below ends the servicer's loop (its finally frees the slot)
                step, nxt = nxt, None
                try:
                    msg = step.result()
                except StopAsyncIteration:
                    break
                except grpc.aio.AbortError:
                    code, details = ctx.code, ctx.details
                    break
                except Exception as exc:  # noqa: BLE001
                    log.error("web stream failed unexpectedly: %s", type(exc))
                    code, details = grpc.StatusCode.INTERNAL, "internal error; the device logged it"
                    break
                await send({"type": "http.response.body", "body": frame(method.serialize(msg)), "more_body": True})
            await send({"type": "http.response.body", "body": trailers(code, details), "more_body": False})
        finally:
            # also on server shutdown (uvicorn cancels this task): stop the pending step, then close the generator
            gone.cancel()
            if nxt is not None and not nxt.done():
                nxt.cancel()
            for pending in (nxt, gone):
                if pending is not None:
                    try:
                        await pending
                    except BaseException:  # noqa: BLE001 - CancelledError or what the cancelled step raised
                        pass
            try:
                await agen.aclose()
            except BaseException:  # noqa: BLE001 - an already finished or cancelled generator
                pass


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _copy_into(dst: bytearray, at: int, src: Any) -> None:
    """``dst[at:at+len(src)] = src`` without the temporary copy CPython makes when ``src`` is not a bytearray."""
    if len(src):
        np.frombuffer(dst, np.uint8)[at : at + len(src)] = np.frombuffer(src, np.uint8)


async def _read_body(receive: Receive, limit: int, content_length: str = "") -> bytearray:
    """The request body in one bytearray of exactly its size, which the caller zeroes after use.

    It may be enrolment audio, so it is never left behind in memory: no ``bytes`` copy, and
    a buffer outgrown while reading is zeroed before it is dropped (a growing ``bytearray``
    would leave each of its reallocated predecessors unzeroed on the heap).
    """
    expected = int(content_length) if content_length.isdigit() else 0
    buf = bytearray(min(expected, limit + 1) or min(64 * 1024, limit + 1))
    n = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            piece = message.get("body", b"")
            if n + len(piece) > limit:
                raise BodyTooLarge()
            if n + len(piece) > len(buf):
                grown = bytearray(min(max(2 * len(buf), n + len(piece)), limit))
                _copy_into(grown, 0, memoryview(buf)[:n])
                zero_bytes(buf)
                buf = grown
            _copy_into(buf, n, piece)
            n += len(piece)
            if not message.get("more_body", False):
                break
    except BaseException:
        zero_bytes(buf)
        raise
    if n < len(buf):
        exact = bytearray(n)
        _copy_into(exact, 0, memoryview(buf)[:n])
        zero_bytes(buf)
        buf = exact
    return buf


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _cors_headers(origin: str | None) -> list[tuple[bytes, bytes]]:
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", b"grpc-status, grpc-message"),
        (b"vary", b"Origin"),
    ]


def _grpc_headers(cors: list[tuple[bytes, bytes]], length: int | None) -> list[tuple[bytes, bytes]]:
    h = [(b"content-type", b"application/grpc-web+proto"), (b"cache-control", b"no-store"),
         (b"x-content-type-options", b"nosniff")]
    if length is not None:
        h.append((b"content-length", str(length).encode()))
    return h + cors


async def _plain(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())] + headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
