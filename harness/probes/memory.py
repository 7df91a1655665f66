"""Process memory of this process: RSS on a fast path, the system's available memory, heap trimming.

RSS is read every step, so it has a fast path: one ``pread`` of /proc/self/statm on an
fd kept open (about 1 µs, against about 7 µs for psutil's ``memory_info()``, DESIGN.md).
"""

from __future__ import annotations

import ctypes
import gc
import os
import time
from typing import Any

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class RssProbe:
    """Resident set size of this process, in bytes."""

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None
        if self._fd is None:
            import psutil

            self._proc: Any = psutil.Process()

    @property
    def source(self) -> str:
        return "/proc/self/statm" if self._fd is not None else "psutil"

    def read(self) -> int:
        if self._fd is not None:
            # statm: size resident shared text lib data dt, in pages.
            fields = os.pread(self._fd, 128, 0).split()
            return int(fields[1]) * _PAGE_SIZE
        return int(self._proc.memory_info().rss)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_RSS: RssProbe | None = None


def read_rss() -> int:
    """Process RSS in bytes through a shared fast probe."""
    global _RSS
    if _RSS is None:
        _RSS = RssProbe()
    return _RSS.read()


_LIBC: Any = None


def trim_heap() -> bool:
    """Collect garbage and hand free heap pages back to the OS (glibc ``malloc_trim``).

    A warm process keeps freed memory resident; new allocations reuse it and RSS does not
    move. Trimming before a baseline makes "over baseline" and "growth" mean new memory,
    whatever ran in the process before. Returns False where there is no glibc.
    """
    global _LIBC
    gc.collect()
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    _LIBC.malloc_trim(0)
    return True


def system_memory() -> tuple[int, int]:
    """(total, available) system memory in bytes."""
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.total), int(vm.available)


class _Mallinfo2(ctypes.Structure):
    # glibc >= 2.33: struct mallinfo2, every field a size_t (malloc.h).
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class _PymallocBytes:
    """Bytes in pymalloc's allocated blocks: the Python objects of 512 bytes or less (lists,
    dicts, closures, small ints and strings), which live in arenas mmapped whole and so
    are invisible to ``mallinfo2()``.

    CPython keeps no running total; ``_PyObject_DebugMallocStats`` (what
    ``sys._debugmallocstats()`` prints) walks the arenas and writes the figure, so it is
    written into an in-memory ``FILE*`` (``open_memstream``) and parsed: ~85 µs with ~120 MB
    of Python objects here (the recorder's time budget spaces samples by their cost). 0 when
    pymalloc is off (``PYTHONMALLOC=malloc``: small objects then go through malloc, where
    mallinfo2 sees them).
    """

    def __init__(self, libc: Any) -> None:
        self.why = ""
        self._fn: Any = None
        try:
            fn = ctypes.pythonapi._PyObject_DebugMallocStats
            libc.open_memstream.restype = ctypes.c_void_p
            libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
            libc.fclose.argtypes = [ctypes.c_void_p]
            libc.free.argtypes = [ctypes.c_void_p]
        except (AttributeError, OSError):
            self.why = (
                "no _PyObject_DebugMallocStats/open_memstream here: Python objects in pymalloc arenas are not counted"
            )
            return
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = ctypes.c_int
        self._fn, self._libc = fn, libc
        if self.read() is None:
            self._fn = None
            self.why = "pymalloc's statistics could not be read here: Python objects in pymalloc arenas are not counted"

    def read(self) -> int | None:
        buf, size = ctypes.c_char_p(), ctypes.c_size_t()
        fp = self._libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        if not fp:
            return None
        try:
            self._fn(fp)
        finally:
            self._libc.fclose(fp)
        try:
            text = ctypes.string_at(buf, size.value)
        finally:
            self._libc.free(buf)
        if not text:
            return 0  # pymalloc is off: nothing printed
        at = text.find(b"# bytes in allocated blocks")
        if at < 0:
            return None
        value = text[text.index(b"=", at) + 1 : text.index(b"\n", at)]
        return int(value.replace(b",", b"").strip())


#: pymalloc's figure costs 35–90 µs (mallinfo2 ~2 µs), so it is read at most this share of
#: the time (every ~3.5–9 ms) and carried forward between reads: a loop of 20 µs steps keeps a
#: sample every few steps, and a leak of small objects is still seen as a slope.
PYMALLOC_SHARE = 0.01


class AllocatedProbe:
    """Bytes in live allocations of both allocators: glibc ``mallinfo2()``'s in-use heap
    bytes (``uordblks``, every arena) plus its mmapped blocks (``hblkhd``), plus the bytes
    of pymalloc's allocated blocks (Python objects of 512 bytes or less).

    It sees what ``malloc``/``posix_memalign`` handed out and was not freed (numpy and torch
    CPU storage, C extensions, large Python objects) and every small Python object (a hook
    closure per step, a dict entry per item). It does not see memory-mapped files, child
    processes, or another allocator preloaded in glibc's place.

    Cost: mallinfo2 is ~1.7 µs on a fresh heap (DESIGN.md) but walks every free chunk of
    every arena: 15 ms on a heap left fragmented by tracemalloc in a torch process
    (measured); pymalloc's figure 35–90 µs, so it is refreshed on 1% of the time
    (every 3.5–9 ms) and carried forward between reads. The recorder's time budget spaces samples by
    what they cost. ``available`` is False (and ``why`` says so) where there is no mallinfo2,
    and the recorder notes that in the trace instead of a column; ``note`` says what is
    counted where pymalloc's figure cannot be read.
    """

    def __init__(self) -> None:
        self.why = ""
        self.note = ""
        self._fn: Any = None
        self._pymalloc: _PymallocBytes | None = None
        self._small = 0  # pymalloc's live bytes at its last read
        self._small_next = 0.0
        self._small_cost = 0.0
        try:
            libc = ctypes.CDLL(None)
            fn = libc.mallinfo2
        except (OSError, AttributeError):
            self.why = "no glibc mallinfo2() here (glibc >= 2.33 needed): the 'allocated' signal is not recorded"
            return
        fn.restype = _Mallinfo2
        fn.argtypes = []
        self._fn = fn
        pymalloc = _PymallocBytes(libc)
        if pymalloc.why:
            self.note = pymalloc.why
        else:
            self._pymalloc = pymalloc

    @property
    def available(self) -> bool:
        return self._fn is not None

    @property
    def source(self) -> str:
        return "mallinfo2 + pymalloc" if self._pymalloc is not None else "mallinfo2"

    def read_parts(self) -> tuple[int, int]:
        """(malloc live bytes, pymalloc live bytes); the second is refreshed on its own
        time budget (PYMALLOC_SHARE of the time) and carried forward in between."""
        info = self._fn()
        pymalloc = self._pymalloc
        if pymalloc is not None:
            now = time.perf_counter()
            if now >= self._small_next:
                self._small = pymalloc.read() or self._small
                cost = time.perf_counter() - now
                self._small_cost = cost if self._small_cost == 0.0 else 0.8 * self._small_cost + 0.2 * cost
                self._small_next = now + self._small_cost / PYMALLOC_SHARE
        return int(info.uordblks + info.hblkhd), self._small

    def read(self) -> int:
        malloc, small = self.read_parts()
        return malloc + small


_ALLOCATED: AllocatedProbe | None = None


def read_allocated() -> int | None:
    """Allocator live bytes through a shared probe; None where mallinfo2 is missing."""
    global _ALLOCATED
    if _ALLOCATED is None:
        _ALLOCATED = AllocatedProbe()
    return _ALLOCATED.read() if _ALLOCATED.available else None
