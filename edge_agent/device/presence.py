"""Presence before capture: a visit starts only for a clinician who shows they are in the room.

Two proofs (docs/security.md, "Presence"):

* **Room code** (phone start). The device holds a random 32-byte secret
  (``presence.code_secret``, 0600, made by ``edge-agent provision``). The code
  for time step ``i`` (``presence.code_step_s`` long) is 8 digits of
  ``HMAC-SHA256(secret, "edge-agent/v1 room code" 0x00 i)`` (RFC 4226 dynamic
  truncation). It is read where only someone in the room can read it: a
  display on the device, or a printed label on it (``edge-agent device
  room-code`` prints the current and the next code; with a long step such as
  28 days IT swaps the label each step). The phone sends it in
  ``StartVisitRequest.room_code``; the current and the previous step's code are
  accepted. Wrong codes are rate limited per clinician and per room.
* **Button after a claim** (``ClaimRoom`` + a press, ``device/ops/gpio.py``).

Per-room allow-list (``presence.allowed_clinicians``): a file of stable
clinician subject ids (``s-...``) or certificate pseudonyms (``c-...``), one a
line; when set, only those clinicians may start or claim visits in this room.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.crypto import ca
from edge_agent.crypto.files import write_private
from edge_agent.errors import ConfigError, EdgeAgentError

CODE_DIGITS = 8
SECRET_BYTES = 32
_LABEL = b"edge-agent/v1 room code\x00"
_ID_RE = re.compile(r"^[cs]-[a-z2-7]{16}$")


class PresenceError(EdgeAgentError):
    """The caller did not show presence; ``kind`` picks the gRPC status."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "missing" | "wrong" | "locked" | "not_allowed" | "no_code"


def code_for(secret: bytes, step: int) -> str:
    digest = hmac.new(secret, _LABEL + step.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**CODE_DIGITS).zfill(CODE_DIGITS)


def normalise(code: str) -> str:
    """What a person typed, without spaces and dashes ("1234 5678" = "1234-5678" = "12345678")."""
    return re.sub(r"[\s-]", "", code or "")


def make_secret(path: Path) -> bool:
    """Create the room-code secret if it does not exist (0600); True if created."""
    path = Path(path)
    if path.exists():
        return False
    write_private(path, secrets.token_hex(SECRET_BYTES).encode() + b"\n")
    return True


def load_secret(path: Path) -> bytes:
    path = Path(path)
    try:
        st = path.stat()
        raw = path.read_bytes().decode("ascii", errors="replace").strip()  # hex digits; damaged bytes fail the check below
    except FileNotFoundError:
        raise ConfigError(f"room-code secret {path} not found; run 'edge-agent provision' (it makes one) or set presence.code_secret") from None
    except OSError as exc:
        raise ConfigError(f"cannot read room-code secret {path}: {exc.strerror}") from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise ConfigError(f"room-code secret {path} is readable by others; run: chmod 600 {path}")
    try:
        secret = bytes.fromhex(raw)
    except ValueError:
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ConfigError(f"{path} is not a room-code secret (64 hex digits); remove it and run 'edge-agent provision'")
    return secret


@dataclass(frozen=True)
class CodeWindow:
    code: str
    valid_from: float  # unix seconds
    valid_until: float


