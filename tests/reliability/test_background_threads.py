"""A background thread that crashes (memory guard, peak sampler) is an error of its own.

Never a thread traceback on stderr followed by "no threshold crossed" or a peak that
looks measured.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import harness
from harness.errors import HarnessError, HarnessUsageError
from harness.isolation.guard import MemoryGuard
from harness.recording.peak import PeakMeter


def _no_thread_traceback(monkeypatch):
    seen: list[object] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args))
    return seen


@pytest.mark.parametrize(
    ("pids", "expected"),
    [
        (lambda: [-1], "not a process id"),
        (lambda: ["abc"], "not a process id"),
        (lambda: 5, "TypeError"),
        (lambda: 1 / 0, "ZeroDivisionError"),
    ],
    ids=["negative-pid", "text-pid", "not-iterable", "raising"],
)
def test_a_crashed_memory_guard_raises_instead_of_reporting_no_threshold(monkeypatch, pids, expected):
    seen = _no_thread_traceback(monkeypatch)
    guard = MemoryGuard(warn="1 KB", critical="1 B", budget="1 TB", pids=pids, interval_s=0.01)
    with pytest.raises(HarnessError, match=f"memory guard crashed.*{expected}"), guard:
        pass
    assert "no threshold crossed" not in guard.message()
    assert not seen


def test_a_vanished_pid_is_skipped_not_a_crash():
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    with MemoryGuard(warn="1 KB", critical="1 B", budget="1 TB", pids=lambda: [os.getpid(), dead]) as guard:
        pass
    assert guard.error is None


@pytest.mark.parametrize(
    "options",
    [{"interval_s": 0}, {"interval_s": -1}, {"interval_s": "fast"}, {"interval_s": float("nan")}, {"pids": [1, 2]}],
)
def test_bad_guard_options_are_refused_before_the_thread_starts(options):
    with pytest.raises(HarnessUsageError):
        MemoryGuard(**options)


def test_a_crashed_peak_sampler_raises_with_what_it_lost(monkeypatch):
    seen = _no_thread_traceback(monkeypatch)
    meter = PeakMeter("save", interval_s=0.001)
    calls = {"n": 0}
    real = meter._rss.read

    def flaky():
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError("statm vanished")
        return real()

    monkeypatch.setattr(meter._rss, "read", flaky)
    with pytest.raises(HarnessError, match="sampling thread crashed.*statm vanished"), meter:
        deadline = time.monotonic() + 10  # until the thread's own read has failed, however loaded the machine
        while calls["n"] <= 2 and time.monotonic() < deadline:
            threading.Event().wait(0.005)
    assert "crashed" in meter.result.note
    assert not seen


def test_a_peak_sampler_crash_does_not_hide_the_blocks_own_exception(monkeypatch):
    meter = harness.peak("save", interval_s=0.001)
    real = meter._rss.read
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("gone")
        return real()

    monkeypatch.setattr(meter._rss, "read", flaky)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    with pytest.raises(KeyError), meter:
        threading.Event().wait(0.02)
        raise KeyError("the block's own error")
