"""Assertions: thin wrappers over analysis that raise with a message a person can act on."""

from __future__ import annotations

from typing import Any

from harness.analysis.growth import GrowthVerdict, growth_verdict
from harness.analysis.peak import PeakVerdict, peak_verdict
from harness.errors import GrowthError, PeakError
from harness.recording.trace import Trace


def assert_no_linear_growth(
    trace: Trace,
    *,
    after: str | None = None,
    max_growth: object = "1 MB/1k steps",
    signal: str = "auto",
    settle: object = None,
    budget: object = None,
    confidence: float = 0.95,
) -> GrowthVerdict:
    """Fail when ``signal`` grows faster than ``max_growth`` in the window after ``after``.

    The verdict fails only when the whole ``confidence`` interval of the robust
    (Theil–Sen) slope lies above ``max_growth``, so one-off steps of the allocator do not
    fail a clean run. ``settle`` (steps, or a fraction like "10%") is skipped after the
    event before the window starts. ``budget`` (default: this machine's memory) is what
    the projection in the message runs out of. Returns the verdict when it passes.
    """
    verdict = growth_verdict(
        trace,
        max_growth=max_growth,
        after=after,
        signal=signal,
        settle=settle,
        budget=budget,
        confidence=confidence,
    )
    # Noted on the trace, so a test's report and terminal summary show the checks it made
    # itself (a test that expects a GrowthError still shows the figures it was caught at).
    trace.meta.setdefault("checks", []).append(verdict.summary_line())
    if not verdict.passed:
        raise GrowthError(verdict.message(), verdict)
    return verdict


def assert_peak_within(result: Any, limit: object, *, payload: object = None) -> PeakVerdict:
    """Fail when a ``harness.peak()`` block rose more than ``limit`` above its baseline.

    ``limit`` is absolute ("256 MB") or a multiple of ``payload`` ("1.25x" with
    ``payload=buf.nbytes``), the bytes the block was meant to handle.
    """
    verdict = peak_verdict(result, limit, payload)
    if not verdict.passed:
        raise PeakError(verdict.message(), verdict)
    return verdict
