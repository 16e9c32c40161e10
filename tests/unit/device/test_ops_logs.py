"""Logs and metrics carry no words and no ids: unit checks, a code lint, and a full visit grepped."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.device.ops.logs import REDACTED, Safe, configure_logging, fields, scrub_ids
from edge_agent.device.ops.metrics import Registry
from edge_agent.errors import EdgeAgentError
from tests.journal import device_journal
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
PSEUDONYM = "c-mfrggzdfmztwq2lk"  # shape of a real clinician id (c- + 16 base32)


@pytest.fixture
def captured():  # type: ignore[no-untyped-def]
    with device_journal("debug") as out:
        yield out


def test_free_text_and_ids_in_arguments_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("edge_agent.test")
    log.info("utterance %s by %s", "my chest hurts when I breathe", PSEUDONYM)
    log.info("visit %s stopped (%s) after %.1f s on %s", "v-Zm9vYmFyYmF6cXV4", "silence", 12.34, "10.0.0.7")
    log.info("device %s", Safe("USB Audio Device"))
    log.info("path %s", Path("/etc/edge-agent/config.toml"))
    log.info(PSEUDONYM + " joined")  # (the lint below forbids this; the scrubber still masks the id)
    text = captured.getvalue()
    assert "chest" not in text and PSEUDONYM not in text and "Zm9vYmFy" not in text
    assert f"utterance {REDACTED} by {REDACTED}" in text
    assert "stopped (silence) after 12.3 s on 10.0.0.7" in text
    assert "device USB Audio Device" in text and "/etc/edge-agent/config.toml" in text
    assert "<id> joined" in text
    assert text.splitlines()[0].startswith("<6>edge_agent.test: ")  # journald priority prefix


def test_structured_fields_are_allow_listed(captured: io.StringIO) -> None:
    log = logging.getLogger("edge_agent.test")
    log.info("visit stopped", extra=fields(reason="long_silence", duration_s=312.0, segments=41))
    assert "visit stopped reason=long_silence duration_s=312.0 segments=41" in captured.getvalue()
    with pytest.raises(ValueError, match="not allow-listed"):
        fields(clinician=PSEUDONYM)
    with pytest.raises(ValueError, match="must be one of"):
        fields(reason="patient mentioned chest pain")
    with pytest.raises(ValueError, match="must be int"):
        fields(segments="41 segments of talk")
    # anything smuggled onto the record some other way is not emitted
    log.info("x", extra={"text": "secret words", "edge_fields": {"transcript": "secret words", "segments": "many words"}})
    assert "secret" not in captured.getvalue() and "many words" not in captured.getvalue()


def test_exceptions_keep_frames_and_our_messages_only(captured: io.StringIO) -> None:
    log = logging.getLogger("edge_agent.test")
    try:
        raise ValueError("could not parse 'my chest hurts'")
    except ValueError:
        log.exception("decode failed")
    try:
        raise EdgeAgentError(f"outbox full for {PSEUDONYM}; free space")
    except EdgeAgentError as exc:
        log.warning("stop failed: %s", exc)
    text = captured.getvalue()
    assert "chest" not in text and PSEUDONYM not in text
    assert "exc=ValueError at test_ops_logs.py:" in text
    assert "stop failed: outbox full for <id>; free space" in text


def test_json_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        configure_logging("info", json_lines=True, stream=out)
        logging.getLogger("edge_agent.x").warning("queue full %d", 3, extra=fields(queue_depth=3))
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
    rec = json.loads(out.getvalue())
    assert rec["msg"] == "queue full 3" and rec["level"] == "warning" and rec["queue_depth"] == 3
    assert set(rec) == {"ts", "level", "logger", "msg", "queue_depth"}


def _log_calls(loggers: tuple[str, ...]) -> Iterator[tuple[str, ast.Call]]:
    """Every ``<logger>.<level>(...)`` call in the package, with its file:line."""
    for path in (ROOT / "edge_agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("debug", "info", "warning", "error", "exception", "critical"):
                continue
            if isinstance(node.func.value, ast.Name) and node.func.value.id in loggers:
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def test_no_log_message_is_built_from_data() -> None:
    """Log messages are constant format strings everywhere in the code base (data goes in arguments)."""
    bad = [where for where, node in _log_calls(("log", "logger", "logging", "_log"))
           if node.args and not isinstance(node.args[0], ast.Constant)]
    assert not bad, f"log message must be a constant format string: {bad}"


def test_scrub_ids_shapes() -> None:
    assert scrub_ids(f"{PSEUDONYM} d-0a1b2c3d4e5f serial 123456789012345 fp {'ab' * 32}") == "<id> <id> serial <id> fp <id>"
    assert scrub_ids("listening on 0.0.0.0:50443 (mutual TLS, protocol v1)") == "listening on 0.0.0.0:50443 (mutual TLS, protocol v1)"


# ---- a full visit: pipeline on real speech + the visit lifecycle with a real outbox ---------------------


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 4}


def test_full_visit_logs_and_metrics_hold_no_words_or_ids(session, jfk_path, tmp_path: Path, captured: io.StringIO) -> None:  # type: ignore[no-untyped-def]
    from edge_agent.asr.events import FinalTranscript
    from edge_agent.audio.file_source import FileSource
    from edge_agent.crypto import seal
    from edge_agent.device.lifecycle import VisitManager
    from edge_agent.device.ops.metrics import MetricsServer
    from edge_agent.device.outbox import Outbox
    from tests.doubles.scripted_runner import ScriptedVisitRunner

    registry = Registry()
    events: list = []
    stats, clean = session.run(FileSource(jfk_path), events.append, metrics=registry)
    registry.record_run(stats)
    spoken = " ".join(e.utterance.text for e in events if isinstance(e, FinalTranscript))
    assert "country" in spoken.lower()  # the detector below has something to find
    logging.getLogger("edge_agent.test").info("canary %s", spoken)  # a careless call: must be redacted

    async def visit() -> tuple[str, int]:
        outbox = Outbox(tmp_path / "outbox.db")
        manager = VisitManager(ScriptedVisitRunner(), outbox)
        _priv, pub = seal.generate_keypair()
        ctx = await manager.start(PSEUDONYM, seal.load_public_key(pub), 60, None, None)
        registry.inc("edge_agent_visits_total", trigger="phone")
        result = await manager.stop(ctx.visit_id, PSEUDONYM)
        registry.inc("edge_agent_visits_stopped_total", reason="stop")
        items, size = outbox.stats()
        registry.record_outbox(items, size)
        outbox.close()
        return result.visit_id, items

    visit_id, items = asyncio.run(visit())
    assert items == 1
    from tests.doubles.clock import ManualClock, publish_next

    clock = ManualClock()
    server = MetricsServer(registry, 0, clock=clock)
    server.start()
    try:
        publish_next(server.publisher, clock)  # the next daily publication: what leaves the process
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            metrics_text = resp.read().decode()
    finally:
        server.stop()
    logs = captured.getvalue()
    assert "visit stopped" in logs  # the lifecycle did log
    assert "edge_agent_segments_total 1.0" in metrics_text or "edge_agent_segments_total 2.0" in metrics_text
    assert "edge_agent_outbox_items 1.0" in metrics_text and "edge_agent_residency_seconds_count" in metrics_text
    for name, text in (("logs", logs), ("metrics", metrics_text)):
        leaked = _words(spoken) & _words(text)
        assert not leaked, f"{name} contain transcript words {sorted(leaked)}"
        assert PSEUDONYM not in text and visit_id not in text and visit_id[2:] not in text


def test_exception_names_reach_the_journal(captured: io.StringIO) -> None:
    """A log argument that is the exception (or its class) shows its type; a string of its type name is redacted like any text.

    Fourteen alarm and failure lines passed ``type(exc).__name__`` (or ``exc.strerror``), so the journal read
    "EnrollVoice failed unexpectedly: <redacted>" - the line an admin is told to look for said nothing.
    """
    log = logging.getLogger("edge_agent.test")
    try:
        raise BrokenPipeError(32, "Broken pipe")
    except OSError as exc:
        log.error("delivery failed: %s", exc)
        log.error("retry failed (%s)", type(exc))  # the class: its name, never its message, whatever the handler
        log.error("held: %s", type(exc).__name__)  # what the code did: a plain string, redacted
    out = captured.getvalue()
    assert "delivery failed: BrokenPipeError" in out and "retry failed (BrokenPipeError)" in out and "held: <redacted>" in out, out
    bad = []
    for where, node in _log_calls(("log", "logger", "_log")):
        for arg in node.args[1:]:
            for sub in ast.walk(arg):
                type_name = (isinstance(sub, ast.Attribute) and sub.attr == "__name__" and isinstance(sub.value, ast.Call)
                             and isinstance(sub.value.func, ast.Name) and sub.value.func.id == "type")
                if type_name or (isinstance(sub, ast.Attribute) and sub.attr == "strerror"):
                    bad.append(where)
    assert not bad, f"pass type(exc) (the log filter redacts a plain string such as its type name): {bad}"


def test_cli_stderr_shows_exception_class_names() -> None:
    """The CLI's plain handler (no redaction) shows type(exc) as its name, not "<class 'BrokenPipeError'>"."""
    import subprocess
    import sys

    code = ("import logging, sys; sys.argv = ['edge-agent', '--help']\n"
            "import edge_agent.cli as cli\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "logging.getLogger('edge_agent.x').error('worker failed: %s', BrokenPipeError)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "worker failed: BrokenPipeError" in run.stderr and "<class" not in run.stderr, run.stderr
