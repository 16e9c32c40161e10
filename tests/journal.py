"""The device's journal, captured: its redacting handler writes to a string for the test's duration."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from edge_agent.device.ops.logs import configure_logging


@contextlib.contextmanager
def device_journal(level: str = "debug", json_lines: bool = False) -> Iterator[io.StringIO]:
    """What the daemon would write to journald, as text; the root logger is restored afterwards."""
    out = io.StringIO()
    root = logging.getLogger()
    old_handlers, old_level = list(root.handlers), root.level
    configure_logging(level, json_lines=json_lines, stream=out)
    try:
        yield out
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in old_handlers:
            root.addHandler(h)
        root.setLevel(old_level)
