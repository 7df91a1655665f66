"""Plots of the reports: static SVG, drawn by ``svgplot`` and inlined into the page.

Why static SVG and not a JavaScript chart library: a report is opened from a CI artifact,
often offline and sometimes years later; a static SVG needs no script, no network and no
library version to render, prints, and diffs as text. Text stays text in the SVG, so the
verdict, axis titles and legend are searchable and the limit line can be found by its id.
Why not matplotlib (round 1 drew them with it): its import and SVG backend cost ~0.85 s a
page, most of ``harness report`` on a million samples; ``svgplot`` draws a page in
milliseconds.

Sparklines in the index are a single 120×24 polyline with no axes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness import signals
from harness.reports.svgplot import Axes, Figure
from harness.units import format_rate, format_rate_short, format_size, format_step

if TYPE_CHECKING:
    from harness.recording.trace import Trace

#: Points per plotted line: buckets of a long trace keep their min/max as a band.
MAX_POINTS = 1_200
#: Signals that get a panel, in this order after the judged one.
PANELS = ("rss", "allocated", "unaccounted", "accounted", "heap", "tree", "children", "cuda_allocated", "cuda_reserved")
#: Panels beside the judged one at most.
MAX_PANELS = 4
LIMIT_COLOUR = "#c2185b"
FIT_COLOUR = "#111111"
EVENT_COLOUR = "#e67e00"
WINDOW_COLOUR = "#dde7f5"
BUDGET_COLOUR = "#7b1fa2"


def scale(vmax: float) -> tuple[float, str]:
    """(divisor, unit) for values up to ``vmax`` bytes: decimal prefixes, like format_size."""
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if vmax >= div:
            return div, unit
    return 1.0, "B"


def _series(trace: Trace, name: str) -> tuple[Any, Any, Any, Any] | None:
    """(steps, line, low, high) of one signal, finite only, at most MAX_POINTS buckets."""
    import numpy as np

    x = np.asarray(trace.steps, dtype=float)
    y = np.asarray(trace.signal(name), dtype=float)
    try:
        lo, hi = (np.asarray(a, dtype=float) for a in trace.extremes(name))
    except Exception:  # a derived or odd column: its values are its own extremes
        lo, hi = y, y
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    x, y, lo, hi = x[ok], y[ok], lo[ok], hi[ok]
    if not len(x):
        return None
    if len(x) > MAX_POINTS:
        k = math.ceil(len(x) / MAX_POINTS)
        idx = np.arange(0, len(x), k)
        counts = np.diff(np.append(idx, len(x)))
        y = np.add.reduceat(y, idx) / counts
        lo = np.minimum.reduceat(lo, idx)
        hi = np.maximum.reduceat(hi, idx)
        x = np.add.reduceat(x, idx) / counts
    return x, y, lo, hi


def axis_title(name: str, unit: str) -> str:
    short = {"rss": "RSS", "cuda_allocated": "CUDA allocated", "cuda_reserved": "CUDA reserved"}.get(
        name, name.replace("_", " ")
    )
    return f"{short} ({unit})"


def _panel(
    ax: Axes,
    trace: Trace,
    name: str,
    div: float,
    unit: str,
    accounting: str,
) -> tuple[float, float] | None:
    """Draw one signal; returns its (low, high) in plotted units, or None when empty."""
    data = _series(trace, name)
    if data is None:
        ax.text(0.5, 0.5, f"no finite samples of {name}", ha="center", color="#777")
        return None
    x, y, lo, hi = data
    colour = signals.colour(name)
    if (hi > lo).any():
        ax.fill_between(x, lo / div, hi / div, color=colour, alpha=0.18, label="min–max within each plotted point")
    ax.plot(x, y / div, color=colour, linewidth=1.2, label=signals.words(name, accounting))
    ax.set_ylabel(axis_title(name, unit))
    ax.set_title(signals.words(name, accounting))
    return float(lo.min() / div), float(hi.max() / div)


def _events(ax: Axes, trace: Trace, label: bool) -> None:
    for ev in trace.events:
        ax.axvline(ev.step, color=EVENT_COLOUR, linestyle="--", linewidth=1.1)
        if label:
            ax.top_label(ev.step, f"{ev.name} (step {format_step(ev.step)})", color=EVENT_COLOUR)


def _room(low: float, high: float) -> float:
    """The span a panel shows around data from ``low`` to ``high`` (plotted units): the data's
    own, or 1% of its level when it is flat (a constant signal is the common passing case)."""
    return max(high - low, abs(high) * 0.01, 1e-3)


def _zoom(ax: Axes, low: float, high: float) -> None:
    """The y-axis zoomed to the data (not from zero): a 330→347 MB leak must look like one."""
    span = high - low
    pad = span * 0.08 if span > max(abs(high), abs(low)) * 1e-4 else _room(low, high)
    ax.set_ylim(low - pad, high + pad)


def signal_panels(trace: Trace, judged: str | None) -> list[str]:
    names = [n for n in PANELS if n in trace.signals and n != judged]
    if not names and not judged:  # only signals of the user's own (a probe of theirs)
        names = [n for n in trace.signals if n != judged]
    return ([judged] if judged else []) + names[: MAX_PANELS if judged else MAX_PANELS + 1]


def growth_svg(trace: Trace, record: Mapping[str, Any], salt: str = "") -> str:
    """The growth check's plot: the judged signal with window, fit, limit, events and the
    projection, then one panel per other recorded signal with its own fit in the window."""
    judged = str(record["signal"])
    names = signal_panels(trace, judged) if judged in trace.signals else signal_panels(trace, None)
    start, end = (float(v) for v in record["window"])
    fits = _window_fits(record)
    if not names:
        return ""
    heights = [2.3] + [1.0] * (len(names) - 1)
    fig = Figure(10.5, 2.9 + 1.35 * (len(names) - 1))
    axes = fig.rows(len(names), heights)
    x_right = float(trace.steps[-1]) if len(trace) else end
    for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
        x_right = _growth_panel(ax, trace, name, record, fits, first=i == 0, x_right=x_right)
    rising = float(record["slope_bytes_per_step"]) >= 0
    if axes[0].legend_spec is None:
        axes[0].legend(loc="lower right" if rising else "upper right", ncols=2)
    axes[-1].set_xlabel("step")
    for ax in axes:
        ax.step_axis()
    axes[-1].set_xlim(float(trace.steps[0]) if len(trace) else start, x_right)
    for ax in axes[:-1]:
        ax.hide_x_tick_labels()
    return fig.svg(f"{record.get('signal_words', judged)} against step", f"{salt}-growth")


def _window_fits(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Per signal, its fit in the window: the related signals', then the judged ones'."""
    fits: dict[str, Mapping[str, Any]] = {k: v for k, v in dict(record.get("related") or {}).items()}
    for sig, j in dict(record.get("judged") or {}).items():
        fits.setdefault(sig, j["growth"])
    return fits


