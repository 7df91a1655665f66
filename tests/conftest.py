"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import psutil
import pytest


@pytest.fixture
def no_stray_children():
    """Every child process a test started is gone when it ends (earlier ones, such as
    multiprocessing's resource tracker from another test, are not that test's)."""

    def live():
        return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}

    before = live()
    yield
    left = live() - before
    assert left == set(), f"left behind: {left}"
