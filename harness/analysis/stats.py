"""Pure statistics for growth verdicts: no I/O, no probes, arrays in, frozen results out.

Why these estimators:

- RSS is not a smooth line. pymalloc keeps arenas and glibc returns memory only from the
  top of the heap, so a clean process shows flat stretches and sudden steps. Least squares
  lets one step tilt the whole fit; the Theil–Sen estimator (median of pairwise slopes,
  Sen 1968, "Estimates of the regression coefficient based on Kendall's tau", JASA 63)
  tolerates up to ~29% outliers, with a confidence interval from Kendall's tau
  distribution (Sen's equation 2.6, as ``scipy.stats.theilslopes`` computes it).
- The trend test is Mann–Kendall: Kendall's tau-b between step and value, its p-value
  from the normal approximation with tie corrections (as ``scipy.stats.kendalltau``), or
  exact for small untied samples (then scipy is asked).
- Theil–Sen is O(n²) in pairs, and successive RSS samples are strongly autocorrelated,
  so a window is first reduced to at most ``max_points`` medians of equal *step* spans.
  Spans, not equal sample counts: samples are taken on a time budget (irregular steps),
  and a long trace holds block medians of its history beside exact recent samples; a
  span-based reduction weighs every part of the window by its length in steps whatever
  its sampling density.

Everything here is numpy: a verdict on a long trace costs milliseconds and does not
import scipy (whose import alone takes seconds on a loaded CI machine).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


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


def _sorted_xy(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if len(xs) != len(ys):
        raise ValueError(f"steps and values differ in length ({len(xs)} and {len(ys)})")
    if len(xs) > 1 and np.any(xs[1:] < xs[:-1]):
        order = np.argsort(xs, kind="stable")
        xs, ys = xs[order], ys[order]
    return xs, ys


def block_medians(x: ArrayLike, y: ArrayLike, max_points: int) -> tuple[FloatArray, FloatArray]:
    """Reduce (x, y) to at most ``max_points`` medians of equal spans of x.

    Each span's point is (median x, median y) of the samples in it; empty spans (gaps in
    the sampling) give no point. At most ``max_points`` samples are returned unchanged.
    """
    xs, ys = _sorted_xy(x, y)
    n = len(xs)
    if n <= max_points:
        return xs, ys
    x0, x1 = float(xs[0]), float(xs[-1])
    if x1 <= x0:
        return np.array([np.median(xs)]), np.array([np.median(ys)])
    edges = np.linspace(x0, x1, max_points + 1)
    # bin i holds edges[i] <= x < edges[i+1]; the last bin also holds x1
    bounds = np.searchsorted(xs, edges[1:-1], side="left")
    starts = np.concatenate(([0], bounds))
    stops = np.concatenate((bounds, [n]))
    keep = stops > starts
    starts, stops = starts[keep], stops[keep]
    counts = stops - starts
    if np.all(counts == counts[0]):  # regular sampling: one vectorised median
        k = int(counts[0])
        m = len(counts)
        return (
            np.median(xs[starts[0] : starts[0] + m * k].reshape(m, k), axis=1),
            np.median(ys[starts[0] : starts[0] + m * k].reshape(m, k), axis=1),
        )
    bx = np.fromiter((np.median(xs[a:b]) for a, b in zip(starts, stops, strict=True)), float, len(starts))
    by = np.fromiter((np.median(ys[a:b]) for a, b in zip(starts, stops, strict=True)), float, len(starts))
    return bx, by


def _pair_slopes(xs: FloatArray, ys: FloatArray) -> FloatArray:
    """Sorted slopes of every pair with distinct x (x sorted ascending)."""
    i, j = np.triu_indices(len(xs), k=1)
    dx = xs[j] - xs[i]
    keep = dx > 0
    slopes = (ys[j] - ys[i])[keep] / dx[keep]
    slopes.sort()
    return slopes


def _repeat_counts(values: FloatArray) -> NDArray[np.int64]:
    _, counts = np.unique(values, return_counts=True)
    return counts[counts > 1].astype(np.int64)


def lag1_autocorrelation(values: FloatArray) -> float:
    """Lag-1 autocorrelation of a series (0 for fewer than 3 values or a constant one)."""
    r = np.asarray(values, dtype=float)
    if len(r) < 3:
        return 0.0
    r = r - r.mean()
    denom = float(np.dot(r, r))
    return float(np.dot(r[1:], r[:-1]) / denom) if denom > 0 else 0.0


def theil_sen(
    xs: FloatArray, ys: FloatArray, confidence: float, inflate: float = 1.0
) -> tuple[float, float, float, float]:
    """(slope, intercept, low, high): Theil–Sen with Sen's (1968, eq. 2.6) interval, its
    standard deviation of Kendall's S multiplied by ``inflate`` (see ``robust_growth``)."""
    slopes = _pair_slopes(xs, ys)
    if not slopes.size:
        return 0.0, float(np.median(ys)), math.nan, math.nan
    slope = float(np.median(slopes))
    intercept = float(np.median(ys)) - slope * float(np.median(xs))
    alpha = 1.0 - confidence
    z = NormalDist().inv_cdf(alpha / 2.0)
    ny = len(ys)

    def reps(c: NDArray[np.int64]) -> float:
        return float(np.sum(c * (c - 1) * (2 * c + 5)))

    sigsq = (ny * (ny - 1) * (2 * ny + 5) - reps(_repeat_counts(xs)) - reps(_repeat_counts(ys))) / 18.0
    nt = len(slopes)
    if sigsq < 0:
        return slope, intercept, math.nan, math.nan
    sigma = math.sqrt(sigsq) * inflate
    upper = min(round((nt - z * sigma) / 2.0), nt - 1)
    lower = max(round((nt + z * sigma) / 2.0) - 1, 0)
    return slope, intercept, float(slopes[lower]), float(slopes[upper])