def _growth_panel(
    ax: Axes,
    trace: Trace,
    name: str,
    record: Mapping[str, Any],
    fits: Mapping[str, Mapping[str, Any]],
    *,
    first: bool,
    x_right: float,
) -> float:
    """One signal's panel of the growth plot; returns the x-axis' right end (the projection
    may push it out)."""
    judged = str(record["signal"])
    start, end = (float(v) for v in record["window"])
    values = trace.signal(name)
    finite = values[~_isnan(values)]
    div, unit = scale(float(abs(finite).max()) if len(finite) else 1.0)
    extent = _panel(ax, trace, name, div, unit, " + ".join(trace.accounting_names()))
    ax.axvspan(start, end, color=WINDOW_COLOUR, alpha=0.55)
    _events(ax, trace, label=first)
    if extent is None:
        return x_right
    low, high = extent
    if name == judged:
        low, high = _judged_fit(ax, record, fits.get(name), div, low, high)
    elif name in fits:
        _related_fit(ax, fits[name], start, end, div)
    if name == record.get("projection_signal", judged):
        low, high, x_right = _projection(ax, record, fits.get(name), name, judged, div, unit, low, high, x_right)
    _zoom(ax, low, high)
    return x_right


def _judged_fit(
    ax: Axes, record: Mapping[str, Any], fit: Mapping[str, Any] | None, div: float, low: float, high: float
) -> tuple[float, float]:
    """The judged signal's fit, its limit from the window start and the window's label;
    returns the (low, high) the panel must show for them."""
    start, end = (float(v) for v in record["window"])
    slope = float(record["slope_bytes_per_step"])
    intercept = _intercept(record, fit)
    f0, f1 = (intercept + slope * start) / div, (intercept + slope * end) / div
    lo_i, hi_i = (float(v) for v in record.get("interval") or [slope, slope])
    ax.plot(
        [start, end],
        [f0, f1],
        color=FIT_COLOUR,
        linewidth=1.6,
        label=f"fit {format_rate(slope)} (interval {format_rate_short(lo_i)}–{format_rate(hi_i)})",
        zorder=1.5,  # under the data: where they coincide, the data shows
        alpha=0.85,
    )
    limit = float(record["limit_bytes_per_step"])
    limit_end = f0 + limit * (end - start) / div
    ax.plot(
        [start, end],
        [f0, limit_end],
        color=LIMIT_COLOUR,
        linestyle=(6.0, 3.0),
        linewidth=1.6,
        label=f"limit {record.get('limit_text', format_rate(limit))} from the window start",
        gid="limit-line",
    )
    low, high = min(low, f0, f1), max(high, f0, f1)
    ax.top_label(start, f"analysis window: steps {format_step(start)}–{format_step(end)}", color="#34558b", first=True)
    # Room above the data for the limit line to show its climb (a flat run's
    # limit otherwise leaves the plot at once), without flattening the data.
    if limit_end > high:
        high = min(limit_end, high + 0.6 * _room(low, high))
    return low, high


