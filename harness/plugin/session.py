"""Run state of the plugin for one pytest session; the hooks live here and delegate.

Per test: the validated marker (``markers.parse_marker``), the settings that apply to it
(``settings.for_item``), the checks the marker asks for (growth on ``memory_trace``, peak
over the whole call), and the verdicts, which ride on ``report.user_properties`` so they
survive pytest-xdist and land in junit-xml. Words come from ``harness.verdicts.render``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessError, HarnessUsageError, LeakError
from harness.plugin.markers import LeakSpec, parse_marker
from harness.plugin.settings import ItemSettings, Settings, for_item

if TYPE_CHECKING:
    from harness.analysis.growth import GrowthVerdict
    from harness.analysis.peak import PeakVerdict  # noqa: F401
    from harness.plugin.reporting import ReportHooks
    from harness.recording.recorder import Recorder

SPEC_KEY = pytest.StashKey["tuple[LeakSpec | None, str | None]"]()
RECORDER_KEY = pytest.StashKey["Recorder"]()
VERDICT_KEY = pytest.StashKey["GrowthVerdict"]()
PEAK_KEY = pytest.StashKey["PeakVerdict"]()
#: The marker's PeakResult (its RSS timeline is drawn on the test's page).
PEAK_RESULT_KEY = pytest.StashKey[Any]()
MARKER_FAILED_KEY = pytest.StashKey[bool]()
EXTRA_KEY = pytest.StashKey[dict[str, Any]]()
OUTCOME_KEY = pytest.StashKey[str]()

#: Properties that say a test has something to show in the summary and the index.
_SHOWN = {"leak_trace", "leak_verdict", "leak_peak_verdict"}


def safe_name(nodeid: str) -> str:
    """A directory name for ``nodeid``, distinct for distinct node ids.

    A plain id ("test_x.py::test_a") keeps its readable name; one whose characters had to
    be replaced ("a/b", "a:b", "a b", "a?b" in a parameter id, a path) gets a short hash
    of the whole id, so no two tests (or two xdist workers) ever share a directory.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    lossless = re.fullmatch(r"[A-Za-z0-9_.-]+(::[A-Za-z0-9_.-]+)*", nodeid) is not None
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:10]
    if len(name) > 120:
        return name[:100] + "-" + digest
    return name if lossless else f"{name}-{digest}"


def leak_marker(item: pytest.Item) -> pytest.Mark | None:
    return item.get_closest_marker("leak") or item.get_closest_marker("soak")


