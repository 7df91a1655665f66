"""Reports: a JSON verdict and a self-contained HTML page per test, and an index.

Renderers take data and return text or write one file; the plot is inline SVG, so a
report opens from a CI artifact with no network and no JavaScript.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.analysis.growth import GrowthVerdict
from harness.recording.trace import Trace
from harness.units import format_size, format_step

_COLORS = {"rss": "#1f77b4", "unaccounted": "#d62728", "accounted": "#2ca02c", "heap": "#9467bd"}


def _downsample(xs: Sequence[float], ys: Sequence[float], n: int = 800) -> list[tuple[float, float]]:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
    if len(pts) <= n:
        return pts
    stride = len(pts) / n
    return [pts[int(i * stride)] for i in range(n)] + [pts[-1]]


def svg_plot(trace: Trace, verdict: GrowthVerdict | None = None, width: int = 860, height: int = 320) -> str:
    """An SVG line plot of the memory signals against step, with the verdict's window and fit."""
    if len(trace) == 0:
        return "<p>(no samples)</p>"
    names = [n for n in ("rss", "unaccounted", "accounted", "heap") if n in trace.signals]
    series = {n: _downsample(trace.steps, trace.signal(n)) for n in names}
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(0.0, min(ys)), max(ys) or 1
    if x1 == x0:
        x1 = x0 + 1
    pad_l, pad_b, pad_t, pad_r = 70, 30, 10, 10
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b

    def px(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return pad_t + ph - (y - y0) / ((y1 - y0) or 1) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">']
    if verdict is not None:
        w = verdict.window
        parts.append(
            f'<rect x="{px(w.start_step):.1f}" y="{pad_t}" width="{px(w.end_step) - px(w.start_step):.1f}" '
            f'height="{ph}" fill="#f4f4f4"><title>analysis window</title></rect>'
        )
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{pad_l - 5}" y="{py(yv) + 4:.1f}" text-anchor="end">{format_size(yv)}</text>')
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" stroke="#ddd"/>')
    for i in range(5):
        xv = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{px(xv):.1f}" y="{height - 10}" text-anchor="middle">{format_step(xv)}</text>')
    for ev in trace.events:
        parts.append(
            f'<line x1="{px(ev.step):.1f}" x2="{px(ev.step):.1f}" y1="{pad_t}" y2="{pad_t + ph}" stroke="#ff7f0e" '
            f'stroke-dasharray="4 3"/><text x="{px(ev.step) + 3:.1f}" y="{pad_t + 12}" fill="#ff7f0e">'
            f"{html.escape(ev.name)}</text>"
        )
    for name, pts in series.items():
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline fill="none" stroke="{_COLORS[name]}" stroke-width="1.3" points="{path}">'
            f"<title>{name}</title></polyline>"
        )
    if verdict is not None:
        g, w = verdict.growth, verdict.window
        parts.append(
            f'<line x1="{px(w.start_step):.1f}" y1="{py(g.fitted(w.start_step)):.1f}" x2="{px(w.end_step):.1f}" '
            f'y2="{py(g.fitted(w.end_step)):.1f}" stroke="#000" stroke-width="1.5" stroke-dasharray="6 3">'
            "<title>Theil–Sen fit</title></line>"
        )
    legend = " ".join(f'<tspan fill="{_COLORS[n]}">■ {n}</tspan>' for n in series)
    parts.append(f'<text x="{pad_l + 5}" y="{height - pad_b - 5}">{legend}</text></svg>')
    return "".join(parts)


def write_test_report(
    directory: Path,
    nodeid: str,
    outcome: str,
    trace: Trace | None,
    verdict: GrowthVerdict | None,
    extra: dict[str, Any],
) -> tuple[Path, Path]:
    """Write verdict.json and report.html into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"test": nodeid, "outcome": outcome, **extra}
    if trace is not None:
        data["trace"] = trace.summary()
    if verdict is not None:
        data["verdict"] = verdict.as_dict()
        data["message"] = verdict.message()
    json_path = directory / "verdict.json"
    json_path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    html_path = directory / "report.html"
    title = html.escape(nodeid)
    body = [f"<h1>{title}</h1>", f"<p>Outcome: <b>{html.escape(outcome)}</b></p>"]
    if verdict is not None:
        body.append(f"<pre>{html.escape(verdict.message())}</pre>")
    if trace is not None:
        body.append(svg_plot(trace, verdict))
        body.append(f"<pre>{html.escape(json.dumps(trace.summary(), indent=2, default=str))}</pre>")
    links = [(k, v) for k, v in extra.items() if k.endswith("_file") and v]
    if links:
        body.append(
            "<ul>"
            + "".join(f'<li><a href="{html.escape(Path(str(v)).name)}">{html.escape(k)}</a></li>' for k, v in links)
            + "</ul>"
        )
    html_path.write_text(_page(title, "".join(body)), encoding="utf-8")
    return json_path, html_path


def write_index(report_dir: Path, rows: list[dict[str, str]]) -> Path:
    """reports/index.html: one row per test with a memory_trace."""
    report_dir.mkdir(parents=True, exist_ok=True)
    trs = []
    for row in sorted(rows, key=lambda r: r["test"]):
        link = row.get("report", "")
        rel = html.escape(str(Path(link).relative_to(report_dir))) if link.startswith(str(report_dir)) else ""
        name = f'<a href="{rel}">{html.escape(row["test"])}</a>' if rel else html.escape(row["test"])
        trs.append(
            f"<tr><td>{name}</td><td>{html.escape(row.get('outcome', ''))}</td>"
            f"<td>{html.escape(row.get('summary', ''))}</td></tr>"
        )
    table = "<table><tr><th>test</th><th>outcome</th><th>verdict</th></tr>" + "".join(trs) + "</table>"
    path = report_dir / "index.html"
    path.write_text(_page("leak harness reports", "<h1>leak harness reports</h1>" + table), encoding="utf-8")
    return path


def _page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:70em}pre{background:#f8f8f8;padding:1em;"
        "white-space:pre-wrap}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body>{body}</body></html>"
    )
