"""What recording costs on a replay + trainer step (pytest-benchmark; no timing asserts).

Run without xdist for figures (``pytest tests/bench``): under ``-n 2`` pytest-benchmark
runs each benchmark once, unmeasured. Compare the groups' means: ``none`` is the bare
step; ``default`` adds the default probes (RSS from /proc/self/statm and one flushed JSONL
line per step, plus accounting); then
tracemalloc (``heap=True``) and memray tracking. Target: default within 3% of none.
"""

from __future__ import annotations

import pytest

import harness

pytest.importorskip("torch")

from harness.scenarios.replay import EpisodeReplay, EpisodeSource
from harness.scenarios.trainer import Trainer

STEPS = 50


@pytest.fixture(scope="module")
def subject():
    import torch

    torch.set_num_threads(1)
    buf = EpisodeReplay(3_000, seed=0)
    src = EpisodeSource(seed=1)
    trainer = Trainer(seed=0)
    for _ in range(3_500):  # full and evicting, as in steady state
        buf.add_step(*src.step())
    return buf, src, trainer


def _bare(buf, src, trainer):
    for _ in range(STEPS):
        buf.add_step(*src.step())
        trainer.train_step(buf)


def _recorded(rec, buf, src, trainer):
    for _ in rec.steps(STEPS):
        buf.add_step(*src.step())
        trainer.train_step(buf)
        rec.account(buffer=buf.nbytes)


@pytest.mark.benchmark(group="replay+trainer, 50 steps", min_rounds=20)
def test_step_with_no_probes(benchmark, subject):
    benchmark(_bare, *subject)


@pytest.mark.benchmark(group="replay+trainer, 50 steps", min_rounds=20)
def test_step_with_default_probes(benchmark, subject, tmp_path):
    with harness.record("bench", tmp_path / "trace.jsonl", gc_types=False) as rec:
        benchmark(_recorded, rec, *subject)
    assert len(rec.trace) >= STEPS


@pytest.mark.benchmark(group="replay+trainer, 50 steps", min_rounds=20)
def test_step_with_tracemalloc(benchmark, subject, tmp_path):
    with harness.record("bench", tmp_path / "trace.jsonl", gc_types=False, heap=True) as rec:
        benchmark(_recorded, rec, *subject)
    assert rec.trace.columns["heap"][-1] > 0


@pytest.mark.benchmark(group="replay+trainer, 50 steps", min_rounds=20)
def test_step_with_memray(benchmark, subject, tmp_path):
    memray = pytest.importorskip("memray")
    with (
        harness.record("bench", tmp_path / "trace.jsonl", gc_types=False) as rec,
        memray.Tracker(str(tmp_path / "bench.bin")),
    ):
        benchmark(_recorded, rec, *subject)
    assert (tmp_path / "bench.bin").stat().st_size > 0


@pytest.mark.benchmark(group="one sample")
def test_one_sample_of_the_default_probes(benchmark, tmp_path):
    with harness.record("sample", tmp_path / "trace.jsonl", gc_types=False) as rec:
        rec.account(buffer=1_000_000)
        benchmark(rec.sample)
    # Under xdist pytest-benchmark runs each benchmark once, unmeasured: count >= 1.
    assert len(rec.trace) >= 1 and rec.trace.accounting["buffer"][-1] == 1_000_000


@pytest.mark.benchmark(group="one sample")
def test_one_rss_read(benchmark):
    from harness.probes.memory import read_rss

    assert benchmark(read_rss) > 0
