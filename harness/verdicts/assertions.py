"""Assertions: thin wrappers over analysis that raise with a message a person can act on."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from harness.analysis.growth import GrowthVerdict, growth_verdict
from harness.analysis.peak import PeakVerdict, peak_verdict
from harness.errors import GrowthError, PeakError, RetentionWarning
from harness.recording.trace import Trace

#: Peak timelines kept in a check record (the page plots them; verdict.json stays small).
TIMELINE_POINTS = 400


@dataclass
class Check:
    """A verdict a test reached itself, for its report: the record and what it was judged on."""

    record: dict[str, Any]
    trace: Trace | None = None
    source: object = None  # the PeakResult of a peak check (to drop a duplicate of the marker's)


# A stack of per-test lists: the plugin opens one around each test (``collect_checks``),
# and every assertion appends its record, pass or fail, so a check the test caught with
# pytest.raises still reaches its page and the index.
_SINKS: list[list[Check]] = []


@contextmanager
def collect_checks() -> Iterator[list[Check]]:
    """Collect the records of every check made inside the block (the plugin wraps each test)."""
    checks: list[Check] = []
    _SINKS.append(checks)
    try:
        yield checks
    finally:
        _SINKS.remove(checks)


def note_check(record: dict[str, Any], trace: Trace | None = None, source: object = None) -> None:
    """Hand a check's record to the collecting test, if any (outside pytest: nothing)."""
    if _SINKS:
        _SINKS[-1].append(Check(record, trace, source))


def growth_check_record(verdict: GrowthVerdict, trace: Trace | None = None) -> dict[str, Any]:
    """growth_record plus what the reports draw: the projection's signal and the steady level."""
    from harness.verdicts.render import growth_record

    record = growth_record(verdict)
    record["projection_signal"] = getattr(verdict, "projection_signal", verdict.signal)
    if trace is not None:
        record["levels"] = _window_levels(trace, verdict)
    return record


def _window_levels(trace: Trace, verdict: GrowthVerdict) -> dict[str, float]:
    """Each memory signal's steady-state level: its median in the verdict's window above its
    first value in the trace. Above the start, because the absolute figure depends on what
    earlier tests left in the process (a leaky test run first lifts every later one)."""
    import math
    import statistics

    a, b = verdict.window.indices
    out: dict[str, float] = {}
    for name in ("rss", "allocated", "tree", "unaccounted", "heap", verdict.signal):
        if name in out or name not in trace.signals:
            continue
        column = trace.signal(name)
        first = next((float(v) for v in column if math.isfinite(v)), math.nan)
        values = [float(v) for v in column[a:b] if math.isfinite(v)]
        if values and math.isfinite(first):
            out[name] = statistics.median(values) - first
    return out


def peak_check_record(verdict: PeakVerdict, result: Any = None) -> dict[str, Any]:
    """peak_record plus the block's RSS timeline (seconds, bytes), thinned for the page."""
    from harness.verdicts.render import peak_record

    record = peak_record(verdict)
    timeline = list(getattr(result, "timeline", None) or ())
    if len(timeline) > TIMELINE_POINTS:
        stride = len(timeline) / TIMELINE_POINTS
        # Thinned, but the highest sample always kept: the peak is the point of the plot.
        highest = max(range(len(timeline)), key=lambda i: timeline[i][1])
        keep = {int(i * stride) for i in range(TIMELINE_POINTS)} | {highest}
        timeline = [timeline[i] for i in sorted(keep)]
    record["timeline"] = [[round(float(t), 6), int(v)] for t, v in timeline]
    return record


def note_release(watched: int, survivors: list[Any], message: str) -> None:
    """Record a ``track_release().assert_released()`` check, with each survivor's chain."""
    if not _SINKS:
        return
    note_check(
        {
            "kind": "release",
            "passed": not survivors,
            "watched": watched,
            "released": watched - len(survivors),
            "survivors": [
                {
                    "label": s.label,
                    "type": s.type_name,
                    "chain": [{"edge": h.edge, "kind": h.kind, "what": h.what} for h in s.chain.hops]
                    if s.chain is not None
                    else [],
                    "note": s.note,
                }
                for s in survivors
            ],
            "message": message,
        }
    )


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
    if _SINKS:
        note_check(growth_check_record(verdict, trace), trace)
    if not verdict.passed:
        raise GrowthError(verdict.message(), verdict)
    if verdict.retention:
        warn_retention(verdict)
    return verdict


def warn_retention(verdict: GrowthVerdict) -> None:
    """Say (as a RetentionWarning: pytest lists it in its warnings summary) that RSS grew
    while the code's live memory did not."""
    warnings.warn(RetentionWarning(f"{verdict.trace_name}: {verdict.message()}"), stacklevel=3)


def assert_peak_within(result: Any, limit: object, *, payload: object = None) -> PeakVerdict:
    """Fail when a ``harness.peak()`` block rose more than ``limit`` above its baseline.

    ``limit`` is absolute ("256 MB") or a multiple of ``payload`` ("1.25x" with
    ``payload=buf.nbytes``), the bytes the block was meant to handle.
    """
    verdict = peak_verdict(result, limit, payload)
    if _SINKS:
        note_check(peak_check_record(verdict, result), source=result)
    if not verdict.passed:
        raise PeakError(verdict.message(), verdict)
    return verdict