class LeakSession:
    """Run state of the plugin for one pytest session (hooks live here)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.rows: list[dict[str, str]] = []
        self.index_error = ""
        #: The reports and comparisons of this run (``harness.plugin.reporting.ReportHooks``, which
        #: sets it): the makereport hook below hands each call report on to it.
        self.reports: ReportHooks | None = None

    # -- per-test state ---------------------------------------------------------------
    def spec_for(self, item: pytest.Item) -> tuple[LeakSpec | None, str | None]:
        """The item's validated marker, or the one-line error it produced (cached)."""
        cached = item.stash.get(SPEC_KEY, None)
        if cached is not None:
            return cached
        mark = leak_marker(item)
        result: tuple[LeakSpec | None, str | None] = (None, None)
        if mark is not None:
            try:
                result = (parse_marker(mark.name, mark.args, mark.kwargs), None)
            except HarnessUsageError as exc:
                result = (None, f"{item.nodeid}: {exc}")
        item.stash[SPEC_KEY] = result
        return result

    def item_settings(self, item: pytest.Item) -> ItemSettings:
        return for_item(self.spec_for(item)[0], self.settings)

    def test_dir(self, nodeid: str) -> Path:
        return self.settings.report_dir / safe_name(nodeid)

    # -- hooks ------------------------------------------------------------------------
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if "soak" in (config.getoption("markexpr", "") or ""):
            return
        deselected = [item for item in items if item.get_closest_marker("soak") is not None]
        if deselected:
            items[:] = [item for item in items if item.get_closest_marker("soak") is None]
            config.hook.pytest_deselected(items=deselected)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> object:
        """Run an ``isolate=True`` test in a fresh child pytest under its memory cap."""
        spec, error = self.spec_for(pyfuncitem)
        if error is not None or spec is None or not spec.isolate or self.config.getoption("leak_isolated_child"):
            return None
        from harness.plugin.isolated import run_in_child

        run_in_child(pyfuncitem, spec, self.settings.report_dir, self.test_dir(pyfuncitem.nodeid) / "trace.jsonl")
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        spec, error = self.spec_for(item)
        if error is not None:
            pytest.fail(error, pytrace=False)
        if spec is not None and spec.checks_growth and "memory_trace" not in getattr(item, "fixturenames", ()):
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.{spec.marker}(max_growth={spec.max_growth_text!r}) checks the test's "
                "memory trace, but the test does not use the memory_trace fixture: add it as an argument",
                pytrace=False,
            )
        meter = None
        if spec is not None and spec.checks_peak:
            from harness.recording.peak import PeakMeter

            meter = PeakMeter(item.name)
            meter.__enter__()
        threads_out = _ThreadsOutOfMemory() if self.config.getoption("leak_isolated_child") else None
        try:
            result = yield
        except HarnessUsageError as exc:
            # Bad input (an unknown event, an empty trace, a bad size) is one line, not a traceback.
            pytest.fail(f"{item.nodeid}: {exc}", pytrace=False)
        finally:
            if meter is not None:
                meter.__exit__(None, None, None)
            if threads_out is not None:
                threads_out.close()
        if threads_out is not None and threads_out.seen:
            # Under a cgroup the kernel kills the whole child when a thread runs out; under
            # RLIMIT_DATA the thread's MemoryError only reached threading.excepthook (a
            # warning): the test ran out of memory all the same (the report hook gives the
            # reserve back, as for the test's own MemoryError).
            raise MemoryError(threads_out.seen[0])
        if meter is not None and spec is not None:
            self._check_peak(item, spec, meter.result)
        rec = item.stash.get(RECORDER_KEY, None)
        if spec is not None and spec.checks_growth and rec is not None:
            self._check_growth(item, spec, rec)
        return result

    def _check_growth(self, item: pytest.Item, spec: LeakSpec, rec: Recorder) -> None:
        from harness.analysis.growth import growth_verdict
        from harness.errors import GrowthError

        try:
            rec.stop()
        except HarnessError as exc:  # the file failed; the trace in memory is complete: judge it
            item.user_properties.append(("leak_trace_file_error", str(exc)))
        try:
            verdict = growth_verdict(
                rec.trace,
                max_growth=spec.max_growth_text,
                after=spec.after,
                signal=spec.signal,
                settle=spec.settle,
                budget=self.item_settings(item).budget,
                # A soak that looked along the way spent alpha: its final look is stricter.
                confidence=max(spec.confidence, float(rec.trace.meta.get("soak_final_confidence", 0.0))),
                source=f"@pytest.mark.{spec.marker}",
            )
        except HarnessUsageError as exc:
            pytest.fail(f"{item.nodeid}: @pytest.mark.{spec.marker}: {exc}", pytrace=False)
        message = None
        if not verdict.passed:
            verdict, message = self._with_sites(item, spec, rec, verdict)
        item.stash[VERDICT_KEY] = verdict
        if not verdict.passed:
            item.stash[MARKER_FAILED_KEY] = True
            raise GrowthError(message or verdict.message(), verdict)
        if verdict.retention:
            from harness.verdicts.assertions import warn_retention

            warn_retention(verdict)

    def _with_sites(
        self, item: pytest.Item, spec: LeakSpec, rec: Recorder, verdict: GrowthVerdict
    ) -> tuple[GrowthVerdict, str | None]:
        """A failed growth check gets its allocation sites: from this run (``--leak-where=always``)
        or, in ``auto`` mode, from one rerun of the test body with site tracking."""
        from harness.plugin.where import flamegraph_properties, rerun_with_sites

        extra = item.stash.setdefault(EXTRA_KEY, {})
        if verdict.sites or self.settings.where != "auto" or spec.isolate:
            extra.update(flamegraph_properties(rec))
            return verdict, None
        rerun = rerun_with_sites(item, self.test_dir(item.nodeid), self.item_settings(item), rec, verdict)
        extra.update(rerun.properties)
        return rerun.verdict, rerun.message

    def _check_peak(self, item: pytest.Item, spec: LeakSpec, result: Any) -> None:
        from harness.analysis.peak import peak_verdict
        from harness.errors import PeakError

        verdict = peak_verdict(result, spec.max_peak_text, spec.payload, source=f"@pytest.mark.{spec.marker}")
        item.stash[PEAK_KEY] = verdict
        item.stash[PEAK_RESULT_KEY] = result
        if not verdict.passed:
            item.stash[MARKER_FAILED_KEY] = True
            raise PeakError(verdict.message(), verdict)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        if call.excinfo is not None and self.config.getoption("leak_isolated_child"):
            from harness.isolation import reserve
            from harness.isolation.child import ran_out_of_memory

            if ran_out_of_memory(call.excinfo.value):
                reserve.release()  # room under the cap to format the failure and write the report
        report = yield
        if call.when != "call":
            return report
        item.stash[OUTCOME_KEY] = report.outcome
        if (
            item.stash.get(MARKER_FAILED_KEY, False)
            and call.excinfo is not None
            and call.excinfo.errisinstance(LeakError)
        ):
            # The verdict is the whole story; the hook's own traceback is noise.
            report.longrepr = f"{call.excinfo.typename}: {call.excinfo.value}"
        props = self._properties(item)
        # The call report gets them for the summary; the item's list carries them into the
        # teardown report, which junit-xml writes as <properties>.
        report.user_properties.extend(props)
        item.user_properties.extend(props)
        if self.reports is not None:
            # One hook for the call report, in this order: the verdict's properties, then
            # the figures and the comparison with a saved run (which may fail the test).
            self.reports.call_report(item, report)
        return report

    def _properties(self, item: pytest.Item) -> list[tuple[str, object]]:
        from harness.verdicts.render import growth_properties, growth_summary, peak_properties

        props: list[tuple[str, object]] = []
        peak = item.stash.get(PEAK_KEY, None)
        if peak is not None:
            props += peak_properties(peak)
        rec = item.stash.get(RECORDER_KEY, None)
        if rec is None:
            return props
        if rec.path is not None:
            props.append(("leak_trace", str(rec.path)))
        if self.settings.reports:
            props.append(("leak_report", str(self.test_dir(item.nodeid) / "report.html")))
        verdict = item.stash.get(VERDICT_KEY, None)
        if verdict is not None:
            props += growth_properties(verdict)
        own = growth_summary(verdict) if verdict is not None else None
        checks = [c for c in rec.trace.meta.get("checks", []) if c != own]
        if checks:
            props.append(("leak_checks", " | ".join(f"in test: {c}" for c in checks)))
        extra = item.stash.get(EXTRA_KEY, {})
        if verdict is not None and "leak_top_site" not in extra:  # --leak-where=always: this run's sites
            from harness.plugin.where import flamegraph_properties, site_properties

            extra.update(site_properties(verdict))
            extra.update({k: v for k, v in flamegraph_properties(rec).items() if k not in extra})
        props += list(extra.items())
        return props

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        props = {str(k): str(v) for k, v in report.user_properties}
        if not _SHOWN & set(props):
            return
        parts = [props[k] for k in ("leak_summary", "leak_checks") if k in props]
        if "leak_top_site" in props:
            parts.append(f"top site {props['leak_top_site']}")
        if "leak_peak_verdict" in props:
            parts.append(
                f"PEAK {props['leak_peak_verdict'].upper()} {props['leak_peak_over_baseline']} over baseline; "
                f"limit {props['leak_peak_limit']}"
            )
        self.rows.append(
            {
                "test": report.nodeid,
                "outcome": report.outcome,
                "summary": " | ".join(parts),
                "report": str(props.get("leak_report", "")),
            }
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        terminalreporter.section("memory leak harness")
        for row in sorted(self.rows, key=lambda r: r["test"]):
            line = row["summary"] or f"recorded (no growth limit) [{row['outcome']}]"
            terminalreporter.write_line(f"{row['test']}: {line}")
        if self.index_error:
            terminalreporter.write_line(self.index_error, red=True)
        elif self.settings.reports:
            terminalreporter.write_line(f"reports: {self.settings.report_dir / 'index.html'}")

    # reports/index.html, the run history, --leak-save and --leak-compare: harness.plugin.reporting


class _ThreadsOutOfMemory:
    """While installed: notes a thread's allocation failure (``MemoryError``, or an error
    whose text reads as one), then hands the exception on to the previous excepthook."""

    def __init__(self) -> None:
        import threading

        self.seen: list[str] = []
        self._previous = threading.excepthook
        threading.excepthook = self._hook

    def _hook(self, args: Any) -> None:
        from harness.isolation.child import ran_out_of_memory

        if ran_out_of_memory(args.exc_value):
            name = args.thread.name if args.thread is not None else "a thread"
            self.seen.append(f"{type(args.exc_value).__name__} in thread {name!r}: {args.exc_value}".rstrip(": "))
        self._previous(args)

    def close(self) -> None:
        import threading

        if threading.excepthook == self._hook:
            threading.excepthook = self._previous
