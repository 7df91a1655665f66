"""Pure statistics for growth verdicts: no I/O, no probes, arrays in, frozen results out.

Why these estimators:

- RSS is not a smooth line. pymalloc keeps arenas and glibc returns memory only from the
  top of the heap, so a clean process shows flat stretches and sudden steps. Least squares
  lets one step tilt the whole fit; the Theil–Sen estimator (median of pairwise slopes,
  Sen 1968, "Estimates of the regression coefficient based on Kendall's tau", JASA 63)
  tolerates up to ~29% outliers and is what ``scipy.stats.theilslopes`` computes, with a
  confidence interval from Kendall's tau distribution.
- The trend test is Mann–Kendall: Kendall's tau between step and value
  (``scipy.stats.kendalltau``).
- Theil–Sen is O(n²) in pairs, and successive RSS samples are strongly autocorrelated,
  so a window is first reduced to at most ``max_points`` block medians. That keeps a
  60,000-step window at ~80,000 pairs and makes the interval less over-confident than
  it would be on raw, autocorrelated samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Growth:
    """A robust linear growth estimate over one window, in units per step."""

    slope: float
    low: float
    high: float
    intercept: float
    confidence: float
    tau: float
    p_value: float
    start_step: int
    end_step: int
    samples: int
    points: int

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step

    def fitted(self, step: float) -> float:
        return self.intercept + self.slope * step

    def exceeds(self, limit: float) -> bool:
        """True when the whole confidence interval lies above ``limit``."""
        return self.low > limit


def block_medians(x: ArrayLike, y: ArrayLike, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce (x, y) to at most ``max_points`` medians of consecutive equal-size blocks."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    n = len(xs)
    if n <= max_points:
        return xs, ys
    edges = np.linspace(0, n, max_points + 1).astype(int)
    bx = np.array([np.median(xs[a:b]) for a, b in itertools.pairwise(edges)])
    by = np.array([np.median(ys[a:b]) for a, b in itertools.pairwise(edges)])
    return bx, by


def robust_growth(
    steps: Sequence[float], values: Sequence[float], confidence: float = 0.95, max_points: int = 400
) -> Growth:
    """Theil–Sen slope with its ``confidence`` interval, and a Mann–Kendall trend test."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r} must be between 0 and 1")
    xs, ys = block_medians(steps, values, max_points)
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 3:
        raise ValueError(f"a growth estimate needs at least 3 finite samples, got {len(xs)}")
    if np.all(ys == ys[0]):
        # Constant input: kendalltau warns and returns nan; the answer is exactly "flat".
        return Growth(
            0.0, 0.0, 0.0, float(ys[0]), confidence, 0.0, 1.0, int(steps[0]), int(steps[-1]), len(steps), len(xs)
        )
    from scipy import stats as _sps  # imported on first use: it costs ~0.3 s

    res = _sps.theilslopes(ys, xs, alpha=confidence)
    tau = _sps.kendalltau(xs, ys)
    p_value = float(tau.pvalue) if math.isfinite(tau.pvalue) else 1.0
    return Growth(
        slope=float(res.slope),
        low=float(res.low_slope),
        high=float(res.high_slope),
        intercept=float(res.intercept),
        confidence=confidence,
        tau=float(tau.statistic) if math.isfinite(tau.statistic) else 0.0,
        p_value=p_value,
        start_step=int(steps[0]),
        end_step=int(steps[-1]),
        samples=len(steps),
        points=len(xs),
    )


def steps_until(growth: Growth, budget: float, from_step: float) -> float | None:
    """The step at which the fitted line reaches ``budget``, or None if it never does."""
    if growth.slope <= 0:
        return None
    current = growth.fitted(from_step)
    if current >= budget:
        return from_step
    return from_step + (budget - current) / growth.slope


def part_slopes(steps: Sequence[float], values: Sequence[float], parts: int = 2, max_points: int = 200) -> list[float]:
    """Theil–Sen slope of each of ``parts`` consecutive equal parts of the series.

    A linear leak grows in every part of a window; an allocator bump after warm-up
    (RSS up 30 MB, then back down) grows in one and shrinks in another. Requiring every
    part to exceed the limit is what keeps clean runs from failing on such bumps.
    """
    from scipy import stats as _sps

    xs, ys = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    edges = np.linspace(0, len(xs), parts + 1).astype(int)
    out = []
    for a, b in itertools.pairwise(edges):
        px, py = block_medians(xs[a:b], ys[a:b], max_points)
        if len(px) < 3 or np.all(py == py[0]):
            out.append(0.0)
        else:
            out.append(float(_sps.theilslopes(py, px).slope))
    return out
