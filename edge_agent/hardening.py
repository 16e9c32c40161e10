"""Process-level measures that keep raw audio out of core dumps, swap and the heap.

All best-effort: each returns whether it took effect, so callers (and ``doctor``)
can report it, but none is fatal on a platform that lacks it.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import resource
import sys
import threading
import weakref

import numpy as np

log = logging.getLogger(__name__)

_PR_SET_DUMPABLE = 4
_MADV_DONTDUMP = 16
_PAGE = 4096


def _load_libc() -> ctypes.CDLL | None:
    """The C library, once per process.

    ``ctypes.CDLL(None)`` is the running process's own symbol table, which on Linux
    includes libc; no ``ctypes.util.find_library`` (it forks ``/sbin/ldconfig -p``
    every call, which used to happen at every visit start).
    """
    if not sys.platform.startswith("linux"):
        return None
    for name in (None, "libc.so.6"):
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            lib.prctl  # noqa: B018 - proves it is libc
            lib.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            lib.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
            lib.munlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIBC = _load_libc()


def _libc() -> ctypes.CDLL | None:
    return _LIBC


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


_M_PERTURB = -6  # glibc mallopt: fill each block with a byte when it is freed (and its complement when allocated)
FREED_FILL = 0xFF


def scrub_freed_heap() -> bool:
    """From now on glibc overwrites every heap block it frees (``M_PERTURB``); False where unavailable.

    The visit's words pass through many short-lived buffers that are not ours to zero: Python strings,
    the tokenizer's decoded text, regex and lower-case copies. Freed, they stayed readable in the heap
    until reused (a memory scan after stop found the patient's sentences). With every freed block
    overwritten, and Python's own small-object allocator routed through malloc (``PYTHONMALLOC=malloc``,
    set by the unit), nothing of a stopped visit stays in freed memory. Called after the models load: the
    allocation fill would otherwise make every page of the models' buffers resident (RSS 330 -> 980 MB).
    Cost measured on a visit: about 10 % more CPU (1.35 -> 1.50 CPU-s for 61 s of audio), RSS +4 %.
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    return bool(mallopt(ctypes.c_int(_M_PERTURB), ctypes.c_int(FREED_FILL)) == 1)


def release_free_heap() -> bool:
    """Give the heap's free pages back to the kernel (glibc ``malloc_trim(0)``); False where unavailable.

    CTranslate2 decodes windows of every length from 0.5 s to 30 s; the freed buffers leave
    holes that glibc keeps, so a long visit's RSS creeps up although nothing is live (Python
    objects were 0.4 MB of it, measured with tracemalloc over a 60-minute soak)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim(ctypes.c_size_t(0))
    return True


def zero_bytes(buf: bytearray) -> None:
    """Zero a bytearray in place (memset: no temporary, whatever its size)."""
    if len(buf):
        ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))


def page_aligned_zeros(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A zeroed array whose data starts on a page boundary (for madvise/mlock)."""
    itemsize = np.dtype(dtype).itemsize
    count = int(np.prod(shape))
    raw = np.zeros(count * itemsize + _PAGE, dtype=np.uint8)
    offset = (-raw.ctypes.data) % _PAGE
    return raw[offset : offset + count * itemsize].view(dtype).reshape(shape)


# ---- locked regions for the audio pools --------------------------------------------------------


