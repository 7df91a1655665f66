"""Growth verdicts: does a signal grow faster than a limit in the steady-state window?

Pure: a Trace in, a frozen :class:`GrowthVerdict` out (figures only; the words are in
``harness.verdicts.render``). The slope is robust (``harness.analysis.stats``); the
projection says at which step a memory budget runs out at this rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.analysis.stats import Growth, part_slopes, robust_growth, steps_until
from harness.analysis.window import Window, select_window, window_growth, window_series
from harness.recording.trace import Trace
from harness.units import format_rate, parse_rate, parse_size

#: Signals whose slope is given beside the judged one, as evidence.
RELATED = ("rss", "allocated", "unaccounted", "accounted", "heap", "tree", "children")


@dataclass(frozen=True)
class Site:
    """An allocation site whose live bytes grew in the window (allocated there, alive at its end)."""

    location: str  # the user's frame: "train.py:42"
    function: str
    code: str  # the source line, stripped
    bytes_per_step: float
    share: float  # of the growth of the sites' total, 0..1
    native: str = ""  # the native leaf it went through, as context ("at::native::empty_cpu ... posix_memalign")
    blocks: int = 0  # live allocations from this site


@dataclass(frozen=True)
class GrowthVerdict:
    """The answer to "does ``signal`` grow faster than ``limit`` after ``after``?"."""

    trace_name: str
    signal: str
    window: Window
    growth: Growth
    limit: float
    limit_text: str  # the limit as the user wrote it ("1 MiB/1k steps"), shown everywhere
    passed: bool
    budget: float | None
    budget_source: str
    projected_step: float | None
    halves: tuple[float, ...] = ()
    accounting: tuple[str, ...] = ()  # names declared with rec.account()
    related: dict[str, Growth] = field(default_factory=dict)
    heap_sites: tuple[str, ...] = ()
    type_growth: tuple[tuple[str, int], ...] = ()
    sites: tuple[Site, ...] = ()  # growing allocation sites, largest first (record(where=True))

    @property
    def sustained(self) -> bool:
        return all(h > self.limit for h in self.halves)

    # Renderers (harness.verdicts.render) give the words; these are shortcuts.
    def message(self) -> str:
        from harness.verdicts.render import growth_message

        return growth_message(self)

    def summary_line(self) -> str:
        from harness.verdicts.render import growth_summary

        return growth_summary(self)

    def as_dict(self) -> dict[str, Any]:
        from harness.verdicts.render import growth_record

        return growth_record(self)


def limit_text(value: object) -> str:
    """The limit as the user wrote it, or in the harness's words for a bare number."""
    return value.strip() if isinstance(value, str) else format_rate(float(value))  # type: ignore[arg-type]


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
    for other in RELATED:
        if other != signal and other in trace.signals:
            related[other] = window_growth(trace, other, window, confidence)
    sustained = all(h > limit for h in halves)
    passed = not (growth.exceeds(limit) and sustained)
    projected = steps_until(growth, budget_bytes, window.end_step) if budget_bytes and not passed else None
    heap_key = f"heap_growth:{after}" if after else "heap_growth"
    gc_key = f"type_growth:{after}" if after else "type_growth"
    return GrowthVerdict(
        trace_name=trace.name,
        signal=signal,
        window=window,
        growth=growth,
        limit=limit,
        limit_text=limit_text(max_growth),
        passed=passed,
        budget=budget_bytes,
        budget_source=budget_source,
        projected_step=projected,
        halves=halves,
        accounting=tuple(trace.accounting_names()),
        related=related,
        heap_sites=tuple(trace.meta.get(heap_key, [])),
        type_growth=tuple((str(n), int(c)) for n, c in trace.meta.get(gc_key, [])),
    )


def _machine_memory(trace: Trace) -> float | None:
    total = trace.meta.get("machine_memory")
    return float(total) if isinstance(total, (int, float)) and total > 0 else None
