"""Output for people (rich live view) and for programs (JSON lines)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from edge_agent.asr.events import FinalTranscript, PartialTranscript, PipelineEvent, SegmentDiscarded, SpeakerRelabel
from edge_agent.cli.output import drop_output

SPEAKER_STYLES = {"clinician": "bold cyan", "patient": "bold magenta", "other": "bold yellow", "unknown": "bold white"}


LOST_REASONS = frozenset({"decode_failed", "no_buffer"})  # discards that lost speech (the others are noise or silence)


def mmss(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class JsonLinesSink:
    """JSON lines to ``out``; when the reader goes away (``| head``) it stops writing and calls ``on_closed``."""

    def __init__(self, out: IO[str] | None = None, include_partials: bool = True, on_closed: Callable[[], None] | None = None) -> None:
        self.out = out or sys.stdout
        self.include_partials = include_partials
        self.on_closed = on_closed
        self.closed = False
        self.write_error: OSError | None = None  # the output cannot be written (a full disk): the run stops, the CLI says so
        self._lock = threading.Lock()

    def __call__(self, event: PipelineEvent) -> None:
        if isinstance(event, PartialTranscript) and not self.include_partials:
            return
        self.emit(event.to_json())

    def emit(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.out.flush()
            except OSError as exc:
                self.closed = True
                if not isinstance(exc, BrokenPipeError):
                    self.write_error = exc
                drop_output(self.out)  # what is still buffered must not fail again when the interpreter flushes at exit
                if self.on_closed is not None:
                    self.on_closed()


class LiveTranscriptView:
    """Finals scroll up; the current partial is shown dim beneath them."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False)
        self._live = Live(Text(""), console=self.console, refresh_per_second=12, transient=True)

    def __enter__(self) -> "LiveTranscriptView":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(Text(""))
        self._live.__exit__(None, None, None)

    def __call__(self, event: PipelineEvent) -> None:
        if isinstance(event, PartialTranscript):
            line = Text(f"[{mmss(event.t0)}] ", style="dim")
            line.append(event.stable, style="white")
            line.append(" " + event.unstable if event.unstable else "", style="dim italic")
            self._live.update(line)
        elif isinstance(event, FinalTranscript):
            u = event.utterance
            line = Text(f"[{mmss(u.t0)}] ", style="dim")
            if u.speaker != "unknown":
                line.append(f"{u.speaker:>9}: ", style=SPEAKER_STYLES.get(u.speaker, "bold"))
            line.append(u.text)
            self._live.update(Text(""))
            self._live.console.print(line)
        elif isinstance(event, SpeakerRelabel) and event.changed:  # a confidence decided again corrects nothing
            # printed when the visit's clustering revisits an earlier line, so after later lines: say which
            line = Text(f"[{mmss(event.t0)}] ", style="dim")
            who = "another speaker" if event.speaker == "other" else f"the {event.speaker}"
            line.append(f"correction: the line at {mmss(event.t0)} was {who}", style="dim italic")
            self._live.console.print(line)
        elif isinstance(event, SegmentDiscarded):
            self._live.update(Text(""))
            if event.reason in LOST_REASONS:  # speech, not noise: say so where it happened
                line = Text(f"[{mmss(event.t0)}] ", style="dim")
                line.append(f"(about {max(1, round(event.t1 - event.t0))} s of speech could not be transcribed)", style="dim italic")
                self._live.console.print(line)
