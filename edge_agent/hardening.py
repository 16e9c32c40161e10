"""Process-level measures that keep raw audio out of core dumps, swap and the heap.

All best-effort: each returns whether it took effect, so callers (and ``doctor``)
can report it, but none is fatal on a platform that lacks it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
import sys

import numpy as np

log = logging.getLogger(__name__)

_PR_SET_DUMPABLE = 4
_MADV_DONTDUMP = 16
_PAGE = 4096


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def disable_core_dumps() -> bool:
    """RLIMIT_CORE=0 and PR_SET_DUMPABLE=0: a crash must not write audio to disk."""
    ok = True
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        ok = False
    libc = _libc()
    if libc is None or libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        ok = False
    return ok


def protect_buffer(array: np.ndarray) -> bool:
    """Exclude an audio buffer from core dumps and lock it in RAM (no swap)."""
    libc = _libc()
    if libc is None:
        return False
    addr = array.ctypes.data
    start = addr - (addr % _PAGE)
    length = array.nbytes + (addr - start)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    dontdump = libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), _MADV_DONTDUMP) == 0
    # mlock may fail without CAP_IPC_LOCK or with a low RLIMIT_MEMLOCK; the unit
    # file's MemorySwapMax=0 covers swap in that case.
    locked = libc.mlock(ctypes.c_void_p(start), ctypes.c_size_t(length)) == 0
    if not locked:
        log.debug("mlock of audio pool refused (RLIMIT_MEMLOCK); relying on MemorySwapMax=0")
    return dontdump


def harden_process() -> dict[str, bool]:
    """Apply every process-wide measure; returns what took effect."""
    # glibc's mmap threshold is deliberately left dynamic: pinning it at 128 KB made every
    # CTranslate2 buffer a fresh zero-filled mapping (a third of the pipeline's CPU in page
    # faults), and the raw audio it was meant to keep out of the heap never reaches the heap:
    # it lives in the pools, its features in owned buffers zeroed after use (docs/architecture.md)
    return {"core_dumps_disabled": disable_core_dumps()}


def page_aligned_zeros(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A zeroed array whose data starts on a page boundary (for madvise/mlock)."""
    itemsize = np.dtype(dtype).itemsize
    count = int(np.prod(shape))
    raw = np.zeros(count * itemsize + _PAGE, dtype=np.uint8)
    offset = (-raw.ctypes.data) % _PAGE
    return raw[offset : offset + count * itemsize].view(dtype).reshape(shape)
