"""Reads this process's own memory for a byte string: proof that a copy of audio (or a voiceprint) was zeroed.

A test makes a needle that only the copy under test can hold, zeroes its own copies, and asks
where else the needle still is. The scan skips its own read buffer (a separate mapping) and
the needle object itself.
"""

from __future__ import annotations

import ctypes
import mmap
import os

_READ = 8 << 20


def hits_in_memory(needle: bytes) -> list[int]:
    """Addresses of ``needle`` in this process's writable private memory, except the needle object itself.

    Everything it reads goes into one scratch mapping of its own (skipped), never the Python heap: a
    freed block the probe's own reads reused would hide exactly what it looks for.
    """
    own = id(needle) + bytes.__basicsize__ - 1  # CPython: the data follows the header (minus the 1-byte trailer slot)
    scratch = mmap.mmap(-1, _READ + len(needle))
    view = (ctypes.c_char * len(scratch)).from_buffer(scratch)
    lo_s, hi_s = ctypes.addressof(view), ctypes.addressof(view) + len(scratch)
    del view
    ranges: list[tuple[int, int]] = []
    found: list[int] = []
    # A hardened process (PR_SET_DUMPABLE 0, edge_agent.hardening) has its /proc files owned by root:
    # run as another user, the probe could not open /proc/self/mem. Dumpable just for the read.
    libc = ctypes.CDLL(None, use_errno=True)
    pr_get_dumpable, pr_set_dumpable = 3, 4
    was_dumpable = libc.prctl(pr_get_dumpable, 0, 0, 0, 0)
    if was_dumpable == 0:
        libc.prctl(pr_set_dumpable, 1, 0, 0, 0)
    try:
        fd = os.open("/proc/self/maps", os.O_RDONLY)
        try:
            n = 0
            while n < len(scratch):
                got = os.readv(fd, [memoryview(scratch)[n:]])
                if not got:
                    break
                n += got
        finally:
            os.close(fd)
        start = 0
        while start < n:
            end = scratch.find(b"\n", start, n)
            end = n if end < 0 else end
            parts = scratch[start:end].split()
            start = end + 1
            if len(parts) < 2 or not parts[1].startswith(b"rw") or (len(parts) > 5 and parts[5].startswith(b"[v")):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split(b"-"))
            if not (lo <= lo_s < hi or lo < hi_s <= hi):
                ranges.append((lo, hi))
        fd = os.open("/proc/self/mem", os.O_RDONLY)
        try:
            for lo, hi in ranges:
                pos = lo
                while pos < hi:
                    size = min(_READ + len(needle) - 1, hi - pos)
                    try:
                        got = os.preadv(fd, [memoryview(scratch)[:size]], pos)
                    except OSError:
                        break
                    if not got:
                        break
                    at = scratch.find(needle, 0, got)
                    while at >= 0:
                        if pos + at != own:
                            found.append(pos + at)
                        at = scratch.find(needle, at + 1, got)
                    if pos + got >= hi:
                        break
                    pos += max(1, got - len(needle) + 1)
        finally:
            os.close(fd)
    finally:
        scratch.close()
        if was_dumpable == 0:
            libc.prctl(pr_set_dumpable, 0, 0, 0, 0)
    return found


def keep_freed_heap() -> None:
    """Make a test's heap behave like a long-running daemon's: freed blocks stay where they were.

    glibc returns the top of a small heap to the kernel on free (M_TRIM_THRESHOLD) and serves blocks
    over 128 KiB from mappings of their own that vanish when freed; in a daemon that has run a while
    its dynamic mmap threshold has grown (to 32 MiB at most), so such blocks come from the heap and
    their contents stay after free. Both are pinned that way here, process-wide for the rest of the
    run (harmless for tests), so a leftover the daemon would keep is not hidden from the probe.
    """
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_mmap_threshold, 32 << 20)
