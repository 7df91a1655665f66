"""A small static-SVG chart layer for the reports: figures of stacked axes, lines, bands,
spans, reference lines, text, a legend, ticks and a grid, written as SVG text directly.

Why not matplotlib: importing it cost ~0.6 s of every page (``harness report`` on a
1-million-sample trace took 0.97 s, 0.6 s of it matplotlib's import and 0.25 s its SVG
backend). The reports need a few kinds of marks and nothing interactive, so they are drawn
here in a few milliseconds. The calls mirror matplotlib's ``Axes`` where they do the same
thing (``plot``, ``fill_between``, ``axvspan``, ``axhline``, ``annotate``, ``legend``), so
``plots.py`` reads like the matplotlib code it replaced.

Geometry is in points (1/72 in), the SVG's viewBox unit; the page scales the SVG to its
width. Text stays ``<text>`` (searchable; the browser's font draws it); its width, needed
for the legend's box and the y-axis title, is estimated from DejaVu Sans' advance widths.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

FONT = "'DejaVu Sans', Verdana, Arial, sans-serif"
FONT_SIZE = 9.0
TITLE_SIZE = 9.5
LEGEND_SIZE = 8.0
GRID_COLOUR = "#e6e6e6"
AXIS_COLOUR = "#333333"
TICK_LEN = 3.5
TICK_PAD = 3.5

Coords = Literal["data", "axes"]

#: DejaVu Sans advance widths in em (what the layout estimates text width with).
_NARROW = set("il.,:;'|!")
_WIDE = set("mwMW@%")
_DIGITS = set("0123456789")


def text_width(text: str, size: float) -> float:
    """Estimated width in points of ``text`` at ``size`` in DejaVu Sans."""
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.30
        elif ch in _WIDE:
            em += 0.95
        elif ch in _DIGITS:
            em += 0.64
        elif ch == " ":
            em += 0.32
        elif ch.isupper():
            em += 0.72
        else:
            em += 0.60
    return em * size


_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def esc(text: str) -> str:
    """Text for SVG/XML and HTML: ``html.escape`` (markup and quotes), after characters XML
    cannot hold (control characters, lone surrogates from a JSON ``\\ud800``) are shown as
    U+FFFD."""
    return html.escape(_FORBIDDEN.sub("\ufffd", text), quote=True)


#: Coordinates are clamped to this (points): far beyond any page, and a float every SVG
#: renderer parses (a limit line aimed at 1e300 once made Chromium drop the element).
_FAR = 1e6


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "0"
    v = max(-_FAR, min(_FAR, v))
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _dash(style: str | tuple[float, ...], width: float) -> str:
    """SVG dasharray of a matplotlib-like line style (dashes scale with the line's width)."""
    if isinstance(style, tuple):
        pattern = style
    else:
        pattern = {"-": (), "--": (3.7, 1.6), ":": (1.0, 1.65), "-.": (6.4, 1.6, 1.0, 1.6)}.get(style, ())
    if not pattern:
        return ""
    return f' stroke-dasharray="{" ".join(_num(p * width) for p in pattern)}"'


def nice_ticks(low: float, high: float, nbins: int, *, integer: bool = False) -> list[float]:
    """Ticks at 1, 2, 2.5 or 5 × a power of ten, about ``nbins`` intervals, within the range."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(nbins, 1)
    if not math.isfinite(raw) or raw <= 0 or high - low < 1e-300:  # beyond what ticks can say
        return [low, high]
    try:
        return _ticks(low, high, nbins, raw, integer)
    except (OverflowError, ValueError):
        return [low, high]


def _ticks(low: float, high: float, nbins: int, raw: float, integer: bool) -> list[float]:
    mag = 10 ** math.floor(math.log10(raw))
    step = 10 * mag
    for m in (1, 2, 2.5, 5, 10):
        candidate = m * mag
        if integer and candidate < 1:
            continue
        if integer and m == 2.5:
            continue
        # intervals of the ticks that cover the range (an outer one may stick out)
        if math.ceil(high / candidate - 1e-9) - math.floor(low / candidate + 1e-9) <= nbins + 1:
            step = candidate
            break
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [i * step for i in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """A plain tick label: as many decimals as the step needs, no offset, no exponent."""
    decimals = 0
    while decimals < 9 and abs(round(step, decimals) - step) > 1e-9 * abs(step):
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


@dataclass
class _Mark:
    kind: str
    z: float
    args: dict[str, Any]


@dataclass
class _Limits:
    low: float | None = None
    high: float | None = None


@dataclass
class Axes:
    """One plotting area: marks in data coordinates, drawn into a box of the figure."""

    x0: float
    y0: float
    width: float
    height: float
    xlim: _Limits = field(default_factory=_Limits)
    ylim: _Limits = field(default_factory=_Limits)
    marks: list[_Mark] = field(default_factory=list)
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    x_ticks: Literal["auto", "steps", "fixed"] = "auto"
    fixed_ticks: tuple[list[float], list[str], float] = ([], [], 0.0)
    x_tick_labels: bool = True
    legend_spec: tuple[str, int] | None = None

    # -- marks ----------------------------------------------------------------------
    def plot(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        *,
        color: str,
        linewidth: float = 1.5,
        linestyle: str | tuple[float, ...] = "-",
        label: str | None = None,
        gid: str | None = None,
        zorder: float = 2.0,
        alpha: float = 1.0,
        marker: Literal["o", "v"] | None = None,
        markersize: float = 6.0,
        line: bool = True,
    ) -> None:
        self.marks.append(
            _Mark(
                "line",
                zorder,
                {
                    "xs": [float(v) for v in xs],
                    "ys": [float(v) for v in ys],
                    "color": color,
                    "width": linewidth,
                    "style": linestyle,
                    "label": label,
                    "gid": gid,
                    "alpha": alpha,
                    "marker": marker,
                    "markersize": markersize,
                    "line": line,
                },
            )
        )

    def fill_between(
        self, xs: Sequence[float], low: Sequence[float], high: Sequence[float], *, color: str, alpha: float, label: str
    ) -> None:
        self.marks.append(
            _Mark(
                "band",
                1.0,
                {
                    "xs": [float(v) for v in xs],
                    "low": [float(v) for v in low],
                    "high": [float(v) for v in high],
                    "color": color,
                    "alpha": alpha,
                    "label": label,
                },
            )
        )

    def axvspan(self, x0: float, x1: float, *, color: str, alpha: float) -> None:
        self.marks.append(_Mark("vspan", 0.0, {"x0": x0, "x1": x1, "color": color, "alpha": alpha}))

    def axvline(self, x: float, *, color: str, linestyle: str = "-", linewidth: float = 1.0) -> None:
        self.marks.append(_Mark("vline", 2.5, {"x": x, "color": color, "style": linestyle, "width": linewidth}))

    def axhline(
        self,
        y: float,
        *,
        color: str,
        linestyle: str | tuple[float, ...] = "-",
        linewidth: float = 1.0,
        label: str | None = None,
        gid: str | None = None,
    ) -> None:
        self.marks.append(
            _Mark(
                "hline",
                2.5,
                {"y": y, "color": color, "style": linestyle, "width": linewidth, "label": label, "gid": gid},
            )
        )

    def errorbar(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        below: Sequence[float],
        above: Sequence[float],
        *,
        color: str,
        ecolor: str,
        capsize: float = 3.0,
        markersize: float = 4.0,
        linewidth: float = 1.2,
    ) -> None:
        self.marks.append(
            _Mark(
                "errorbar",
                2.0,
                {
                    "xs": list(xs),
                    "ys": list(ys),
                    "below": list(below),
                    "above": list(above),
                    "ecolor": ecolor,
                    "capsize": capsize,
                },
            )
        )
        self.plot(xs, ys, color=color, linewidth=linewidth, marker="o", markersize=markersize, zorder=2.1)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        coords: tuple[Coords, Coords] = ("axes", "axes"),
        offset: tuple[float, float] = (0.0, 0.0),
        ha: Literal["left", "center", "right"] = "left",
        va: Literal["baseline", "top", "bottom", "center"] = "baseline",
        fontsize: float = FONT_SIZE,
        color: str = "#000000",
        bold: bool = False,
    ) -> None:
        """Text at (x, y) in data or axes-fraction coordinates per axis, moved by ``offset``
        points (positive y up, as matplotlib's ``textcoords="offset points"``)."""
        self.marks.append(
            _Mark(
                "text",
                5.0,
                {
                    "x": x,
                    "y": y,
                    "text": text,
                    "coords": coords,
                    "offset": offset,
                    "ha": ha,
                    "va": va,
                    "size": fontsize,
                    "color": color,
                    "bold": bold,
                },
            )
        )

    def top_label(self, x: float, text: str, *, color: str, fontsize: float = 8.0, first: bool = False) -> None:
        """A label at data ``x`` along the top of the axes (an event's name, the window's
        start). Labels are laid out when drawn: in up to three rows, none overlapping, long
        ones cut, those with no room counted in a "+N more" note; ``first`` ones are placed
        before the others."""
        self.marks.append(
            _Mark("toplabel", 5.0, {"x": x, "text": text, "color": color, "size": fontsize, "first": first})
        )

    # -- settings -------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.title = text

    def set_xlabel(self, text: str) -> None:
        self.xlabel = text

    def set_ylabel(self, text: str) -> None:
        self.ylabel = text

    def set_xlim(self, low: float, high: float) -> None:
        self.xlim.low, self.xlim.high = float(low), float(high)

    def set_ylim(self, low: float, high: float) -> None:
        self.ylim.low, self.ylim.high = float(low), float(high)

    def step_axis(self) -> None:
        """Integer x ticks with thousands separators (steps)."""
        self.x_ticks = "steps"

    def set_xticks(self, positions: Sequence[float], labels: Sequence[str], rotation: float = 0.0) -> None:
        self.x_ticks = "fixed"
        self.fixed_ticks = (list(positions), list(labels), rotation)

    def hide_x_tick_labels(self) -> None:
        self.x_tick_labels = False

    def legend(self, loc: str = "upper right", ncols: int = 1) -> None:
        self.legend_spec = (loc, ncols)

    # -- drawing --------------------------------------------------------------------
    def _data_range(self, axis: Literal["x", "y"]) -> tuple[float, float] | None:
        values: list[float] = []
        for mark in self.marks:
            a = mark.args
            if mark.kind == "line":
                values += a["xs"] if axis == "x" else a["ys"]
            elif mark.kind == "band":
                values += a["xs"] if axis == "x" else a["low"] + a["high"]
            elif mark.kind == "errorbar" and axis == "y":
                values += [y - d for y, d in zip(a["ys"], a["below"], strict=False)]
                values += [y + d for y, d in zip(a["ys"], a["above"], strict=False)]
            elif mark.kind == "hline" and axis == "y":
                values.append(a["y"])
        finite = [v for v in values if math.isfinite(v)]
        return (min(finite), max(finite)) if finite else None

    def limits(self, axis: Literal["x", "y"]) -> tuple[float, float]:
        lim = self.xlim if axis == "x" else self.ylim
        if lim.low is not None and lim.high is not None and math.isfinite(lim.low) and math.isfinite(lim.high):
            low, high = lim.low, lim.high
        else:
            found = self._data_range(axis) or (0.0, 1.0)
            pad = (found[1] - found[0]) * 0.05
            low, high = found[0] - pad, found[1] + pad
            if not (math.isfinite(low) and math.isfinite(high)):  # a range beyond floats
                low, high = found
        if high < low:  # no inverted axes here
            low, high = high, low
        if high - low <= max(abs(low), abs(high)) * 1e-12:  # a point: show it mid-axis
            half = max(abs(low) * 0.05, 0.5)
            low, high = low - half, high + half
        return low, high


class Figure:
    """Axes stacked in rows or set side by side, with margins fixed in inches."""

    def __init__(
        self,
        width_in: float,
        height_in: float,
        *,
        left_in: float = 0.85,
        right_in: float = 0.15,
        bottom_in: float = 0.45,
        top_in: float = 0.3,
        hspace: float = 0.42,
        wspace: float = 0.3,
    ) -> None:
        self.width = width_in * 72
        self.height = height_in * 72
        self.natural_px = round(width_in * 96)
        inner_w = self.width - (left_in + right_in) * 72
        self._box = (left_in * 72, top_in * 72, inner_w, self.height - (top_in + bottom_in) * 72)
        self._hspace, self._wspace = hspace, wspace
        self.axes: list[Axes] = []

    def rows(self, n: int, height_ratios: Sequence[float] | None = None, *, sharex: bool = True) -> list[Axes]:
        """``n`` axes one above the other (sharing the x-axis' limits when ``sharex``)."""
        x0, y0, w, h = self._box
        ratios = list(height_ratios or [1.0] * n)
        mean_h = h / (n + (n - 1) * self._hspace)
        mean_r = sum(ratios) / n
        shared = _Limits()
        y = y0
        out = []
        for r in ratios:
            ah = mean_h * r / mean_r
            ax = Axes(x0, y, w, ah)
            if sharex:
                ax.xlim = shared
            out.append(ax)
            y += ah + self._hspace * mean_h
        self.axes += out
        return out

    def columns(self, n: int) -> list[Axes]:
        x0, y0, w, h = self._box
        mean_w = w / (n + (n - 1) * self._wspace)
        out = [Axes(x0 + i * mean_w * (1 + self._wspace), y0, mean_w, h) for i in range(n)]
        self.axes += out
        return out

    def svg(self, title: str, salt: str) -> str:
        """The figure as an ``<svg class="plot">`` element, ids unique per ``salt``."""
        # Readable, and distinct for salts that differ only in characters an id cannot hold.
        readable = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in salt)[-40:]
        ident = f"{readable}-{hashlib.sha1(salt.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(self.width)} {_num(self.height)}" '
            f'class="plot" role="img" style="max-width:{self.natural_px}px" '
            f'font-family="{esc(FONT)}" font-size="{_num(FONT_SIZE)}">',
            f"<title>{esc(title)}</title>",
            f'<rect width="{_num(self.width)}" height="{_num(self.height)}" fill="#ffffff"/>',
        ]
        for i, ax in enumerate(self.axes):
            parts.append(_draw_axes(ax, f"{ident}-{i}", self.width))
        parts.append("</svg>")
        return "".join(parts)


