"""Printing results: JSON for programs, readable lines for people; and what happens when the reader goes away.

``edge-agent ... | head -1``: once ``head`` has its line it closes the pipe, and the next write
to stdout fails with EPIPE. That is the reader's choice, not an error: the command ends quietly
with status 0. :func:`reader_gone` recognises it however it arrives (a ``BrokenPipeError``, or
the ``SystemExit(1)`` that click/typer and rich turn one into), and :func:`drop_output` points
stdout at /dev/null so the interpreter's last flush of what is still buffered cannot fail again
("Exception ignored ... BrokenPipeError" on stderr) — the pattern the Python docs recommend
(library/signal.html, "Note on SIGPIPE"). ``edge_agent.cli.main`` applies both to every command.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any


def emit(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    elif isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value}")
    elif isinstance(result, list):
        for item in result:
            emit(item, False)
            print()
    else:
        print(result)


def reader_gone(exc: BaseException) -> bool:
    """``exc`` means stdout's reader closed the pipe (not a failure of the command).

    click/typer (``except OSError``: EPIPE -> ``sys.exit(1)``) and rich (``Console.on_broken_pipe``)
    catch the BrokenPipeError themselves and exit 1 from inside that handler, so the exit carries
    it as ``__context__``; that is how their exit is told from a command's own ``Exit(1)``.
    """
    if isinstance(exc, BrokenPipeError):
        return True
    return isinstance(exc, SystemExit) and exc.code == 1 and isinstance(exc.__context__, BrokenPipeError)


def drop_output(stream: IO[str] | None = None) -> None:
    """Point ``stream`` (stdout by default) at /dev/null, and stderr too when it is the same pipe (``2>&1 | head``).

    Python buffers stdout: whatever is still in the buffer is written at exit and would fail again.
    """
    stream = sys.stdout if stream is None else stream
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    targets = [fd]
    try:
        out, err = os.fstat(fd), os.fstat(2)
        if fd != 2 and (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino):
            targets.append(2)
    except OSError:
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for target in targets:
            try:
                os.dup2(devnull, target)
            except OSError:
                pass
    finally:
        os.close(devnull)  # dup2 made the copies; this descriptor would stay open for good
