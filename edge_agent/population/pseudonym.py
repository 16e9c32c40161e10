"""Rotating keyed pseudonyms: HMAC of the clinician certificate id under a per-period key.

Key schedule (a one-way hash ratchet, forward secure)::

    state[i+1] = HMAC-SHA256(state[i], "edge-agent/v1 population ratchet")
    key[i]     = HMAC-SHA256(state[i], "edge-agent/v1 population period key" 0x00 label[i])
    pseudonym  = HMAC-SHA256(key[i], "edge-agent/v1 pseudonym" 0x00 cert_id)[:16], hex

``i`` is the period index (week, month or quarter). IT makes one random 32-byte
state for the current period (``PeriodKeyRing.create``) and copies the key file
to every room device of the site, exactly like a certificate bundle, so that a
clinician who works in several rooms gets *one* pseudonym per period (distinct
clinicians are counted right, the k threshold cannot be inflated by rooms).

Each holder advances the ratchet when a new period begins and overwrites the
old state: the file is replaced atomically and the old in-memory bytes are
zeroed. From ``state[i+1]`` nobody can compute ``state[i]`` (HMAC is one-way),
so once every holder has advanced, the key of a finished period no longer
exists anywhere and its pseudonyms cannot be linked to certificate ids or to
the pseudonyms of another period. The aggregator never receives this file.

Honest limits (docs/privacy.md, "threat model"): whoever holds the *current*
state and a list of certificate ids (a room device, the IT provisioning host
with ``issued.jsonl``) can compute the current period's pseudonyms; erasure on
flash storage is best effort (the old file's blocks may survive until the SSD
reuses them); Python may leave copies of key bytes in freed memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from edge_agent.crypto.files import write_private
from edge_agent.hardening import zero_bytes
from edge_agent.population.errors import PeriodKeyGoneError, PopulationError
from edge_agent.population.periods import DEFAULT_GRANULARITY, Period, parse_period, period_of
from edge_agent.wording import a_or_an

_KIND = "edge-agent population period key"
_RATCHET = b"edge-agent/v1 population ratchet"
_PERIOD_KEY = b"edge-agent/v1 population period key\x00"
_PSEUDONYM = b"edge-agent/v1 pseudonym\x00"
STATE_LEN = 32
PSEUDONYM_HEX_LEN = 32  # 128 bits: collisions among a site's clinicians are negligible
MAX_RATCHET_STEPS = 100_000  # ~1900 years of weeks; guards against a garbage period


class PeriodKeyRing:
    """The device-side holder of the current period's pseudonym key (never on the aggregator)."""

    def __init__(self, path: Path, period: Period, state: bytearray) -> None:
        self.path = Path(path)
        self._period = period
        self._state = state
        self._lock = threading.Lock()
        self._unsaved = False  # the file still holds an older state than memory (its rewrite failed)

    # ---- files -----------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, granularity: str = DEFAULT_GRANULARITY, today: dt.date | None = None) -> PeriodKeyRing:
        """IT, once per site: a fresh random state for the period containing ``today``."""
        path = Path(path)
        if path.exists():
            raise PopulationError(f"{path} already exists; copy it to devices instead of making a new one")
        period = period_of(today or dt.date.today(), granularity)
        ring = cls(path, period, bytearray(secrets.token_bytes(STATE_LEN)))
        ring._save()
        return ring

    @classmethod
    def load(cls, path: Path) -> PeriodKeyRing:
        path = Path(path)
        try:
            if os.name == "posix" and path.stat().st_mode & 0o077:
                raise PopulationError(f"period key file {path} is readable by others; run: chmod 600 {path}")
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise PopulationError(f"no period key file at {path}; copy it from IT's provisioning host") from None
        except (OSError, ValueError):
            raise PopulationError(f"{path} is not a readable period key file; copy it again from IT") from None
        try:
            if doc["kind"] != _KIND or doc["v"] != 1:
                raise KeyError("kind")
            period = parse_period(str(doc["period"]))
            state = bytearray.fromhex(str(doc["state"]))
        except (KeyError, TypeError, ValueError, PopulationError):
            raise PopulationError(f"{path} is not an edge-agent period key file; copy it again from IT") from None
        if period.granularity != doc.get("granularity") or len(state) != STATE_LEN:
            raise PopulationError(f"{path} is damaged; copy it again from IT")
        return cls(path, period, state)

    def _save(self) -> None:
        doc = {"kind": _KIND, "v": 1, "granularity": self._period.granularity, "period": self._period.label,
               "state": self._state.hex()}
        write_private(self.path, json.dumps(doc, sort_keys=True).encode() + b"\n")

    def export(self, path: Path) -> None:
        """Copy the current state for provisioning another device of the same site."""
        with self._lock:
            doc = {"kind": _KIND, "v": 1, "granularity": self._period.granularity, "period": self._period.label,
                   "state": self._state.hex()}
        write_private(Path(path), json.dumps(doc, sort_keys=True).encode() + b"\n")

    # ---- ratchet ---------------------------------------------------------------------

    @property
    def period(self) -> Period:
        return self._period

    @property
    def granularity(self) -> str:
        return self._period.granularity

    def advance(self, today: dt.date) -> Period:
        """Move to the period containing ``today`` (no-op if already there); erases older states.

        Devices call this at start-up and once a day, so a finished period's key is
        destroyed even when no visit happens in the new period.
        """
        target = period_of(today, self.granularity)
        with self._lock:
            steps = target.index - self._period.index
            if steps <= 0:
                if self._unsaved:
                    self._save_advanced()  # an earlier rewrite failed: the finished period's state is still on disk
                return self._period
            if steps > MAX_RATCHET_STEPS:
                raise PopulationError(f"date {today} is implausibly far ahead of {self._period.label}; check the clock")
            state = bytearray(self._state)
            for _ in range(steps):
                nxt = bytearray(hmac.new(state, _RATCHET, hashlib.sha256).digest())
                zero_bytes(state)
                state = nxt
            old = self._state
            self._state, self._period = state, target
            zero_bytes(old)  # gone from memory at once, whether or not the file can be rewritten now
            self._unsaved = True
            self._save_advanced()  # atomic replace: the previous file no longer exists under this name
            return target

    def _save_advanced(self) -> None:
        """Write the advanced state over the file; on failure say so (one line) and retry at the next advance."""
        try:
            self._save()
        except OSError as exc:
            raise PopulationError(
                f"period key file {self.path} cannot be rewritten ({exc.strerror}): the finished period's key stays on "
                "disk until it can; make its folder writable by the service user and free space (retried every hour)"
            ) from None
        self._unsaved = False

    def _period_key(self, period: Period) -> bytes:
        if period.granularity != self.granularity:
            raise PopulationError(f"period {period.label} is not {a_or_an(self.granularity)}; the site's periods are {self.granularity}s")
        if period.index < self._period.index:
            raise PeriodKeyGoneError(f"the key of period {period.label} was destroyed when it ended; this contribution is dropped")
        if period.index > self._period.index:
            raise PopulationError(f"period {period.label} has not begun for this key file (it is at {self._period.label}); call advance first")
        return hmac.new(self._state, _PERIOD_KEY + period.label.encode(), hashlib.sha256).digest()

    def pseudonym(self, clinician_cert_id: str, day: dt.date) -> tuple[Period, str]:
        """The clinician's pseudonym in the period containing ``day`` (advancing the ratchet if needed)."""
        if not clinician_cert_id:
            raise PopulationError("clinician certificate id is empty")
        period = period_of(day, self.granularity)
        if period.index > self._period.index:
            self.advance(day)
        with self._lock:
            key = self._period_key(period)
        tag = hmac.new(key, _PSEUDONYM + clinician_cert_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return period, tag[:PSEUDONYM_HEX_LEN]
