"""The plugin as a user runs it: pytester in a subprocess, output and files checked."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.recording.trace import Trace

# A real leak with no torch: each step keeps 20 KB of touched bytes (20 MB per 1k steps).
LEAKY = """
import pytest
HELD = []

@pytest.mark.leak(max_growth="1 MB/1k steps", after="full")
def test_grows(memory_trace):
    for step in memory_trace.steps(3_000):
        HELD.append(bytearray(b"x") * 20_000)
        if step == 500:
            memory_trace.mark("full")
"""

FLAT = """
import pytest

@pytest.mark.leak(max_growth="1 MB/1k steps", after="full")
def test_flat(memory_trace):
    ring = [None] * 50
    for step in memory_trace.steps(3_000):
        ring[step % 50] = bytearray(b"x") * 20_000
        if step == 500:
            memory_trace.mark("full")
"""


@pytest.fixture
def run(pytester):
    def _run(*args: str):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)

    return _run


def test_help_lists_our_options_beside_pytest_memray(run):
    result = run("--help")
    result.stdout.fnmatch_lines(["*memory-leak regression harness*", "*--leak-report-dir*", "*--leak-memray*"])
    assert "--memray-bin-path" in result.stdout.str()  # pytest-memray loaded side by side, no clash
    assert result.ret == 0


def test_markers_are_documented(run):
    result = run("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.leak(max_growth=None, after=None,*", "@pytest.mark.soak(*"])


def test_a_growing_test_fails_with_the_verdict_and_keeps_its_trace(pytester, run):
    pytester.makepyfile(test_leaky=LEAKY)
    result = run("--junitxml=junit.xml")
    assert result.ret == 1
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*GrowthError: Allocator live memory grows * MB per 1k steps after 'full' (step 500; window steps *"
            "limit 1 MB/1k steps*",
            "*At this rate * is reached at step *",
            "*memory leak harness*",
            "test_leaky.py::test_grows: FAIL allocated * MB/1k steps*after 'full'; limit 1 MB/1k steps*",
        ]
    )
    assert "Traceback" not in out and "INTERNALERROR" not in out
    trace = Trace.load(pytester.path / "reports" / "test_leaky.py_test_grows" / "trace.jsonl")
    # Sampled on a time budget: every step at first and after the mark, sparser between.
    assert 100 < len(trace) <= 3_000 and trace.steps[-1] == 2_999 and trace.event("full").step == 500
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert props["leak_verdict"] == "fail"
    assert props["leak_limit"] == "1 MB/1k steps"  # as the marker wrote it
    assert float(props["leak_slope_bytes_per_step"]) > 10_000
    verdict = json.loads((pytester.path / "reports" / "test_leaky.py_test_grows" / "verdict.json").read_text())
    assert verdict["outcome"] == "failed" and verdict["verdict"]["passed"] is False
    html = (pytester.path / "reports" / "test_leaky.py_test_grows" / "report.html").read_text()
    assert "<svg" in html and "Allocator live memory grows" in html
    assert "test_leaky.py::test_grows" in (pytester.path / "reports" / "index.html").read_text()


def test_a_flat_test_passes_and_says_so_in_the_summary(pytester, run):
    pytester.makepyfile(test_flat=FLAT)
    result = run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_flat.py::test_flat: PASS allocated *after 'full'; limit 1 MB/1k steps"])


def test_results_survive_xdist(pytester, run):
    pytester.makepyfile(test_leaky=LEAKY, test_flat=FLAT)
    result = run("-n", "2", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "test_flat.py::test_flat: PASS *",
            "test_leaky.py::test_grows: FAIL *",
        ]
    )
    verdicts = sorted(
        p.get("value")
        for p in ET.parse(pytester.path / "junit.xml").iter("property")
        if p.get("name") == "leak_verdict"
    )
    assert verdicts == ["fail", "pass"]


LOOP = "    for _ in memory_trace.steps(100):\n        pass\n"


@pytest.mark.parametrize(
    ("marker", "args", "body", "expected", "kept"),
    [
        (
            '@pytest.mark.leak(max_groth="1 MB/1k steps")',
            "memory_trace",
            LOOP,
            "*test_bad.py::test_it: @pytest.mark.leak got unknown argument max_groth; allowed: max_growth, after,*",
            0,
        ),
        (
            '@pytest.mark.leak(max_growth="1 MB per fortnight")',
            "memory_trace",
            LOOP,
            "*test_bad.py::test_it: cannot read rate '1 MB per fortnight' (from @pytest.mark.leak(max_growth=))*",
            0,
        ),
        (
            # every=1: the kept trace is counted, so no time budget may thin it on a loaded machine.
            '@pytest.mark.leak(max_growth="1 MB/1k steps", after="eviction", every=1)',
            "memory_trace",
            LOOP,
            "*test_bad.py::test_it: @pytest.mark.leak: after='eviction': trace 'test_bad.py::test_it' has no event "
            "'eviction' (events marked: none)*",
            100,  # what was recorded is kept
        ),
        (
            '@pytest.mark.leak(max_growth="1 MB/1k steps")',
            "memory_trace",
            "    pass\n",
            "*test_bad.py::test_it: @pytest.mark.leak: trace 'test_bad.py::test_it' is empty*",
            0,
        ),
        (
            '@pytest.mark.leak(max_growth="1 MB/1k steps")',
            "",
            "    pass\n",
            "*does not use the memory_trace fixture: add it as an argument*",
            None,
        ),
    ],
    ids=["unknown-argument", "bad-rate", "event-never-marked", "empty-trace", "no-fixture"],
)
def test_bad_input_fails_the_test_with_one_line(pytester, run, marker, args, body, expected, kept):
    pytester.makepyfile(test_bad=f"import pytest\n\n{marker}\ndef test_it({args}):\n{body}")
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([expected])
    out = result.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out
    trace = pytester.path / "reports" / "test_bad.py_test_it" / "trace.jsonl"
    if kept is None:
        assert not trace.exists()
    else:
        assert len(Trace.load(trace)) == kept


def test_soak_is_deselected_unless_asked_for(pytester, run):
    pytester.makepyfile(
        test_soak="""
