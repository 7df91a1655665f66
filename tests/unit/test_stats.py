"""Growth statistics against hand-computed values.

Theil–Sen: slope = median of the pairwise slopes (y_j - y_i) / (x_j - x_i), Sen (1968),
JASA 63:1379; scipy's intercept is median(y) - slope * median(x).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.stats import block_medians, robust_growth, steps_until


def test_theil_sen_ignores_one_outlier_that_least_squares_follows():
    x = [0, 1, 2, 3, 4]
    y = [0, 1, 2, 3, 100]
    # Pairwise slopes: six pairs among the first four points are 1; with the last point
    # 100/4=25, 99/3=33, 98/2=49, 97/1=97. Sorted, the 5th and 6th of ten are 1 and 1.
    g = robust_growth(x, y)
    assert g.slope == 1.0
    assert g.intercept == 0.0  # median(y)=2 - 1 * median(x)=2
    assert g.tau == pytest.approx(1.0)  # every pair concordant
    # Exact Kendall test: only 1 of the 5! = 120 orderings is perfectly increasing (and 1
    # perfectly decreasing), so the two-sided p-value is 2/120.
    assert g.p_value == pytest.approx(2 / 120)
    # Least squares: Sxy / Sxx = 202 / 10 (means 2 and 21.2), pulled twentyfold by one point.
    assert np.polyfit(x, y, 1)[0] == pytest.approx(20.2)


def test_constant_series_is_exactly_flat_without_warnings():
    g = robust_growth(list(range(50)), [7.0] * 50)
    assert (g.slope, g.low, g.high, g.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_interval_contains_the_true_slope_of_a_noisy_line():
    rng = np.random.default_rng(3)
    x = np.arange(2_000)
    y = 4_100.0 * x + rng.normal(0, 200_000, x.size)
    g = robust_growth(x, y)
    assert g.low < 4_100 < g.high
    assert g.exceeds(1_000)
    assert not g.exceeds(5_000)
    assert g.p_value < 1e-10


def test_block_medians_reduce_to_the_requested_number_of_points():
    bx, by = block_medians(list(range(10)), [v * 2 for v in range(10)], 5)
    assert bx.tolist() == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert by.tolist() == [1.0, 5.0, 9.0, 13.0, 17.0]


def test_steps_until_budget_projects_the_fitted_line():
    g = robust_growth([0, 1, 2, 3], [100.0, 110.0, 120.0, 130.0])  # 10 bytes/step from 100
    assert steps_until(g, budget=1_000.0, from_step=3) == pytest.approx(90.0)
    flat = robust_growth([0, 1, 2], [5.0, 5.0, 5.0])
    assert steps_until(flat, budget=10.0, from_step=2) is None


def test_too_few_points_is_an_error():
    with pytest.raises(ValueError, match="at least 3"):
        robust_growth([0, 1], [0.0, 1.0])
