"""Kept for imports of the first layout: the renderers live in their own modules now.

- ``test_page``: one test's verdict.json and report.html;
- ``index``: reports/index.html (the run and its history);
- ``plots``: the pages' static SVG plots, drawn by ``svgplot``;
- ``history``, ``storage``, ``compare``, ``trend``: runs over time.
"""

from __future__ import annotations

from harness.reports.test_page import write_test_report

__all__ = ["write_test_report"]
