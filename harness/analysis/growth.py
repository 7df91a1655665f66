"""Growth verdicts: does a signal grow faster than a limit in the steady-state window?

Pure: a Trace in, a frozen :class:`GrowthVerdict` out (figures only; the words are in
``harness.verdicts.render``). The slope is robust (``harness.analysis.stats``); the
projection says at which step a memory budget runs out at this rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.analysis.stats import Growth, robust_growth, steps_until
from harness.analysis.trend import Trend, sustained_trend
from harness.analysis.window import Window, select_window, window_growth, window_series
from harness.errors import HarnessUsageError, TraceError
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
    kept_by: str = ""  # the object that keeps the memory ("Trainer._inflight (deque)"), when found
    allocated_at: str = ""  # the line that allocated most of its bytes, when it is not ``location``


@dataclass(frozen=True)
class ProcessGrowth:
    """A descendant process (a DataLoader worker, a Pool worker) and its PSS growth in the window."""

    pid: int
    name: str
    bytes_per_step: float
    first_pss: float
    last_pss: float


@dataclass(frozen=True)
class Judgement:
    """One signal judged: its robust slope over the window and its slope once the largest
    one-off level shift is taken out (``harness.analysis.trend``)."""

    signal: str
    growth: Growth
    trend: Trend

    def fails(self, limit: float) -> bool:
        return self.growth.exceeds(limit) and self.trend.exceeds(limit)


@dataclass(frozen=True)
class GrowthVerdict:
    """The answer to "does memory grow faster than ``limit`` after ``after``?".

    ``signal`` is the judged signal that decided (the first failing one, else the primary);
    ``judged`` holds every signal judged (``signal="auto"`` judges the allocator's live
    bytes, RSS, and the process tree when recorded).
    """

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
    trend: Trend | None = None
    requested: str = "rss"  # what the user asked for ("auto" or a signal name)
    judged: tuple[Judgement, ...] = ()
    accounting: tuple[str, ...] = ()  # names declared with rec.account()
    related: dict[str, Growth] = field(default_factory=dict)
    heap_sites: tuple[str, ...] = ()
    type_growth: tuple[tuple[str, int], ...] = ()
    sites: tuple[Site, ...] = ()  # growing allocation sites, largest first (record(where=True))
    processes: tuple[ProcessGrowth, ...] = ()  # descendants whose PSS grew in the window
    projection_signal: str = "rss"  # what the projection runs on (RSS or the tree: what the OOM killer sees)
    recorder: str = "rec"  # what the user calls the recorder, for advice ("memory_trace" in pytest)
    skipped: tuple[str, ...] = ()  # signals "auto" could not judge, and why
    retention: bool = False  # passed, but RSS grows while the allocators' live bytes do not (a warning)

    @property
    def sustained(self) -> bool:
        return self.trend is not None and self.trend.exceeds(self.limit)

    def judgement(self, signal: str) -> Judgement | None:
        return next((j for j in self.judged if j.signal == signal), None)

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


def auto_signals(trace: Trace) -> list[str]:
    """What ``signal="auto"`` judges, most precise first.

    The allocator's live bytes see a leak of malloc'd memory (numpy, torch CPU storage, C
    extensions) to within a byte per step, without RSS's staircase (DESIGN.md: 2,140.7 ±
    0.6 B/step for a leak whose RSS halves read 2.0 and 3.7 KB/step). RSS is judged too: it
    is what the OOM killer sees, and it alone sees objects in pymalloc arenas and mmaps. The
    process tree is judged when recorded (``children=True``): workers' memory is in no other signal.
    """
    present = trace.signals
    order = [name for name in ("allocated", "rss", "tree") if name in present]
    return order or ["rss"]


def _only_retention(failing: list[Judgement], judged: list[Judgement], limit: float) -> bool:
    """True when only RSS fails and the allocators' live bytes are confidently under the limit.

    Then the process holds no more than before and RSS keeps freed memory: glibc retention
    or fragmentation (a heavy-tailed batch leaves the heap at its high-water mark), not a
    leak in the user's code. Memory outside both allocators (mmapped files, another
    allocator) is judged with ``signal="rss"``.
    """
    if not failing or any(j.signal != "rss" for j in failing):
        return False
    alloc = next((j for j in judged if j.signal == "allocated"), None)
    return alloc is not None and alloc.growth.high < limit


def growth_verdict(
    trace: Trace,
    *,
    max_growth: object = "1 MB/1k steps",
    after: str | None = None,
    signal: str = "auto",
    settle: object = None,
    budget: object = None,
    confidence: float = 0.95,
    source: str = "assert_no_linear_growth",
    autocorrelated: bool | None = None,
) -> GrowthVerdict:
    if not isinstance(trace, Trace):
        raise HarnessUsageError(
            f"{source} got {type(trace).__name__} {trace!r:.60}, not a Trace; read a file with harness.Trace.load(path)"
        )
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise HarnessUsageError(f"{source} confidence={confidence!r:.40} must be a number between 0 and 1, e.g. 0.95")
    if not isinstance(signal, str) or not signal:
        raise HarnessUsageError(f"{source} signal={signal!r:.40} must be a signal name such as 'rss', 'heap' or 'tree'")
    limit = parse_rate(max_growth, f"{source} max_growth=")
    if budget is not None:
        budget_bytes: float | None = parse_size(budget, f"{source} budget=")
        budget_source = "budget"
    else:
        budget_bytes = _machine_memory(trace)
        budget_source = "this machine's memory" if budget_bytes else ""
    window = select_window(trace, after, settle)
    if autocorrelated is None:  # a soak's trace asks for it: harness.recording.soak
        autocorrelated = bool(trace.meta.get("soak_autocorrelated"))
    names = auto_signals(trace) if signal == "auto" else [signal]
    judged: list[Judgement] = []
    skipped: list[str] = []
    for name in names:
        try:
            xs, ys = window_series(trace, name, window)
        except TraceError as exc:
            if signal != "auto" or name == names[0]:
                raise
            skipped.append(str(exc))  # e.g. a tree read too few times in a short window
            continue
        judged.append(
            Judgement(
                name,
                robust_growth(xs, ys, confidence=confidence, autocorrelated=autocorrelated),
                sustained_trend(xs, ys, confidence),
            )
        )
    failing = [j for j in judged if j.fails(limit)]
    retention = signal == "auto" and _only_retention(failing, judged, limit)
    if retention:
        decisive, failing = failing[0], []  # RSS grows, what the code holds does not: a warning
    else:
        decisive = failing[0] if failing else judged[0]
    related: dict[str, Growth] = {j.signal: j.growth for j in judged if j is not decisive}
    present = trace.signals
    for other in RELATED:
        if other not in related and other != decisive.signal and other in present:
            try:
                related[other] = window_growth(trace, other, window, confidence)
            except TraceError:
                continue  # too few values in the window (a signal sampled on a time budget)
    passed = not failing
    # Project what the OOM killer sees: the tree when workers are recorded, else RSS.
    projection_signal = "tree" if "tree" in present and decisive.signal in ("tree", "children") else "rss"
    projection = decisive.growth if decisive.signal == projection_signal else related.get(projection_signal)
    if projection is None or projection.slope <= 0:
        projection = decisive.growth
    projected = steps_until(projection, budget_bytes, window.end_step) if budget_bytes and not passed else None
    heap_key = f"heap_growth:{after}" if after else "heap_growth"
    gc_key = f"type_growth:{after}" if after else "type_growth"
    return GrowthVerdict(
        trace_name=trace.name,
        signal=decisive.signal,
        window=window,
        growth=decisive.growth,
        limit=limit,
        limit_text=limit_text(max_growth),
        passed=passed,
        budget=budget_bytes,
        budget_source=budget_source,
        projected_step=projected,
        trend=decisive.trend,
        requested=signal,
        judged=tuple(judged),
        accounting=tuple(trace.accounting_names()),
        related=related,
        heap_sites=tuple(trace.meta.get(heap_key) or trace.meta.get("heap_growth") or []),
        type_growth=_scaling_types(trace.meta.get(gc_key, []), window),
        processes=process_growth(trace, window),
        recorder="memory_trace" if trace.meta.get("test") else "rec",
        skipped=tuple(skipped),
        retention=retention,
        projection_signal=projection_signal if projection is not decisive.growth else decisive.signal,
        sites=sites_from_meta(trace.meta),
    )


def sites_from_meta(meta: dict[str, Any]) -> tuple[Site, ...]:
    """The allocation sites a ``record(where=True)`` kept in the trace's metadata."""
    out: list[Site] = []
    for raw in meta.get("sites") or []:
        if isinstance(raw, dict):
            try:
                out.append(Site(**raw))
            except TypeError:  # a trace written by another version
                continue
    return tuple(out)