import pytest

@pytest.mark.soak
def test_long():
    pass

@pytest.mark.leak
def test_quick():
    pass
"""
    )
    default = run()
    default.assert_outcomes(passed=1, deselected=1)
    soak = run("-m", "soak", "-v")
    soak.assert_outcomes(passed=1, deselected=1)
    soak.stdout.fnmatch_lines(["*test_soak.py::test_long PASSED*"])
    leak = run("-m", "leak")
    leak.assert_outcomes(passed=1, deselected=1)


def test_settings_precedence_cli_over_env_over_ini(pytester, run, monkeypatch):
    pytester.makepyfile(test_flat=FLAT)
    pytester.makeini("[pytest]\nleak_report_dir = from_ini\n")
    run().assert_outcomes(passed=1)
    assert (pytester.path / "from_ini" / "test_flat.py_test_flat" / "trace.jsonl").exists()
    monkeypatch.setenv("HARNESS_REPORT_DIR", "from_env")
    run().assert_outcomes(passed=1)
    assert (pytester.path / "from_env" / "test_flat.py_test_flat" / "trace.jsonl").exists()
    run("--leak-report-dir=from_cli").assert_outcomes(passed=1)
    assert (pytester.path / "from_cli" / "test_flat.py_test_flat" / "trace.jsonl").exists()


def test_a_bad_ini_value_names_the_ini_key(pytester, run):
    pytester.makeini("[pytest]\nleak_budget = plenty\n")
    pytester.makepyfile(test_flat=FLAT)
    result = run()
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*cannot read size 'plenty' (from ini key leak_budget)*"])


def test_leak_memray_writes_a_capture_and_a_flamegraph(pytester, run):
    pytest.importorskip("memray")
    pytester.makepyfile(test_flat=FLAT)
    result = run("--leak-memray", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    directory = pytester.path / "reports" / "test_flat.py_test_flat"
    assert (directory / "memray.bin").stat().st_size > 0
    assert "<html" in (directory / "memray.flamegraph.html").read_text().lower()
    names = {p.get("name") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert "leak_flamegraph_file" in names


def test_pytest_memray_and_our_capture_load_side_by_side(pytester, run):
    pytest.importorskip("pytest_memray")
    pytester.makepyfile(test_flat=FLAT)
    result = run("--memray", "--leak-memray")
    result.assert_outcomes(passed=1)
    assert "MEMRAY REPORT" in result.stdout.str()
    assert not (pytester.path / "reports" / "test_flat.py_test_flat" / "memray.bin").exists()
    verdict = json.loads((pytester.path / "reports" / "test_flat.py_test_flat" / "verdict.json").read_text())
    assert "pytest-memray (--memray) is already tracking" in verdict["leak_memray"]


def test_a_max_peak_marker_fails_a_test_that_spikes(pytester, run):
    pytester.makepyfile(
        test_peak="""
import pytest

@pytest.mark.leak(max_peak="1.25x", payload="40 MB")
def test_spiky():
    blob = bytearray(b"x") * 100_000_000
    del blob

@pytest.mark.leak(max_peak="1.25x", payload="40 MB")
def test_calm():
    blob = bytearray(b"x") * 10_000_000
    del blob
"""
    )
    result = run("--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*PeakError: Peak during 'test_spiky' was * MB above baseline (2.* the 40.0 MB payload); "
            "limit 1.25x (50.0 MB)*",
            "test_peak.py::test_calm: PEAK PASS * over baseline; limit 1.25x (50.0 MB)",
            "test_peak.py::test_spiky: PEAK FAIL * over baseline; limit 1.25x (50.0 MB)",
        ]
    )
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert props["leak_peak_limit"] == "1.25x (50.0 MB)"


def test_a_relative_max_peak_without_payload_is_one_line(pytester, run):
    pytester.makepyfile(test_peak="import pytest\n\n@pytest.mark.leak(max_peak='2x')\ndef test_it():\n    pass\n")
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_it: limit 2x (from @pytest.mark.leak(max_peak=)) is relative to a payload*"])


ISOLATED = """
import pytest
HELD = []

