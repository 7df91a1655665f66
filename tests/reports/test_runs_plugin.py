"""Saving and comparing runs as a user does it: pytest in a subprocess, options from the
command line, the environment and the ini file."""

from __future__ import annotations

import json

import pytest

LEAKY = """
import os
import pytest

HELD = []

@pytest.mark.leak(max_growth="100 MB/1k steps", after="full", every=5)
def test_grows_a_little(memory_trace):
    for step in memory_trace.steps(2_000):
        HELD.append(bytearray(b"x") * int(os.environ.get("LEAK_BYTES", "2000")))
        if step == 300:
            memory_trace.mark("full")
"""


@pytest.fixture
def run(pytester):
    pytester.makepyfile(test_leaky=LEAKY)

    def _run(*args: str):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)

    return _run


def test_a_slope_that_grew_past_the_rule_fails_the_night_it_appears(pytester, run, monkeypatch):
    pytester.makeini("[pytest]\nleak_save = baseline\nleak_storage = store\n")
    first = run()
    first.assert_outcomes(passed=1)
    saved = list((pytester.path / "store").glob("*/0001_baseline.json"))
    assert len(saved) == 1, "ini keys leak_save and leak_storage are honoured"
    figures = json.loads(saved[0].read_text())["tests"]["test_leaky.py::test_grows_a_little"]["figures"]
    assert 1_500 < figures["slope"] < 2_500  # 2 KB per step, within the limit

    monkeypatch.setenv("HARNESS_SAVE", "no")
    monkeypatch.setenv("HARNESS_COMPARE_FAIL", "slope:+50%")
    monkeypatch.setenv("LEAK_BYTES", "20000")
    second = run()
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(
        [
            "*Memory regression against the saved run 0001_baseline*",
            "*slope interval low * MB/1k steps > * MB/1k steps allowed by slope:+50% (saved * MB/1k steps)*",
            "*memory compared with a saved run*",
            "test_leaky.py::test_grows_a_little: slope * → * (+*%)*REGRESSED*",
        ]
    )
    assert len(list((pytester.path / "store").glob("*/*.json"))) == 1, "HARNESS_SAVE=no overrides the ini"
    runs = (pytester.path / "reports" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 2 and json.loads(runs[1])["compared_to"] == "0001_baseline"
    index = (pytester.path / "reports" / "index.html").read_text()
    assert "REGRESSED" in index and "Run history" in index and "Trend across saved runs" in index


def test_the_first_compare_has_nothing_to_compare_with_and_passes(run):
    result = run("--leak-compare", "--leak-compare-fail=peak:+10%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no saved run in * to compare with yet (first run)*"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("--leak-compare-fail=speed:+5%",),
            "command-line option --leak-compare-fail rule 'speed:+5%': unknown figure",
        ),
        (("--leak-compare=nightly",), "--leak-compare=nightly: no saved run 'nightly' in"),
        (("--leak-save=../up",), "cannot read '../up' from command-line option --leak-save as a run name"),
    ],
)
def test_bad_run_options_are_one_line_usage_errors(run, args, words):
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert any(words in line for line in errors), result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_the_options_are_listed_in_help(run):
    result = run("--help")
    result.stdout.fnmatch_lines(
        ["*--leak-save=*NAME*", "*--leak-compare=*NAME*", "*--leak-compare-fail=*", "*--leak-storage=*"]
    )
