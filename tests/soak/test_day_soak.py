"""A simulated day: tens of millions of fast steps, a slow leak from midway, a bounded recorder.

``test_simulated_day`` (marker ``soak``, the nightly job) drives 50 million steps of a few
µs each; from midway every step leaks 8 bytes (4 KiB every 512 steps). The verdict after
'midway' must fail, the verdict on the clean first half must pass, and the recorder's
memory (its trace buffers) must stay under 50 MB. ``test_simulated_day_short`` is the same
at 5 million steps in the normal suite (about a minute on a shared CI machine).
``test_a_day_of_samples_stays_bounded`` feeds a trace the 86.4 million samples of a day at
1 ms a step, every step sampled.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import harness
from harness.recording.trace import Trace

LIMIT = "2 KB/1k steps"  # 2 B/step; the leak is 8 B/step
CAP = 50_000_000


def simulated_day(path, steps: int, **options: object) -> tuple[harness.Recorder, float]:
    midway = steps // 2
    held: list[bytearray] = []
    numbers = tuple(range(8))
    started = time.monotonic()
    with harness.record("day", path, gc_types=False, **options) as rec:
        for step in rec.steps(steps):
            sum(numbers)  # a synthetic step of a few µs, loop included
            if step == 200_000:
                rec.mark("warm")
            elif step == midway:
                rec.mark("midway")
            if step >= midway and not step & 511:
                held.append(bytearray(4096))
    return rec, time.monotonic() - started


def check_day(rec: harness.Recorder, steps: int, elapsed: float) -> None:
    trace = rec.trace
    midway = steps // 2
    assert trace.samples > 2_000, trace.summary()
    assert rec.nbytes < CAP, rec.nbytes
    leak = harness.growth_verdict(trace, after="midway", max_growth=LIMIT)
    assert not leak.passed, leak.summary_line()
    assert 6 < leak.growth.slope < 12, leak.summary_line()  # 8 B/step (RSS: pages, stairs)
    clean = harness.growth_verdict(trace.head(midway - 1), after="warm", max_growth=LIMIT)
    assert clean.passed, clean.summary_line()
    loaded = Trace.load(rec.path or "")
    assert loaded.samples == trace.samples
    assert harness.growth_verdict(loaded, after="midway", max_growth=LIMIT).passed is False
    print(
        f"\n{steps:,} steps in {elapsed:.0f} s; {trace.samples:,} samples, {len(trace):,} rows in memory, "
        f"recorder {rec.nbytes / 1e6:.1f} MB, file {os.path.getsize(rec.path or '') / 1e6:.1f} MB; "
        f"{leak.summary_line()}; first half: {clean.summary_line()}"
    )


def test_simulated_day_short(tmp_path):
    steps = 5_000_000
    # every=32: 156,000 samples whatever the machine's load, so the history folds and merges
    rec, elapsed = simulated_day(tmp_path / "day.htrace", steps, every=32)
    assert rec.trace.decimated
    check_day(rec, steps, elapsed)
    assert elapsed < 120, elapsed


@pytest.mark.soak
def test_simulated_day(tmp_path):
    steps = 50_000_000
    rec, elapsed = simulated_day(tmp_path / "day.htrace", steps)  # the default time budget
    check_day(rec, steps, elapsed)


@pytest.mark.soak
def test_a_day_of_samples_stays_bounded():
    trace = Trace("day-of-samples")
    chunk = 1_000_000
    rng = np.random.default_rng(0)
    rss = np.floor((8e8 + rng.normal(0, 1e6, chunk)) / 4096) * 4096
    steps = np.arange(chunk, dtype=np.int64)
    largest = 0
    for i in range(87):  # 86.4 million samples + a little
        trace.extend(steps + i * chunk, (steps + i * chunk) * 1e-3, {"v": {"rss": rss, "allocated": rss / 2}})
        if i % 10 == 0:
            trace.signal("rss")
            largest = max(largest, trace.nbytes)
    assert trace.samples == 87 * chunk
    assert largest < CAP and trace.nbytes < CAP, (largest, trace.nbytes)
