"""``isolate=True``: run one test in a fresh child pytest under a memory cap."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.plugin.markers import LeakSpec


def run_in_child(item: pytest.Function, spec: LeakSpec, report_dir: Path, test_trace: Path) -> None:
    """Run ``item`` in a child pytest; return when it passed there, fail it otherwise."""
    work = Path(tempfile.mkdtemp(prefix="harness-isolated-test-"))
    try:
        _run(item, spec, report_dir, test_trace, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the child's output was copied beside the test's trace


def _run(item: pytest.Function, spec: LeakSpec, report_dir: Path, test_trace: Path, work: Path) -> None:
    from harness.isolation.child import is_allocation_failure
    from harness.isolation.run import run_isolated
    from harness.recording.trace import Trace

    config = item.config
    args = [
        item.nodeid,
        "--leak-isolated-child",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--leak-report-dir={report_dir}",
        "--rootdir",
        str(config.rootpath),
    ]
    result = run_isolated(
        "harness.isolation.pytest_child:run",
        {"args": args, "junit": str(work / "junit.xml")},
        memory_limit=spec.memory_limit,
        timeout=spec.timeout if spec.timeout is not None else "600 s",
        trace_path=work / "wrapper.jsonl",
        cwd=config.rootpath,
        output=work / "child-output.txt",  # the child pytest's own output stays out of ours
    )
    # The test's own trace (its memory_trace, streamed by the child) tells where it died.
    trace = Trace.load(test_trace) if test_trace.exists() else None
    result = dataclasses.replace(
        result,
        target=item.name,
        trace=trace,
        last_step=int(trace.steps[-1]) if trace is not None and len(trace) else None,
    )
    value = result.value if isinstance(result.value, dict) else {}
    failure = str(value.get("failure") or "")
    if result.outcome == "ok" and value.get("exitcode") != 0 and is_allocation_failure(failure):
        # Under RLIMIT_DATA the cap shows up as a MemoryError inside the child's test.
        result = dataclasses.replace(result, outcome="oom", error=failure.splitlines()[0])
    item.user_properties.append(("leak_isolated_outcome", result.outcome))
    item.user_properties.append(("leak_isolated_cap", result.cap))
    kept = _keep_output(work / "child-output.txt", test_trace.parent)
    if kept is not None:
        item.user_properties.append(("leak_isolated_output_file", str(kept)))
    if result.outcome == "ok":
        if value.get("exitcode") == 0:
            return
        pytest.fail(f"{item.nodeid} (isolated): {failure or 'failed in the child'}", pytrace=False)
    pytest.fail(f"{item.nodeid} (isolated): {result.message()}", pytrace=False)


def _keep_output(output: Path, folder: Path) -> Path | None:
    """The child pytest's own output, copied beside the test's trace (the run's scratch
    folder is removed); None when it cannot be kept (no output, a read-only report dir)."""
    target = folder / "child-output.txt"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(output, target)
    except OSError:
        return None
    return target
