"""One test's report: ``verdict.json`` (the data) and ``report.html`` (the page).

The page reads top-down the way a person triages a failed nightly: the verdict first
(coloured, with its message and the growing allocation sites), then one card per check
(the marker's, then those the test made itself: growth, peak, release), each with its
plot, then links to the files (verdict.json, the trace, the flamegraph). No raw dumps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.reports.page import Outcome, check_state, esc, outcome_badge, page
from harness.units import format_rate, format_rate_short, format_size, format_step

if TYPE_CHECKING:
    from harness.analysis.growth import GrowthVerdict
    from harness.recording.trace import Trace
    from harness.verdicts.assertions import Check


def check_summary(record: Mapping[str, Any]) -> str:
    """One line per check for the index and the terminal: 'growth FAIL rss 20 MB/1k steps ...'."""
    kind = record.get("kind")
    state = "PASS" if record.get("passed") else "FAIL"
    if kind == "growth":
        window = record.get("window") or [0, 0]
        lo, hi = record.get("interval") or [0.0, 0.0]
        after = f" after {record['after']!r}" if record.get("after") else ""
        return (
            f"{state} {record.get('signal')} {format_rate(float(record['slope_bytes_per_step']))} "
            f"[{format_rate_short(float(lo))}–{format_rate_short(float(hi))}/1k steps] "
            f"steps {format_step(window[0])}–{format_step(window[1])}{after}; limit {record.get('limit_text')}"
        )
    if kind == "peak":
        return (
            f"PEAK {state} {format_size(float(record['over_baseline']))} over baseline; "
            f"limit {record.get('limit_text')} ({format_size(float(record['limit']))})"
        )
    if kind == "release":
        return f"RELEASE {state} {record.get('released')} of {record.get('watched')} watched objects released"
    return f"{kind} {state}"


def trace_rise(trace: Trace | None) -> float | None:
    """The highest RSS of a trace above its first sample (None without RSS)."""
    import math

    if trace is None or not len(trace) or "rss" not in trace.signals:
        return None
    first = next((float(v) for v in trace.signal("rss") if math.isfinite(v)), math.nan)
    return trace.peak("rss") - first if math.isfinite(first) else None


def _sites_table(sites: Sequence[Mapping[str, Any]]) -> str:
    if not sites:
        return ""
    rows = "".join(
        "<tr>"
        f'<td class="mono">{esc(s.get("location", ""))}</td><td class="mono">{esc(s.get("function", ""))}</td>'
        f'<td class="mono">{esc(s.get("code", ""))}</td>'
        f'<td class="num">{esc(format_rate(float(s.get("bytes_per_step", 0.0))))}</td>'
        f'<td class="num">{float(s.get("share", 0.0)):.0%}</td>'
        f'<td class="mono muted">{esc(s.get("native", ""))}</td>'
        "</tr>"
        for s in sites
    )
    return (
        "<h3>Growing allocation sites in the window</h3><table><tr><th>where</th><th>function</th><th>line</th>"
        "<th>growth</th><th>share</th><th>kept by · allocated at · native</th></tr>" + rows + "</table>"
    )


def _growth_card(check: Check, index: int, outcome: str, salt: str) -> str:
    from harness.reports.plots import growth_svg

    record = check.record
    cls, state = check_state(record, outcome)
    origin = "the test's marker" if record.get("source") == "marker" else "a check in the test body"
    parts = [
        f'<div class="card" id="check-{index}"><h3><span class="badge {cls}">{esc(state)}</span> '
        f"Growth of {esc(record.get('signal_words') or record.get('signal'))} "
        f'<span class="muted">({esc(origin)}, trace {esc(record.get("trace", ""))})</span></h3>',
        f'<p class="msg">{esc(record.get("message", ""))}</p>',
        _sites_table(record.get("sites") or ()),
    ]
    if check.trace is not None and len(check.trace):
        parts.append(growth_svg(check.trace, record, salt=f"{salt}-{index}"))
    else:
        parts.append('<p class="muted">(the trace of this check was not kept: no plot)</p>')
    parts.append("</div>")
    return "".join(parts)


def _peak_card(check: Check, index: int, outcome: str, salt: str) -> str:
    from harness.reports.plots import peak_svg

    r = check.record
    cls, state = check_state(r, outcome)
    payload = r.get("payload")
    facts = [
        ("baseline", format_size(float(r["baseline"]))),
        ("peak", format_size(float(r["baseline"]) + float(r["over_baseline"]))),
        ("over baseline", format_size(float(r["over_baseline"]))),
        ("payload", format_size(float(payload)) if payload else "not given"),
        ("limit", f"{r.get('limit_text')} ({format_size(float(r['limit']))} over baseline)"),
    ]
    if r.get("ratio") is not None:
        facts.append(("over baseline / payload", f"{float(r['ratio']):.2f}×"))
    facts.append(("measured by", str(r.get("method", ""))))
    if r.get("children_peak"):
        facts.append(("child processes' peak", format_size(float(r["children_peak"]))))
    sites = "".join(f'<li class="mono">{esc(s)}</li>' for s in r.get("sites") or ())
    return (
        f'<div class="card" id="check-{index}"><h3><span class="badge {cls}">{esc(state)}</span> '
        f"Peak during {esc(repr(r.get('label') or 'the block'))}</h3>"
        f'<p class="msg">{esc(r.get("message", ""))}</p>'
        '<dl class="facts">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
        + "</dl>"
        + (f"<h3>Allocation sites at the peak</h3><ul>{sites}</ul>" if sites else "")
        + peak_svg(r, salt=f"{salt}-{index}")
        + "</div>"
    )


def _release_card(check: Check, index: int, outcome: str) -> str:
    r = check.record
    cls, state = check_state(r, outcome)
    items = []
    for s in r.get("survivors") or ():
        chain = "".join(
            f'<li><span class="mono">{esc(h.get("edge", ""))}</span> → {esc(h.get("what", ""))}</li>'
            for h in s.get("chain") or ()
        )
        body = f'<ol class="chain">{chain}</ol>' if chain else f'<p class="muted">{esc(s.get("note", ""))}</p>'
        items.append(f"<li><b>{esc(s.get('label'))}</b> ({esc(s.get('type'))}) is still alive, held by:{body}</li>")
    first = str(r.get("message", "")).splitlines()[0] if r.get("message") else ""
    return (
        f'<div class="card" id="check-{index}"><h3><span class="badge {cls}">{esc(state)}</span> '
        f"Release of watched objects: {esc(r.get('released'))} of {esc(r.get('watched'))} released</h3>"
        f'<p class="msg">{esc(first)}</p>' + (f"<ul>{''.join(items)}</ul>" if items else "") + "</div>"
    )


def _banner(records: Sequence[Mapping[str, Any]], outcome: str, error: str) -> str:
    if not records:
        cls = {"failed": "fail", "xfailed": "xfail"}.get(outcome, "none")
        head = "No memory check on this test: recorded only"
        hint = (
            "Add @pytest.mark.leak(max_growth=..., after=...) or call harness.assert_no_linear_growth() "
            "to judge the trace."
        )
        return (
            f'<div class="verdict {cls}"><div class="head">{esc(head)}</div><p class="msg">{esc(error or hint)}</p>'
            "</div>"
        )
    failing = [r for r in records if not r.get("passed")]
    shown = failing[0] if failing else records[0]
    cls, state = check_state(shown, outcome)
    headline = str(shown.get("message", "")).split("\n", 1)[0]
    more = f" ({len(failing)} of {len(records)} checks failed)" if len(records) > 1 and failing else ""
    return (
        f'<div class="verdict {cls}"><div class="head"><span class="badge {cls}">{esc(state)}</span>{esc(more)} '
        f"{esc(headline)}</div>" + (f'<p class="msg">{esc(error)}</p>' if error else "") + "</div>"
    )


def _marker_checks(verdict: GrowthVerdict | None, trace: Trace | None) -> list[Check]:
    """The checks of a caller that passed only the marker's growth verdict (or none)."""
    from harness.verdicts.assertions import Check, growth_check_record

    if verdict is None:
        return []
    record = growth_check_record(verdict, trace)
    record["source"] = "marker"
    return [Check(record, trace)]


