"""Sampling on a time budget: first and last steps, marks and accounting changes worth
keeping are always sampled; fast steps are sampled about every interval; ``every=`` is a
fixed stride; verdicts work on the irregular spacing that results."""

from __future__ import annotations

import time

import numpy as np
import pytest

import harness
from harness.recording.recorder import DENSE


def spin(us: float) -> None:
    end = time.perf_counter() + us * 1e-6
    while time.perf_counter() < end:
        pass


def test_fast_steps_are_sampled_on_the_time_budget_with_first_last_and_marks():
    with harness.record("budget", interval="5 ms", gc_types=False) as rec:
        for step in rec.steps(60_000):
            if step == 31_234:
                rec.mark("midway")
            spin(5)
    steps = rec.trace.steps
    assert steps[0] == 0 and steps[-1] == 59_999
    assert 31_234 in steps
    # ~0.3+ s of 5 µs steps at a 5 ms budget: far fewer samples than steps, more than a few
    assert 50 < len(steps) < 20_000, len(steps)
    gaps = np.diff(rec.trace.times)
    late = gaps[rec.trace.times[1:] > 5e-3 * DENSE]  # past the dense start
    if late.size:
        assert np.median(late) == pytest.approx(5e-3, rel=0.5)


def test_a_short_run_is_still_sampled_densely():
    with harness.record("short", gc_types=False) as rec:
        for _ in rec.steps(400):
            spin(2)
    assert len(rec.trace) >= 200  # the interval starts as a fraction of the elapsed time


def test_accounting_changes_worth_keeping_force_a_sample():
    with harness.record("acct", interval="10 s", gc_types=False) as rec:
        for step in rec.steps(20_000):
            if step == 5_000:
                rec.account(buffer=1_000)  # a new name
            elif step == 6_000:
                rec.account(buffer=1_100)  # +10%: rides along with the next sample
            elif step == 7_000:
                rec.account(buffer=2_000)  # +82% since sampled: worth a sample
            elif step == 8_000:
                rec.metrics(actions=0)
            elif step == 9_000:
                rec.metrics(actions=3)  # zero to non-zero: a component started
    steps = set(rec.trace.steps.tolist())
    assert {5_000, 7_000, 8_000, 9_000} <= steps
    assert 6_000 not in steps


def test_every_is_a_fixed_stride_and_steps_number_on():
    with harness.record("every", every=10, gc_types=False) as rec:
        for _ in rec.steps(35):
            pass
        for _ in rec.steps(20):  # a second phase continues the numbering
            pass
    assert rec.trace.steps.tolist() == [9, 19, 29, 34, 39, 49, 54]


def test_growth_verdict_works_on_irregular_step_spacing():
    trace = harness.Trace("irregular", {"machine_memory": 2**34})
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(1, 400, 3_000))  # a time budget over uneven steps
    rss = 5e8 + steps * 2_000.0 + rng.normal(0, 1e5, steps.size)
    trace.extend(steps, steps * 1e-4, {"v": {"rss": np.floor(rss / 4096) * 4096}})
    trace.add_event(harness.Event("warm", int(steps[100]), 0.0))
    verdict = harness.growth_verdict(trace, after="warm", max_growth="1 KB/step", signal="rss")
    assert not verdict.passed and verdict.growth.slope == pytest.approx(2_000, rel=0.05)
    flat = harness.Trace("flat", {"machine_memory": 2**34})
    flat.extend(steps, steps * 1e-4, {"v": {"rss": np.floor((5e8 + rng.normal(0, 1e5, steps.size)) / 4096) * 4096}})
    assert harness.growth_verdict(flat, max_growth="1 KB/step", signal="rss").passed
