"""Logs that cannot carry what a patient said or who the clinician is.

Fail-closed by construction rather than by review:

* The message is the caller's constant format string (a test parses the code
  base and fails on f-strings, ``%``/``.format`` or concatenation as a log
  message). Anything variable is an argument.
* Arguments are kept only when they cannot hold free text: numbers, booleans,
  ``None``, enum members, paths, IP addresses, exceptions we wrote
  (:class:`EdgeAgentError`, message kept) or their type name (others), tokens of
  a closed vocabulary (:data:`SAFE_TOKENS`), or strings a developer wrapped in
  :class:`Safe` on purpose. Every other string becomes ``<redacted>``.
* Structured fields go through :func:`fields`, whose names and value kinds are
  an allow-list (:data:`FIELD_KINDS`); nothing else on the record is emitted.
* The rendered line is scrubbed of anything shaped like an id (clinician
  pseudonyms, visit ids, long hex/base32/base64 tokens) as a second layer, and
  tracebacks keep frames and exception type only (messages of third-party
  exceptions may quote data).

Output: journald-friendly plain lines (``<N>`` syslog priority prefix, no
timestamp: journald adds its own) or JSON lines.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import IO, Any

from edge_agent.errors import EdgeAgentError

REDACTED = "<redacted>"
ID_MASK = "<id>"
FIELDS_ATTR = "edge_fields"
MAX_MESSAGE = 400


class Safe(str):
    """A string a developer vouches for (a config value, a device name): logged as is."""

    __slots__ = ()


# Operational words that may appear as log arguments (states, reasons, stages, RPCs).
# A closed set: a transcript word that happens to be here reveals nothing new.
SAFE_TOKENS: set[str] = {
    # visit stop reasons and triggers
    "stop", "button", "phone", "admin", "shutdown", "silence", "max_duration", "long_silence", "mic_lost",
    "end_of_stream", "max_length", "sigterm", "reload",
    # stages / heartbeats / threads
    "capture", "pipeline", "asr", "asr-worker", "vad", "speakers", "server", "outbox", "mdns", "gpio", "watchdog",
    "metrics", "doctor", "provision", "config",
    # RPC method names
    "StartVisit", "StopVisit", "EnrollVoice", "StreamFeedback", "AckFeedback", "GetDeviceInfo", "ListVisits",
    "AdminStopVisit", "GetHealth",
    # levels and outcomes
    "ok", "failed", "refused", "started", "stopped", "finishing", "idle", "active",
}

# Structured fields: name -> kind ("int" | "float" | "bool" | a closed vocabulary).
FIELD_KINDS: dict[str, str | frozenset[str]] = {
    "duration_s": "float",
    "audio_s": "float",
    "cpu_s": "float",
    "rtf": "float",
    "residency_p95_s": "float",
    "residency_max_s": "float",
    "segments": "int",
    "utterances": "int",
    "dropped_frames": "int",
    "dropped_segments": "int",
    "queue_depth": "int",
    "outbox_items": "int",
    "outbox_bytes": "int",
    "visits": "int",
    "port": "int",
    "errno": "int",
    "reason": frozenset({"stop", "button", "admin", "shutdown", "long_silence", "max_duration", "mic_lost", "error"}),
    "trigger": frozenset({"phone", "button"}),
    "stage": frozenset({"capture", "vad", "asr", "speakers", "behaviours", "seal", "outbox", "server", "gpio", "watchdog"}),
    "outcome": frozenset({"ok", "refused", "failed"}),
}

# Shapes of identifiers: clinician pseudonyms (c-<base32>), clinicians' stable subject ids
# (s-<16 base32>), room claim ids (k-<16 urlsafe>), device/admin ids, hex tokens (visit ids,
# fingerprints, serials), base32/base64 runs, UUIDs. A long Python exception class name
# (ConnectionRefusedError) is letters only in CamelCase and is no identifier: the journal keeps it.
_ID_PATTERNS = re.compile(
    r"\b[cv]-[A-Za-z0-9_-]{8,}"
    r"|\bs-[a-z2-7]{16}\b"
    r"|\bk-[A-Za-z0-9_-]{16}(?![A-Za-z0-9_-])"
    r"|\b[da]-[0-9a-f]{8,}\b"
    r"|\b[0-9a-fA-F]{12,}\b"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|\b\d{12,}\b"
    r"|(?<![\w/.])(?![A-Z][A-Za-z]*(?:Error|Exception|Warning)(?![\w/.+=-]))[A-Za-z0-9+_-]{20,}={0,2}(?![\w/.])"
)


def scrub_ids(text: str) -> str:
    return _ID_PATTERNS.sub(ID_MASK, text)


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """``extra=`` for a log call with structured fields; refuses names or values off the allow-list.

    ``log.info("visit stopped", extra=fields(reason="long_silence", duration_s=312.0))``
    """
    checked: dict[str, Any] = {}
    for name, value in values.items():
        kind = FIELD_KINDS.get(name)
        if kind is None:
            raise ValueError(f"log field {name!r} is not allow-listed in edge_agent.device.ops.logs.FIELD_KINDS")
        checked[name] = _check_field(name, kind, value)
    return {FIELDS_ATTR: checked}


def _check_field(name: str, kind: str | frozenset[str], value: Any) -> Any:
    if isinstance(kind, frozenset):
        if value not in kind:
            raise ValueError(f"log field {name!r} must be one of {sorted(kind)}")
        return str(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value), 4)
    raise ValueError(f"log field {name!r} must be {kind}")


def safe_arg(value: Any) -> Any:
    """The value if it cannot carry free text, else a redaction marker."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Safe):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, EdgeAgentError):
        return scrub_ids(value.message)
    if isinstance(value, BaseException):
        return type(value).__name__
    if isinstance(value, type) and issubclass(value, BaseException):  # log.error("... %s", type(exc)): the name only
        return value.__name__
    if isinstance(value, str):
        if value in SAFE_TOKENS:
            return value
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            return REDACTED
    return REDACTED


