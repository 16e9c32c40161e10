"""Private key material handed to ``ssl`` without touching the filesystem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def pem_memfile(data: bytes, name: str = "edge-agent-tls") -> Iterator[str]:
    """Yield a path to an anonymous memory file holding ``data``.

    ``ssl.SSLContext.load_cert_chain`` only takes paths; a memfd keeps the key
    off every disk and temp directory, and closes with the block.
    """
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