class LockedRegion:
    """Anonymous, page-aligned memory outside the malloc heap for raw audio.

    ``mmap`` gives whole pages of its own (zero-filled by the kernel), advised
    ``MADV_DONTDUMP`` and ``mlock``-ed where the limit allows. :meth:`close`
    zeroes, ``munlock``-s and unmaps it, so nothing stays locked after a pool is
    gone (heap pools stayed locked after free: 96 -> 288 kB over 30 visits).
    """

    def __init__(self, nbytes: int, lock: bool = True) -> None:
        if nbytes < 1:
            raise ValueError("a region needs at least one byte")
        self.nbytes = nbytes
        self.size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
        self._map: mmap.mmap | None = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        view = np.frombuffer(self._map, dtype=np.uint8)
        self.address = int(view.ctypes.data)
        del view
        self.dontdump = False
        if hasattr(mmap, "MADV_DONTDUMP"):
            try:
                self._map.madvise(mmap.MADV_DONTDUMP)
                self.dontdump = True
            except OSError:
                pass
        libc = _libc()
        self.locked = bool(lock and libc is not None and libc.mlock(ctypes.c_void_p(self.address), ctypes.c_size_t(self.size)) == 0)

    @property
    def closed(self) -> bool:
        return self._map is None

    def array(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        assert self._map is not None
        count = int(np.prod(shape))
        return np.frombuffer(self._map, dtype=dtype, count=count).reshape(shape)

    def zero(self) -> None:
        if self._map is not None:
            ctypes.memset(self.address, 0, self.size)

    def close(self) -> None:
        """Zero, unlock and unmap. If an array view is still alive, the pages are zeroed and
        unlocked now and unmapped when the last view goes (Python refuses to unmap under a view)."""
        if self._map is None:
            return
        self.zero()
        libc = _libc()
        if self.locked and libc is not None:
            libc.munlock(ctypes.c_void_p(self.address), ctypes.c_size_t(self.size))
            self.locked = False
        try:
            self._map.close()
        except BufferError:
            log.debug("audio region still viewed at close; unmapped when the view is dropped")
        self._map = None


def locked_zeros(shape: int | tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:  # type: ignore[type-arg]
    """A zeroed array in pages of its own, ``mlock``-ed where the limit allows and excluded from core dumps.

    For long-lived scratch space that holds audio or audio-derived samples (STFT frames, log-mel input,
    the resampler's carry, the VAD's model input): like the pools, it must not reach swap. The mapping
    lives as long as the array (numpy keeps the mmap as its base); unmapping unlocks it. Where mlock is
    refused (RLIMIT_MEMLOCK: the unit raises it), the array still works and the unit's MemorySwapMax=0 holds.
    """
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    count = int(np.prod(dims))
    nbytes = max(1, count * np.dtype(dtype).itemsize)
    # the raw-audio pools come later (each visit) and matter more: scratch never takes their share of the limit
    region = LockedRegion(nbytes, lock=_lock_headroom() >= nbytes + POOL_LOCK_RESERVE)
    return region.array(dims, dtype)  # type: ignore[arg-type]


# what the default pools lock (frames, segments, features: 5.2 MB at the default 10 s segment limit), kept free
# for them when scratch is locked: under a low RLIMIT_MEMLOCK the raw audio keeps its lock, the scratch goes without
POOL_LOCK_RESERVE = 6 * 1024 * 1024


def _lock_headroom() -> int:
    """Bytes this process may still lock (RLIMIT_MEMLOCK minus VmLck); 0 where unknown."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return sys.maxsize
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmLck:"):
                    return int(soft) - int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RegionCache:
    """Zeroed, still-locked regions of closed pools, reused by the next pool of the same size.

    Every visit makes new pools; reusing the same pages keeps locked memory and RSS flat
    across visits instead of mapping and locking afresh each time. At most
    ``per_size`` regions are kept per size; others are unmapped.
    """

    def __init__(self, per_size: int = 2) -> None:
        self.per_size = per_size
        self._free: dict[int, list[LockedRegion]] = {}
        self._lock = threading.Lock()
        self.reused = 0
        self.created = 0

    def take(self, nbytes: int) -> LockedRegion:
        with self._lock:
            free = self._free.get(nbytes)
            if free:
                self.reused += 1
                return free.pop()
            self.created += 1
        return LockedRegion(nbytes)

    def give(self, region: LockedRegion) -> None:
        if region.closed:
            return
        region.zero()
        with self._lock:
            free = self._free.setdefault(region.nbytes, [])
            if len(free) < self.per_size:
                free.append(region)
                return
        region.close()

    def clear(self) -> None:
        with self._lock:
            regions = [r for free in self._free.values() for r in free]
            self._free.clear()
        for region in regions:
            region.close()

    def held_bytes(self) -> int:
        with self._lock:
            return sum(r.size for free in self._free.values() for r in free)


REGIONS = RegionCache()


def pool_region(owner: object, nbytes: int) -> tuple[LockedRegion, weakref.finalize]:
    """A region for ``owner`` (a pool) and the callable that returns it to :data:`REGIONS`
    exactly once: called by the owner's ``close()``, or by the garbage collector."""
    region = REGIONS.take(nbytes)
    return region, weakref.finalize(owner, REGIONS.give, region)
