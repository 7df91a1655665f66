"""Leaks in worker processes, judged on the process tree (record(children=True)).

Forked DataLoader workers copy the pages of a Python list they read (pytorch#13246), a
persistent worker's unbounded cache grows, a Pool task keeps results in a module-level
list: each is invisible to this process's RSS and allocator, and shows as PSS of the
tree. The fixed variants (numpy storage, an LRU, maxtasksperchild) pass.
"""

from __future__ import annotations

import pytest

import harness
from fixtures.catalog import get
from fixtures.loaders import open_scenario

pytest.importorskip("torch")


def drive(rec: harness.Recorder, name: str, variant: str, steps: int, warm: int) -> None:
    with open_scenario(name, variant) as step:
        for i in rec.steps(steps):
            step(i)
            if i == warm:
                rec.mark("warm")


def limit_for(name: str) -> float:
    return get(name).rate / 4  # a user who tolerates a quarter of the leak


@pytest.mark.leak
@pytest.mark.usefixtures("no_stray_children")
def test_persistent_worker_cache_is_caught_on_the_tree_and_names_the_workers():
    with harness.record("worker-cache", children=True, gc_types=False) as rec:
        drive(rec, "dataloader-worker-cache", "leaky", 3_000, 300)
    with pytest.raises(harness.GrowthError) as err:
        harness.assert_no_linear_growth(rec.trace, after="warm", max_growth=limit_for("dataloader-worker-cache"))
    text = str(err.value)
    verdict = err.value.verdict
    assert verdict.signal == "tree", text
    assert text.startswith("Process-tree memory (PSS of this process and its descendants) grows")
    assert "This process does not grow: the growth is in its child processes." in text
    workers = [p for p in rec.trace.meta["processes"] if p["last_pss"] > p["first_pss"]]
    assert len(workers) >= 2
    for proc in verdict.processes[:2]:
        assert f"(pid {proc.pid})" in text and proc.name in text


@pytest.mark.leak(max_growth="8 MB/1k steps", after="warm", children=True)
@pytest.mark.usefixtures("no_stray_children")
def test_bounded_worker_cache_passes(memory_trace):
    drive(memory_trace, "dataloader-worker-cache", "fixed", 3_000, 300)
    assert "tree" in memory_trace.trace.signals


# ~25 s a variant on a quiet machine (the tree of a million-string DataLoader costs ~60 ms a
# read); nightly, with the catalog study (5 of 5 seeds caught on the tree, fixed 0 of 5).
@pytest.mark.study
@pytest.mark.usefixtures("no_stray_children")
def test_dataloader_copy_on_read_is_caught_on_the_tree_and_numpy_storage_passes():
    limit = limit_for("dataloader-copy-on-read")
    verdicts = {}
    for variant in ("leaky", "fixed"):
        with harness.record(f"copy-on-read-{variant}", children=True, gc_types=False) as rec:
            drive(rec, "dataloader-copy-on-read", variant, 10_000, 1_000)
        verdicts[variant] = harness.growth_verdict(rec.trace, after="warm", max_growth=limit)
    leaky, fixed = verdicts["leaky"], verdicts["fixed"]
    assert not leaky.passed and leaky.signal == "tree", leaky.message()
    assert "copy-on-read (pytorch#13246)" in leaky.message()
    assert fixed.passed, fixed.message()


@pytest.mark.study
@pytest.mark.usefixtures("no_stray_children")
@pytest.mark.parametrize("variant", ["leaky", "fixed"])
def test_pool_task_keeping_results_is_caught_and_maxtasksperchild_passes(variant):
    with harness.record(f"pool-{variant}", children=True, gc_types=False) as rec:
        drive(rec, "pool-module-list", variant, 12_000, 1_200)
    verdict = harness.growth_verdict(rec.trace, after="warm", max_growth=limit_for("pool-module-list"))
    assert verdict.passed == (variant == "fixed"), verdict.message()
