"""``reports/index.html``: every test of the run, then the runs before it, newest first.

Each row: the test (linked to its page), its outcome and verdicts coloured (a test that
expected its failure says so), a sparkline of its judged signal, and, when the run was
compared with a saved one, the per-test delta. The header names the run: when, which
commit, which machine, which options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.reports.page import OUTCOMES, esc, outcome_badge, page
from harness.units import format_size


def _state_badge(summary: str, outcome: str, passed: bool) -> str:
    """A check's line: a coloured state, then its figures as plain text (which wraps)."""
    words = summary.replace("PASS ", "", 1).replace("FAIL ", "", 1)
    if passed:
        badge = '<span class="badge pass">PASS</span>'
    elif outcome in ("passed", "xfailed"):
        badge = '<span class="badge xfail" title="the test expected this failure">FAIL (expected)</span>'
    else:
        badge = '<span class="badge fail">FAIL</span>'
    return f'<div class="check">{badge} {esc(words)}</div>'


def _run_facts(run: Mapping[str, Any]) -> str:
    commit = run.get("commit") or {}
    machine = run.get("machine") or {}
    counts = run.get("counts") or {}
    commit_text = (
        f"{str(commit.get('id', ''))[:12]} on {commit.get('branch', '?')}"
        + (" (with uncommitted changes)" if commit.get("dirty") else "")
        if commit
        else "not in git"
    )
    memory = f", {format_size(float(machine['memory']))} memory" if machine.get("memory") else ""
    facts = [
        ("run", f"{str(run.get('started', ''))[:19].replace('T', ' ')} UTC, {float(run.get('duration_s', 0)):.1f} s"),
        ("commit", commit_text),
        (
            "machine",
            f"{machine.get('node', '?')}: {machine.get('system', '')} {machine.get('machine', '')}, "
            f"{machine.get('cpus', '?')} CPUs{memory}, Python {machine.get('python', '')}",
        ),
        ("command", " ".join(str(a) for a in run.get("args") or []) or "pytest"),
        ("options", ", ".join(f"{k}={v}" for k, v in (run.get("options") or {}).items()) or "defaults"),
        ("tests", ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none"),
    ]
    if run.get("saved_as"):
        facts.append(("saved as", str(run["saved_as"])))
    if run.get("compared_to"):
        facts.append(("compared with", str(run["compared_to"])))
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>"


def _test_rows(rows: Sequence[Mapping[str, Any]], compared: bool) -> str:
    from harness.reports.plots import sparkline

    out = []
    order = {"failed": 0, "xpassed": 1, "error": 1, "xfailed": 2, "passed": 3}
    for row in sorted(rows, key=lambda r: (order.get(str(r.get("outcome")), 4), str(r.get("test")))):
        outcome = str(row.get("outcome", ""))
        link = row.get("link")
        name = f'<a href="{esc(link)}">{esc(row["test"])}</a>' if link else esc(row["test"])
        summaries = [str(s) for s in row.get("summaries") or []]
        passes = [bool(p) for p in row.get("passes") or []]
        verdicts = (
            "<br>".join(_state_badge(s, outcome, p) for s, p in zip(summaries, passes, strict=True))
            or '<span class="muted">recorded only</span>'
        )
        failing = not all(passes)
        colour = "#cf222e" if failing and outcome == "failed" else "#1a7f37" if not failing else "#9a6700"
        spark = sparkline(row.get("spark") or [], colour)
        cells = [
            f'<td class="test">{name}</td>',
            f"<td>{outcome_badge(outcome)}</td>",
            f"<td>{verdicts}</td>",
            f"<td>{spark}</td>",
        ]
        if compared:
            cells.append(_delta_cell(row.get("compare") or {}))
        out.append("<tr>" + "".join(cells) + "</tr>")
    head = "<tr><th>test</th><th>outcome</th><th>verdicts</th><th>memory</th>"
    head += "<th>against the saved run</th></tr>" if compared else "</tr>"
    return "<table>" + head + "".join(out) + "</table>"


def _delta_cell(delta: Mapping[str, Any]) -> str:
    """The change of each figure on its own line; the rules it broke first, in red."""
    if not delta:
        return '<td class="delta ok">—</td>'
    lines = [f'<div class="delta bad">REGRESSED: {esc(f)}</div>' for f in delta.get("failures") or []]
    changes = delta.get("changes") or []
    if changes:
        from harness.reports.compare import Change

        lines += [
            f'<div class="delta ok">{esc(Change(c["figure"], c["old"], c["new"]).words())}</div>' for c in changes
        ]
    elif delta.get("note"):
        lines.append(f'<div class="delta ok">{esc(delta["note"])}</div>')
    return f'<td class="deltas">{"".join(lines)}</td>'


def _history(history: Sequence[Mapping[str, Any]], link_prefix: str, current: str) -> str:
    if not history:
        return '<p class="muted">No earlier runs in this report directory.</p>'
    rows = []
    for run in history:
        counts = run.get("counts") or {}
        failed = int(counts.get("failed", 0)) + int(counts.get("xpassed", 0))
        badge = (
            f'<span class="badge fail">{failed} failed</span>'
            if failed
            else '<span class="badge pass">all passed</span>'
        )
        commit = str((run.get("commit") or {}).get("id", ""))[:10] or "—"
        when = str(run.get("started", ""))[:19].replace("T", " ")
        this = run.get("id") == current
        label = f"{esc(when)}{' (this run)' if this else ''}"
        link = f'<a href="{esc(link_prefix)}runs/{esc(run["id"])}/index.html">{label}</a>'
        fails = ", ".join(str(t) for t in run.get("failed_tests") or [])[:300]
        counts_text = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        extra = " ".join(
            filter(
                None,
                [
                    f"saved {run['saved_as']}" if run.get("saved_as") else "",
                    f"vs {run['compared_to']}" if run.get("compared_to") else "",
                ],
            )
        )
        rows.append(
            f"<tr><td>{link}</td><td class='mono'>{esc(commit)}</td><td>{badge}</td><td>{esc(counts_text)}</td>"
            f"<td class='test'>{esc(fails)}</td><td>{esc(extra)}</td></tr>"
        )
    return (
        "<table><tr><th>run (UTC)</th><th>commit</th><th>result</th><th>tests</th><th>failed</th>"
        "<th>saved / compared</th></tr>" + "".join(rows) + "</table>"
    )


def write_index(
    report_dir: Path,
    run: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    history: Sequence[Mapping[str, Any]] = (),
    *,
    path: Path | None = None,
    link_prefix: str = "",
    trend_link: str | None = None,
) -> Path:
    """Write the index of one run (``path``, default ``report_dir/index.html``).

    ``rows``: per test ``test``, ``outcome``, ``summaries`` and ``passes`` (one line and one
    state per check), ``link`` (relative to the
    page), ``spark``, ``compare``. ``history``: past runs (``history.read_runs``), newest
    first; ``link_prefix`` leads from the page to ``report_dir``.
    """
    path = path or report_dir / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    compared = any(row.get("compare") for row in rows)
    counts = run.get("counts") or {}
    bad = int(counts.get("failed", 0)) + int(counts.get("xpassed", 0))
    cls = "fail" if bad else "pass"
    head = f"{bad} of {sum(int(v) for v in counts.values())} tests failed" if bad else "all tests passed"
    regressions = [r["test"] for r in rows if (r.get("compare") or {}).get("regressed")]
    body = [
        "<h1>Leak harness: memory tests of this run</h1>",
        f'<div class="verdict {cls}"><div class="head">{esc(head)}'
        + (f"; {len(regressions)} regressed against the saved run" if regressions else "")
        + "</div></div>",
        _run_facts(run),
    ]
    if trend_link:
        body.append(f'<p><a href="{esc(trend_link)}">Trend across saved runs →</a></p>')
    body.append("<h2>Tests</h2>")
    body.append(_test_rows(rows, compared) if rows else '<p class="muted">No memory tests ran.</p>')
    body.append(
        '<p class="muted">Outcomes: '
        + ", ".join(f"{k} = {v[1]}" for k, v in OUTCOMES.items() if k in ("xfailed", "xpassed"))
        + "; a verdict marked (expected) failed inside a test that expected it (pytest.raises or xfail).</p>"
    )
    body.append("<h2>Run history (newest first)</h2>")
    body.append(_history(history, link_prefix, str(run.get("id", ""))))
    path.write_text(page("leak harness: run index", "".join(body)), encoding="utf-8", errors="replace")
    return path
