"""memray: capture allocations of a block and render what it recorded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessUsageError


@dataclass(frozen=True)
class MemrayResult:
    capture: Path
    flamegraph: Path | None
    error: str | None = None


def memray_available() -> bool:
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def memray_capture(capture: Path, native: bool = False) -> Iterator[Path]:
    """Track allocations with memray into ``capture`` for the duration of the block."""
    try:
        import memray
    except ImportError:
        raise HarnessUsageError(
            "memray capture was asked for but memray is not installed: pip install memray"
        ) from None
    capture.parent.mkdir(parents=True, exist_ok=True)
    if capture.exists():
        capture.unlink()
    with memray.Tracker(str(capture), native_traces=native, follow_fork=False):
        yield capture


def memray_flamegraph(capture: Path, out: Path | None = None, leaks: bool = False) -> MemrayResult:
    """Render ``capture`` to a self-contained flamegraph HTML next to it (memray's own CLI)."""
    out = out or capture.with_suffix(".flamegraph.html")
    cmd = [sys.executable, "-m", "memray", "flamegraph", "--force", "-o", str(out)]
    if leaks:
        cmd.append("--leaks")
    cmd.append(str(capture))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        return MemrayResult(capture, None, tail[-1] if tail else f"memray exited {proc.returncode}")
    return MemrayResult(capture, out)
