"""A small project whose memory tests exercise every kind of page: a leak, a flat loop, a
peak, a release check the test expects to fail, and a known leak marked xfail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = """
import os

import pytest

import harness

HELD = []
LEAK_KB = float(os.environ.get("DEMO_LEAK_KB", "20"))
PEAK_MB = float(os.environ.get("DEMO_PEAK_MB", "45"))


@pytest.mark.leak(max_growth="1 MB/1k steps", after="full", every=5)
def test_replay_buffer_keeps_evicted_episodes(memory_trace):
    for step in memory_trace.steps(3_000):
        HELD.append(bytearray(b"x") * int(LEAK_KB * 1000))
        if step == 500:
            memory_trace.mark("full")


@pytest.mark.leak(max_growth="1 MB/1k steps", after="full", every=5)
def test_fixed_buffer_stays_flat_after_eviction(memory_trace):
    ring = [None] * 50
    for step in memory_trace.steps(3_000):
        ring[step % 50] = bytearray(b"x") * 20_000
        if step == 500:
            memory_trace.mark("full")


@pytest.mark.leak(max_peak="2x", payload="40 MB")
def test_checkpoint_save_stays_within_its_payload():
    blob = bytearray(b"x") * int(PEAK_MB * 1_000_000)
    del blob


class Episode:
    def __init__(self, i):
        self.obs = bytearray(1000)
        self.i = i


KEPT = []


def test_evicted_episodes_are_released():
    tracker = harness.track_release()
    for i in range(4):
        episode = Episode(i)
        tracker.watch(episode, label=f"episode {i}")
        if i == 2:
            KEPT.append(episode)  # the bug this check is meant to catch
        del episode
    with pytest.raises(harness.ReleaseError):
        tracker.assert_released()


@pytest.mark.xfail(reason="known leak: issue 7", strict=True)
def test_history_cache_is_bounded(memory_trace):
    cache = []
    for step in memory_trace.steps(2_000):
        cache.append(bytearray(b"y") * 10_000)
        if step == 200:
            memory_trace.mark("warm")
    harness.assert_no_linear_growth(memory_trace.trace, after="warm", max_growth="1 MB/1k steps")
"""


def run_demo(directory: Path, *args: str, leak_kb: float = 20, peak_mb: float = 45) -> subprocess.CompletedProcess[str]:
    """Run the demo project's tests in ``directory`` (a fresh pytest process)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_demo.py").write_text(DEMO)
    env = {**os.environ, "DEMO_LEAK_KB": str(leak_kb), "DEMO_PEAK_MB": str(peak_mb)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "test_demo.py", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
