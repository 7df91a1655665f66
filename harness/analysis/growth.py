"""Analysis: verdicts computed from a Trace, pure (no probes, no files).

``growth_verdict`` picks the window (after an event, past a settling period), estimates
growth robustly (``harness.stats``), compares it with a limit, projects when a memory
budget runs out and gathers the evidence a person needs to act: the same slope on the
other signals, the allocation sites and object types that grew. ``diagnose`` tells apart
the four cases of incident 1.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.analysis.stats import Growth, part_slopes, robust_growth, steps_until
from harness.errors import TraceError
from harness.recording.trace import Trace
from harness.units import (
    format_rate,
    format_rate_short,
    format_size,
    format_step,
    parse_limit,
    parse_rate,
    parse_settle,
    parse_size,
)

#: Fewer samples than this in a window and no slope is trusted.
MIN_WINDOW_SAMPLES = 20

DEFAULT_SETTLE_AFTER_EVENT = 0.10
DEFAULT_WARMUP = 0.25

_SIGNAL_WORDS = {
    "rss": "RSS",
    "heap": "Python heap (tracemalloc)",
    "unaccounted": "Unaccounted memory (RSS minus declared {acct} bytes)",
    "accounted": "Declared memory ({acct})",
    "cuda_allocated": "CUDA allocated memory",
    "cuda_reserved": "CUDA reserved memory",
}


def signal_words(trace: Trace, signal: str) -> str:
    words = _SIGNAL_WORDS.get(signal, f"signal {signal!r}")
    return words.format(acct=" + ".join(trace.accounting_names()) or "no")


@dataclass(frozen=True)
class Window:
    after: str | None
    event_step: int | None
    start_step: int
    end_step: int
    settle_steps: int
    indices: tuple[int, int]  # [start, stop) into the trace's samples


def select_window(trace: Trace, after: str | None = None, settle: object = None) -> Window:
    if len(trace) == 0:
        raise TraceError(f"trace {trace.name!r} is empty: nothing was sampled (did the loop run?)")
    steps = trace.steps
    if after is not None:
        event = trace.event(after)
        if event is None:
            marked = ", ".join(repr(e.name) for e in trace.events) or "none"
            raise TraceError(
                f"after={after!r}: trace {trace.name!r} has no event {after!r} (events marked: {marked}); "
                f"call rec.mark({after!r}) when it happens, or run long enough for it to happen"
            )
        origin = event.step
        kind, amount = parse_settle(DEFAULT_SETTLE_AFTER_EVENT if settle is None else settle)
    else:
        origin = steps[0]
        kind, amount = parse_settle(DEFAULT_WARMUP if settle is None else settle)
    span = steps[-1] - origin
    settle_steps = round(amount * span) if kind == "fraction" else int(amount)
    start_step = origin + settle_steps
    first = next((i for i, s in enumerate(steps) if s >= start_step), len(steps))
    window = Window(after, origin if after else None, start_step, steps[-1], settle_steps, (first, len(steps)))
    n = len(steps) - first
    if n < MIN_WINDOW_SAMPLES:
        where = f"after {after!r} (step {format_step(origin)})" if after else "after warm-up"
        raise TraceError(
            f"the window {where} in trace {trace.name!r} has {n} samples, fewer than the "
            f"{MIN_WINDOW_SAMPLES} a slope needs (last step {format_step(steps[-1])}, settle {settle_steps} steps): "
            "run more steps past it or lower settle="
        )
    return window


def window_growth(trace: Trace, signal: str, window: Window, confidence: float = 0.95) -> Growth:
    xs, ys = window_series(trace, signal, window)
    return robust_growth(xs, ys, confidence=confidence)


def window_series(trace: Trace, signal: str, window: Window) -> tuple[list[float], list[float]]:
    """(steps, values) of ``signal`` inside ``window``, NaNs dropped."""
    a, b = window.indices
    values = trace.signal(signal)[a:b]
    finite = [i for i, v in enumerate(values) if not math.isnan(v)]
    if len(finite) < MIN_WINDOW_SAMPLES:
        raise TraceError(
            f"signal {signal!r} has {len(finite)} values in the window of trace {trace.name!r}; "
            f"a slope needs {MIN_WINDOW_SAMPLES}"
        )
    xs = [float(trace.steps[a + i]) for i in finite]
    ys = [values[i] for i in finite]
    return xs, ys


def growth_since(trace: Trace, step: int, signal: str = "rss", min_samples: int = 10) -> Growth | None:
    """Robust slope of ``signal`` over the samples from ``step`` on; None with too few samples."""
    start = bisect.bisect_left(trace.steps, step)
    if len(trace) - start < min_samples:
        return None
    values = trace.signal(signal)
    return robust_growth([float(s) for s in trace.steps[start:]], values[start:])


@dataclass(frozen=True)
class GrowthVerdict:
    """The answer to "does ``signal`` grow faster than ``limit`` after ``after``?"."""

    trace_name: str
    signal: str
    signal_words: str
    window: Window
    growth: Growth
    limit: float
    passed: bool
    budget: float | None
    budget_source: str
    projected_step: float | None
    halves: tuple[float, ...] = ()
    accounting: tuple[str, ...] = ()  # names declared with rec.account()
    related: dict[str, Growth] = field(default_factory=dict)
    heap_sites: list[str] = field(default_factory=list)
    type_growth: list[tuple[str, int]] = field(default_factory=list)

    def headline(self) -> str:
        w, g = self.window, self.growth
        since = f"after {w.after!r} (step {format_step(w.event_step or 0)}" if w.after else "after warm-up ("
        if w.after:
            since += "; "
        verb = "grows" if g.slope > 0 else "shrinks" if g.slope < 0 else "is flat at"
        pct = round(g.confidence * 100)
        return (
            f"{self.signal_words} {verb} {format_rate_short(abs(g.slope))} per 1k steps {since}"
            f"window steps {format_step(w.start_step)}–{format_step(w.end_step)}, {g.samples:,} samples, "
            f"{pct}% interval {format_rate_short(g.low)}–{format_rate_short(g.high)}/1k); "
            f"limit {format_rate(self.limit)}"
        )

    def message(self) -> str:
        lines = [self.headline() + "."]
        if not self.passed:
            if self.projected_step is not None and self.budget is not None:
                lines.append(
                    f"At this rate {format_size(self.budget)} ({self.budget_source}) is reached at step "
                    f"{format_step(self.projected_step)}."
                )
            lines.append(
                f"The growth is sustained: {format_rate(self.halves[0])} in the first half of the window, "
                f"{format_rate(self.halves[1])} in the second."
            )
            lines.extend(self._evidence())
        elif self.growth.exceeds(self.limit):
            lines.append(
                f"Passed: the interval lies above the limit but the growth is not sustained "
                f"({format_rate(self.halves[0])} in the first half of the window, {format_rate(self.halves[1])} "
                "in the second): a transient such as allocator warm-up, not linear growth."
            )
        else:
            lines.append(
                f"Passed: the {round(self.growth.confidence * 100)}% interval does not lie above the limit "
                f"(Kendall tau {self.growth.tau:+.2f}, p={self.growth.p_value:.2g})."
            )
        return "\n".join(lines)

    def _evidence(self) -> list[str]:
        out: list[str] = []
        g = self.growth
        acct = " + ".join(self.accounting)
        unacc = self.related.get("unaccounted")
        if self.signal == "rss" and unacc is not None:
            ratio = unacc.slope / g.slope if g.slope > 0 else 0.0
            if ratio >= 0.5:
                out.append(
                    f"Unaccounted memory (RSS minus declared {acct} bytes) grows "
                    f"{format_rate(unacc.slope)} ({ratio:.0%} of the RSS growth): memory nobody declared is piling "
                    "up; look for references to evicted data (views, caches, queues, histories)."
                )
            else:
                declared = self.related.get("accounted")
                grows = f" grows {format_rate(declared.slope)}" if declared is not None else " grows"
                out.append(
                    f"Declared memory ({acct}){grows} and unaccounted memory only "
                    f"{format_rate(unacc.slope)}: the structure itself keeps growing; check that its capacity "
                    "is enforced."
                )
        elif self.signal == "rss":
            out.append(
                "Declare legitimately held memory with rec.account(buffer=buf.nbytes) to separate the buffer's "
                "own bytes from a leak (signal='unaccounted')."
            )
        heap = self.related.get("heap")
        if heap is not None and self.signal != "heap":
            share = heap.slope / g.slope if g.slope > 0 else 0.0
            where = "Python objects" if share >= 0.5 else "native memory (numpy/torch buffers, C extensions)"
            out.append(f"Python heap (tracemalloc) grows {format_rate(heap.slope)}: mostly {where}.")
        if self.heap_sites:
            out.append("Top growing allocation sites in the window: " + "; ".join(self.heap_sites) + ".")
        if self.type_growth:
            out.append(
                "Object types that grew in the window: "
                + ", ".join(f"{name} +{count:,}" for name, count in self.type_growth)
                + "."
            )
        out.append(
            "Next: watch what should die with harness.track_release() to get the retainer chain; "
            "rerun with --leak-memray for a flamegraph of what is still allocated."
        )
        return out

    def summary_line(self) -> str:
        """One line for a terminal summary: verdict, signal, slope, interval, window, limit."""
        g, w = self.growth, self.window
        after = f" after {w.after!r}" if w.after else ""
        return (
            f"{'PASS' if self.passed else 'FAIL'} {self.signal} {format_rate(g.slope)} "
            f"[{format_rate_short(g.low)}–{format_rate_short(g.high)}/1k steps] "
            f"steps {format_step(w.start_step)}–{format_step(w.end_step)}{after}; limit {format_rate(self.limit)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "trace": self.trace_name,
            "signal": self.signal,
            "after": self.window.after,
            "event_step": self.window.event_step,
            "window": [self.window.start_step, self.window.end_step],
            "slope_bytes_per_step": self.growth.slope,
            "interval": [self.growth.low, self.growth.high],
            "confidence": self.growth.confidence,
            "tau": self.growth.tau,
            "p_value": self.growth.p_value,
            "samples": self.growth.samples,
            "limit_bytes_per_step": self.limit,
            "halves_bytes_per_step": list(self.halves),
            "passed": self.passed,
            "budget": self.budget,
            "projected_step": self.projected_step,
            "related": {k: asdict(v) for k, v in self.related.items()},
        }


def growth_verdict(
    trace: Trace,
    *,
    max_growth: object = "1 MB/1k steps",
    after: str | None = None,
    signal: str = "rss",
    settle: object = None,
    budget: object = None,
    confidence: float = 0.95,
    source: str = "assert_no_linear_growth",
) -> GrowthVerdict:
    limit = parse_rate(max_growth, f"{source} max_growth=")
    if budget is not None:
        budget_bytes: float | None = parse_size(budget, f"{source} budget=")
        budget_source = "budget"
    else:
        budget_bytes = _machine_memory(trace)
        budget_source = "this machine's memory" if budget_bytes else ""
    window = select_window(trace, after, settle)
    xs, ys = window_series(trace, signal, window)
    growth = robust_growth(xs, ys, confidence=confidence)
    halves = tuple(part_slopes(xs, ys, 2))
    related: dict[str, Growth] = {}
    for other in ("rss", "unaccounted", "accounted", "heap"):
        if other != signal and (other in trace.columns or (other in ("unaccounted", "accounted") and trace.accounting)):
            related[other] = window_growth(trace, other, window, confidence)
    sustained = all(h > limit for h in halves)
    passed = not (growth.exceeds(limit) and sustained)
    projected = steps_until(growth, budget_bytes, window.end_step) if budget_bytes and not passed else None
    heap_key = f"heap_growth:{after}" if after else "heap_growth"
    gc_key = f"type_growth:{after}" if after else "type_growth"
    return GrowthVerdict(
        trace_name=trace.name,
        signal=signal,
        signal_words=signal_words(trace, signal),
        window=window,
        growth=growth,
        limit=limit,
        passed=passed,
        budget=budget_bytes,
        budget_source=budget_source,
        projected_step=projected,
        halves=halves,
        accounting=tuple(trace.accounting_names()),
        related=related,
        heap_sites=list(trace.meta.get(heap_key, [])),
        type_growth=[(str(n), int(c)) for n, c in trace.meta.get(gc_key, [])],
    )


def _machine_memory(trace: Trace) -> float | None:
    total = trace.meta.get("machine_memory")
    return float(total) if isinstance(total, (int, float)) and total > 0 else None


# -- incident 1's four cases ------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """Which of incident 1's cases a trace shows, with the slopes that say so."""

    case: str  # "A", "B", "C", "D" or "?"
    title: str
    evidence: dict[str, Growth]
    limit: float
    explanation: str

    def __str__(self) -> str:
        return f"case {self.case}: {self.title}. {self.explanation}"


