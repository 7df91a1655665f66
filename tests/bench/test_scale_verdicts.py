"""Verdicts on 1 and 10 million samples: ``harness check``, ``diagnose`` and ``report`` on a
block-format trace, end to end (a fresh interpreter per command, as a user runs them),
with the wall time and the peak RSS of each command (VmHWM), plus pytest-benchmark
figures of load + verdict in process. Targets: 10M in <= 2 s and <= 200 MB per command,
1M in <= 0.5 s. Figures land in reports/studies/scale_verdicts.json; memory is asserted,
times are not (a shared CI machine's load moves them; compare the figures instead).

The commands run with compiled bytecode, as an installed package does (pip compiles it):
a pyc cache in a scratch directory, warmed by one run first; the minimum of several runs
is kept, the machine being shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.recording.blocks import BLOCK_ROWS, BlockTraceWriter
from harness.recording.trace import Event, Trace

OUT = Path(__file__).resolve().parents[2] / "reports" / "studies"
RUNS = 5


def synthetic_file(path: Path, n: int, leak_per_step: float = 0.0) -> Path:
    """``n`` samples of a run sampled every 10 steps (as a time budget would), in blocks of
    the writer's size (BLOCK_ROWS: what a recorder writes on a fast loop)."""
    rng = np.random.default_rng(0)
    with BlockTraceWriter(path, "synthetic", {"machine_memory": 16 * 2**30}) as w:
        for a in range(0, n, BLOCK_ROWS):
            k = min(BLOCK_ROWS, n - a)
            steps = (a + np.arange(k, dtype=np.int64)) * 10
            t = (a + np.arange(k)) * 1e-3 + rng.uniform(0, 2e-5, k)
            rss = np.floor((5e8 + rng.integers(-3, 4, k) * 4096.0 + steps * leak_per_step) / 4096) * 4096
            alloc = 3e8 + rng.integers(-500, 500, k) * 64.0 + steps * leak_per_step
            w.write_block(steps, t, {"v": {"rss": rss, "allocated": alloc}, "a": {"buffer": np.full(k, 1e8)}})
            if a == 0:
                w.event(Event("steady", 1_000, 0.1))
        w.end({})
    return path


#: Runs the CLI and writes this process's own high-water mark (VmHWM) at exit. Not
#: ru_maxrss: on Linux that keeps the parent's RSS at fork time (an xdist worker that ran
#: the checkpoint benchmark reads 2.7 GB there).
_WRAPPER = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            open(sys.argv[1], 'w').write(line.split()[1])\n"
    "atexit.register(hwm)\n"
    "from harness.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


_PYC = Path(tempfile.gettempdir()) / f"harness-bench-pyc-{os.getuid()}"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(_PYC)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_command(*argv: str) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit status) of ``harness ARGV`` in a fresh interpreter."""
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, out.name, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            env=_env(),
        )
        wall = time.perf_counter() - started
        text = out.read().strip()
    return wall, int(text) / 1024 if text else float("nan"), proc.returncode


def figures(path: Path, tmp: Path, runs: int = RUNS) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    commands = {
        "check": ("check", str(path), "--after", "steady", "--max-growth", "1 KB/1k steps"),
        "diagnose": ("diagnose", str(path), "--after", "steady"),
        "report": ("report", str(path), "--after", "steady", "-o", str(tmp / "r.html")),
    }
    for argv in commands.values():
        run_command(*argv)  # warm the bytecode cache (and the page cache)
    timings: dict[str, list[tuple[float, float, int]]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, the minimum kept: the machine is shared
        for name, argv in commands.items():
            timings[name].append(run_command(*argv))
    for name, got in timings.items():
        assert all(status in (0, 1) for _, _, status in got), f"harness {name} exited {got}"
        walls = sorted(wall for wall, _, _ in got)
        out[name] = {
            "seconds": round(walls[0], 3),
            "median_seconds": round(walls[len(walls) // 2], 3),
            "peak_rss_mb": round(max(rss for _, rss, _ in got), 1),
            "runs": runs,
        }
    started = time.perf_counter()
    trace = Trace.load(path)
    loaded = time.perf_counter()
    harness.growth_verdict(trace, after="steady", max_growth="1 KB/1k steps")
    out["in_process"] = {
        "load_s": round(loaded - started, 3),
        "verdict_s": round(time.perf_counter() - loaded, 3),
        "rows_in_memory": len(trace),
        "trace_mb": round(trace.nbytes / 1e6, 1),
        "file_bytes_per_sample": round(path.stat().st_size / trace.samples, 2),
    }
    return out


def _record(size: str, data: dict[str, dict[str, float]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / "scale_verdicts.json"
    existing = json.loads(target.read_text()) if target.exists() else {}
    existing[size] = data
    existing["method"] = (
        "wall seconds: min (and median) of interleaved runs of each command in a fresh interpreter "
        "with compiled bytecode; peak RSS: VmHWM; load average at the end of the last run: "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    target.write_text(json.dumps(existing, indent=2) + "\n")


def test_one_million_samples(tmp_path):
    path = synthetic_file(tmp_path / "1m.htrace", 1_000_000, leak_per_step=0.5)
    data = figures(path, tmp_path, runs=3)
    _record("1M", data)
    assert all(v["peak_rss_mb"] <= 200 for k, v in data.items() if k != "in_process"), data


@pytest.mark.study
def test_ten_million_samples(tmp_path):
    path = synthetic_file(tmp_path / "10m.htrace", 10_000_000, leak_per_step=0.5)
    data = figures(path, tmp_path)
    _record("10M", data)
    assert all(v["peak_rss_mb"] <= 200 for k, v in data.items() if k != "in_process"), data


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    return synthetic_file(tmp_path_factory.mktemp("bench") / "1m.htrace", 1_000_000)


@pytest.mark.benchmark(group="1M samples")
def test_load_and_check_one_million(benchmark, million):
    def run() -> bool:
        trace = Trace.load(million)
        return harness.growth_verdict(trace, after="steady", max_growth="1 KB/1k steps").passed

    assert benchmark.pedantic(run, rounds=3, warmup_rounds=1) is True