class RoomCodes:
    def __init__(self, secret: bytes, step_s: int, clock: Callable[[], float] = time.time) -> None:
        if step_s < 30:
            raise ConfigError("presence.code_step_s must be at least 30 seconds")
        self._secret = secret
        self.step_s = int(step_s)
        self._clock = clock

    @classmethod
    def load(cls, path: Path, step_s: int, clock: Callable[[], float] = time.time) -> RoomCodes:
        return cls(load_secret(path), step_s, clock)

    def window(self, offset: int = 0, now: float | None = None) -> CodeWindow:
        """The code of the current step (``offset`` 1 = the next one, for printing a label ahead)."""
        step = int((self._clock() if now is None else now) // self.step_s) + offset
        return CodeWindow(code_for(self._secret, step), step * self.step_s, (step + 1) * self.step_s)

    def matches(self, code: str, now: float | None = None) -> bool:
        step = int((self._clock() if now is None else now) // self.step_s)
        typed = normalise(code).encode()
        ok = False
        for s in (step, step - 1):  # the previous step too: a label being swapped, a display that just changed
            ok |= hmac.compare_digest(typed, code_for(self._secret, s).encode())
        return ok


def load_allow_list(path: Path | None) -> frozenset[str] | None:
    """Ids allowed in this room (None: every clinician of the site)."""
    if path is None or not str(path):
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM from a Windows editor is not an id
    except FileNotFoundError:
        raise ConfigError(f"allow-list {path} not found; create it (one clinician id a line) or empty presence.allowed_clinicians") from None
    except UnicodeDecodeError:
        raise ConfigError(f"allow-list {path} is not UTF-8 text; save it as plain UTF-8 text, one clinician id a line") from None
    except OSError as exc:
        raise ConfigError(f"cannot read allow-list {path}: {exc.strerror}") from None
    ids = set()
    for n, line in enumerate(lines, 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not _ID_RE.match(item):
            # the line itself is never echoed: IT may have typed a name there, and this message reaches the journal
            raise ConfigError(f"{path} line {n} is not a clinician id (s-... subject or c-... pseudonym); fix or remove that line")
        ids.add(item)
    return frozenset(ids)


class Presence:
    """The room's presence rules: room codes, allow-list and the limits on guessing codes."""

    MAX_FAILURES_PER_CLINICIAN = 5
    MAX_FAILURES_PER_ROOM = 20
    FAILURE_WINDOW_S = 900.0
    LOCKOUT_S = 900.0

    def __init__(self, codes: RoomCodes | None, allowed: frozenset[str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.codes = codes
        self.allowed = allowed
        self._monotonic = monotonic
        self._failures: dict[str, list[float]] = {}  # clinician -> failure times (bounded below)
        self._room_failures: list[float] = []
        self._locked_until: dict[str, float] = {}
        self._room_locked_until = 0.0
        self._lock = threading.Lock()

    def allow(self, ident: ca.Identity) -> None:
        if self.allowed is not None and ident.subject_id not in self.allowed and ident.person not in self.allowed:
            raise PresenceError("not_allowed", "this room is not on your list of rooms; ask IT to add you to its allow-list")

    def check_code(self, ident: ca.Identity, code: str) -> None:
        """Allow-list, then the room code (raises :class:`PresenceError`)."""
        self.allow(ident)
        if self.codes is None:
            raise PresenceError("no_code", "this room has no room code; claim the room on your phone and press its button to start")
        if not normalise(code):
            raise PresenceError(
                "missing", "starting from the phone needs the room code shown on the device; type it in, or claim the room and press its button"
            )
        now = self._monotonic()
        who = ident.subject_id
        with self._lock:
            if self._room_locked_until > now or self._locked_until.get(who, 0.0) > now:
                until = max(self._room_locked_until, self._locked_until.get(who, 0.0))
                raise PresenceError("locked", f"too many wrong room codes; wait {int(until - now) + 1} s or use the room button")
        if self.codes.matches(code):
            with self._lock:
                self._failures.pop(who, None)
            return
        with self._lock:
            cutoff = now - self.FAILURE_WINDOW_S
            mine = [t for t in self._failures.get(who, []) if t > cutoff] + [now]
            self._failures[who] = mine
            self._room_failures = [t for t in self._room_failures if t > cutoff] + [now]
            if len(self._failures) > 1024:  # bounded memory: forget the stalest clinician
                self._failures.pop(next(iter(self._failures)))
            if len(mine) >= self.MAX_FAILURES_PER_CLINICIAN:
                self._locked_until[who] = now + self.LOCKOUT_S
                self._failures.pop(who, None)
            if len(self._room_failures) >= self.MAX_FAILURES_PER_ROOM:
                self._room_locked_until = now + self.LOCKOUT_S
                self._room_failures = []
            for k in [k for k, t in self._locked_until.items() if t <= now]:
                del self._locked_until[k]
        raise PresenceError("wrong", "the room code is wrong or has expired; read it again from the device in this room")