# -- drawing one axes ------------------------------------------------------------------------


class _Map:
    def __init__(self, ax: Axes) -> None:
        self.ax = ax
        self.xlo, self.xhi = ax.limits("x")
        self.ylo, self.yhi = ax.limits("y")

    def x(self, v: float, coords: Coords = "data") -> float:
        frac = v if coords == "axes" else (v - self.xlo) / (self.xhi - self.xlo)
        return self.ax.x0 + frac * self.ax.width

    def y(self, v: float, coords: Coords = "data") -> float:
        frac = v if coords == "axes" else (v - self.ylo) / (self.yhi - self.ylo)
        return self.ax.y0 + self.ax.height - frac * self.ax.height


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float = FONT_SIZE,
    anchor: str = "start",
    color: str = "#000000",
    bold: bool = False,
    rotate: float = 0.0,
    extra: str = "",
) -> str:
    attrs = f'x="{_num(x)}" y="{_num(y)}"'
    if size != FONT_SIZE:
        attrs += f' font-size="{_num(size)}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if color != "#000000":
        attrs += f' fill="{color}"'
    if bold:
        attrs += ' font-weight="bold"'
    if rotate:
        attrs += f' transform="rotate({_num(rotate)} {_num(x)} {_num(y)})"'
    return f"<text {attrs}{extra}>{esc(text)}</text>"


