"""The plugin's reports and runs over time: per-test pages, the index and its history,
``--leak-save``, ``--leak-compare`` and ``--leak-compare-fail``.

Per test:
- every check the test makes itself (``assert_no_linear_growth``, ``assert_peak_within``,
  ``track_release().assert_released()``) is collected while it runs
  (``harness.verdicts.assertions.collect_checks``), beside the marker's own verdicts;
- at the call report, its comparable figures are computed and, with ``--leak-compare``,
  judged against the saved run; a regression past ``--leak-compare-fail`` fails the test
  (in the worker that ran it, so it works under pytest-xdist);
- after teardown (once memray's flamegraph exists) its verdict.json and page are written.

Per run (in the controller only): the index with the run's time, commit, machine and
options, the runs log (append-only) and a snapshot of this run's pages under
``reports/runs/<id>/``, the saved run, and the trend page across saved runs. What a
worker computed travels on ``report.leak_harness`` (a plain dict: xdist serialises it).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessUsageError

if TYPE_CHECKING:
    from harness.plugin.session import LeakSession
    from harness.reports.compare import Comparison
    from harness.reports.page import Outcome
    from harness.verdicts.assertions import Check

CHECKS_KEY = pytest.StashKey["list[Check]"]()
STATE_KEY = pytest.StashKey[dict[str, Any]]()
#: The attribute of a call report that carries this module's per-test data.
ATTR = "leak_harness"


class ReportHooks:
    """Run state for reports and comparisons of one pytest session (hooks live here)."""

    def __init__(self, config: pytest.Config, session: LeakSession) -> None:
        self.config = config
        self.session = session
        self.settings = session.settings
        self.rows: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.started = time.time()
        self.comparison: Comparison | None = None
        self.compare_note = ""
        self.saved_as = ""
        self.saved_path: Path | None = None
        session.reports = self  # the session's makereport hook hands each call report on to call_report

    @property
    def compare_wanted(self) -> bool:
        return bool(self.settings.compare or self.settings.compare_fail)

    # -- session ------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.compare_wanted:
            return
        from harness.reports.compare import Comparison

        storage = self._storage()
        name = self.settings.compare or "auto"
        path = storage.find(name)
        if path is None:
            if name != "auto":
                saved = ", ".join(p.stem for p in storage.files()[-5:]) or "none"
                raise pytest.UsageError(
                    f"--leak-compare={name}: no saved run {name!r} in {storage.folder} (latest saved: {saved})"
                )
            self.compare_note = f"no saved run in {storage.folder} to compare with yet (first run)"
            return
        try:
            saved = storage.load(path)
        except HarnessUsageError as exc:
            raise pytest.UsageError(f"--leak-compare: {exc}") from None
        self.comparison = Comparison(path.stem, saved, tuple(self.settings.compare_fail or ()))

    def _storage(self) -> Any:
        from harness.reports.history import machine_id, machine_info
        from harness.reports.storage import Storage

        return Storage(self.settings.storage, machine_id(machine_info()))

    # -- per test -----------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        from harness.verdicts.assertions import collect_checks

        with collect_checks() as checks:
            item.stash[CHECKS_KEY] = checks
            return (yield)

    def call_report(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """The call report's figures and comparison (from ``LeakSession``'s makereport hook,
        after the verdict's properties: one hook, so the order cannot depend on registration)."""
        try:
            self._judge(item, report)
        except Exception as exc:  # a report must never take the test run down
            self.errors.append(f"{item.nodeid}: the leak report could not be prepared: {type(exc).__name__}: {exc}")

    def _judge(self, item: pytest.Item, report: pytest.TestReport) -> None:
        from harness.plugin.session import PEAK_KEY, PEAK_RESULT_KEY, RECORDER_KEY, VERDICT_KEY
        from harness.verdicts.assertions import Check, growth_check_record, peak_check_record

        rec = item.stash.get(RECORDER_KEY, None)
        trace = rec.trace if rec is not None else None
        checks: list[Check] = []
        verdict = item.stash.get(VERDICT_KEY, None)
        if verdict is not None:
            record = growth_check_record(verdict, trace)
            record["source"] = "marker"
            checks.append(Check(record, trace))
        peak = item.stash.get(PEAK_KEY, None)
        if peak is not None:
            record = peak_check_record(peak, item.stash.get(PEAK_RESULT_KEY, None))
            record["source"] = "marker"
            checks.append(Check(record))
        for check in item.stash.get(CHECKS_KEY, []):
            check.record.setdefault("source", "test")
            checks.append(check)
        if trace is None and not checks:
            return
        outcome = _outcome(report)
        from harness.reports.compare import figures_from
        from harness.reports.test_page import check_summary, trace_rise

        records = [c.record for c in checks]
        figures = figures_from(
            records, trace_rise(trace), int(trace.steps[-1]) if trace is not None and len(trace) else None
        )
        data: dict[str, Any] = {
            "outcome": outcome,
            "summaries": [check_summary(r) for r in records],
            "passes": [bool(r.get("passed")) for r in records],
            "figures": figures,
            "dir": str(self.session.test_dir(item.nodeid)),
        }
        if self.comparison is not None:
            delta = self.comparison.judge(item.nodeid, figures)
            data["compare"] = {**delta.as_dict(), "against": self.comparison.describe()}
            if delta.regressed and report.passed and not hasattr(report, "wasxfail"):
                report.outcome = "failed"
                report.longrepr = (
                    f"Memory regression against the saved run {self.comparison.describe()}:\n  "
                    + "\n  ".join(delta.failures)
                    + f"\n(figures: {delta.line()})"
                    "\nNext: open the test's page and the trend page in reports/; if the change is intended, "
                    "save a new baseline with --leak-save."
                )
                data["outcome"] = "failed"
        setattr(report, ATTR, _plain(data))
        item.stash[STATE_KEY] = {**data, "checks": checks, "trace": trace}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            state = item.stash.get(STATE_KEY, None)
            if state is not None and self.settings.reports:
                self._write_page(item, state)

    def _write_page(self, item: pytest.Item, state: dict[str, Any]) -> None:
        from harness.plugin.session import EXTRA_KEY, VERDICT_KEY
        from harness.reports.test_page import write_test_report

        directory = Path(state["dir"])
        extra: dict[str, Any] = item.stash.get(EXTRA_KEY, {})
        try:
            write_test_report(
                directory,
                item.nodeid,
                state["outcome"],
                state["trace"],
                item.stash.get(VERDICT_KEY, None),
                extra,
                checks=state["checks"],
                figures=state["figures"],
                compare=state.get("compare"),
                index_link="../index.html",
            )
        except OSError as exc:  # a full disk or a read-only report dir must not fail the test
            self.errors.append(f"{item.nodeid}: the leak report could not be written to {directory}: {exc}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, ATTR, None)
        if report.when != "call" or not isinstance(data, dict):
            return
        self.rows.append({"test": report.nodeid, **data})

    # -- end of the run -----------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return
        try:
            self._finish()
        except (OSError, HarnessUsageError) as exc:  # a report problem must not hide the test results
            self.session.index_error = f"reports: could not write the index or the saved run: {exc}"

    def _finish(self) -> None:
        from harness.reports import history

        if not self.rows and not self.settings.save:
            return
        started = datetime.fromtimestamp(self.started, timezone.utc)
        run_id = history.run_id(started)
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
        root = Path(self.config.rootpath)
        run: dict[str, Any] = {
            "id": run_id,
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(time.time() - self.started, 1),
            "commit": history.commit_info(root),
            "machine": history.machine_info(),
            "args": [str(a) for a in self.config.invocation_params.args],
            "options": {
                k: _shown(getattr(self.settings, k))
                for k, src in self.settings.sources.items()
                if src != "default" and hasattr(self.settings, k)
            },
            "counts": counts,
            "failed_tests": sorted(r["test"] for r in self.rows if r["outcome"] in ("failed", "xpassed")),
        }
        if self.comparison is not None:
            run["compared_to"] = self.comparison.against
        if self.settings.save:
            self._save(run)
            run["saved_as"] = self.saved_as
        if not self.settings.reports:
            return
        report_dir = self.settings.report_dir
        rows = [self._index_row(row, report_dir) for row in self.rows]
        trend_link = None
        if self.settings.save or self.compare_wanted:
            from harness.reports.trend import write_trend

            write_trend(self._storage(), report_dir / "trend.html", index_link="index.html")
            trend_link = "trend.html"
        self._snapshot(report_dir, run, rows)
        history.append_run(report_dir, run)
        from harness.reports.index import write_index

        write_index(report_dir, run, rows, history.read_runs(report_dir), trend_link=trend_link)

    def _index_row(self, row: dict[str, Any], report_dir: Path) -> dict[str, Any]:
        directory = Path(row["dir"])
        out = {k: row.get(k) for k in ("test", "outcome", "summaries", "passes", "compare")}
        try:
            data = json.loads((directory / "verdict.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        out["spark"] = data.get("spark") or []
        if (directory / "report.html").exists():
            try:
                out["link"] = str((directory / "report.html").relative_to(report_dir))
            except ValueError:
                out["link"] = (directory / "report.html").as_uri()
        return out

    def _snapshot(self, report_dir: Path, run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Copy this run's pages to runs/<id>/ and write its own index there: the next run
        rewrites reports/<test>/, the snapshot stays."""
        from harness.reports import history
        from harness.reports.index import write_index

        folder = report_dir / history.RUNS_DIR / run["id"]
        snap_rows = []
        for row in rows:
            row = dict(row)
            link = row.get("link")
            if link and not str(link).startswith("file:"):
                source = report_dir / str(link)
                target = folder / str(link)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                verdict = source.parent / "verdict.json"
                if verdict.exists():
                    shutil.copy2(verdict, target.parent / "verdict.json")
            snap_rows.append(row)
        write_index(report_dir, run, snap_rows, [], path=folder / "index.html", link_prefix="../../")

    def _save(self, run: dict[str, Any]) -> None:
        from harness.reports.history import machine_id

        storage = self._storage()
        name = self.settings.save
        if name == "auto":
            commit = str((run.get("commit") or {}).get("id", ""))[:8] or "nogit"
            dirty = "_uncommitted" if (run.get("commit") or {}).get("dirty") else ""
            name = f"{commit}_{run['started'][:19].replace('-', '').replace(':', '').replace('T', '_')}{dirty}"
        data = {
            "name": name,
            "datetime": run["started"],
            "commit": run.get("commit"),
            "machine": run.get("machine"),
            "machine_id": machine_id(run.get("machine") or {}),
            "args": run.get("args"),
            "tests": {row["test"]: {"outcome": row["outcome"], "figures": row["figures"]} for row in self.rows},
        }
        path = storage.save(data, name)
        self.saved_as = path.stem
        self.saved_path = path

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.compare_wanted:
            terminalreporter.section("memory compared with a saved run")
            if self.comparison is None:
                terminalreporter.write_line(self.compare_note or "nothing to compare with")
            else:
                # From the reports, not self.comparison.deltas: under xdist the workers judged.
                terminalreporter.write_line(f"against {self.comparison.describe()}")
                for row in sorted(self.rows, key=lambda r: str(r["test"])):
                    delta = row.get("compare") or {}
                    if delta:
                        terminalreporter.write_line(f"{row['test']}: {delta['line']}", red=bool(delta["regressed"]))
        if self.saved_as:
            terminalreporter.write_line(f"saved this run as {self.saved_path}")
        for error in self.errors:
            terminalreporter.write_line(error, red=True)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Only JSON types (xdist serialises the report; numpy scalars cannot cross)."""

    def convert(value: object) -> object:
        item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
        if callable(item):
            return item()
        tolist = getattr(value, "tolist", None)
        return tolist() if callable(tolist) else str(value)

    result: dict[str, Any] = json.loads(json.dumps(data, default=convert))
    return result


def _shown(value: object) -> str:
    """A setting as the user would write it (rules as their text, not their repr)."""
    if isinstance(value, tuple):
        return ",".join(str(getattr(v, "text", v)) for v in value)
    return str(value)


def _outcome(report: pytest.TestReport) -> Outcome:
    """passed / failed / xfailed / xpassed: a test that expects its failure says so."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    return report.outcome
