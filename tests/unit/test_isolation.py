"""Isolated runs: OOM, error and timeout are told apart, traces survive, nothing is left."""

from __future__ import annotations

import psutil
import pytest

from harness.errors import HarnessUsageError
from harness.isolation.run import run_isolated
from harness.units import parse_duration

pytestmark = pytest.mark.usefixtures("no_stray_children")


def test_a_scenario_over_its_cap_is_oom_ten_times_out_of_ten(tmp_path):
    for attempt in range(10):
        result = run_isolated(
            "fixtures.targets:grow",
            {"per_step": 2_000_000},
            memory_limit="250 MB",
            timeout="60 s",
            trace_path=tmp_path / f"grow-{attempt}.jsonl",
        )
        assert result.outcome == "oom", result.message()
        assert result.last_step is not None and result.last_step > 50
        assert result.trace is not None and list(result.trace.steps)[-1] == result.last_step
        assert result.trace.event("leak starts").step == 50
        text = result.message()
        assert text.startswith("fixtures.targets:grow ")
        assert f"the 250 MB memory cap ({result.cap}) at step {result.last_step:,}" in text
        assert "growing " in text and "since 'leak starts' (step 50)" in text


def test_the_rlimit_fallback_also_reports_oom_with_the_step(tmp_path):
    result = run_isolated("fixtures.targets:grow", {"per_step": 2_000_000}, memory_limit="250 MB", cap="rlimit")
    assert (result.outcome, result.cap) == ("oom", "RLIMIT_DATA")
    assert result.error is not None and result.error.startswith("MemoryError")
    expected = "fixtures.targets:grow ran out of memory under the 250 MB memory cap (RLIMIT_DATA) at step"
    assert result.message().startswith(f"{expected} {result.last_step:,}")


def test_a_plain_exception_is_error_with_its_text():
    result = run_isolated("fixtures.targets:fail", {"at": 30}, memory_limit="300 MB")
    assert result.outcome == "error"
    assert result.error == "ValueError: bad batch at step 30"
    assert result.last_step == 30
    assert "Traceback" in result.traceback
    assert result.message().startswith("fixtures.targets:fail failed at step 30: ValueError: bad batch at step 30")


def test_a_hang_is_a_timeout_and_its_grandchildren_die_with_it(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # 6 s: the child must start, spawn its grandchild and reach step 9 first, on a loaded machine too.
    result = run_isolated("fixtures.targets:hang", {"spawn_pidfile": str(pidfile)}, timeout="6 s")
    assert result.outcome == "timeout"
    assert result.last_step == 9
    assert result.message().startswith("fixtures.targets:hang timed out after 6.0 s at step 9")
    grandchild = int(pidfile.read_text())
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_a_clean_run_is_ok_and_returns_its_value():
    result = run_isolated("fixtures.targets:fine", {"steps": 100}, memory_limit="300 MB")
    assert (result.outcome, result.value, result.last_step) == ("ok", {"steps": 100}, 99)
    assert result.cap in ("cgroup v2 memory.max", "cgroup v1 memory.limit_in_bytes", "RLIMIT_DATA")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"target": "no_colon"}, "must be 'package.module:function'"),
        ({"target": "a:b", "memory_limit": "lots"}, "cannot read size 'lots' (from run_isolated memory_limit=)"),
        ({"target": "a:b", "timeout": "soon"}, "cannot read duration 'soon' (from run_isolated timeout=)"),
        ({"target": "a:b", "kwargs": {"x": object()}}, "kwargs must be JSON-serialisable"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, fragment):
    with pytest.raises(HarnessUsageError) as err:
        run_isolated(**kwargs)
    assert fragment in str(err.value)


def test_durations():
    assert parse_duration("120 s", "t") == 120
    assert parse_duration("2 min", "t") == 120
    assert parse_duration("1.5h", "t") == 5400
    assert parse_duration(3, "t") == 3


def test_the_replay_view_leak_runs_into_a_1_gb_cap_in_a_child_and_says_where():
    pytest.importorskip("torch")
    result = run_isolated(
        "harness.scenarios.replay:run_leaky", {"steps": 100_000}, memory_limit="1 GB", timeout="300 s"
    )
    assert result.outcome == "oom", result.message()
    assert result.trace is not None and result.trace.event("eviction") is not None
    assert 3_000 < result.last_step < 100_000
    assert "memory cap" in result.message() and "since 'eviction' (step 3," in result.message()
