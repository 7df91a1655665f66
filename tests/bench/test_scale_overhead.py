"""What the default probes cost per step at 10 µs, 100 µs, 1 ms and 10 ms steps.

pytest-benchmark groups, one per step size: ``bare`` is the step alone; ``record`` drives
the same step through ``rec.steps()`` of a recorder with the real defaults (time-budget
sampling, RSS, gc type counts at start and end); ``record+file`` also streams the block
format. Target: within 2% of bare at every size. Run without xdist for figures:
``pytest tests/bench/test_scale_overhead.py``.

The README's table is "min of interleaved runs": ``python tests/bench/test_scale_overhead.py``
alternates bare and recorded loops and prints each one's minimum and their ratio.

Both time CPU seconds of this process (``time.process_time``), not wall time: on a shared
CI machine other processes' load moves wall time by more than the 2% being measured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

import harness

STEP_US = (10, 100, 1_000, 10_000)
LOOP_S = 0.25  # one round: about a quarter of a second of steps


def make_step(target_us: float):
    """A pure-Python step of about ``target_us`` (calibrated once)."""

    def work(k: int) -> int:
        total = 0
        for i in range(k):
            total += i
        return total

    k = 16
    while True:
        t = time.process_time()
        for _ in range(20):
            work(k)
        per = (time.process_time() - t) / 20
        if per >= target_us * 1e-6 / 4:
            break
        k *= 2
    k = max(1, int(k * target_us * 1e-6 / per))
    return lambda: work(k)


_STEPS = {us: make_step(us) for us in STEP_US} if "pytest" in sys.modules or __name__ == "__main__" else {}


def _n(us: int) -> int:
    return max(10, int(LOOP_S / (us * 1e-6)))


def bare(step, n: int) -> None:
    for _ in range(n):
        step()


def recorded(rec: harness.Recorder, step, n: int) -> None:
    for _ in rec.steps(n):
        step()


@pytest.fixture(scope="module")
def recorder():
    with harness.record("bench") as rec:
        yield rec


@pytest.fixture(scope="module")
def recorder_file(tmp_path_factory):
    with harness.record("bench", tmp_path_factory.mktemp("bench") / "trace.htrace") as rec:
        yield rec


pytestmark = pytest.mark.benchmark(timer=time.process_time)


@pytest.mark.parametrize("us", STEP_US)
def test_bare_step(benchmark, us):
    benchmark.group = f"step {us} us"
    benchmark.pedantic(bare, args=(_STEPS[us], _n(us)), rounds=7, warmup_rounds=1)


@pytest.mark.parametrize("us", STEP_US)
def test_step_with_default_probes(benchmark, recorder, us):
    benchmark.group = f"step {us} us"
    benchmark.pedantic(recorded, args=(recorder, _STEPS[us], _n(us)), rounds=7, warmup_rounds=1)
    assert len(recorder.trace) > 0


@pytest.mark.parametrize("us", STEP_US)
def test_step_with_default_probes_and_a_block_file(benchmark, recorder_file, us):
    benchmark.group = f"step {us} us"
    benchmark.pedantic(recorded, args=(recorder_file, _STEPS[us], _n(us)), rounds=7, warmup_rounds=1)
    assert len(recorder_file.trace) > 0


def interleaved_table(repeats: int = 15, path: Path | None = None) -> str:
    """Min of interleaved runs: bare, record, record+file, repeated; markdown rows."""
    rows = [
        "| step | bare (min) | default probes | ratio | + block file | ratio | samples/s |",
        "|---|---|---|---|---|---|---|",
    ]
    target = path or Path("/tmp/harness-bench.htrace")
    with harness.record("bench") as rec, harness.record("bench-file", target) as rec_file:
        for us in STEP_US:
            step, n = _STEPS[us], _n(us)
            best = {"bare": 1e9, "rec": 1e9, "file": 1e9}
            before = rec.trace.samples
            for _ in range(repeats):
                for key in ("bare", "rec", "file"):
                    t = time.process_time()
                    if key == "bare":
                        bare(step, n)
                    else:
                        recorded(rec if key == "rec" else rec_file, step, n)
                    best[key] = min(best[key], time.process_time() - t)
            rate = (rec.trace.samples - before) / (repeats * best["rec"])
            rows.append(
                f"| {us:,} µs | {best['bare'] / n * 1e6:.2f} µs | {best['rec'] / n * 1e6:.2f} µs | "
                f"{best['rec'] / best['bare']:.3f}× | {best['file'] / n * 1e6:.2f} µs | "
                f"{best['file'] / best['bare']:.3f}× | {rate:,.0f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    print(interleaved_table())
