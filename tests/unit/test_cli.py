"""The `harness` command as a user runs it: exit codes and output."""

from __future__ import annotations

import subprocess
import sys

from harness.recording.trace import TraceWriter


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, check=False)


def _trace(tmp_path, per_step: int):
    # Recorded in a fresh interpreter, as a user's run would be: in this (warm) test
    # process new allocations can reuse freed memory and RSS need not move.
    path = tmp_path / f"t{per_step}.jsonl"
    code = (
        "import harness\n"
        "held = []\n"
        f"with harness.record('cli', {str(path)!r}) as rec:\n"
        "    for step in rec.steps(400):\n"
        "        if step == 100:\n"
        "            rec.mark('eviction')\n"
        f"        if {per_step}:\n"
        f"            held.append(bytearray(b'x') * {per_step})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return path


def test_check_fails_on_growth_and_passes_when_flat(tmp_path):
    grown = cli("check", str(_trace(tmp_path, 50_000)), "--after", "eviction")
    assert grown.returncode == 1 and grown.stdout.startswith("Allocator live memory grows ")
    flat = cli("check", str(_trace(tmp_path, 0)), "--after", "eviction")
    assert flat.returncode == 0 and "Passed" in flat.stdout


def test_bad_input_is_exit_2_with_one_line(tmp_path):
    out = cli("check", str(tmp_path / "missing.jsonl"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"harness check: cannot read trace file '{tmp_path}/missing.jsonl': No such file or directory"
    ]


def test_report_writes_html(tmp_path):
    out = cli("report", str(_trace(tmp_path, 0)), "-o", str(tmp_path / "r.html"), "--after", "eviction")
    assert out.returncode == 0
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_plan_reproduces_the_incident_arithmetic():
    out = cli(
        "plan",
        "--available",
        "6.5 GB",
        "--per-worker",
        "800 MB",
        "1.2 GB",
        "--sidecar",
        "vlm=4GB..6GB",
        "--system",
        "1 GB",
        "2 GB",
        "--workers",
        "5",
    )
    assert out.returncode == 1
    assert "5 workers need 9.0 GB–14.0 GB against 6.5 GB: does not fit." in out.stdout


def test_report_draws_a_trace_too_short_for_a_check_and_says_why(tmp_path, capsys):
    from harness.cli import main

    trace = tmp_path / "short.jsonl"
    with TraceWriter(trace, "short") as w:
        for step in range(5):
            w.sample(step, step * 1e-3, {"rss": 1e8 + step})
    assert main(["report", str(trace), "-o", str(tmp_path / "r.html")]) == 0
    assert "the page has no growth check: the window after warm-up in trace 'short' has" in capsys.readouterr().err
    assert "<svg" in (tmp_path / "r.html").read_text()
    # a bad limit is still an error, named by its flag
    assert main(["report", str(trace), "--max-growth", "-1 MB/1k steps", "-o", str(tmp_path / "x.html")]) == 2
    assert "(from --max-growth)" in capsys.readouterr().err


def test_diagnose_skips_an_optional_column_with_no_values(tmp_path, capsys):
    from harness.cli import main

    trace = tmp_path / "t.jsonl"
    with TraceWriter(trace, "t") as w:
        for step in range(200):
            w.sample(step, step * 1e-3, {"rss": 1e8 + step * 1e5, "cuda_reserved": float("nan")})
    assert main(["diagnose", str(trace)]) == 0
    assert "rss 100 MB/1k steps" in capsys.readouterr().out
