"""The page shell every report shares: one self-contained HTML file, no script, no fetch.

Styles are inline in ``<style>``; plots are inline SVG; nothing is loaded from anywhere,
so a page opened from a CI artifact with the network off renders exactly as here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from harness.reports.svgplot import esc as xml_esc

CSS = """
:root{--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--xfail:#9a6700;--xfail-bg:#fff8c5;
--muted:#57606a;--line:#d0d7de;--card:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,"DejaVu Sans",sans-serif;color:#1f2328;margin:0;
padding:1.2em 2em 3em;max-width:1180px}
h1{font-size:1.35em;margin:.2em 0 .4em;overflow-wrap:anywhere}
h2{font-size:1.1em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1em;margin:.2em 0 .4em}
a{color:#0969da}
.muted{color:var(--muted)}
.nav{font-size:.9em;margin-bottom:.6em}
.badge{display:inline-block;padding:.1em .55em;border-radius:1em;font-weight:600;font-size:.85em;white-space:nowrap;
border:1px solid transparent}
.badge.pass{color:var(--pass);background:var(--pass-bg);border-color:#aceebb}
.badge.fail{color:var(--fail);background:var(--fail-bg);border-color:#ffcecb}
.badge.xfail{color:var(--xfail);background:var(--xfail-bg);border-color:#eed888}
.badge.none{color:var(--muted);background:#eaeef2}
.verdict{border-left:6px solid var(--line);background:var(--card);padding:.7em 1em;margin:.8em 0;border-radius:4px}
.verdict.pass{border-color:var(--pass)}.verdict.fail{border-color:var(--fail)}.verdict.xfail{border-color:#d4a72c}
.verdict .head{font-size:1.08em;font-weight:600;margin-bottom:.3em}
.msg{white-space:pre-line;margin:.4em 0;overflow-wrap:anywhere}
.card{border:1px solid var(--line);border-radius:6px;padding:.8em 1em;margin:1em 0}
svg.plot{width:100%;height:auto;display:block;margin:.4em 0}
table{border-collapse:collapse;margin:.5em 0;width:100%}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;background:var(--card)}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.test{overflow-wrap:anywhere;min-width:14em;max-width:26em}
td.deltas{font-size:.85em;min-width:16em;max-width:24em}
.check{margin:.1em 0 .25em}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.4em 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
ol.chain{margin:.3em 0 .6em 1.2em;padding:0}ol.chain li{margin:.1em 0}
.delta.bad{color:var(--fail);font-weight:600}.delta.ok{color:var(--muted)}
"""


def esc(value: object) -> str:
    """Text for HTML: ``svgplot.esc`` of its string (control characters and lone surrogates
    shown as U+FFFD)."""
    return xml_esc(str(value))


#: A test's outcome as the reports show it: pytest's, with an expected failure told apart
#: (xfailed, xpassed), and "recorded" for a trace the CLI judged outside pytest.
Outcome = Literal["passed", "failed", "xfailed", "xpassed", "skipped", "recorded"]

#: outcome -> (badge class, words)
OUTCOMES: dict[str, tuple[str, str]] = {
    "passed": ("pass", "passed"),
    "failed": ("fail", "failed"),
    "xfailed": ("xfail", "expected to fail: failed (xfail)"),
    "xpassed": ("fail", "expected to fail, but passed (xpass)"),
    "skipped": ("none", "skipped"),
    "recorded": ("none", "recorded (not run by pytest)"),
}


def outcome_badge(outcome: str) -> str:
    cls, words = OUTCOMES.get(outcome, ("none", outcome))
    return f'<span class="badge {cls}">{esc(words)}</span>'


def check_state(record: Mapping[str, Any], outcome: str) -> tuple[str, str]:
    """(class, words) of one check's verdict, saying when a failure was the expected one."""
    if record.get("passed"):
        return "pass", "PASS"
    if outcome == "xfailed":
        return "xfail", "FAIL — expected (the test is marked xfail)"
    if outcome == "passed":
        return "xfail", "FAIL — expected: the test caught it and passed"
    return "fail", "FAIL"


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"
    )
