"""The plugin's report directory under faults: colliding names under xdist, a full disk,
a read-only directory. The test gets a clear failure, the session prints its summary, and
what was recorded before the fault stays readable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fault_mounts import read_only_dir, tiny_tmpfs

from harness.plugin.session import safe_name
from harness.recording.trace import Trace

PARAM_IDS = ["a/b", "a:b", "a b", "a?b"]

COLLIDING = """
import pytest

@pytest.mark.leak(every=1)  # counted below: no time budget may thin it under nested xdist
@pytest.mark.parametrize("p", [1, 2, 3, 4], ids={ids!r})
def test_recorded(memory_trace, p):
    for step in memory_trace.steps(200 * p):
        pass
"""

RECORDING = """
def test_records(memory_trace):
    for step in memory_trace.steps({steps}):
        # Wide rows: the trace outgrows a 48 KB disk however sparsely the recorder samples
        # (its time budget keeps ~340 of 20,000 steps).
        memory_trace.metrics(**{{f"loss_{{i}}": step * 0.5 for i in range(32)}})

def test_plain():
    assert True
"""


def test_parameter_ids_that_differ_only_in_punctuation_get_distinct_report_dirs():
    ids = [f"tests/t.py::test_x[{p}]" for p in PARAM_IDS] + ["tests/t.py::test_x[a_b]", "t.py::test_x"]
    names = [safe_name(i) for i in ids]
    assert len(set(names)) == len(names), names
    assert safe_name("test_leaky.py::test_grows") == "test_leaky.py_test_grows"


def test_colliding_ids_under_xdist_keep_every_trace_and_verdict(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_collide=COLLIDING.format(ids=PARAM_IDS))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    reports = pytester.path / "reports"
    dirs = sorted(d for d in reports.iterdir() if d.is_dir() and d.name.startswith("test_collide"))
    assert len(dirs) == 4, dirs
    traces = [Trace.load(d / "trace.jsonl") for d in dirs]
    assert {t.meta.get("test") for t in traces} == {f"test_collide.py::test_recorded[{p}]" for p in PARAM_IDS}
    assert all(len(t) >= 10 and int(t.steps[-1]) >= 199 for t in traces)
    verdicts = {json.loads((d / "verdict.json").read_text())["test"] for d in dirs}
    assert len(verdicts) == 4
    index = (reports / "index.html").read_text()
    assert len({d.name for d in dirs if d.name in index}) == 4


def _summary_printed(result) -> None:
    text = result.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in result.stderr.str(), text
    assert any(word in text.splitlines()[-1] for word in ("passed", "failed", "error")), text


def test_a_read_only_report_dir_fails_the_test_clearly_and_the_session_summarises(pytester, tmp_path):
    pytester.makepyfile(test_ro=RECORDING.format(steps=50))
    with read_only_dir(tmp_path / "ro") as ro:
        result = pytester.runpytest_subprocess(f"--leak-report-dir={ro}", "-p", "no:cacheprovider")
    _summary_printed(result)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1 and (outcomes.get("failed", 0) + outcomes.get("errors", 0)) == 1
    result.stdout.fnmatch_lines(["*memory_trace cannot write its trace to*Read-only file system*"])


def test_a_full_report_disk_fails_the_test_clearly_and_keeps_what_was_recorded(pytester, tmp_path):
    pytester.makepyfile(test_full=RECORDING.format(steps=20_000))
    with tiny_tmpfs(tmp_path / "full", "48k") as full:
        result = pytester.runpytest_subprocess(f"--leak-report-dir={full}", "-p", "no:cacheprovider")
        _summary_printed(result)
        outcomes = result.parseoutcomes()
        # The loop runs to its end (the disk filling does not abort it); the test then fails
        # in one line naming the file, and the other test passes.
        assert outcomes.get("passed", 0) >= 1 and (outcomes.get("failed", 0) + outcomes.get("errors", 0)) >= 1
        assert "memory_trace: trace file" in result.stdout.str()
        assert "No space left on device" in result.stdout.str()
        traces = list(Path(full).rglob("trace.jsonl"))
        assert traces, "the trace recorded before the disk filled is gone"
        trace = Trace.load(traces[0])
        steps = [int(x) for x in trace.steps]
        assert len(steps) > 10 and steps == sorted(set(steps)), "samples before the fault were lost or torn"