def _related_fit(ax: Axes, fit: Mapping[str, Any], start: float, end: float, div: float) -> None:
    """Another signal's own fit in the window, dotted, with its slope in words."""
    f0 = (float(fit["intercept"]) + float(fit["slope"]) * start) / div
    f1 = (float(fit["intercept"]) + float(fit["slope"]) * end) / div
    ax.plot([start, end], [f0, f1], color=FIT_COLOUR, linewidth=1.1, linestyle=":", zorder=1.5)
    ax.text(
        0.995,
        0.04,
        f"{format_rate(float(fit['slope']))} in the window",
        ha="right",
        fontsize=8,
        color="#333",
    )


def _isnan(values: Any) -> Any:
    import numpy as np

    return ~np.isfinite(values)


def _intercept(record: Mapping[str, Any], fit: Mapping[str, Any] | None) -> float:
    judged = dict(record.get("judged") or {}).get(str(record["signal"]))
    if judged is not None:
        return float(judged["growth"]["intercept"])
    if fit is not None:
        return float(fit["intercept"])
    return float(record.get("intercept", 0.0))


def _projection(
    ax: Axes,
    record: Mapping[str, Any],
    fit: Mapping[str, Any] | None,
    name: str,
    judged: str,
    div: float,
    unit: str,
    low: float,
    high: float,
    x_right: float,
) -> tuple[float, float, float]:
    """Draw the OOM projection when it lands within 1.6× the run; else say where it lands."""
    projected, budget = record.get("projected_step"), record.get("budget")
    if not projected or not budget:
        return low, high, x_right
    projected, budget = float(projected), float(budget)
    end = float(record["window"][1])
    if name == judged or fit is None:
        slope, intercept = float(record["slope_bytes_per_step"]), _intercept(record, fit)
    else:
        slope, intercept = float(fit["slope"]), float(fit["intercept"])
    if projected <= x_right * 1.6 and budget / div <= high + 4 * max(high - low, 1e-9):
        ax.plot(
            [end, projected],
            [(intercept + slope * end) / div, budget / div],
            color=BUDGET_COLOUR,
            linestyle=":",
            linewidth=1.5,
            label=f"projection: {format_size(budget)} at step {format_step(projected)}",
        )
        ax.axhline(budget / div, color=BUDGET_COLOUR, linewidth=0.9, linestyle="-.")
        ax.text(
            0.0,
            budget / div,
            f"budget {format_size(budget)} ({record.get('budget_source') or 'budget'})",
            coords=("axes", "data"),
            offset=(4, -11),
            fontsize=8,
            color=BUDGET_COLOUR,
        )
        ax.legend(loc="lower right", ncols=2)
        return min(low, budget / div), max(high, budget / div), projected * 1.03
    ax.text(
        0.01,
        0.94 if slope >= 0 else 0.06,
        f"at this rate {format_size(budget)} is reached at step {format_step(projected)} (beyond this plot)",
        ha="left",
        va="top" if slope >= 0 else "bottom",
        fontsize=8,
        color=BUDGET_COLOUR,
    )
    return low, high, x_right


