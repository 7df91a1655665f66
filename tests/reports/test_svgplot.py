"""The reports' SVG layer: ticks a person can read, well-formed SVG whose marks land where
the data says, ids unique on a page, and no matplotlib anywhere on the way."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.recording.trace import Event, Trace
from harness.reports import plots
from harness.reports.svgplot import Figure, nice_ticks, text_width, tick_label

NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.mark.parametrize(
    ("low", "high", "nbins", "integer", "expected"),
    [
        (27.0, 170.0, 6, False, [50.0, 75.0, 100.0, 125.0, 150.0]),  # 2.5 × 10: 7 would exceed 6 intervals
        (0.0, 1.0, 5, False, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (-3.0, 3.0, 6, False, [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]),
        (4.0, 2_999.0, 8, True, [500, 1000, 1500, 2000, 2500]),
        (0.0, 3.0, 8, True, [0, 1, 2, 3]),  # integer steps never go below 1
        (299.96, 300.06, 5, False, [299.96, 299.98, 300.0, 300.02, 300.04, 300.06]),
    ],
)
def test_nice_ticks(low, high, nbins, integer, expected):
    assert nice_ticks(low, high, nbins, integer=integer) == pytest.approx(expected)


def test_nice_ticks_of_an_empty_or_broken_range_do_not_raise():
    assert nice_ticks(5.0, 5.0, 6) == [5.0]
    assert nice_ticks(float("nan"), 1.0, 6) == []


@pytest.mark.parametrize(
    ("value", "step", "text"),
    [(150.0, 50.0, "150"), (0.4, 0.2, "0.4"), (10.0975, 0.0025, "10.0975"), (-1e-17, 0.2, "0"), (75.0, 25.0, "75")],
)
def test_tick_labels_have_the_decimals_their_step_needs(value, step, text):
    assert tick_label(value, step) == text


def test_text_width_tracks_dejavu_sans_roughly():
    # DejaVu Sans at 9 pt: "allocated (MB)" is ~66 pt wide; digits are 0.64 em.
    assert 55 < text_width("allocated (MB)", 9) < 80
    assert text_width("0000", 10) == pytest.approx(25.6)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_a_line_lands_where_its_data_says():
    fig = Figure(4.0, 3.0, left_in=1.0, right_in=0.0, top_in=0.0, bottom_in=1.0)
    (ax,) = fig.rows(1)
    ax.plot([0, 10], [0, 100], color="#123456", label="data", gid="the-line")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    root = _parse(fig.svg("t", "salt"))
    (line,) = [e for e in root.iter("{http://www.w3.org/2000/svg}polyline") if e.get("id", "").startswith("the-line-")]
    # axes box: x from 72 pt to 288 pt, y from 0 (top) to 144 pt (the bottom margin is 72)
    assert line.get("points") == "72,144 288,0"


def test_ids_are_unique_across_the_figures_of_one_page():
    ids: list[str] = []
    for salt in ("a::test[x/y]", "a::test[x:y]"):
        fig = Figure(4.0, 3.0)
        for ax in fig.rows(2):
            ax.plot([0, 1], [0, 1], color="#000", gid="limit-line")
        root = _parse(fig.svg("t", salt))
        ids += [e.get("id") or "" for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids)) == 8  # a clip path and a line per axes


def test_text_is_escaped_and_stays_text():
    fig = Figure(4.0, 3.0)
    (ax,) = fig.rows(1)
    ax.plot([0, 1], [0, 1], color="#000", label="a < b & c")
    ax.set_title("<script>")
    ax.legend()
    root = _parse(fig.svg("title & more", "s"))
    texts = [e.text for e in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "a < b & c" in texts and "<script>" in texts
    assert root.find("s:title", NS).text == "title & more"


def _trace(n: int = 3_000, leak: float = 30.0) -> Trace:
    rng = np.random.default_rng(0)
    trace = Trace(name="t", meta={"machine_memory": 16 * 2**30})
    for step in range(n):
        noise = float(rng.normal(0, 2_000))
        trace.append(step, step * 1e-3, {"rss": 2e8 + step * leak * 1.3 + noise, "allocated": 1e8 + step * leak})
    trace.add_event(Event("warm", 500, 0.5))
    return trace


def test_the_growth_plot_draws_window_fit_limit_and_event_labels():
    trace = _trace()
    import harness

    verdict = harness.growth_verdict(trace, after="warm", max_growth="1 KB/1k steps")
    from harness.verdicts.assertions import growth_check_record

    record = growth_check_record(verdict, None)
    root = _parse(plots.growth_svg(trace, record, salt="x"))
    texts = " | ".join(e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text"))
    for words in ("warm (step 500)", "analysis window: steps", "limit 1 KB/1k steps from the window start", "step"):
        assert words in texts, words
    assert len([e for e in root.iter() if (e.get("id") or "").startswith("limit-line")]) == 1


def test_writing_a_page_never_imports_matplotlib(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from harness.recording.trace import Trace\n"
        "from harness.reports.test_page import write_test_report\n"
        "t = Trace(name='t')\n"
        "for s in range(2000):\n"
        "    t.append(s, s * 1e-3, {'rss': 1e8 + s * 50.0, 'allocated': 5e7 + s * 40.0})\n"
        f"write_test_report(Path({str(tmp_path)!r}), 't', 'passed', t, None, {{}})\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert "<svg" in (tmp_path / "report.html").read_text()


finite = st.one_of(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False),
    st.sampled_from([1.7e308, -1.7e308, 5e-324]),
)
anything = st.one_of(finite, st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")))


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(anything, min_size=0, max_size=30),
    ys=st.lists(anything, min_size=0, max_size=30),
    limits=st.one_of(st.none(), st.tuples(anything, anything), st.tuples(finite, finite)),
)
def test_any_data_gives_well_formed_svg_with_finite_coordinates(xs, ys, limits):
    fig = Figure(5.0, 3.0)
    top, bottom = fig.rows(2, [2.0, 1.0])
    n = min(len(xs), len(ys))
    top.plot(xs[:n], ys[:n], color="#000", label="data", gid="limit-line")
    top.fill_between(xs[:n], ys[:n], ys[:n], color="#00f", alpha=0.2, label="band")
    if n:
        top.axvspan(xs[0], xs[-1], color="#ddd", alpha=0.5)
        top.axhline(ys[0], color="#f00", label="line")
        top.text(xs[0], ys[0], "a label", coords=("data", "data"), offset=(3, -10))
    if limits is not None:
        top.set_ylim(*limits)
        bottom.set_xlim(*limits)
    top.legend(loc="lower right", ncols=2)
    bottom.step_axis()
    svg = fig.svg("fuzz", "s")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    numbers = " ".join(
        v for e in root.iter() for k, v in e.attrib.items() if k in ("x", "y", "points", "d", "width", "height")
    )
    assert "nan" not in numbers.lower() and "inf" not in numbers.lower()


def test_a_legend_too_wide_for_two_columns_falls_back_to_one():
    fig = Figure(5.0, 3.0)
    (ax,) = fig.rows(1)
    for i in range(4):
        ax.plot([0, 1], [0, i], color="#000", label=f"series {i} " + "with a long label " * 3)
    ax.legend(loc="upper right", ncols=2)
    root = _parse(fig.svg("t", "s"))
    (box,) = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("rx") == "2"]
    # The axes span 0.85 in to 4.85 in: 61.2 pt to 349.2 pt.
    assert float(box.get("x")) >= 61.2 and float(box.get("x")) + float(box.get("width")) <= 349.2


def _texts(svg: str) -> list[str]:
    return [e.text or "" for e in _parse(svg).iter("{http://www.w3.org/2000/svg}text")]


def test_a_flat_judged_signal_gets_readable_ticks_and_a_visible_limit_line():
    # The common passing case: a signal that never moves. Its axis once spanned 1e-9 MB
    # ("100.000000000" at every tick) and the limit line ran off to y = -3e10.
    import harness
    from harness.verdicts.assertions import growth_check_record

    trace = Trace(name="flat")
    for step in range(200):
        trace.append(step, step * 1e-3, {"rss": 1e8})
    verdict = harness.growth_verdict(trace, signal="rss", max_growth="1 MB/1k steps")
    root = _parse(plots.growth_svg(trace, growth_check_record(verdict, trace), salt="flat"))
    ticks = [t for t in _texts(ET.tostring(root, encoding="unicode")) if t.replace(".", "").isdigit()]
    assert len(set(ticks)) == len(ticks) and all(len(t) <= 7 for t in ticks), ticks
    (limit,) = [e for e in root.iter() if (e.get("id") or "").startswith("limit-line")]
    ys = [float(p.split(",")[1]) for p in (limit.get("points") or "").split()]
    assert all(0 <= y <= 300 for y in ys), ys  # inside the figure, not off to -3e10


def test_event_names_with_control_characters_and_lone_surrogates_make_a_page(tmp_path):
    trace = _trace(300)
    trace.add_event(Event("ctl\x01\x1b\x00 and \ud800lone", 120, 0.12))
    from harness.reports.test_page import write_test_report

    write_test_report(tmp_path, "t", "passed", trace, None, {})
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for svg in re.findall(r"<svg\b.*?</svg>", html, re.S):
        ET.fromstring(svg)  # well-formed XML
    assert "ctl\ufffd\ufffd\ufffd and \ufffdlone" in html


def test_event_labels_never_overlap_and_the_rest_are_counted():
    fig = Figure(10.5, 3.0)
    (ax,) = fig.rows(1)
    ax.plot([0, 1000], [0, 1], color="#000")
    for i in range(20):
        ax.top_label(500 + i, f"event {i} (step {500 + i})", color="#e67e00")
    ax.top_label(100, "x" * 500, color="#e67e00")
    svg = fig.svg("t", "s")
    texts = _texts(svg)
    labels = [e for e in _parse(svg).iter("{http://www.w3.org/2000/svg}text") if e.get("fill") == "#e67e00"]
    rows: dict[str, list[tuple[float, float]]] = {}
    for e in labels:
        x = float(e.get("x") or 0)
        rows.setdefault(e.get("y") or "", []).append((x, x + text_width(e.text or "", 8)))
    for spans in rows.values():
        spans.sort()
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), spans
    shown = [t for t in texts if t.startswith("event ")]
    assert 1 <= len(shown) <= 3 and f"+{20 - len(shown)} more not labelled" in texts
    assert any(t.endswith("…") and len(t) == 60 for t in texts)  # the long name is cut


def test_x_tick_labels_of_huge_steps_do_not_touch():
    fig = Figure(10.5, 3.0)
    (ax,) = fig.rows(1)
    ax.plot([1e18, 1.2e18], [0, 1], color="#000")
    ax.step_axis()
    root = _parse(fig.svg("t", "s"))
    labels = [e for e in root.iter("{http://www.w3.org/2000/svg}text") if (e.text or "").count(",") >= 5]
    xs = sorted(float(e.get("x") or 0) for e in labels)
    widest = max(text_width(e.text or "", 9) for e in labels)
    assert len(labels) >= 2 and all(b - a > widest for a, b in itertools.pairwise(xs))


def test_a_late_peak_is_labelled_on_its_left_and_the_legend_keeps_off_it():
    record = {
        "baseline": 4e8,
        "over_baseline": 6e7,
        "limit": 8e7,
        "payload": 4e7,
        "limit_text": "2x",
        "passed": True,
        "duration_s": 0.05,
        "peak_at_s": 0.05,
        "timeline": [(i * 0.001, 4e8 + 6e7 * min(1.0, i / 40)) for i in range(51)],
    }
    root = _parse(plots.peak_svg(record))
    (label,) = [e for e in root.iter("{http://www.w3.org/2000/svg}text") if (e.text or "").startswith("peak ")]
    assert label.get("text-anchor") == "end"
    box = next(e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("rx") == "2")
    assert float(box.get("x") or 0) < 400  # the peak sits at the right end: the legend is not there
