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
    # The interval starts as a fraction of the elapsed time, but at least what a sample
    # costs (~10 µs here: five 2 µs steps), so a sample a step or two to a sample every ~6.
    # One stall of 30-50 ms (another process on a loaded 2-core machine) legitimately
    # stretches the budget of a 5 ms run, so the best of three runs is judged.
    counts = []
    for _ in range(3):
        with harness.record("short", gc_types=False) as rec:
            for _ in rec.steps(400):
                spin(2)
        counts.append(len(rec.trace))
        if counts[-1] >= 60:
            break
    assert max(counts) >= 60, counts


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
    # Whether step 6,000 is sampled depends on the clock (early on, samples are dense), so
    # what a +10% change does is checked where the clock cannot decide: it forces nothing.
    with harness.record("acct-worth", interval="10 s", gc_types=False) as rec:
        rec.account(buffer=1_000)
        rec.sample()
        rec.account(buffer=1_100)
        assert not rec._force  # +10%: rides along with the next sample
        rec.account(buffer=2_000)
        assert rec._force  # +100% since sampled: worth a sample


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


# sample_gap(elapsed, cost, interval): hand-computed with DENSE=1,000, STRETCH=100,000,
# SHARE=0.02: max(min(e/1000, max(interval, e/100000)), min(cost/0.02, e/1000 + cost)).
@pytest.mark.parametrize(
    ("elapsed", "cost", "interval", "gap"),
    [
        (0.5, 2e-6, 0.002, 0.0005),  # early: elapsed/DENSE; a cheap sample changes nothing
        (100.0, 2e-6, 0.002, 0.002),  # the interval
        (3_600.0, 2e-6, 0.002, 0.036),  # an hour in: elapsed/STRETCH
        (900.0, 0.015, 0.002, 0.75),  # mallinfo2 at 15 ms (a fragmented heap): cost/SHARE
        (600.0, 0.015, 0.002, 0.615),  # ... before 750 s: elapsed/DENSE + cost (2.4%)
        (5.0, 0.015, 0.002, 0.020),  # ... a 5 s test keeps its samples, 15 ms of every 20
        (1.0, 1e-4, 0.002, 0.0011),  # pymalloc's 100 µs read in the first second: 9%
        (100.0, 0.001, 0.002, 0.05),  # a 1 ms sample: 2% of the time
    ],
)
def test_the_gap_between_samples_keeps_the_probes_share_of_the_time(elapsed, cost, interval, gap):
    from harness.recording.recorder import sample_gap

    assert sample_gap(elapsed, cost, interval, spent=1.0) == pytest.approx(gap)
    # The first FREE_S (0.25 s) of sampling after the start or a mark is free of the cost rule.
    assert sample_gap(elapsed, cost, interval, spent=0.1) == pytest.approx(
        min(elapsed / 1_000, max(interval, elapsed / 100_000))
    )


# tree_gap(elapsed, cost, interval=0.05, max_share=0.05, max_interval=0.5), MIN_READS=50.
@pytest.mark.parametrize(
    ("elapsed", "cost", "gap"),
    [
        (1.0, 0.001, 0.05),  # a cheap tree: the interval
        (4.0, 0.060, 0.08),  # a 60 ms read 4 s in: elapsed/50, not 1.2 s (8 reads in a 4 s test)
        (100.0, 0.060, 0.5),  # later: never more than max_interval
        (100.0, 0.010, 0.2),  # a 10 ms read: 5% of the time
    ],
)
def test_the_tree_is_read_on_its_own_budget_and_often_enough_in_short_runs(elapsed, cost, gap):
    from harness.probes.tree import tree_gap

    assert tree_gap(elapsed, cost, 0.05, 0.05, 0.5) == pytest.approx(gap)
