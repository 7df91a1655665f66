"""The ``harness`` command under hostile arguments and hostile pipes.

The property: exit 0 (done), 1 (a verdict failed) or 2 (bad input, one line on stderr
naming the option); never a traceback; never a file of a test's report overwritten.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_mounts import fill, read_only_dir, tiny_tmpfs
from hypothesis import given
from hypothesis import strategies as st
from reliability_profiles import FUZZ

import harness
from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def inside(folder: Path):
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusal (usage + one error line)
            code = exc.code if isinstance(exc.code, int) else 2
            assert code in (0, 2), exc
            return code, out.getvalue(), "argparse"
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "trace.jsonl"
    trace = harness.Trace(name="cli", meta={})
    for step in range(600):
        trace.append(step, step * 0.01, {"rss": 100e6 + 40.0 * step + (step % 7) * 1e3})
    trace.add_event(harness.Event("eviction", 50, 0.5))
    trace.dump(path)
    (folder / "verdict.json").write_text('{"outcome": "passed"}')
    (folder / "report.html").write_text("the test's own report")
    return path


option_values = st.one_of(
    st.sampled_from(["1 MB/1k steps", "10%", "500", "0.1", "abc", "", "-1", "1e999", "eviction", "rss", "heap", "0"]),
    st.text(max_size=12),
)
options = st.sampled_from(["--after", "--max-growth", "--settle", "--budget", "--signal"])


@FUZZ
@given(
    st.sampled_from(["check", "diagnose"]),
    st.lists(st.tuples(options, option_values), max_size=4),
)
def test_any_verdict_options_exit_0_1_or_2_with_one_line(trace_file, tmp_path_factory, command, pairs):
    argv = [command, str(trace_file)]
    for name, value in pairs:
        if command == "diagnose" and name == "--signal":
            continue
        argv += [f"{name}={value}"]
    with inside(tmp_path_factory.mktemp("cwd")):
        code, _out, err = run_cli(argv)
    assert code in (0, 1, 2), (argv, code)
    if code == 2 and err != "argparse":
        assert err.count("\n") == 1 and err.startswith(f"harness {command}: "), err


@FUZZ
@given(
    st.lists(st.sampled_from(["--available", "--per-worker", "--system", "--headroom", "--sidecar", "--workers"])),
    st.lists(
        st.one_of(
            st.sampled_from(["6 GB", "1e-300", "800 MB", "vlm=4GB..6GB", "x=", "=1", "a=1..", "5", "-1", "1e400"]),
            st.text(max_size=8),
        ),
        max_size=6,
    ),
)
def test_any_plan_arguments_exit_0_1_or_2_with_one_line(tmp_path_factory, names, values):
    argv = ["plan", "--available", "6 GB", "--per-worker", "800 MB"]
    for name, value in zip(names, values, strict=False):
        argv += [f"{name}={value}"]
    with inside(tmp_path_factory.mktemp("cwd")):
        code, _out, err = run_cli(argv)
    assert code in (0, 1, 2), (argv, code)
    if code == 2 and err != "argparse":
        assert err.count("\n") == 1, err


def test_report_never_overwrites_the_tests_verdict_or_report(trace_file):
    verdict = trace_file.parent / "verdict.json"
    before = verdict.read_text(), (trace_file.parent / "report.html").read_text()
    code, out, _ = run_cli(["report", str(trace_file)])
    assert code == 0
    assert (verdict.read_text(), (trace_file.parent / "report.html").read_text()) == before
    assert Path(out.strip()) == trace_file.with_suffix(".html") and Path(out.strip()).exists()


def test_report_to_a_file_leaves_a_verdict_beside_it_alone(trace_file, tmp_path):
    (tmp_path / "verdict.json").write_text("mine")
    code, _, _ = run_cli(["report", str(trace_file), "-o", str(tmp_path / "x.html")])
    assert code == 0
    assert (tmp_path / "verdict.json").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdict.json", "x.html"]


def test_report_to_a_directory_writes_into_that_directory(trace_file, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with inside(tmp_path):
        code, _out, _ = run_cli(["report", str(trace_file), "-o", str(out_dir)])
    assert code == 0
    assert [p.name for p in out_dir.iterdir()] == ["trace.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_report_into_a_read_only_folder_is_one_line_not_a_traceback(trace_file, tmp_path):
    with read_only_dir(tmp_path / "ro") as ro:
        code, _, err = run_cli(["report", str(trace_file), "-o", str(ro / "x.html")])
    assert code == 2 and err.count("\n") == 1 and "Read-only" in err, err


def test_report_onto_a_full_disk_is_one_line_and_leaves_no_partial_page(trace_file, tmp_path):
    with tiny_tmpfs(tmp_path / "full", "64k") as full:
        fill(full)
        code, _, err = run_cli(["report", str(trace_file), "-o", str(full / "x.html")])
        assert code == 2 and err.count("\n") == 1 and "No space" in err, err
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_report_into_a_file_used_as_a_folder_is_one_line_not_a_traceback(trace_file, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = run_cli(["report", str(trace_file), "-o", str(tmp_path / "file" / "x.html")])
    assert code == 2 and err.count("\n") == 1, err


@pytest.mark.parametrize(("settle", "ok"), [("500", True), ("0.1", True), ("10%", True), ("12", True), ("2.5", False)])
def test_settle_is_read_as_steps_or_a_fraction(trace_file, settle, ok):
    code, _out, err = run_cli(["check", str(trace_file), "--after", "eviction", f"--settle={settle}"])
    assert code in (0, 1) or (not ok and code == 2), err


def test_a_bad_budget_is_blamed_on_the_option(trace_file):
    code, _, err = run_cli(["check", str(trace_file), "--budget", "abc"])
    assert code == 2 and "--budget" in err and "assert_no_linear_growth" not in err


def test_run_refuses_zero_steps():
    code, _, err = run_cli(["run", "replay", "--steps", "0"])
    assert code == 2 and "--steps 0" in err


def test_a_closed_pipe_ends_the_command_quietly(trace_file):
    proc = subprocess.run(
        f"{sys.executable} -m harness.cli check {trace_file} --after eviction | head -c 1",
        shell=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert b"Traceback" not in proc.stderr and b"BrokenPipeError" not in proc.stderr, proc.stderr.decode()


def test_an_all_nan_signal_renders_as_a_page_not_a_traceback(tmp_path):
    path = tmp_path / "nan.jsonl"
    lines = [{"kind": "meta", "format": 1, "name": "nan", "meta": {}}]
    lines += [{"kind": "s", "step": i, "t": i * 0.1, "v": {"rss": None}} for i in range(5)]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, _, err = run_cli(["report", str(path), "-o", str(tmp_path / "r.html")])
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is empty"),
        (b"hello", "holds no complete record (5 characters on one unfinished line, starting 'hello')"),
        (b"HTRACE\x00\x01garbage", "holds no complete record (15 characters"),
        (b"hello world\n", "line 1: not JSON"),
        (b'{"step": 1}\n\xff\xfe', "line 2: not UTF-8 text"),
    ],
    ids=["empty", "one-unfinished-line", "binary-one-line", "one-text-line", "bad-byte"],
)
def test_a_garbage_file_is_named_for_what_it_is_in_one_line(tmp_path, content, says):
    path = tmp_path / "garbage.trace"
    path.write_bytes(content)
    for command in ("check", "diagnose", "report"):
        code, out, err = run_cli([command, str(path)])
        assert code == 2, (command, out, err)
        assert says in err and err.count("\n") <= 1, (command, err)
