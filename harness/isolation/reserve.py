"""Memory an isolated child holds back under RLIMIT_DATA and gives back when its target
runs out, so the child can still do its last work under the cap (format the traceback,
import a module, write its result and report).

A module of its own: the child runs as ``python -m harness.isolation.child`` (``__main__``),
and the child pytest's plugin must find the same reserve the worker made.
"""

from __future__ import annotations

import contextlib

#: Mapped but never touched (no RSS); the cap is raised by as much, so the target still
#: gets the whole limit.
RESERVE_BYTES = 32 << 20

_held: list[bytearray] = []


def hold(nbytes: int = RESERVE_BYTES) -> None:
    """Map ``nbytes`` now (under a cap already raised by as much)."""
    with contextlib.suppress(MemoryError):
        _held.append(bytearray(nbytes))


def release() -> bool:
    """Give the reserve back (once); True if there was one."""
    if not _held:
        return False
    _held.clear()
    return True