def trace_svg(trace: Trace, salt: str = "") -> str:
    """A trace with no growth check: each recorded signal against step, with its events."""
    names = signal_panels(trace, None)
    accounting = " + ".join(trace.accounting_names())
    if not names:
        return ""
    fig = Figure(10.5, 1.2 + 1.5 * len(names))
    axes = fig.rows(len(names))
    for i, (ax, name) in enumerate(zip(axes, names, strict=True)):
        values = trace.signal(name)
        finite = values[~_isnan(values)]
        div, unit = scale(float(abs(finite).max()) if len(finite) else 1.0)
        extent = _panel(ax, trace, name, div, unit, accounting)
        _events(ax, trace, label=i == 0)
        if extent is not None:
            _zoom(ax, *extent)
        ax.step_axis()
        if i < len(names) - 1:
            ax.hide_x_tick_labels()
    if len(trace):
        axes[-1].set_xlim(float(trace.steps[0]), float(trace.steps[-1]))
    axes[-1].set_xlabel("step")
    return fig.svg(f"{trace.name}: memory against step", f"{salt}-trace")


def peak_svg(record: Mapping[str, Any], salt: str = "") -> str:
    """A peak check: RSS during the block against time, with the baseline, the payload over
    it, the limit over it and the peak."""
    baseline, over = float(record["baseline"]), float(record["over_baseline"])
    limit, payload = float(record["limit"]), record.get("payload")
    peak = baseline + over
    timeline = [(float(t), float(v)) for t, v in record.get("timeline") or ()]
    top = max(peak, baseline + limit, baseline + float(payload or 0))
    div, unit = scale(top)
    fig = Figure(10.5, 3.4)
    (ax,) = fig.rows(1)
    duration = max(float(record.get("duration_s") or 0.0), timeline[-1][0] if timeline else 0.0, 1e-3)
    if timeline:
        ax.plot(
            [t for t, _ in timeline],
            [v / div for _, v in timeline],
            color=signals.colour("rss"),
            linewidth=1.3,
            label="RSS during the block (sampled)",
        )
    ax.axhline(baseline / div, color="#555555", linewidth=1.2, label=f"baseline {format_size(baseline)}")
    if payload:
        ax.axhline(
            (baseline + float(payload)) / div,
            color="#2e7d32",
            linestyle="--",
            linewidth=1.2,
            label=f"baseline + payload {format_size(float(payload))}",
        )
    ax.axhline(
        (baseline + limit) / div,
        color=LIMIT_COLOUR,
        linestyle=(6.0, 3.0),
        linewidth=1.6,
        label=f"baseline + limit {record.get('limit_text', '')} ({format_size(limit)})",
        gid="limit-line",
    )
    at = record.get("peak_at_s")
    px = float(at) if at is not None else duration
    colour = "#1a7f37" if record.get("passed") else "#cf222e"
    ax.plot([px], [peak / div], marker="v", markersize=9, color=colour, line=False, zorder=3)
    late = px > 0.6 * duration  # the label goes where there is room: left of a late peak
    ax.text(
        px,
        peak / div,
        f"peak {format_size(peak)}: {format_size(over)} over baseline",
        coords=("data", "data"),
        offset=(-10 if late else 10, -14),
        ha="right" if late else "left",
        color=colour,
        bold=True,
    )
    _zoom(ax, baseline / div, top / div)
    ax.set_xlim(0, duration * 1.02)
    ax.set_xlabel("seconds into the block")
    ax.set_ylabel(f"RSS ({unit})")
    ax.set_title("RSS during the block")
    ax.legend(loc="best")
    return fig.svg("peak over baseline", f"{salt}-peak")


