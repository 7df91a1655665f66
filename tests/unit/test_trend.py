"""The sustained-growth rule (harness.analysis.trend): hand-computed breaks and slopes.

Model: two least-squares lines split at the break k that minimises their total squared
error (the one-break structural-change model of Bai & Perron 1998), the last segment at
least a third of the window; the growth is sustained when the last segment's Theil–Sen
interval (Sen 1968) lies above the limit.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.trend import best_break, sustained_trend


def test_a_step_splits_where_both_sides_are_flat():
    # x = 0..11, y = 0 (x < 6) and 10 (x >= 6): at k = 6 both lines fit exactly (error 0),
    # k may range over 3..8 (3 points before, at least 4 = ceil(12/3) after).
    xs = np.arange(12.0)
    ys = np.array([0.0] * 6 + [10.0] * 6)
    assert best_break(xs, ys) == 6
    trend = sustained_trend(xs, ys)
    assert trend.shift_step == 6.0 and trend.shift == pytest.approx(10.0)
    assert trend.slope == 0.0 and trend.before == pytest.approx(0.0)
    assert not trend.exceeds(0.1)


def test_a_straight_line_has_no_break_and_keeps_its_slope():
    # y = 2x fits one line exactly: no split lowers the error below 0, so no break.
    xs = np.arange(30.0)
    trend = sustained_trend(xs, 2 * xs)
    assert trend.shift_step is None
    assert (trend.slope, trend.low, trend.high) == (2.0, 2.0, 2.0)
    assert trend.exceeds(1.9) and not trend.exceeds(2.0)


def test_a_one_off_jump_in_a_noisy_clean_loop_is_not_sustained():
    rng = np.random.default_rng(0)
    xs = np.arange(0.0, 6_000.0)
    ys = 300e6 + rng.normal(0, 200e3, xs.size) + np.where(xs > 2_500, 30e6, 0.0)  # +30 MB once
    trend = sustained_trend(xs, ys)
    assert abs(trend.shift_step - 2_500) < 150 and trend.shift == pytest.approx(30e6, rel=0.05)
    assert not trend.exceeds(1_000)  # 1 MB/1k steps


def test_a_fill_that_stops_is_not_sustained_but_a_leak_that_starts_late_is():
    xs = np.arange(0.0, 9_000.0)
    fill = 100e6 + 5_000 * np.minimum(xs, 3_000)
    assert not sustained_trend(xs, fill).exceeds(1_000)
    late = 100e6 + 5_000 * np.maximum(xs - 5_000, 0)  # flat, then 5 KB/step
    trend = sustained_trend(xs, late)
    assert trend.exceeds(1_000) and trend.slope == pytest.approx(5_000, rel=0.01)


def test_a_staircase_with_stairs_throughout_is_sustained():
    # RSS of a leak: retained objects fill holes, then the heap jumps by 1 MB. Stairs
    # every ~300 steps on average (irregular), 3.3 KB/step in all, plus noise.
    rng = np.random.default_rng(1)
    xs = np.arange(0.0, 12_000.0)
    edges = np.cumsum(rng.integers(150, 450, 60))
    ys = 200e6 + 1e6 * np.searchsorted(edges, xs) + rng.normal(0, 50e3, xs.size)
    trend = sustained_trend(xs, ys)
    assert trend.exceeds(1_000)
