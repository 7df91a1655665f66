"""Isolated runs under fire: SIGKILL at random moments, a SIGKILLed parent pytest, escaping
grandchildren, bad arguments. Nothing the run started may outlive it; nothing it recorded
before the fault may be lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from reliability_profiles import one_line_error

import harness
from harness.errors import HarnessUsageError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if not _gone(p)]
        if not alive:
            return []
        time.sleep(0.05)
    alive = [p for p in pids if not _gone(p)]
    for pid in alive:  # do not leave them to the next test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# "rlimit": RLIMIT_DATA, no cgroup to hold the run's processes (HARNESS_ISOLATION_CAP=rlimit).
CAPS = [(None, "auto"), ("2 GB", "auto"), ("2 GB", "rlimit")]
CAP_IDS = ["no-cap", "capped", "rlimit"]


@pytest.mark.parametrize(("memory_limit", "mechanism"), CAPS, ids=CAP_IDS)
def test_a_grandchild_that_calls_setsid_dies_with_the_isolated_run(
    tmp_path, private_tmp, monkeypatch, memory_limit, mechanism
):
    monkeypatch.setenv("HARNESS_ISOLATION_CAP", mechanism)
    pidfile = tmp_path / "pids.json"
    result = harness.run_isolated(
        "isolation_targets:spawn_escapee", {"pidfile": str(pidfile)}, memory_limit=memory_limit, timeout="120 s"
    )
    assert result.outcome == "ok", result.message()
    info = json.loads(pidfile.read_text())
    assert _wait_gone([info["grandchild"], info["worker"], info["supervisor"]], 10) == []
    assert list(private_tmp.iterdir()) == [], "the run left its folder in the temp directory"


def test_a_timed_out_run_takes_its_setsid_grandchild_along(tmp_path, private_tmp):
    pidfile = tmp_path / "pids.json"
    result = harness.run_isolated(
        # 6 s: time for the worker and its escapee to start and write their pids on a loaded machine.
        "isolation_targets:spawn_escapee",
        {"pidfile": str(pidfile), "then_sleep": 600},
        timeout="6 s",
    )
    assert result.outcome == "timeout"
    info = json.loads(pidfile.read_text())
    assert _wait_gone([info["grandchild"], info["worker"]], 10) == []


PARENT_TEST = textwrap.dedent(
    """
    import harness

    def test_long_isolated_run():
        harness.run_isolated(
            "isolation_targets:spawn_escapee",
            {{"pidfile": {pidfile!r}, "then_sleep": 600}},
            memory_limit={limit!r},
            timeout="600 s",
        )
    """
)


@pytest.mark.parametrize(("memory_limit", "mechanism"), CAPS, ids=CAP_IDS)
def test_a_sigkilled_parent_pytest_leaves_no_isolated_process_or_cgroup_behind(tmp_path, memory_limit, mechanism):
    pidfile = tmp_path / "pids.json"
    (tmp_path / "test_parent.py").write_text(PARENT_TEST.format(pidfile=str(pidfile), limit=memory_limit))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        "TMPDIR": str(scratch),
        "HARNESS_ISOLATION_CAP": mechanism,
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_parent.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not pidfile.exists():
            assert parent.poll() is None, "the parent pytest ended before the isolated run started"
            assert time.monotonic() < deadline, "the isolated run never started"
            time.sleep(0.05)
        info = json.loads(pidfile.read_text())
    finally:
        parent.kill()
        parent.wait()
    left = _wait_gone([info["supervisor"], info["worker"], info["grandchild"]], 20)
    assert left == [], f"still running after the parent was killed: {left}"
    if memory_limit and info["cgroup"].strip("/").startswith("harness-"):
        group = CGROUP_V1 / info["cgroup"].strip("/")
        deadline = time.monotonic() + 5
        while group.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group.exists(), f"cgroup {group} left behind"
    assert list(scratch.iterdir()) == [], "the run's folder was left behind"


@pytest.mark.parametrize(("memory_limit", "mechanism"), CAPS[1:], ids=CAP_IDS[1:])
def test_a_sigkilled_supervisor_leaves_no_setsid_grandchild_behind(
    tmp_path, private_tmp, monkeypatch, memory_limit, mechanism
):
    # With no cgroup nothing holds the grandchild once its subreaper is gone: the parent
    # finds it by the run's mark in its environment.
    monkeypatch.setenv("HARNESS_ISOLATION_CAP", mechanism)
    pidfile = tmp_path / "pids.json"
    results: list[harness.IsolatedResult] = []
    run = threading.Thread(
        target=lambda: results.append(
            harness.run_isolated(
                "isolation_targets:spawn_escapee",
                {"pidfile": str(pidfile), "then_sleep": 600},
                memory_limit=memory_limit,
                timeout="120 s",
            )
        )
    )
    run.start()
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists():
            assert run.is_alive() and time.monotonic() < deadline, "the isolated run never started"
            time.sleep(0.05)
        info = json.loads(pidfile.read_text())
        os.kill(info["supervisor"], signal.SIGKILL)
    finally:
        run.join(60)
    assert not run.is_alive(), "run_isolated did not return after its supervisor was killed"
    assert results[0].outcome == "error" and results[0].signal_name == "SIGKILL", results[0].message()
    assert _wait_gone([info["worker"], info["grandchild"]], 5) == []
    assert list(private_tmp.iterdir()) == [], "the run left its folder in the temp directory"


@pytest.mark.parametrize("attempt", range(3))
def test_a_worker_killed_at_a_random_moment_keeps_every_sample_before_the_kill(tmp_path, private_tmp, attempt):
    delay = random.Random(attempt * 7919 + os.getpid()).uniform(0.0, 1.0)
    me = psutil.Process()

    trace_path = tmp_path / "trace.jsonl"

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the first samples, then a random moment after them
            with contextlib.suppress(OSError):
                if trace_path.read_bytes().count(b"\n") >= 3:
                    break
            time.sleep(0.01)
        time.sleep(delay)
        for proc in me.children(recursive=True):
            with_parent = proc.parent()
            if with_parent is not None and with_parent.pid != me.pid:  # the worker, under the supervisor
                os.kill(proc.pid, signal.SIGKILL)
                return

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = harness.run_isolated(
        "isolation_targets:slow_steps", {"steps": 100_000}, timeout="60 s", trace_path=trace_path
    )
    thread.join()
    assert result.outcome == "error" and result.signal_name == "SIGKILL", result.message()
    assert "killed by SIGKILL" in result.message()
    trace = result.trace
    assert trace is not None and len(trace) >= 1
    steps = [int(x) for x in trace.steps]
    assert steps == sorted(set(steps)) and steps[0] == 0, "a sample before the kill was lost or torn"
    assert result.last_step == trace.steps[-1]
    assert list(private_tmp.iterdir()) == []


def test_a_target_that_records_itself_reports_its_steps(private_tmp):
    result = harness.run_isolated("isolation_targets:records_itself", {"steps": 120}, timeout="120 s")
    assert result.outcome == "ok", result.message()
    # The recorder samples as its time budget allows, not every step: samples, not 120 of them.
    assert result.trace is not None and len(result.trace) > 0 and 0 <= result.trace.steps[-1] <= 119
    assert result.last_step == 119
    assert "at step 119" in result.message() and "before the first step" not in result.message()


def test_a_target_that_records_to_its_own_path_reports_that_trace(tmp_path, private_tmp):
    own = tmp_path / "own.jsonl"
    result = harness.run_isolated("isolation_targets:records_itself_to", {"path": str(own), "steps": 50})
    assert result.outcome == "ok", result.message()
    assert result.trace is not None and len(result.trace) > 0 and result.last_step == 49
    assert own.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"memory_limit": 0}, "memory_limit=0 is no memory"),
        ({"memory_limit": "0 MB"}, "no memory"),
        ({"memory_limit": "lots"}, "memory_limit"),
        ({"timeout": 0}, "timeout"),
        ({"kwargs": {"x": float("nan")}}, "JSON"),
        ({"kwargs": [1]}, "kwargs"),
    ],
)
def test_bad_isolated_run_arguments_are_one_line_usage_errors(private_tmp, kwargs, match):
    with pytest.raises(HarnessUsageError, match=match) as err:
        harness.run_isolated("isolation_targets:records_itself", **kwargs)
    one_line_error(err.value, HarnessUsageError)
    assert list(private_tmp.iterdir()) == []


def test_a_bogus_isolation_cap_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("HARNESS_ISOLATION_CAP", "bogus")
    with pytest.raises(HarnessUsageError, match=r"HARNESS_ISOLATION_CAP='bogus' \(environment\)"):
        harness.run_isolated("isolation_targets:records_itself")


@pytest.mark.parametrize("target", ["no_colon", "a:b:c", "mod:", ":func", "mod:func; rm -rf /", 5])
def test_a_malformed_target_is_refused(target):
    with pytest.raises(HarnessUsageError, match="package.module:function"):
        harness.run_isolated(target)