_CASES = {
    "A": "GPU leak: allocated GPU memory climbs after the buffer is full",
    "B": "GPU fragmentation: allocated GPU memory is flat while reserved climbs",
    "C": "RAM leak: RSS exceeds the buffer's own bytes by a growing margin",
    "D": "no leak: everything is flat; an OOM here is a capacity limit, at the same footprint every time",
    "?": "RSS grows, but no declared accounting or GPU signal says where",
}


def diagnose(
    trace: Trace, *, after: str | None = None, max_growth: object = "1 MB/1k steps", settle: object = None
) -> Diagnosis:
    """Tell apart incident 1's cases A–D from the slopes after ``after``."""
    limit = parse_rate(max_growth, "diagnose max_growth=")
    window = select_window(trace, after, settle)
    evidence: dict[str, Growth] = {
        name: window_growth(trace, name, window)
        for name in ("rss", "unaccounted", "cuda_allocated", "cuda_reserved")
        if name in trace.columns or (name == "unaccounted" and trace.accounting)
    }

    def grows(name: str) -> bool:
        return name in evidence and evidence[name].exceeds(limit)

    if grows("cuda_allocated"):
        case = "A"
    elif "cuda_allocated" in evidence and grows("cuda_reserved"):
        case = "B"
    elif grows("unaccounted"):
        case = "C"
    elif grows("rss") and "unaccounted" not in evidence:
        case = "?"
    else:
        case = "D"
    figures = "; ".join(
        f"{name} {format_rate(g.slope)} [{format_rate_short(g.low)}–{format_rate_short(g.high)}]"
        for name, g in evidence.items()
    )
    return Diagnosis(case, _CASES[case], evidence, limit, f"Slopes after {after or 'warm-up'}: {figures}.")


