"""The trend page: every saved run of one machine, per test slope, level and peak over time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.reports.page import esc, page
from harness.reports.storage import Storage

#: Saved runs drawn at most (the newest): a year of nightlies stays readable.
MAX_RUNS = 60


def write_trend(storage: Storage, path: Path, *, index_link: str | None = None) -> Path:
    """Write the trend page of ``storage`` (one machine id) to ``path``."""
    from harness.reports.plots import trend_svg

    runs = list(storage.runs())[-MAX_RUNS:]
    tests: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for name, data in runs:
        for test, entry in (data.get("tests") or {}).items():
            tests.setdefault(test, []).append((name, entry.get("figures") or {}))
    body = []
    if index_link:
        body.append(f'<div class="nav"><a href="{esc(index_link)}">← the latest run</a></div>')
    body.append(f"<h1>Trend across saved runs: {esc(storage.machine_id)}</h1>")
    body.append(
        f'<p class="muted">{len(runs)} saved runs in {esc(storage.folder)} (oldest left). Slope: bytes per step '
        "in the steady window, with its 95% interval; level: the steady-state median of the judged signal; "
        "peak: a peak check's rise over baseline, else the highest RSS.</p>"
    )
    table = "".join(
        f"<tr><td class='mono'>{esc(name)}</td><td>{esc(str(d.get('datetime', ''))[:19].replace('T', ' '))}</td>"
        f"<td class='mono'>{esc(str((d.get('commit') or {}).get('id', ''))[:10])}</td>"
        f"<td>{len(d.get('tests') or {})}</td></tr>"
        for name, d in reversed(runs)
    )
    body.append("<h2>Saved runs (newest first)</h2>")
    body.append(f"<table><tr><th>run</th><th>saved (UTC)</th><th>commit</th><th>tests</th></tr>{table}</table>")
    body.append("<h2>Tests</h2>")
    if not tests:
        body.append('<p class="muted">No saved runs yet: run pytest with --leak-save.</p>')
    for i, (test, series) in enumerate(sorted(tests.items())):
        body.append(f'<div class="card"><h3>{esc(test)}</h3>{trend_svg(test, series, salt=f"trend-{i}")}</div>')
    path.parent.mkdir(parents=True, exist_ok=True)
    text = page(f"leak harness trend: {storage.machine_id}", "".join(body))
    path.write_text(text, encoding="utf-8", errors="replace")
    return path
