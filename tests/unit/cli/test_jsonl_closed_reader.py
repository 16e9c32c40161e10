"""`--jsonl | head -1`: the sink stops writing when its reader goes away, and leaks no file descriptor doing so.

JsonLinesSink points the closed stream at /dev/null (so the interpreter's final flush does not fail
again). It opened /dev/null and never closed that descriptor: each closed reader left one more open
file in the process (a long-lived host of the sink - the demo, a test run - gathers them).
"""

from __future__ import annotations

import os

from edge_agent.cli.render import JsonLinesSink


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_closed_reader_stops_the_sink_without_leaking_a_descriptor() -> None:
    for _ in range(3):  # warm-up: whatever the first write allocates once
        read_fd, write_fd = os.pipe()
        out = os.fdopen(write_fd, "w")
        os.close(read_fd)
        JsonLinesSink(out).emit({"type": "final"})
        out.close()
    before = _open_fds()
    for _ in range(5):
        read_fd, write_fd = os.pipe()
        out = os.fdopen(write_fd, "w")
        os.close(read_fd)  # `head -1` has its line and exits
        closed = []
        sink = JsonLinesSink(out, on_closed=lambda: closed.append(True))
        sink.emit({"type": "final", "text": "x"})
        sink.emit({"type": "final", "text": "y"})  # not written again, not raised
        assert sink.closed and closed == [True]
        out.close()
    assert _open_fds() == before, "each closed reader left a /dev/null descriptor open"
