"""Faulty file systems for the reliability tests: a tiny tmpfs (ENOSPC) and a read-only one.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped, and the
failing-writer tests (monkeypatched ``write``) still cover the path.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


@contextlib.contextmanager
def tiny_tmpfs(target: Path, size: str = "48k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``target``: writes past it fail with ENOSPC."""
    _mount(target, f"size={size}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextlib.contextmanager
def read_only_dir(target: Path) -> Iterator[Path]:
    """A read-only tmpfs at ``target``: every write fails with EROFS, even for root."""
    _mount(target, "ro,size=16k")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def fill(folder: Path) -> None:
    """Fill ``folder``'s file system to the last byte."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()
