"""Reads this process's own memory for a byte string: proof that a copy of audio (or a voiceprint) was zeroed.

A test makes a needle that only the copy under test can hold, zeroes its own copies, and asks
where else the needle still is. The scan skips its own read buffer (a separate mapping) and
the needle object itself.
"""

from __future__ import annotations

import ctypes
import mmap

_READ = 8 << 20


def hits_in_memory(needle: bytes) -> list[int]:
    """Addresses of ``needle`` in this process's writable private memory, except the needle object itself."""
    own = id(needle) + bytes.__basicsize__ - 1  # CPython: the data follows the header (minus the 1-byte trailer slot)
    scratch = mmap.mmap(-1, _READ + len(needle))  # its own mapping, skipped below
    view = (ctypes.c_char * len(scratch)).from_buffer(scratch)
    lo_s = ctypes.addressof(view)
    del view
    found: list[int] = []
    with open("/proc/self/maps") as f:
        maps = f.read().splitlines()
    try:
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            for line in maps:
                parts = line.split()
                if len(parts) < 2 or not parts[1].startswith("rw") or (len(parts) > 5 and parts[5].startswith("[v")):
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if lo <= lo_s < hi:
                    continue
                pos = lo
                while pos < hi:
                    size = min(_READ + len(needle) - 1, hi - pos)
                    try:
                        mem.seek(pos)
                        got = mem.readinto(memoryview(scratch)[:size])
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
        scratch.close()
    return found