def _scaling_types(raw: Any, window: Window) -> tuple[tuple[str, int], ...]:
    """Object types whose count grew with the steps: at least one new object per 10 steps
    of the run and 10 in all. A ``cell +1`` or ``UserWarning +1`` is noise, not evidence."""
    span = max(window.end_step - (window.event_step or window.start_step), 1)
    out = []
    for name, count in raw or []:
        if int(count) >= max(10, span / 10):
            out.append((str(name), int(count)))
    return tuple(out)


def process_growth(trace: Trace, window: Window, min_bytes_per_step: float = 0.0) -> tuple[ProcessGrowth, ...]:
    """Descendant processes whose PSS grew over the window (from the tree probe's series)."""
    out = []
    for proc in trace.meta.get("processes", []) or []:
        points = [p for p in proc.get("points", []) if window.start_step <= p[0] <= window.end_step]
        if len(points) < 3:
            continue
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        try:
            slope = robust_growth(xs, ys).slope
        except ValueError:
            continue
        if slope > min_bytes_per_step:
            out.append(ProcessGrowth(int(proc["pid"]), str(proc.get("name", "?")), slope, ys[0], ys[-1]))
    out.sort(key=lambda p: -p.bytes_per_step)
    return tuple(out)


def _machine_memory(trace: Trace) -> float | None:
    total = trace.meta.get("machine_memory")
    return float(total) if isinstance(total, (int, float)) and total > 0 else None
