"""Small file helpers: private files are created 0600 and replaced atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` from the first byte.

    The temp file is opened with the final mode (never world-readable even for a
    moment), fsynced, renamed over the target, and the directory is fsynced so a
    power cut leaves either the old or the new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer (process, thread, call) so concurrent writers never share a temp file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # umask may have narrowed or the file pre-existed
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        # the temp file may hold a private key: never leave it beside a target that could not be written (a full
        # disk, a folder in the way); the error names the target, not the temp file
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_public(path: Path, data: bytes) -> None:
    write_private(path, data, mode=0o644)
