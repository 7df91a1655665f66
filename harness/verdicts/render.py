"""Renderers: the words of a verdict, apart from its figures.

One function per output: the failure message (what grows, how fast, since when, when it
runs out, what to look at next), the one-line summary of the terminal, the junit-xml
properties (one schema of names, ``PROPERTIES``), and the record written to verdict.json
and read by the reports. Limits are shown as the user wrote them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from harness import signals
from harness.units import format_rate, format_rate_short, format_size, format_step

if TYPE_CHECKING:
    from harness.analysis.growth import GrowthVerdict
    from harness.analysis.peak import PeakVerdict
    from harness.analysis.trend import Trend

#: junit-xml property names, one schema for every verdict (what each holds).
PROPERTIES: dict[str, str] = {
    "leak_verdict": "pass or fail of the growth check",
    "leak_summary": "the terminal summary line of the growth check",
    "leak_signal": "the judged signal",
    "leak_slope": "the slope, in the harness's units",
    "leak_interval": "the slope's confidence interval",
    "leak_limit": "the limit as the user wrote it",
    "leak_window": "the window's steps and event",
    "leak_slope_bytes_per_step": "the slope in bytes per step (a number)",
    "leak_peak_verdict": "pass or fail of the peak check",
    "leak_peak_over_baseline": "the peak over its baseline",
    "leak_peak_limit": "the peak limit as the user wrote it",
    "leak_checks": "growth checks the test made itself",
    "leak_trace": "path of the trace",
    "leak_report": "path of the HTML report",
}


def signal_words(verdict: GrowthVerdict) -> str:
    return signals.words(verdict.signal, " + ".join(verdict.accounting))


def window_text(verdict: GrowthVerdict) -> str:
    w = verdict.window
    return f"steps {format_step(w.start_step)}–{format_step(w.end_step)}" + (f" after {w.after!r}" if w.after else "")


def growth_headline(verdict: GrowthVerdict) -> str:
    w, g = verdict.window, verdict.growth
    since = f"after {w.after!r} (step {format_step(w.event_step or 0)}; " if w.after else "after warm-up ("
    shown = format_rate_short(abs(g.slope))
    verb = "is flat at" if shown == "0 B" else "grows" if g.slope > 0 else "shrinks"
    pct = round(g.confidence * 100)
    return (
        f"{signal_words(verdict)} {verb} {shown} per 1k steps {since}"
        f"window steps {format_step(w.start_step)}–{format_step(w.end_step)}, {g.samples:,} samples, "
        f"{pct}% interval {format_rate_short(g.low)}–{format_rate_short(g.high)}/1k); "
        f"limit {verdict.limit_text}"
    )


def growth_message(verdict: GrowthVerdict) -> str:
    lines = [growth_headline(verdict) + "."]
    g, t = verdict.growth, verdict.trend
    if not verdict.passed:
        lines.extend(_relation(verdict))
        if verdict.projected_step is not None and verdict.budget is not None:
            on = signals.words(verdict.projection_signal, " + ".join(verdict.accounting))
            lines.append(
                f"At this rate {format_size(verdict.budget)} ({verdict.budget_source}) is reached at step "
                f"{format_step(verdict.projected_step)} (projected on {on}, what the OOM killer sees)."
            )
        if t is not None:
            lines.append(_sustained_words(t))
        lines.extend(_evidence(verdict))
    elif verdict.retention:
        lines.append(_retention_words(verdict))
    elif g.exceeds(verdict.limit) and t is not None:
        lines.append(
            f"Passed: the interval lies above the limit, but the rise stopped: after step "
            f"{format_step(t.shift_step or 0)} memory grows {format_rate(t.slope)} (interval "
            f"{format_rate_short(t.low)}–{format_rate_short(t.high)}/1k; {format_rate(t.before)} before): "
            "a one-off rise such as allocator warm-up or a fill, not sustained growth."
        )
    else:
        lines.append(
            f"Passed: the {round(g.confidence * 100)}% interval does not lie above the limit "
            f"(Kendall tau {g.tau:+.2f}, p={g.p_value:.2g})."
        )
    lines.extend(f"Not judged: {why}." for why in verdict.skipped)
    others = [j for j in verdict.judged if j.signal != verdict.signal]
    if verdict.passed and others:
        lines.append(
            "Also judged: "
            + "; ".join(f"{signals.words(j.signal)} {format_rate(j.growth.slope)}" for j in others)
            + "."
        )
    return "\n".join(lines)


def _retention_words(verdict: GrowthVerdict) -> str:
    alloc = verdict.judgement("allocated")
    held = (
        f" ({format_rate(alloc.growth.slope)}, interval {format_rate_short(alloc.growth.low)}–"
        f"{format_rate_short(alloc.growth.high)}/1k)"
        if alloc is not None
        else ""
    )
    return (
        f"Passed with a warning: RSS grows, but the allocators' live bytes (malloc + Python objects) do not"
        f"{held}: your code holds no more memory than before; the process keeps memory it freed "
        "(allocator retention or fragmentation: a large batch leaves the heap at its high-water mark), "
        "which is not a leak in your code but still counts toward the OOM killer. "
        "Try: malloc_trim(0) after big frees, MALLOC_ARENA_MAX=2 for threaded loaders, "
        "MALLOC_MMAP_THRESHOLD_=131072 so large buffers go back to the OS. "
        "Memory outside both allocators (memory-mapped files, another allocator) is judged with signal='rss'."
    )


def _sustained_words(t: Trend) -> str:
    interval = f"interval {format_rate_short(t.low)}–{format_rate_short(t.high)}/1k"
    if t.shift_step is None:
        return f"The growth is sustained: {format_rate(t.slope)} over the whole window ({interval})."
    return (
        f"The growth is sustained: it still grows {format_rate(t.slope)} after step {format_step(t.shift_step)} "
        f"({interval}), where the best break of the window falls ({format_rate(t.before)} before it): "
        "not a one-off rise that stopped."
    )


def _relation(verdict: GrowthVerdict) -> list[str]:
    """How the judged signal relates to RSS, the allocator and the process tree."""
    out: list[str] = []
    rel = {j.signal: j for j in verdict.judged}
    alloc, rss, tree = rel.get("allocated"), rel.get("rss"), rel.get("tree")
    limit = verdict.limit
    if verdict.signal == "allocated" and rss is not None:
        ratio = rss.growth.slope / alloc.growth.slope if alloc is not None and alloc.growth.slope > 0 else 0.0
        if ratio > 1.5:
            out.append(
                f"RSS grows {format_rate(rss.growth.slope)}, so {ratio:.1f}× of what leaks reaches the OS: the "
                "retained blocks pin heap pages between freed buffers (fragmentation), so fixing the leak frees "
                "far more than it holds; MALLOC_MMAP_THRESHOLD_=131072 keeps large buffers out of the heap."
            )
        elif ratio > 0:
            out.append(
                f"RSS grows {format_rate(rss.growth.slope)}, so {ratio:.1f}× of what leaks reaches the OS "
                "(the allocator reuses freed holes first; RSS follows in stairs)."
            )
        else:
            out.append(
                f"RSS does not grow yet ({format_rate(rss.growth.slope)}): the leak is filling memory the heap "
                "already had; it reaches the OS once those holes are full."
            )
    elif verdict.signal == "rss" and alloc is not None and not alloc.fails(limit):
        out.append(
            f"The allocator's live bytes do not grow ({format_rate(alloc.growth.slope)}): what your code holds "
            "through malloc and in Python objects is flat, so this is fragmentation or allocator retention "
            "(freed memory glibc keeps), or memory outside both allocators (memory-mapped files). "
            "Try: malloc_trim(0) after big frees, MALLOC_ARENA_MAX=2 for threaded loaders, "
            "MALLOC_MMAP_THRESHOLD_=131072 so large buffers go back to the OS."
        )
    if verdict.signal == "tree" and not any(j.fails(limit) for j in verdict.judged if j.signal != "tree"):
        out.append("This process does not grow: the growth is in its child processes.")
    if verdict.processes and (verdict.signal in ("tree", "children") or (tree is not None and tree.fails(limit))):
        out.append(
            "Growing child processes (PSS per 1k steps in the window): "
            + "; ".join(
                f"{p.name} (pid {p.pid}) {format_rate_short(p.bytes_per_step)}/1k, "
                f"{format_size(p.first_pss)} → {format_size(p.last_pss)}"
                for p in verdict.processes[:6]
            )
            + ". In forked workers this is often copy-on-read (pytorch#13246): store the dataset in numpy arrays "
            "or bytes instead of Python lists/dicts; or a per-worker cache without a bound."
        )
    return out


def _evidence(verdict: GrowthVerdict) -> list[str]:
    out: list[str] = []
    g = verdict.growth
    rec = verdict.recorder
    acct = " + ".join(verdict.accounting)
    unacc = verdict.related.get("unaccounted")
    if unacc is not None and verdict.signal in ("rss", "allocated"):
        rss = verdict.related.get("rss", g)
        ratio = unacc.slope / rss.slope if rss.slope > 0 else 0.0
        if ratio >= 0.5:
            out.append(
                f"Unaccounted memory (RSS minus declared {acct} bytes) grows "
                f"{format_rate(unacc.slope)} ({ratio:.0%} of the RSS growth): memory nobody declared is piling "
                "up; look for references to evicted data (views, caches, queues, histories)."
            )
        else:
            declared = verdict.related.get("accounted")
            grows = f" grows {format_rate(declared.slope)}" if declared is not None else " grows"
            out.append(
                f"Declared memory ({acct}){grows} and unaccounted memory only "
                f"{format_rate(unacc.slope)}: the structure itself keeps growing; check that its capacity "
                "is enforced."
            )
    heap = verdict.related.get("heap")
    if heap is not None and verdict.signal != "heap":
        share = heap.slope / g.slope if g.slope > 0 else 0.0
        where = "Python objects" if share >= 0.5 else "native memory (numpy/torch buffers, C extensions)"
        out.append(f"Python heap (tracemalloc) grows {format_rate(heap.slope)}: mostly {where}.")
    if verdict.sites:
        out.append("Growing allocation sites in the window (live bytes added per 1k steps, share):")
        for site in verdict.sites[:8]:
            code = f"  {site.code}" if site.code else ""
            out.append(
                f"  {site.location} in {site.function}{code}  "
                f"{format_rate_short(site.bytes_per_step)}/1k  {site.share:.0%}"
                + (f"\n     ← {site.native}" if site.native else "")
            )
    if verdict.heap_sites:
        out.append("Top growing Python allocation sites (tracemalloc): " + "; ".join(verdict.heap_sites) + ".")
    if verdict.type_growth:
        out.append(
            "Object types that grew with the steps: "
            + ", ".join(f"{name} +{count:,}" for name, count in verdict.type_growth)
            + "."
        )
    nxt = ["watch what should die with harness.track_release() to get the retainer chain"]
    if not verdict.sites:
        nxt.append("record with where=True (pytest: --leak-where=always) to name the lines that allocate what grows")
    if not verdict.accounting and verdict.signal == "rss":
        nxt.append(f"if a buffer legitimately grows, declare it with {rec}.account(buffer=...) and judge 'unaccounted'")
    if verdict.window.after is None:
        where = "and pass after='warmup' to the marker" if rec == "memory_trace" else "and judge after='warmup'"
        nxt.append(f"mark where steady state starts with {rec}.mark('warmup') {where}")
    out.append("Next: " + "; ".join(nxt) + ".")
    return out


def growth_summary(verdict: GrowthVerdict) -> str:
    """One line for a terminal summary: verdict, signal, slope, interval, window, limit."""
    g, w = verdict.growth, verdict.window
    after = f" after {w.after!r}" if w.after else ""
    return (
        f"{'FAIL' if not verdict.passed else 'PASS (warning: RSS retention)' if verdict.retention else 'PASS'} "
        f"{verdict.signal} {format_rate(g.slope)} "
        f"[{format_rate_short(g.low)}–{format_rate_short(g.high)}/1k steps] "
        f"steps {format_step(w.start_step)}–{format_step(w.end_step)}{after}; limit {verdict.limit_text}"
    )


def growth_properties(verdict: GrowthVerdict) -> list[tuple[str, str]]:
    """junit-xml properties of a growth verdict (names in ``PROPERTIES``)."""
    g = verdict.growth
    return [
        ("leak_verdict", "fail" if not verdict.passed else "pass-warning" if verdict.retention else "pass"),
        ("leak_summary", growth_summary(verdict)),
        ("leak_signal", verdict.signal),
        ("leak_slope", format_rate(g.slope)),
        ("leak_interval", f"{format_rate_short(g.low)}–{format_rate_short(g.high)}/1k steps"),
        ("leak_limit", verdict.limit_text),
        ("leak_window", window_text(verdict)),
        ("leak_slope_bytes_per_step", f"{g.slope:.6g}"),
    ]


def growth_record(verdict: GrowthVerdict) -> dict[str, Any]:
    """The verdict as data, for verdict.json and the reports."""
    return {
        "kind": "growth",
        "trace": verdict.trace_name,
        "signal": verdict.signal,
        "signal_words": signal_words(verdict),
        "after": verdict.window.after,
        "event_step": verdict.window.event_step,
        "window": [verdict.window.start_step, verdict.window.end_step],
        "slope_bytes_per_step": verdict.growth.slope,
        "interval": [verdict.growth.low, verdict.growth.high],
        "confidence": verdict.growth.confidence,
        "tau": verdict.growth.tau,
        "p_value": verdict.growth.p_value,
        "samples": verdict.growth.samples,
        "limit_bytes_per_step": verdict.limit,
        "limit_text": verdict.limit_text,
        "requested": verdict.requested,
        "judged": {
            j.signal: {"growth": asdict(j.growth), "trend": asdict(j.trend), "fails": j.fails(verdict.limit)}
            for j in verdict.judged
        },
        "trend": asdict(verdict.trend) if verdict.trend is not None else None,
        "processes": [asdict(p) for p in verdict.processes],
        "sites": [asdict(site) for site in verdict.sites],
        "passed": verdict.passed,
        "retention": verdict.retention,
        "budget": verdict.budget,
        "projected_step": verdict.projected_step,
        "related": {k: asdict(v) for k, v in verdict.related.items()},
        "message": growth_message(verdict),
    }


def peak_message(verdict: PeakVerdict) -> str:
    what = f"Peak during {verdict.label!r}" if verdict.label else "Peak during the block"
    ratio = (
        f" ({verdict.ratio:.2f}× the {format_size(verdict.payload)} payload)"
        if verdict.payload and verdict.ratio is not None
        else ""
    )
    lines = [
        f"{what} was {format_size(verdict.over_baseline)} above baseline{ratio}; limit {peak_limit_words(verdict)}. "
        f"Baseline {format_size(verdict.baseline)}."
    ]
    when = (
        f"The peak came at about {verdict.peak_at_s:.1f} s of {verdict.duration_s:.1f} s"
        if verdict.peak_at_s is not None
        else f"The block ran {verdict.duration_s:.1f} s"
    )
    lines.append(f"{when} (measured by {verdict.method}).")
    if verdict.children_peak:
        lines.append(
            f"Child processes peaked at {format_size(verdict.children_peak)} together (not in the figure above)."
        )
    if verdict.sites:
        lines.append("Top allocation sites at the peak: " + "; ".join(verdict.sites) + ".")
    if not verdict.passed:
        lines.append(
            "Next: find what holds a second copy at the peak (harness.peak(where=True) names the lines); "
            "for a save, stream each array to the file in chunks instead of building a serialised copy."
        )
    return "\n".join(lines)


def peak_limit_words(verdict: PeakVerdict) -> str:
    """The limit as written, with what a ratio resolves to: "1.25x (50.0 MB)", "256 MB"."""
    if verdict.limit_text.lower().endswith("x"):
        return f"{verdict.limit_text} ({format_size(verdict.limit)})"
    return verdict.limit_text


def peak_summary(verdict: PeakVerdict) -> str:
    return (
        f"PEAK {'PASS' if verdict.passed else 'FAIL'} {format_size(verdict.over_baseline)} over baseline; "
        f"limit {peak_limit_words(verdict)}"
    )


def peak_properties(verdict: PeakVerdict) -> list[tuple[str, str]]:
    return [
        ("leak_peak_verdict", "pass" if verdict.passed else "fail"),
        ("leak_peak_over_baseline", format_size(verdict.over_baseline)),
        ("leak_peak_limit", peak_limit_words(verdict)),
    ]


def peak_record(verdict: PeakVerdict) -> dict[str, Any]:
    return {"kind": "peak", **asdict(verdict), "ratio": verdict.ratio, "message": peak_message(verdict)}