def trend_svg(test: str, runs: Sequence[tuple[str, Mapping[str, Any]]], salt: str = "") -> str:
    """One test across saved runs: slope with its interval, steady level, peak (those saved)."""
    present = [f for f in ("slope", "level", "peak") if any(isinstance(r.get(f), (int, float)) for _, r in runs)]
    if not present:
        return '<p class="muted">No figures saved for this test (a release check has none).</p>'
    labels = [name.lstrip("0") for name, _ in runs]
    xs = list(range(len(runs)))
    rotated = len(xs) > 4
    # At most ~12 run names under a panel: every k-th, and the newest.
    k = max(1, math.ceil(len(xs) / 12))
    shown = [x for x in xs if x % k == 0 or x == xs[-1]]
    if len(shown) > 1 and shown[-1] - shown[-2] < k:
        shown.pop(-2)
    fig = Figure(3.6 * len(present) + 0.3, 2.5 + (0.55 if rotated else 0.0), bottom_in=1.05 if rotated else 0.5)
    axes = fig.columns(len(present))
    for ax, figure in zip(axes, present, strict=True):
        points = [(x, f) for x, (_, f) in zip(xs, runs, strict=True) if isinstance(f.get(figure), (int, float))]
        if figure == "slope":
            per_k = [
                (
                    x,
                    float(f["slope"]) * 1e3,
                    _number(f.get("slope_low"), f["slope"]) * 1e3,
                    _number(f.get("slope_high"), f["slope"]) * 1e3,
                )
                for x, f in points
            ]
            div, unit = scale(max(max(abs(v) for _, v, _, _ in per_k), 1.0))
            ax.errorbar(
                [x for x, *_ in per_k],
                [v / div for _, v, _, _ in per_k],
                [(v - lo) / div for _, v, lo, _ in per_k],
                [(hi - v) / div for _, v, _, hi in per_k],
                color=signals.colour("rss"),
                ecolor="#9bb5d6",
                capsize=3,
                markersize=4,
                linewidth=1.2,
            )
            ax.set_ylabel(f"slope ({unit}/1k steps)")
            ax.set_title("slope, with its interval")
        else:
            ys = [float(f[figure]) for _, f in points]
            div, unit = scale(max(max(abs(v) for v in ys), 1.0))
            ax.plot(
                [x for x, _ in points], [v / div for v in ys], color="#2e7d32", marker="o", markersize=4, linewidth=1.2
            )
            ax.set_ylabel(f"{figure} ({unit})")
            kind = str(points[-1][1].get("peak_kind", "")) if figure == "peak" else "steady, above start"
            ax.set_title(f"{figure} ({kind})" if kind else figure)
        ax.set_xticks(shown, [labels[x][:16] for x in shown], rotation=30 if rotated else 0)
        ax.set_xlim(-0.4, len(xs) - 0.6)
    return fig.svg(f"{test} across saved runs", f"{salt}-trend")


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float(default)


def sparkline(values: Sequence[float], colour: str = "#1f77b4", width: int = 120, height: int = 24) -> str:
    """A tiny inline SVG line of ``values`` (zoomed to their range), or "" with fewer than 2."""
    pts = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(pts) < 2:
        return ""
    lo, hi = min(pts), max(pts)
    title = f"{format_size(lo)} – {format_size(hi)}"
    if not math.isfinite(hi - lo):  # beyond floats (±1.7e308): draw halves
        pts = [v / 2 for v in pts]
        lo, hi = lo / 2, hi / 2
    span = (hi - lo) or 1.0
    step = (width - 2) / (len(pts) - 1)
    coords = " ".join(
        f"{1 + i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in enumerate(pts)
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
        f"<title>{title}</title>"
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.4" points="{coords}"/></svg>'
    )


def spark_values(trace: Trace, name: str, n: int = 80) -> list[float]:
    """About ``n`` evenly spaced medians of ``name`` for a sparkline."""
    import numpy as np

    values = np.asarray(trace.signal(name), dtype=float)
    values = values[np.isfinite(values)]
    if len(values) <= n:
        return [float(v) for v in values]
    edges = np.linspace(0, len(values), n + 1).astype(int)
    return [float(np.median(values[a:b])) for a, b in itertools.pairwise(edges) if b > a]
