"""The pytest plugin: a thin adapter over the recorder, analysis and reports.

- markers ``leak`` and ``soak`` (soak is deselected unless ``-m`` names it);
- fixture ``memory_trace``: a Recorder bound to the test, streaming its trace to
  ``<report dir>/<test>/trace.jsonl``;
- a ``leak`` marker's ``max_growth`` is checked on that trace when the test body returns,
  as part of the test call, so a leak is a test failure and not a teardown error;
- results ride on ``report.user_properties``: they survive pytest-xdist and appear as
  junit-xml properties and in the terminal summary.

Heavy modules (numpy, scipy, memray, torch) are imported only when a test opts in, so
``pytest --help`` stays fast. Option names all start with ``--leak-`` so that
pytest-memray (``--memray``, ``--memray-bin-path``, ...) loads side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessUsageError, LeakError
from harness.plugin.markers import MARKERS, LeakSpec, parse_marker
from harness.plugin.settings import OPTIONS, Settings, resolve

if TYPE_CHECKING:
    from harness.analysis.growth import GrowthVerdict, PeakVerdict  # noqa: F401 (named in StashKey strings)
    from harness.recording.recorder import Recorder

SESSION_KEY = pytest.StashKey["LeakSession"]()
SPEC_KEY = pytest.StashKey["tuple[LeakSpec | None, str | None]"]()
RECORDER_KEY = pytest.StashKey["Recorder"]()
VERDICT_KEY = pytest.StashKey["GrowthVerdict"]()
PEAK_KEY = pytest.StashKey["PeakVerdict"]()
MARKER_FAILED_KEY = pytest.StashKey[bool]()
EXTRA_KEY = pytest.StashKey[dict[str, Any]]()
OUTCOME_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leak-harness", "memory-leak regression harness")
    group.addoption(
        "--leak-isolated-child",
        action="store_true",
        default=False,
        dest="leak_isolated_child",
        help=argparse.SUPPRESS,  # internal: marks the child pytest of an isolate=True test
    )
    for option in OPTIONS:
        if option.kind == "bool":
            group.addoption(
                option.flag,
                action="store",
                nargs="?",
                const="yes",
                default=None,
                dest=option.dest,
                metavar="yes|no",
                help=option.help,
            )
        else:
            group.addoption(option.flag, action="store", default=None, dest=option.dest, help=option.help)
        parser.addini(option.ini, option.help, type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    try:
        settings = resolve(
            cli=lambda dest: config.getoption(dest, None),
            ini=lambda key: config.getini(key),
            rootdir=Path(config.rootpath),
        )
    except HarnessUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    session = LeakSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "leak_harness_session")


def _safe_name(nodeid: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    if len(name) > 120:
        name = name[:100] + "-" + hashlib.sha1(nodeid.encode()).hexdigest()[:10]
    return name


def _leak_marker(item: pytest.Item) -> pytest.Mark | None:
    return item.get_closest_marker("leak") or item.get_closest_marker("soak")


class LeakSession:
    """Run state of the plugin for one pytest session (hooks live here)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.rows: list[dict[str, str]] = []

    # -- per-test state ---------------------------------------------------------------
    def spec_for(self, item: pytest.Item) -> tuple[LeakSpec | None, str | None]:
        """The item's validated marker, or the one-line error it produced (cached)."""
        cached = item.stash.get(SPEC_KEY, None)
        if cached is not None:
            return cached
        mark = _leak_marker(item)
        result: tuple[LeakSpec | None, str | None]
        if mark is None:
            result = (None, None)
        else:
            try:
                result = (parse_marker(mark.name, mark.args, mark.kwargs), None)
            except HarnessUsageError as exc:
                result = (None, f"{item.nodeid}: {exc}")
        item.stash[SPEC_KEY] = result
        return result

    def test_dir(self, nodeid: str) -> Path:
        return self.settings.report_dir / _safe_name(nodeid)

    # -- hooks ------------------------------------------------------------------------
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        markexpr = config.getoption("markexpr", "") or ""
        if "soak" in markexpr:
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
        import dataclasses
        import tempfile

        from harness.isolation.run import run_isolated
        from harness.recording.trace import Trace

        work = Path(tempfile.mkdtemp(prefix="harness-isolated-test-"))
        args = [
            pyfuncitem.nodeid,
            "--leak-isolated-child",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--leak-report-dir={self.settings.report_dir}",
            "--rootdir",
            str(self.config.rootpath),
        ]
        result = run_isolated(
            "harness.isolation.pytest_child:run",
            {"args": args, "junit": str(work / "junit.xml")},
            memory_limit=spec.memory_limit,
            timeout=spec.timeout if spec.timeout is not None else "600 s",
            trace_path=work / "wrapper.jsonl",
            cwd=self.config.rootpath,
            output=work / "child-output.txt",  # the child pytest's own output stays out of ours
        )
        # The test's own trace (its memory_trace, streamed by the child) tells where it died.
        test_trace = self.test_dir(pyfuncitem.nodeid) / "trace.jsonl"
        trace = Trace.load(test_trace) if test_trace.exists() else None
        result = dataclasses.replace(
            result,
            target=pyfuncitem.name,
            trace=trace,
            last_step=int(trace.steps[-1]) if trace is not None and len(trace) else None,
        )
        value = result.value if isinstance(result.value, dict) else {}
        failure = str(value.get("failure") or "")
        if result.outcome == "ok" and value.get("exitcode") != 0 and _is_allocation_failure(failure):
            # Under RLIMIT_DATA the cap shows up as a MemoryError inside the child's test.
            result = dataclasses.replace(result, outcome="oom", error=failure.splitlines()[0])
        pyfuncitem.user_properties.append(("leak_isolated_outcome", result.outcome))
        pyfuncitem.user_properties.append(("leak_isolated_cap", result.cap))
        pyfuncitem.user_properties.append(("leak_isolated_output_file", str(work / "child-output.txt")))
        if result.outcome == "ok":
            if value.get("exitcode") == 0:
                return True
            pytest.fail(f"{pyfuncitem.nodeid} (isolated): {failure or 'failed in the child'}", pytrace=False)
        pytest.fail(f"{pyfuncitem.nodeid} (isolated): {result.message()}", pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        spec, error = self.spec_for(item)
        if error is not None:
            pytest.fail(error, pytrace=False)
        uses_trace = "memory_trace" in getattr(item, "fixturenames", ())
        if spec is not None and spec.checks_growth and not uses_trace:
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
        try:
            result = yield
        except HarnessUsageError as exc:
            # Bad input (an unknown event, an empty trace, a bad size) is one line, not a traceback.
            pytest.fail(f"{item.nodeid}: {exc}", pytrace=False)
        finally:
            if meter is not None:
                meter.__exit__(None, None, None)
        if meter is not None and spec is not None and spec.max_peak is not None:
            self._check_peak(item, spec, meter.result)
        rec = item.stash.get(RECORDER_KEY, None)
        if spec is not None and spec.checks_growth and rec is not None:
            from harness.analysis.growth import growth_verdict
            from harness.errors import GrowthError

            rec.stop()
            try:
                verdict = growth_verdict(
                    rec.trace,
                    max_growth=spec.max_growth,
                    after=spec.after,
                    signal=spec.signal,
                    settle=spec.settle,
                    budget=spec.budget if spec.budget is not None else self.settings.budget,
                    confidence=spec.confidence,
                    source=f"@pytest.mark.{spec.marker}",
                )
            except HarnessUsageError as exc:
                pytest.fail(f"{item.nodeid}: @pytest.mark.{spec.marker}: {exc}", pytrace=False)
            item.stash[VERDICT_KEY] = verdict
            if not verdict.passed:
                item.stash[MARKER_FAILED_KEY] = True
                raise GrowthError(verdict.message())
        return result

    def _check_peak(self, item: pytest.Item, spec: LeakSpec, result: Any) -> None:
        from harness.analysis.growth import peak_verdict
        from harness.errors import PeakError

        verdict = peak_verdict(result, spec.max_peak_text, spec.payload, source=f"@pytest.mark.{spec.marker}")
        item.stash[PEAK_KEY] = verdict
        if not verdict.passed:
            item.stash[MARKER_FAILED_KEY] = True
            raise PeakError(verdict.message())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when != "call":
            return report
        item.stash[OUTCOME_KEY] = report.outcome
        failed_here = item.stash.get(MARKER_FAILED_KEY, False) and call.excinfo is not None
        if failed_here and call.excinfo is not None and call.excinfo.errisinstance(LeakError):
            # The verdict is the whole story; the hook's own traceback is noise.
            report.longrepr = f"{call.excinfo.typename}: {call.excinfo.value}"
        props: list[tuple[str, object]] = []
        peak = item.stash.get(PEAK_KEY, None)
        if peak is not None:
            from harness.units import format_size

            props += [
                ("leak_peak_verdict", "pass" if peak.passed else "fail"),
                ("leak_peak_over_baseline", format_size(peak.over_baseline)),
                ("leak_peak_limit", format_size(peak.limit)),
            ]
        rec = item.stash.get(RECORDER_KEY, None)
        if rec is None:
            report.user_properties.extend(props)
            item.user_properties.extend(props)
            return report
        directory = self.test_dir(item.nodeid)
        if rec.path is not None:
            props.append(("leak_trace", str(rec.path)))
        if self.settings.reports:
            props.append(("leak_report", str(directory / "report.html")))
        verdict = item.stash.get(VERDICT_KEY, None)
        if verdict is not None:
            from harness.units import format_rate, format_rate_short, format_step

            g, w = verdict.growth, verdict.window
            props += [
                ("leak_verdict", "pass" if verdict.passed else "fail"),
                ("leak_summary", verdict.summary_line()),
                ("leak_signal", verdict.signal),
                ("leak_slope", format_rate(g.slope)),
                ("leak_interval", f"{format_rate_short(g.low)}–{format_rate_short(g.high)}/1k steps"),
                ("leak_limit", format_rate(verdict.limit)),
                (
                    "leak_window",
                    f"steps {format_step(w.start_step)}–{format_step(w.end_step)}"
                    + (f" after {w.after!r}" if w.after else ""),
                ),
                ("leak_slope_bytes_per_step", f"{g.slope:.6g}"),
            ]
        checks = [c for c in rec.trace.meta.get("checks", []) if verdict is None or c != verdict.summary_line()]
        if checks:
            props.append(("leak_checks", " | ".join(f"in test: {c}" for c in checks)))
        for key, value in item.stash.get(EXTRA_KEY, {}).items():
            props.append((key, value))
        # The call report gets them for the summary; the item's list carries them into the
        # teardown report, which junit-xml writes as <properties>.
        report.user_properties.extend(props)
        item.user_properties.extend(props)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        props = {str(k): str(v) for k, v in report.user_properties}
        if not {"leak_trace", "leak_verdict", "leak_peak_verdict"} & set(props):
            return
        parts = []
        if "leak_summary" in props:
            parts.append(props["leak_summary"])
        if "leak_checks" in props:
            parts.append(props["leak_checks"])
        if "leak_peak_verdict" in props:
            parts.append(
                f"PEAK {props['leak_peak_verdict'].upper()} {props['leak_peak_over_baseline']} over baseline; "
                f"limit {props['leak_peak_limit']}"
            )
        summary = " | ".join(parts)
        self.rows.append(
            {
                "test": report.nodeid,
                "outcome": report.outcome,
                "summary": summary,
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
        if self.settings.reports:
            terminalreporter.write_line(f"reports: {self.settings.report_dir / 'index.html'}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or not self.rows or not self.settings.reports:
            return
        from harness.reports.html import write_index

        write_index(self.settings.report_dir, self.rows)


def _is_allocation_failure(text: str) -> bool:
    from harness.isolation.child import _OOM_TEXT

    lowered = text.lower()
    return "memoryerror" in lowered or any(marker in lowered for marker in _OOM_TEXT)


def _memray_blocked(config: pytest.Config) -> str | None:
    if getattr(config.option, "memray", False):
        return "memray capture skipped: pytest-memray (--memray) is already tracking this test"
    return None


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> Any:
    """The soak budget from --soak-minutes / --soak-steps (ini soak_minutes, soak_steps).

    ``for step in soak.steps(memory_trace, after="eviction"):`` runs until the budget is
    spent and writes progress lines (step, RSS, current slope) to the terminal.
    """
    from harness.recording.soak import SoakBudget

    settings = request.config.stash[SESSION_KEY].settings
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        # Progress must reach the CI log while the test runs, past output capture.
        if reporter is None:
            print(line)
        elif capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            reporter.write_line(line)

    return SoakBudget(
        minutes=settings.soak_minutes,
        max_steps=int(settings.soak_steps) if settings.soak_steps else None,
        write=write,
    )


@pytest.fixture
def memory_trace(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """A Recorder bound to this test; its trace and report land in the report directory.

    Drive your loop with ``for step in memory_trace.steps(n):``; declare held memory with
    ``memory_trace.account(buffer=...)`` and events with ``memory_trace.mark("eviction")``.
    A ``@pytest.mark.leak(max_growth=..., after=...)`` on the test is checked on this trace.
    """
    from harness.probes.memray import memray_capture, memray_flamegraph
    from harness.recording.recorder import Recorder

    session: LeakSession = request.config.stash[SESSION_KEY]
    item = request.node
    spec, _error = session.spec_for(item)
    spec = spec or LeakSpec(marker="leak")
    directory = session.test_dir(item.nodeid)
    rec = Recorder(
        item.nodeid,
        directory / "trace.jsonl",
        heap=spec.heap,
        every=spec.every,
        progress=False,
        meta={"test": item.nodeid},
    )
    item.stash[RECORDER_KEY] = rec
    extra: dict[str, Any] = {}
    item.stash[EXTRA_KEY] = extra
    capture: Path | None = None
    with ExitStack() as stack:
        if spec.memray or session.settings.memray:
            blocked = _memray_blocked(request.config)
            if blocked:
                extra["leak_memray"] = blocked
            else:
                capture = directory / "memray.bin"
                stack.enter_context(memray_capture(capture))
        stack.callback(rec.stop)
        rec.start()
        yield rec
    if capture is not None:
        result = memray_flamegraph(capture)
        late = {"leak_memray_file": str(capture)}
        if result.flamegraph is not None:
            late["leak_flamegraph_file"] = str(result.flamegraph)
        else:
            late["leak_memray"] = f"flamegraph failed: {result.error}"
        extra.update(late)
        item.user_properties.extend(late.items())
    if session.settings.reports:
        from harness.reports.html import write_test_report

        write_test_report(
            directory,
            item.nodeid,
            item.stash.get(OUTCOME_KEY, "unknown"),
            rec.trace,
            item.stash.get(VERDICT_KEY, None),
            extra,
        )
