"""Is growth sustained, or a one-off rise that has stopped? A two-segment trend test.

Memory series have two kinds of rise that a plain slope cannot tell apart:

- a **leak** adds bytes step after step; RSS shows it as a line or as a staircase (retained
  objects fill holes the heap already has, then the heap jumps: DESIGN.md measured halves
  of 2.0 and 3.7 KB/step, and of 0.45 and 23.7 KB/step, for leaks of 2.1 and 2.8 KB/step);
- a **one-off rise** in a clean loop: an allocator arena, a cache filled once, a buffer
  still filling when the window starts: a jump or a ramp, then flat.

Round 1 asked each half of the window to exceed the limit. That cleared one-off rises but
also real staircases (a 2 KB/step leak missed in 2 of 12 runs, one half at 0.13 KB/step).
Here the window's series is reduced to block medians and split at the break that fits best
(two separate least-squares lines, a level and a slope change allowed at an unknown break:
the one-break structural-change model of Bai & Perron (1998); Andrews (1993) for the
unknown break point). The break may not leave less than a third of the window after it.
The growth is *sustained* when the slope of the segment after the break (Theil–Sen with
Sen's (1968) interval) still lies above the limit: a jump or a ramp that stopped leaves a
flat last segment; a line, a late-starting leak or a staircase of several stairs keeps its
slope there.

Pure: arrays in, a frozen :class:`Trend` out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from harness.analysis.stats import block_medians, theil_sen

#: Block medians the break search runs on: enough to place a break within ~2% of the
#: window, few enough that the search (one 3-parameter least squares per candidate) is cheap.
BLOCKS = 60
#: Blocks kept before a break: a break at the window's very start is no break.
EDGE = 3
#: The last segment keeps at least this share of the blocks, so its slope has an interval
#: narrow enough to judge (20 of 60 block medians).
TAIL = 1 / 3


@dataclass(frozen=True)
class Trend:
    """Slope of a window's last segment, after the break that fits best."""

    slope: float  # bytes/step, Theil–Sen on the last segment's block medians
    low: float
    high: float
    shift: float  # bytes: the jump at the break (last segment's line minus the first's, at the break)
    shift_step: float | None  # step of the break (None: no break, the whole window is one segment)
    before: float  # slope of the segment before the break (bytes/step)
    blocks: int

    def exceeds(self, limit: float) -> bool:
        return self.low > limit


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(intercept, slope, residual sum of squares) of the least-squares line."""
    xm, ym = float(x.mean()), float(y.mean())
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym))) / sxx if sxx > 0 else 0.0
    intercept = ym - slope * xm
    rss = float(np.sum((y - intercept - slope * x) ** 2))
    return intercept, slope, rss


def best_break(xs: np.ndarray, ys: np.ndarray, edge: int = EDGE, tail: float = TAIL) -> int | None:
    """Index k of the break minimising the two lines' total squared error (points k.. form
    the last segment), or None when the series is too short to split."""
    n = len(xs)
    last_start = n - max(edge, int(np.ceil(tail * n)))
    if last_start < edge:
        return None
    _, _, whole = _line(xs, ys)
    best_k, best_rss = None, whole
    for k in range(edge, last_start + 1):
        rss = _line(xs[:k], ys[:k])[2] + _line(xs[k:], ys[k:])[2]
        if rss < best_rss:
            best_k, best_rss = k, rss
    return best_k


def sustained_trend(steps: ArrayLike, values: ArrayLike, confidence: float = 0.95, blocks: int = BLOCKS) -> Trend:
    """The slope of the window's last segment, after the break that fits best."""
    xs, ys = block_medians(steps, values, blocks)
    xs = np.asarray(xs, dtype=float)
    ys = np.asarray(ys, dtype=float)
    k = best_break(xs, ys)
    if k is None:
        slope, _, low, high = theil_sen(xs, ys, confidence)
        return Trend(slope, low, high, 0.0, None, slope, len(xs))
    a0, b0, _ = _line(xs[:k], ys[:k])
    a1, b1, _ = _line(xs[k:], ys[k:])
    slope, _, low, high = theil_sen(xs[k:], ys[k:], confidence)
    at = float(xs[k])
    return Trend(slope, low, high, (a1 + b1 * at) - (a0 + b0 * at), at, b0, len(xs))