@pytest.mark.leak(isolate=True, memory_limit="250 MB", timeout="60 s")
def test_runs_out(memory_trace):
    for step in memory_trace.steps(1_000_000):
        if step == 40:
            memory_trace.mark("eviction")
        if step >= 40:
            HELD.append(bytearray(b"x") * 2_000_000)

@pytest.mark.leak(isolate=True, memory_limit="250 MB")
def test_fine_in_isolation(memory_trace):
    for _ in memory_trace.steps(50):
        pass

@pytest.mark.leak(isolate=True, memory_limit="250 MB")
def test_fails_in_isolation():
    assert 1 + 1 == 3, "arithmetic is off"

def test_after_them():
    pass
"""


OOM_THEN_TEARDOWN = """
import pytest
HELD = []

@pytest.fixture
def needs_memory_after():
    yield
    # What a report, a traceback's source or a lazy import needs after the test ran out:
    # under RLIMIT_DATA nothing is left unless the child kept some back.
    HELD.append(bytearray(8_000_000))

@pytest.mark.leak(isolate=True, memory_limit="200 MB", timeout="60 s")
def test_runs_out(memory_trace, needs_memory_after):
    for step in memory_trace.steps(1_000_000):
        HELD.append(bytearray(b"x") * 2_000_000)
"""


def test_under_rlimit_the_child_has_memory_left_to_report_after_the_test_ran_out(pytester, run, monkeypatch):
    # CI once read "failed at step 107: SyntaxError: expected ':' (history.py, line 51)":
    # a module imported at the cap, after the MemoryError. The child keeps 32 MB back and
    # gives it back when the test's MemoryError is reported.
    monkeypatch.setenv("HARNESS_ISOLATION_CAP", "rlimit")
    pytester.makepyfile(test_oom=OOM_THEN_TEARDOWN)
    result = run("-v", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_oom.py::test_runs_out (isolated): test_runs_out * the 200 MB memory cap (*"])
    text = result.stdout.str()
    assert "INTERNALERROR" not in text and "SyntaxError" not in text
    # The child pytest's own output: the test failed with MemoryError, and its teardown's
    # 8 MB came from the reserve (no "error at teardown" on top of the failure).
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    kept = Path(props["leak_isolated_output_file"])
    assert kept.parent.parent == pytester.path / "reports"  # beside the test's trace; the scratch folder is gone
    child = kept.read_text()
    assert "MemoryError" in child and "1 failed" in child, child[-2000:]
    assert "error" not in child.splitlines()[-1].lower(), child[-2000:]


THREAD_OOM = """
import threading
import pytest

@pytest.mark.leak(isolate=True, memory_limit="200 MB")
def test_thread_runs_out():
    def work():
        held = []
        while True:
            held.append(bytearray(1 << 20))
    t = threading.Thread(target=work, name="loader")
    t.start()
    t.join()

@pytest.mark.leak(isolate=True, memory_limit="200 MB")
def test_thread_fails_otherwise():
    t = threading.Thread(target=lambda: 1 / 0)
    t.start()
    t.join()
"""


def test_under_rlimit_a_thread_that_runs_out_of_memory_fails_the_isolated_test(pytester, run, monkeypatch):
    # Under a cgroup the kernel kills the child; under RLIMIT_DATA the thread's MemoryError
    # only reached threading.excepthook, and the test passed.
    monkeypatch.setenv("HARNESS_ISOLATION_CAP", "rlimit")
    pytester.makepyfile(test_thread=THREAD_OOM)
    result = run("-v")
    result.assert_outcomes(failed=1, passed=1)  # another error in a thread stays pytest's warning
    result.stdout.fnmatch_lines(["*test_thread_runs_out (isolated): * ran out of memory under the 200 MB memory cap*"])


@pytest.mark.parametrize("mechanism", ["auto", "rlimit"])
def test_an_isolated_test_that_runs_out_of_memory_fails_and_pytest_goes_on(pytester, run, monkeypatch, mechanism):
    # "auto" is a cgroup where one can be made (the kernel kills); "rlimit" is the fallback
    # of machines without one (the allocation fails with MemoryError in the child).
    monkeypatch.setenv("HARNESS_ISOLATION_CAP", mechanism)
    pytester.makepyfile(test_iso=ISOLATED)
    result = run("-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*test_iso.py::test_runs_out (isolated): test_runs_out * the 250 MB memory cap (*) at step *"
            "(RSS *, growing */1k steps since 'eviction' (step 40))*",
            "*test_iso.py::test_fails_in_isolation (isolated): *arithmetic is off*",
            "*test_iso.py::test_fine_in_isolation PASSED*",
            "*test_iso.py::test_after_them PASSED*",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str()