# -- peaks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PeakVerdict:
    """The answer to "did the block's peak stay within ``limit`` over its baseline?"."""

    label: str
    over_baseline: float
    baseline: float
    payload: float | None
    limit: float
    limit_text: str
    passed: bool
    duration_s: float
    peak_at_s: float | None
    method: str
    sites: tuple[str, ...]
    children_peak: float | None

    def message(self) -> str:
        what = f"Peak during {self.label!r}" if self.label else "Peak during the block"
        ratio = (
            f" ({self.over_baseline / self.payload:.2f}× the {format_size(self.payload)} payload)"
            if self.payload
            else ""
        )
        lines = [
            f"{what} was {format_size(self.over_baseline)} above baseline{ratio}; limit {self.limit_text}"
            + (f" ({format_size(self.limit)})" if "x" in self.limit_text else "")
            + f". Baseline {format_size(self.baseline)}."
        ]
        when = (
            f"The peak came at about {self.peak_at_s:.1f} s of {self.duration_s:.1f} s"
            if self.peak_at_s is not None
            else f"The block ran {self.duration_s:.1f} s"
        )
        lines.append(f"{when} (measured by {self.method}).")
        if self.children_peak:
            lines.append(
                f"Child processes peaked at {format_size(self.children_peak)} together (not in the figure above)."
            )
        if self.sites:
            lines.append("Top allocation sites at the peak: " + "; ".join(self.sites) + ".")
        if not self.passed:
            lines.append(
                "Next: find what holds a second copy at the peak (harness.peak(where=True) names the lines); "
                "for a save, stream each array to the file in chunks instead of building a serialised copy."
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_verdict(result: Any, limit: object, payload: object = None, source: str = "assert_peak_within") -> PeakVerdict:
    """Compare a :class:`harness.peak.PeakResult` with a limit ("1.25x" of ``payload`` or "256 MB")."""
    parsed = parse_limit(limit, f"{source} limit")
    payload_bytes = parse_size(payload, f"{source} payload=") if payload is not None else None
    limit_bytes = parsed.resolve(payload_bytes, f"{source} limit {limit!r}")
    limit_text = f"{parsed.ratio:g}x" if parsed.ratio is not None else format_size(limit_bytes)
    sites = tuple(
        f"{s.where} `{s.code}` {format_size(s.size)}" if s.code else f"{s.where} {format_size(s.size)}"
        for s in result.sites
    )
    return PeakVerdict(
        label=result.label,
        over_baseline=float(result.over_baseline),
        baseline=float(result.baseline),
        payload=payload_bytes,
        limit=limit_bytes,
        limit_text=limit_text,
        passed=result.over_baseline <= limit_bytes,
        duration_s=result.duration_s,
        peak_at_s=result.peak_at_s,
        method=result.method,
        sites=sites,
        children_peak=float(result.children_peak) if result.children_peak else None,
    )
