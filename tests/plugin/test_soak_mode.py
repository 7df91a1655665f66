"""Soak mode as CI runs it: option, progress lines, verdict; and the nightly workflow file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOAK = """
import pytest

@pytest.mark.soak(max_growth="1 MB/1k steps", after="full")
def test_soak(memory_trace, soak):
    soak.progress_every_s = 0.5
    ring = [None] * 20
    for step in soak.steps(memory_trace, after="full"):
        ring[step % 20] = bytearray(b"x") * 10_000
        if step == 200:
            memory_trace.mark("full")
"""


def test_soak_minutes_runs_for_the_budget_with_progress_and_a_verdict(pytester):
    pytester.makepyfile(test_s=SOAK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "soak", "--soak-minutes=0.04")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*[[]soak test_s.py::test_soak[]] step * RSS * slope * since 'full' * min of 0.04 min*",
            "*(budget spent)*",
            "test_s.py::test_soak: PASS allocated *after 'full'; limit 1 MB/1k steps",
        ]
    )
    assert out.count("[soak ") >= 3


def test_the_default_command_does_not_run_soak(pytester):
    pytester.makepyfile(test_s=SOAK)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(deselected=1)


def test_a_bad_soak_budget_names_the_option(pytester):
    pytester.makepyfile(test_s=SOAK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--soak-minutes=soon")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*cannot read 'soon' from command-line option --soak-minutes as a positive number*"])


def test_the_nightly_workflow_is_valid_against_the_published_schema():
    exe = shutil.which("check-jsonschema") or str(Path(__file__).parents[2] / ".venv" / "bin" / "check-jsonschema")
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    workflow = Path(__file__).parents[2] / ".github" / "workflows" / "nightly-soak.yml"
    # The schema is vendored inside check-jsonschema (SchemaStore's github-workflow): no network.
    out = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(workflow)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = workflow.read_text()
    assert "schedule:" in text and "workflow_dispatch:" in text and "upload-artifact" in text and "reports/" in text


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    exe = shutil.which("check-jsonschema") or str(Path(__file__).parents[2] / ".venv" / "bin" / "check-jsonschema")
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed")
    broken = tmp_path / "broken.yml"
    broken.write_text("on: {push: {}}\njobs: {t: {runs-on: ubuntu-latest, stepz: [{run: echo}]}}\n")
    out = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(broken)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 1