def kendall(xs: FloatArray, ys: FloatArray) -> tuple[float, float]:
    """(tau-b, two-sided p-value) of the Mann–Kendall trend test."""
    n = len(xs)
    i, j = np.triu_indices(n, k=1)
    sx = np.sign(xs[j] - xs[i])
    sy = np.sign(ys[j] - ys[i])
    con_minus_dis = float(np.sum(sx * sy))
    tot = n * (n - 1) // 2
    cx, cy = _repeat_counts(xs), _repeat_counts(ys)
    xtie = int(np.sum(cx * (cx - 1) // 2))
    ytie = int(np.sum(cy * (cy - 1) // 2))
    if xtie == tot or ytie == tot:
        return 0.0, 1.0
    tau = con_minus_dis / math.sqrt(tot - xtie) / math.sqrt(tot - ytie)
    tau = min(1.0, max(-1.0, tau))
    dis = int(np.sum((sx * sy) < 0))
    if xtie == 0 and ytie == 0 and n > 33 and min(dis, tot - dis) <= 1:
        # Exact: 1 ordering has no inversion, n - 1 have one (scipy's _kendall_p_exact).
        c = min(dis, tot - dis)
        return tau, min(1.0, math.exp(math.log(2.0) - math.lgamma(n + 1 if c == 0 else n)))
    if xtie == 0 and ytie == 0 and n <= 33:
        from scipy import stats as _sps  # exact p-value for small untied samples

        p = float(_sps.kendalltau(xs, ys).pvalue)
        return tau, p if math.isfinite(p) else 1.0
    m = n * (n - 1.0)
    x0 = float(np.sum(cx * (cx - 1.0) * (cx - 2)))
    y0 = float(np.sum(cy * (cy - 1.0) * (cy - 2)))
    x1 = float(np.sum(cx * (cx - 1.0) * (2 * cx + 5)))
    y1 = float(np.sum(cy * (cy - 1.0) * (2 * cy + 5)))
    var = (m * (2 * n + 5) - x1 - y1) / 18 + (2 * xtie * ytie) / m + x0 * y0 / (9 * m * (n - 2))
    if var <= 0:
        return tau, 1.0
    z = con_minus_dis / math.sqrt(var)
    return tau, min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def robust_growth(
    steps: Sequence[float] | ArrayLike,
    values: Sequence[float] | ArrayLike,
    confidence: float = 0.95,
    max_points: int = 400,
    *,
    autocorrelated: bool = False,
) -> Growth:
    """Theil–Sen slope with its ``confidence`` interval, and a Mann–Kendall trend test.

    ``autocorrelated=True`` widens the interval for serially correlated residuals: Sen's
    interval assumes independent points, and the block medians of a slowly wandering
    clean series are not. The standard deviation of Kendall's S is multiplied by
    sqrt((1 + r) / (1 - r)), r the lag-1 autocorrelation of the residuals about the fit
    (the AR(1) variance inflation; Hamed & Rao 1998 correct Mann–Kendall this way).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r} must be between 0 and 1")
    sx, sy = _sorted_xy(steps, values)
    finite = np.isfinite(sy)
    if not np.all(finite):
        sx, sy = sx[finite], sy[finite]
    xs, ys = block_medians(sx, sy, max_points)
    if len(xs) < 3:
        raise ValueError(f"a growth estimate needs at least 3 finite samples, got {len(xs)}")
    first, last, samples = int(sx[0]), int(sx[-1]), len(np.asarray(steps))
    if np.all(ys == ys[0]):
        # Constant input: tau is undefined; the answer is exactly "flat".
        return Growth(0.0, 0.0, 0.0, float(ys[0]), confidence, 0.0, 1.0, first, last, samples, len(xs))
    slope, intercept, low, high = theil_sen(xs, ys, confidence)
    if autocorrelated and len(xs) >= 10:
        rho = min(max(lag1_autocorrelation(ys - (intercept + slope * xs)), 0.0), 0.995)
        if rho > 0:
            _, _, low, high = theil_sen(xs, ys, confidence, inflate=math.sqrt((1 + rho) / (1 - rho)))
    tau, p_value = kendall(xs, ys)
    return Growth(
        slope=slope,
        low=low,
        high=high,
        intercept=intercept,
        confidence=confidence,
        tau=tau,
        p_value=p_value,
        start_step=first,
        end_step=last,
        samples=samples,
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


def part_slopes(
    steps: Sequence[float] | ArrayLike, values: Sequence[float] | ArrayLike, parts: int = 2, max_points: int = 200
) -> list[float]:
    """Theil–Sen slope of each of ``parts`` consecutive equal step spans of the series.

    A linear leak grows in every part of a window; an allocator bump after warm-up
    (RSS up 30 MB, then back down) grows in one and shrinks in another. Requiring every
    part to exceed the limit is what keeps clean runs from failing on such bumps.
    """
    xs, ys = _sorted_xy(steps, values)
    finite = np.isfinite(ys)
    xs, ys = xs[finite], ys[finite]
    if not len(xs):
        return [0.0] * parts
    edges = np.linspace(float(xs[0]), float(xs[-1]), parts + 1)
    cuts = np.concatenate(([0], np.searchsorted(xs, edges[1:-1], side="left"), [len(xs)]))
    out = []
    for a, b in itertools.pairwise(cuts):
        px, py = block_medians(xs[a:b], ys[a:b], max_points)
        if len(px) < 3 or np.all(py == py[0]):
            out.append(0.0)
        else:
            slopes = _pair_slopes(px, py)
            out.append(float(np.median(slopes)) if slopes.size else 0.0)
    return out