class ExceptionNames(logging.Filter):
    """For handlers without :class:`RedactingFilter` (the CLI's stderr): ``log.error("... %s", type(exc))``
    shows the class name, not ``<class '...'>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.__name__ if isinstance(a, type) and issubclass(a, BaseException) else a for a in record.args)
        return True


class RedactingFilter(logging.Filter):
    """Rewrites every record that reaches the handler; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            record.msg, record.args = "%s", (record.msg,)
        args = record.args
        if isinstance(args, Mapping):
            record.args = {k: safe_arg(v) for k, v in args.items()}
        elif args:
            record.args = tuple(safe_arg(a) for a in args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = record.msg + " <bad log arguments>"
        record.msg, record.args = scrub_ids(message)[:MAX_MESSAGE], ()
        extra = getattr(record, FIELDS_ATTR, None)
        if not isinstance(extra, dict):
            extra = {}
        safe_fields: dict[str, Any] = {}
        for name, value in extra.items():
            kind = FIELD_KINDS.get(name)
            if kind is None:
                continue
            try:
                safe_fields[name] = _check_field(name, kind, value)
            except ValueError:
                safe_fields[name] = REDACTED
        setattr(record, FIELDS_ATTR, safe_fields)
        if record.exc_info and record.exc_info[1] is not None:
            record.edge_exc = _exception_summary(record.exc_info[1])
        else:
            record.edge_exc = ""
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _exception_summary(exc: BaseException) -> str:
    """Type, our own message (scrubbed) and the frames; never a foreign exception's message."""
    head = type(exc).__name__
    if isinstance(exc, EdgeAgentError):
        head += f": {scrub_ids(exc.message)}"
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{head} at {where}" if where else head


_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def _priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<6>edge_agent.device.grpc.server: listening on ... reason=stop duration_s=1.2`` (journald parses ``<N>``)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"<{_priority(record.levelno)}>{record.name}: {record.msg}"]
        parts += [f"{k}={v}" for k, v in getattr(record, FIELDS_ATTR, {}).items()]
        exc = getattr(record, "edge_exc", "")
        if exc:
            parts.append(f"exc={exc}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.msg,
        }
        out.update(getattr(record, FIELDS_ATTR, {}))
        exc = getattr(record, "edge_exc", "")
        if exc:
            out["exc"] = exc
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def make_handler(json_lines: bool = False, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_lines else JournalFormatter())
    handler.set_name("edge-agent")
    return handler


# Lines written once per visit at its start or end: their journal timestamps would be the room's
# schedule. Shown only at debug level (a person debugging a device on purpose).
PER_VISIT_LINES: tuple[tuple[str, str], ...] = (
    ("edge_agent.device.pipeline", "audio run ended"),
    ("edge_agent.device.lifecycle", "visit st"),
)


class NoScheduleFilter(logging.Filter):
    """Drops per-visit lines (:data:`PER_VISIT_LINES`) unless the root logger is at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().level <= logging.DEBUG:
            return True
        msg = record.msg if isinstance(record.msg, str) else ""
        return not any(record.name == name and msg.startswith(prefix) for name, prefix in PER_VISIT_LINES)


def configure_logging(level: str = "info", json_lines: bool = False, stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root handlers with one redacting handler; returns it. Call again on reload."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(json_lines, stream)
    handler.addFilter(NoScheduleFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # chatty libraries: their INFO lines describe internals, not the device
    for name in ("faster_whisper", "zeroconf", "grpc", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    threading.excepthook = _thread_failed
    return handler


def _thread_failed(args: threading.ExceptHookArgs) -> None:
    """An exception escaping a thread goes through the redacting handler (type and frames), not Python's default
    hook, which prints its message (which may quote data) and the whole traceback to stderr: the journal."""
    if args.exc_type is SystemExit:
        return
    logging.getLogger(__name__).error("a thread ended on an unexpected error", exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def is_configured() -> bool:
    """Whether the root logger writes through the redacting handler (``configure_logging`` ran)."""
    return any(h.get_name() == "edge-agent" for h in logging.getLogger().handlers)


def register_safe_tokens(tokens: Iterable[str]) -> None:
    """Add operational words (import time only; never words derived from data)."""
    SAFE_TOKENS.update(tokens)
