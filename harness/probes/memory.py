"""Process memory of this process: RSS on a fast path, the system's available memory, heap trimming.

RSS is read every step, so it has a fast path: one ``pread`` of /proc/self/statm on an
fd kept open (about 1 µs, against about 7 µs for psutil's ``memory_info()``, DESIGN.md).
"""

from __future__ import annotations

import ctypes
import gc
import os
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


class AllocatedProbe:
    """Bytes in live allocations of the C allocator: glibc ``mallinfo2()``'s in-use heap
    bytes (``uordblks``, every arena) plus its mmapped blocks (``hblkhd``).

    It sees what ``malloc``/``posix_memalign`` handed out and was not freed: numpy and torch
    CPU storage, C extensions, large Python objects. It does not see memory-mapped files,
    child processes, another allocator preloaded in glibc's place, or objects inside
    pymalloc's arenas (those are mmapped whole). About 1.7 µs a read here (DESIGN.md), so it
    is on by default; ``available`` is False (and ``why`` says so) where there is no
    mallinfo2, and the recorder notes that in the trace instead of a column.
    """

    def __init__(self) -> None:
        self.why = ""
        self._fn: Any = None
        try:
            libc = ctypes.CDLL(None)
            fn = libc.mallinfo2
        except (OSError, AttributeError):
            self.why = "no glibc mallinfo2() here (glibc >= 2.33 needed): the 'allocated' signal is not recorded"
            return
        fn.restype = _Mallinfo2
        fn.argtypes = []
        self._fn = fn

    @property
    def available(self) -> bool:
        return self._fn is not None

    def read(self) -> int:
        info = self._fn()
        return int(info.uordblks + info.hblkhd)


_ALLOCATED: AllocatedProbe | None = None


def read_allocated() -> int | None:
    """Allocator live bytes through a shared probe; None where mallinfo2 is missing."""
    global _ALLOCATED
    if _ALLOCATED is None:
        _ALLOCATED = AllocatedProbe()
    return _ALLOCATED.read() if _ALLOCATED.available else None