def _first_growth(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((r for r in records if r.get("kind") == "growth"), None)


def _spark(trace: Trace | None, records: Sequence[Mapping[str, Any]]) -> tuple[list[float], str]:
    """The index's sparkline values and their signal: the first growth check's, else RSS."""
    from harness.reports.plots import spark_values

    if trace is None or not len(trace):
        return [], ""
    growth = _first_growth(records)
    signal = str(growth["signal"]) if growth and growth["signal"] in trace.signals else "rss"
    return (spark_values(trace, signal) if signal in trace.signals else []), signal


def _linked_files(directory: Path, trace: Trace | None, extra: Mapping[str, Any]) -> dict[str, str]:
    """What the page links to: the ``*_file`` properties (flamegraph, memray capture), the trace."""
    files = {k: Path(str(v)).name for k, v in extra.items() if k.endswith("_file") and v}
    if trace is not None and (directory / "trace.jsonl").exists():
        files.setdefault("trace", "trace.jsonl")
    return files


def _regression_banner(compare: Mapping[str, Any] | None) -> str:
    # The test failed on its comparison even where every check passed: say that first.
    if compare is None or not compare.get("regressed"):
        return ""
    return (
        f'<div class="verdict fail"><div class="head"><span class="badge fail">REGRESSED</span> against '
        f"{esc(compare.get('against', 'the saved run'))}: {esc('; '.join(compare.get('failures') or []))}"
        "</div></div>"
    )


def _compare_line(compare: Mapping[str, Any] | None) -> str:
    if compare is None:
        return ""
    cls = "bad" if compare.get("regressed") else "ok"
    return (
        f'<p class="delta {cls}">Against {esc(compare.get("against", "the saved run"))}: '
        f"{esc(compare.get('line', ''))}</p>"
    )


def _check_cards(checks: Sequence[Check], outcome: str, salt: str) -> str:
    cards = []
    for i, check in enumerate(checks):
        kind = check.record.get("kind")
        if kind == "growth":
            cards.append(_growth_card(check, i, outcome, salt))
        elif kind == "peak":
            cards.append(_peak_card(check, i, outcome, salt))
        elif kind == "release":
            cards.append(_release_card(check, i, outcome))
    return "".join(cards)


def _files_list(files: Mapping[str, str]) -> str:
    items = "".join(
        f'<li><a href="{esc(fname)}">{esc(fname)}</a> <span class="muted">({esc(key)})</span></li>'
        for key, fname in files.items()
    )
    return (
        '<h2>Files</h2><ul><li><a href="verdict.json">verdict.json</a> — every figure of this page, as data</li>'
        f"{items}</ul>"
    )


def _trace_facts(facts: Mapping[str, Any], trace: Trace | None) -> str:
    events = ", ".join(f"{e['name']} at step {format_step(e['step'])}" for e in facts.get("events", []))
    first, last = format_step(facts.get("first_step") or 0), format_step(facts.get("last_step") or 0)
    rows = [
        ("trace", facts.get("name", "")),
        ("samples", f"{facts.get('samples', 0):,}"),
        ("steps", f"{first}–{last}"),
        ("events", events or "none"),
        ("signals", ", ".join(trace.signals) if trace is not None else ""),
    ]
    return (
        '<h2>Trace</h2><dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows) + "</dl>"
    )


def _page_html(
    nodeid: str,
    outcome: Outcome,
    checks: Sequence[Check],
    trace: Trace | None,
    *,
    spark: Sequence[float],
    files: Mapping[str, str],
    trace_facts: Mapping[str, Any],
    compare: Mapping[str, Any] | None,
    error: str,
    index_link: str | None,
) -> str:
    """The page, top-down: the verdict, one card per check, the files, the trace's facts."""
    from harness.reports.plots import sparkline, trace_svg

    records = [c.record for c in checks]
    body = [
        f'<div class="nav"><a href="{esc(index_link)}">← all tests of the run</a></div>' if index_link else "",
        f"<h1>{esc(nodeid)}</h1>",
        f"<div>{outcome_badge(outcome)} {sparkline(spark)}</div>",
        _regression_banner(compare),
        _banner(records, outcome, error),
        _compare_line(compare),
        _check_cards(checks, outcome, salt=nodeid),
    ]
    if trace is not None and len(trace) and _first_growth(records) is None:
        body.append('<div class="card"><h3>Recorded memory</h3>' + trace_svg(trace, salt=nodeid) + "</div>")
    body.append(_files_list(files))
    if trace_facts:
        body.append(_trace_facts(trace_facts, trace))
    return page(f"{nodeid} — leak harness", "".join(body))


def write_test_report(
    directory: Path,
    nodeid: str,
    outcome: Outcome,
    trace: Trace | None,
    verdict: GrowthVerdict | None,
    extra: Mapping[str, Any],
    *,
    checks: Sequence[Check] | None = None,
    figures: Mapping[str, Any] | None = None,
    compare: Mapping[str, Any] | None = None,
    error: str = "",
    index_link: str | None = None,
    name: str = "report.html",
) -> tuple[Path, Path]:
    """Write ``verdict.json`` and the page (``name``) into ``directory``; returns both paths.

    ``checks``: every verdict of the test (the marker's and the test body's, in order); when
    None, ``verdict`` (a growth verdict on ``trace``) is the only one. ``figures`` are the
    comparable figures (``compare.figures_from``), ``compare`` the delta against a saved run.
    """
    from harness.reports.compare import figures_from

    directory.mkdir(parents=True, exist_ok=True)
    if checks is None:
        checks = _marker_checks(verdict, trace)
    records = [c.record for c in checks]
    spark, spark_signal = _spark(trace, records)
    trace_facts: dict[str, Any] = trace.summary() if trace is not None and len(trace) else {}
    if figures is None:
        steps = int(trace.steps[-1]) if trace is not None and len(trace) else None
        figures = figures_from(records, trace_rise(trace), steps)
    files = _linked_files(directory, trace, extra)
    data: dict[str, Any] = {
        "test": nodeid,
        "outcome": outcome,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checks": records,
        "summaries": [check_summary(r) for r in records],
        "figures": dict(figures),
        "spark": spark,
        "spark_signal": spark_signal,
        "files": files,
        **extra,
    }
    growth_first = _first_growth(records)
    if growth_first is not None:
        # Kept for readers of the first format: the first growth verdict and its message.
        data["verdict"] = growth_first
        data["message"] = growth_first.get("message", "")
    if compare is not None:
        data["compare"] = dict(compare)
    if error:
        data["error"] = error
    if trace_facts:
        data["trace"] = trace_facts
    json_path = directory / "verdict.json"
    json_path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")

    html_path = directory / name
    html = _page_html(
        nodeid,
        outcome,
        checks,
        trace,
        spark=spark,
        files=files,
        trace_facts=trace_facts,
        compare=compare,
        error=error,
        index_link=index_link,
    )
    html_path.write_text(html, encoding="utf-8", errors="replace")  # no lone surrogate may stop a page
    return json_path, html_path
