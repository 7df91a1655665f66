"""The pytest plugin: options, markers and fixtures; the hooks live in ``session.py``.

- markers ``leak`` and ``soak`` (soak is deselected unless ``-m`` names it);
- fixture ``memory_trace``: a Recorder bound to the test, streaming its trace to
  ``<report dir>/<test>/trace.jsonl``;
- a ``leak`` marker's ``max_growth`` is checked on that trace when the test body returns,
  as part of the test call, so a leak is a test failure and not a teardown error;
- results ride on ``report.user_properties``: they survive pytest-xdist and appear as
  junit-xml properties and in the terminal summary.

Loading this module imports nothing heavy (no numpy, scipy, psutil, memray or torch):
every project that merely has the plugin installed loads it. Option names all start with
``--leak-`` so that pytest-memray (``--memray``, ``--memray-bin-path``, ...) loads beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessUsageError
from harness.plugin.markers import MARKERS
from harness.plugin.settings import OPTIONS, resolve

if TYPE_CHECKING:
    from harness.plugin.session import LeakSession
    from harness.recording.recorder import Recorder

SESSION_KEY = pytest.StashKey["LeakSession"]()


#: What a bare optional-value flag means: ``--leak-memray`` is ``--leak-memray=yes``.
BARE_VALUES = {"bool": "yes", "name": "auto"}


def attach_bare_values(args: list[str]) -> bool:
    """Write each bare optional-value flag as ``FLAG=VALUE``, in place; True if one was.

    argparse cannot tell ``--leak-save=NAME`` from ``--leak-save NAME``: with ``nargs="?"``
    a bare ``pytest --leak-memray test_s.py`` took the test path as the flag's value
    (issue 11). So a value goes after "=" only, and a bare flag is given its value here,
    before pytest parses the command line for good. Arguments after ``--`` are paths; an
    ``@file`` of arguments is read by argparse later and keeps the old reading.
    """
    bare = {option.flag: BARE_VALUES[option.kind] for option in OPTIONS if option.kind in BARE_VALUES}
    changed = False
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in bare:
            args[index] = f"{arg}={bare[arg]}"
            changed = True
    return changed


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # ``args`` is the list pytest parses for good after this hook (PYTEST_ADDOPTS and the
    # ini's addopts already merged in). Its early parse, which found the paths to load
    # conftests from, ran before: redo that with the paths no flag eats.
    if attach_bare_values(args):
        known = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
        early = early_config.known_args_namespace
        early.file_or_dir = known.file_or_dir
        for option in OPTIONS:
            setattr(early, option.dest, getattr(known, option.dest, None))


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
                help=option.help.replace("%", "%%"),
            )
        elif option.kind == "name":
            group.addoption(
                option.flag,
                action="store",
                nargs="?",
                const="auto",
                default=None,
                dest=option.dest,
                metavar="NAME",
                help=option.help.replace("%", "%%"),
            )
        else:
            group.addoption(
                option.flag, action="store", default=None, dest=option.dest, help=option.help.replace("%", "%%")
            )
        parser.addini(option.ini, option.help, type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    if config.getoption("help", False) or config.getoption("version", False):
        return  # nothing will run: a project that merely has the plugin pays for no session
    from harness.plugin.session import LeakSession

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
    from harness.plugin.reporting import ReportHooks

    config.pluginmanager.register(ReportHooks(config, session), "leak_harness_reports")


def _memray_blocked(config: pytest.Config) -> str | None:
    if getattr(config.option, "memray", False):
        return "memray capture skipped: pytest-memray (--memray) is already tracking this test"
    return None


def _stop(rec: Recorder, nodeid: str) -> None:
    from harness.errors import HarnessError

    with contextlib.suppress(HarnessError):
        rec.stop()  # raises once, if the trace file could not be written (full disk, read-only)
    error = rec.trace.meta.get("file_error")
    if error:
        pytest.fail(f"{nodeid}: memory_trace: {error}", pytrace=False)


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

    # The marker's limit is looked at every minute with alpha spent across the looks.
    spec, _ = request.config.stash[SESSION_KEY].spec_for(request.node)
    growth = spec if spec is not None and spec.checks_growth else None
    return SoakBudget(
        minutes=settings.soak_minutes,
        max_steps=int(settings.soak_steps) if settings.soak_steps else None,
        write=write,
        max_growth=growth.max_growth_text if growth else None,
        after=growth.after if growth else None,
        signal=growth.signal if growth else "auto",
    )


@pytest.fixture
def memory_trace(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """A Recorder bound to this test; its trace and report land in the report directory.

    Drive your loop with ``for step in memory_trace.steps(n):``; declare held memory with
    ``memory_trace.account(buffer=...)`` and events with ``memory_trace.mark("eviction")``.
    A ``@pytest.mark.leak(max_growth=..., after=...)`` on the test is checked on this trace.
    """
    from harness.plugin.session import EXTRA_KEY, RECORDER_KEY
    from harness.probes.memray import memray_capture, memray_flamegraph
    from harness.recording.recorder import Recorder

    session: LeakSession = request.config.stash[SESSION_KEY]
    item = request.node
    options = session.item_settings(item)
    directory = session.test_dir(item.nodeid)
    rec = Recorder(
        item.nodeid,
        directory / "trace.jsonl",
        heap=options.heap,
        every=options.every,
        children=options.children,
        progress=False,
        meta={"test": item.nodeid},
        where=session.settings.where == "always",
    )
    item.stash[RECORDER_KEY] = rec
    extra: dict[str, Any] = {}
    item.stash[EXTRA_KEY] = extra
    capture: Path | None = None
    with ExitStack() as stack:
        if options.memray:
            blocked = _memray_blocked(request.config)
            if blocked:
                extra["leak_memray"] = blocked
            else:
                capture = directory / "memray.bin"
                stack.enter_context(memray_capture(capture))
        stack.callback(_stop, rec, item.nodeid)
        try:
            rec.start()
        except OSError as exc:
            pytest.fail(
                f"{item.nodeid}: memory_trace cannot write its trace to {str(directory)!r}: {exc.strerror or exc}",
                pytrace=False,
            )
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
    # verdict.json and report.html are written after teardown by harness.plugin.reporting,
    # with every check the test made (the marker's and its own) and the flamegraph's link.