def _finite_pairs(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(x) and math.isfinite(y)]


def _points(xs: Sequence[float], ys: Sequence[float], m: _Map) -> str:
    return " ".join(f"{_num(m.x(x))},{_num(m.y(y))}" for x, y in _finite_pairs(xs, ys))


def _circle(px: float, py: float, r: float, colour: str) -> str:
    return f'<circle cx="{_num(px)}" cy="{_num(py)}" r="{_num(r)}" fill="{colour}"/>'


def _text_anchor(args: dict[str, Any], m: _Map) -> tuple[float, float]:
    """Where a text mark is anchored on the page: its point, moved by its offset (y up)."""
    cx, cy = args["coords"]
    return m.x(args["x"], cx) + args["offset"][0], m.y(args["y"], cy) - args["offset"][1]


def _draw_axes(ax: Axes, ident: str, page_width: float) -> str:
    m = _Map(ax)
    clip = f"clip-{ident}"
    out = [
        f'<clipPath id="{clip}"><rect x="{_num(ax.x0)}" y="{_num(ax.y0)}" '
        f'width="{_num(ax.width)}" height="{_num(ax.height)}"/></clipPath>'
    ]
    # grid and ticks
    nb_y = max(3, min(9, int(ax.height // 20)))
    yt = nice_ticks(m.ylo, m.yhi, nb_y)
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    if ax.x_ticks == "fixed":
        xt, xlabels, rotation = ax.fixed_ticks
    else:
        xt, xlabels = _x_ticks(ax, m)
        rotation = 0.0

    def inside(x: float) -> bool:
        return ax.x0 - 0.01 <= x <= ax.x0 + ax.width + 0.01

    grid = []
    for v in yt:
        y = m.y(v)
        grid.append(f"M{_num(ax.x0)} {_num(y)}H{_num(ax.x0 + ax.width)}")
    for v in xt:
        x = m.x(v)
        if inside(x):
            grid.append(f"M{_num(x)} {_num(ax.y0)}V{_num(ax.y0 + ax.height)}")
    if grid:
        out.append(f'<path d="{"".join(grid)}" stroke="{GRID_COLOUR}" stroke-width="0.6" fill="none"/>')
    body = []
    for mark in sorted(ax.marks, key=lambda k: k.z):
        body.append(_draw_mark(mark, m, ax, ident))
    out.append(f'<g clip-path="url(#{clip})">' + "".join(s for s in body if s) + "</g>")
    # spines, ticks, labels
    bottom = ax.y0 + ax.height
    out.append(
        f'<path d="M{_num(ax.x0)} {_num(ax.y0)}V{_num(bottom)}H{_num(ax.x0 + ax.width)}" '
        f'stroke="{AXIS_COLOUR}" stroke-width="0.8" fill="none"/>'
    )
    ticks = []
    labels = []
    widest = 0.0
    for v in yt:
        y = m.y(v)
        ticks.append(f"M{_num(ax.x0)} {_num(y)}h-{TICK_LEN}")
        label = tick_label(v, ystep)
        widest = max(widest, text_width(label, FONT_SIZE))
        labels.append(_text(ax.x0 - TICK_LEN - TICK_PAD, y + FONT_SIZE * 0.35, label, anchor="end"))
    for v, label in zip(xt, xlabels, strict=False):
        x = m.x(v)
        if not inside(x):
            continue
        ticks.append(f"M{_num(x)} {_num(bottom)}v{TICK_LEN}")
        if ax.x_tick_labels:
            ty = bottom + TICK_LEN + TICK_PAD + FONT_SIZE * 0.8
            if rotation:
                labels.append(_text(x, ty, label, size=7.0, anchor="end", rotate=-rotation))
            else:
                size = 7.0 if ax.x_ticks == "fixed" else FONT_SIZE
                half = text_width(label, size) / 2
                if x - half < 2:  # kept on the page: a long first or last label
                    labels.append(_text(2, ty, label, size=size))
                elif x + half > page_width - 2:
                    labels.append(_text(page_width - 2, ty, label, size=size, anchor="end"))
                else:
                    labels.append(_text(x, ty, label, size=size, anchor="middle"))
    out.append(f'<path d="{"".join(ticks)}" stroke="{AXIS_COLOUR}" stroke-width="0.8" fill="none"/>')
    out += labels
    out += _top_labels(ax, m)
    if ax.ylabel:
        x = ax.x0 - TICK_LEN - TICK_PAD - widest - 5
        y = ax.y0 + ax.height / 2
        out.append(_text(x, y, ax.ylabel, anchor="middle", rotate=-90))
    if ax.xlabel:
        y = bottom + TICK_LEN + TICK_PAD + FONT_SIZE * 2.1
        out.append(_text(ax.x0 + ax.width / 2, y, ax.xlabel, anchor="middle"))
    if ax.title:
        out.append(_text(ax.x0, ax.y0 - 6, ax.title, size=TITLE_SIZE, bold=True))
    if ax.legend_spec is not None:
        out.append(_legend(ax, *ax.legend_spec, m))
    return "".join(out)


def _x_ticks(ax: Axes, m: _Map) -> tuple[list[float], list[str]]:
    """x ticks whose labels fit side by side (fewer bins while they would touch)."""
    steps = ax.x_ticks == "steps"
    for nbins in (8, 6, 5, 4, 3, 2, 1):
        xt = nice_ticks(m.xlo, m.xhi, nbins, integer=steps)
        xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
        labels = [f"{v:,.0f}" if steps else tick_label(v, xstep) for v in xt]
        room = ax.width / max(len(xt), 1)
        if all(text_width(label, FONT_SIZE) + 6 <= room for label in labels):
            return xt, labels
    return xt[:1], labels[:1]


#: Rows of labels along the top of an axes (points below its top edge).
_TOP_ROWS = (10.0, 22.0, 34.0)
_TOP_MAX_CHARS = 60


def _top_labels(ax: Axes, m: _Map) -> list[str]:
    marks = [k for k in ax.marks if k.kind == "toplabel"]
    if not marks:
        return []
    right = ax.x0 + ax.width
    placed: list[str] = []
    ends = [-math.inf] * len(_TOP_ROWS)
    hidden = 0
    ordered = [k for k in marks if k.args["first"]] + sorted(
        (k for k in marks if not k.args["first"]), key=lambda k: float(k.args["x"])
    )
    for mark in ordered:
        a = mark.args
        x = m.x(float(a["x"]))
        if not (math.isfinite(x) and ax.x0 - 0.5 <= x <= right + 0.5):
            continue  # its line is outside the plot too
        text = str(a["text"])
        if len(text) > _TOP_MAX_CHARS:
            text = text[: _TOP_MAX_CHARS - 1] + "…"
        width = text_width(text, a["size"])
        start = max(ax.x0 + 2, min(x + 3, right - width - 2))
        for row, end in enumerate(ends):
            if start >= end + 6:
                ends[row] = start + width
                placed.append(_text(start, ax.y0 + _TOP_ROWS[row], text, size=a["size"], color=a["color"]))
                break
        else:
            hidden += 1
    if hidden:
        note = f"+{hidden} more not labelled"
        placed.append(
            _text(
                right - 2, ax.y0 + _TOP_ROWS[-1] + 12, note, size=7.0, anchor="end", color=str(marks[-1].args["color"])
            )
        )
    return placed


def _draw_mark(mark: _Mark, m: _Map, ax: Axes, ident: str) -> str:
    """One mark as SVG; a mark's ``gid`` becomes the id ``{gid}-{ident}`` (unique on a page)."""
    a = mark.args
    if mark.kind == "vspan":
        x0, x1 = sorted((m.x(a["x0"]), m.x(a["x1"])))
        return (
            f'<rect x="{_num(x0)}" y="{_num(ax.y0)}" width="{_num(x1 - x0)}" height="{_num(ax.height)}" '
            f'fill="{a["color"]}" fill-opacity="{a["alpha"]}"/>'
        )
    if mark.kind == "band":
        top = _points(a["xs"], a["high"], m)
        low = _points(list(reversed(a["xs"])), list(reversed(a["low"])), m)
        return f'<polygon points="{top} {low}" fill="{a["color"]}" fill-opacity="{a["alpha"]}" stroke="none"/>'
    if mark.kind == "vline":
        x = m.x(a["x"])
        return (
            f'<path d="M{_num(x)} {_num(ax.y0)}V{_num(ax.y0 + ax.height)}" stroke="{a["color"]}" '
            f'stroke-width="{_num(a["width"])}"{_dash(a["style"], a["width"])} fill="none"/>'
        )
    if mark.kind == "hline":
        y = m.y(a["y"])
        gid = f' id="{a["gid"]}-{ident}"' if a.get("gid") else ""
        return (
            f'<path{gid} d="M{_num(ax.x0)} {_num(y)}H{_num(ax.x0 + ax.width)}" stroke="{a["color"]}" '
            f'stroke-width="{_num(a["width"])}"{_dash(a["style"], a["width"])} fill="none"/>'
        )
    if mark.kind == "line":
        parts = []
        if a["line"] and len(a["xs"]) > 1:
            gid = f' id="{a["gid"]}-{ident}"' if a.get("gid") else ""
            alpha = f' stroke-opacity="{a["alpha"]}"' if a["alpha"] < 1 else ""
            parts.append(
                f'<polyline{gid} points="{_points(a["xs"], a["ys"], m)}" fill="none" stroke="{a["color"]}" '
                f'stroke-width="{_num(a["width"])}"{_dash(a["style"], a["width"])}{alpha} '
                'stroke-linejoin="round" stroke-linecap="butt"/>'
            )
        finite = _finite_pairs(a["xs"], a["ys"])
        if a["line"] and not a["marker"] and len(finite) == 1:  # one sample: a dot, not nothing
            (x, y), r = finite[0], max(1.5, a["width"] * 1.5)
            parts.append(_circle(m.x(x), m.y(y), r, a["color"]))
        if a["marker"]:
            r = a["markersize"] / 2
            for x, y in zip(a["xs"], a["ys"], strict=False):
                px, py = m.x(x), m.y(y)
                if a["marker"] == "o":
                    parts.append(_circle(px, py, r, a["color"]))
                else:
                    parts.append(
                        f'<polygon points="{_num(px - r)},{_num(py - r)} {_num(px + r)},{_num(py - r)} '
                        f'{_num(px)},{_num(py + r)}" fill="{a["color"]}"/>'
                    )
        return "".join(parts)
    if mark.kind == "errorbar":
        d = []
        c = a["capsize"]
        for xv, yv, lo, hi in zip(a["xs"], a["ys"], a["below"], a["above"], strict=False):
            px, y_top, y_bot = m.x(xv), m.y(yv + hi), m.y(yv - lo)
            d.append(f"M{_num(px)} {_num(y_top)}V{_num(y_bot)}M{_num(px - c)} {_num(y_top)}h{_num(2 * c)}")
            d.append(f"M{_num(px - c)} {_num(y_bot)}h{_num(2 * c)}")
        return f'<path d="{"".join(d)}" stroke="{a["ecolor"]}" stroke-width="1" fill="none"/>'
    if mark.kind == "text":
        x, y = _text_anchor(a, m)
        size = a["size"]
        y += {"baseline": 0.0, "top": size * 0.8, "bottom": -size * 0.2, "center": size * 0.35}[a["va"]]
        anchor = {"left": "start", "center": "middle", "right": "end"}[a["ha"]]
        return _text(x, y, a["text"], size=size, anchor=anchor, color=a["color"], bold=a["bold"])
    return ""


#: Where ``loc="best"`` may put the legend, in order of preference on a tie.
_BEST_ORDER = ("upper right", "upper left", "lower right", "lower left", "center right", "center left", "upper center")


def _legend_box(ax: Axes, loc: str, box_w: float, box_h: float, margin: float) -> tuple[float, float, float, float]:
    vertical, _, horizontal = loc.partition(" ")
    if not horizontal:
        vertical, horizontal = "center", vertical
    if horizontal == "right":
        bx = ax.x0 + ax.width - margin - box_w
    elif horizontal == "left":
        bx = ax.x0 + margin
    else:
        bx = ax.x0 + (ax.width - box_w) / 2
    if vertical == "upper":
        by = ax.y0 + margin
    elif vertical == "lower":
        by = ax.y0 + ax.height - margin - box_h
    else:
        by = ax.y0 + (ax.height - box_h) / 2
    return bx, by, box_w, box_h


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y = point
    return box[0] <= x <= box[0] + box[2] and box[1] <= y <= box[1] + box[3]


def _occupied(ax: Axes, m: _Map) -> list[tuple[float, float]]:
    """Points (page coordinates) the data and the labels cover: what a legend should not hide."""
    out: list[tuple[float, float]] = []
    for mark in ax.marks:
        a = mark.args
        if mark.kind == "line":
            xs, ys = a["xs"], a["ys"]
            every = max(1, len(xs) // 200)
            pts = [(m.x(x), m.y(y)) for x, y in zip(xs[::every], ys[::every], strict=False)]
            # a segment's inside counts too (two points far apart still cross the box)
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                out += [(x0 + (x1 - x0) * f / 8, y0 + (y1 - y0) * f / 8) for f in range(8)]
            out += pts[-1:]
            if a["marker"]:
                out += pts * 20  # a marker is what the plot is about
        elif mark.kind == "hline":
            y = m.y(a["y"])
            out += [(ax.x0 + ax.width * f / 40, y) for f in range(41)]
        elif mark.kind == "text":
            x, y = _text_anchor(a, m)
            width = text_width(a["text"], a["size"])
            start = x - {"left": 0.0, "center": width / 2, "right": width}[a["ha"]]
            out += [(start + d, y) for d in range(0, int(width), 4)] * 5
    return [(x, y) for x, y in out if math.isfinite(x) and math.isfinite(y)]


def _legend(ax: Axes, loc: str, ncols: int, m: _Map) -> str:
    entries = []
    for mark in ax.marks:
        label = mark.args.get("label")
        if label and mark.kind in ("line", "band", "hline"):
            entries.append((mark, str(label)))
    if not entries:
        return ""
    size = LEGEND_SIZE
    handle, gap, colgap, rowh, pad = 2.0 * size, 0.8 * size, 2.0 * size, 1.4 * size, 0.5 * size
    margin = 0.5 * size
    while True:  # fewer columns while the box is wider than the axes
        per_col = math.ceil(len(entries) / ncols)
        columns = [entries[i * per_col : (i + 1) * per_col] for i in range(ncols)]
        columns = [c for c in columns if c]
        widths = [max(text_width(label, size) for _, label in col) + handle + gap for col in columns]
        box_w = sum(widths) + colgap * (len(columns) - 1) + 2 * pad
        if ncols == 1 or box_w <= ax.width - 2 * margin:
            break
        ncols -= 1
    box_h = per_col * rowh + 2 * pad - (rowh - size * 1.1)
    if loc == "best":
        taken = _occupied(ax, m)
        loc = min(
            _BEST_ORDER,
            key=lambda c: sum(1 for p in taken if _inside(p, _legend_box(ax, c, box_w, box_h, margin))),
        )
    bx, by, _, _ = _legend_box(ax, loc, box_w, box_h, margin)
    out = [
        f'<g class="legend"><rect x="{_num(bx)}" y="{_num(by)}" width="{_num(box_w)}" height="{_num(box_h)}" '
        'rx="2" fill="#ffffff" fill-opacity="0.92" stroke="#cccccc" stroke-width="0.8"/>'
    ]
    x = bx + pad
    for col, width in zip(columns, widths, strict=False):
        y = by + pad + size * 0.55
        for mark, label in col:
            a = mark.args
            if mark.kind == "band":
                out.append(
                    f'<rect x="{_num(x)}" y="{_num(y - size * 0.35)}" width="{_num(handle)}" '
                    f'height="{_num(size * 0.7)}" '
                    f'fill="{a["color"]}" fill-opacity="{a["alpha"]}"/>'
                )
            else:
                out.append(
                    f'<path d="M{_num(x)} {_num(y)}h{_num(handle)}" stroke="{a["color"]}" '
                    f'stroke-width="{_num(a["width"])}"{_dash(a["style"], a["width"])} fill="none"/>'
                )
            out.append(_text(x + handle + gap, y + size * 0.35, label, size=size))
            y += rowh
        x += width + colgap
    out.append("</g>")
    return "".join(out)
