"""Incident 4 with real processes: the guard stops a pool before it breaks its budget."""

from __future__ import annotations

import pytest

import harness
from fixtures.pool import PoolError, WorkerPool

pytestmark = pytest.mark.usefixtures("no_stray_children")


@pytest.mark.leak
def test_five_workers_of_300_mb_trip_the_guard_before_a_1_gb_budget_is_gone():
    with harness.record("pool") as rec, WorkerPool(5, "300 MB", cap="400 MB", budget="1 GB") as pool:
        guard = harness.MemoryGuard(
            warn="400 MB",
            critical="250 MB",
            budget="1 GB",
            pids=lambda: pool.pids,
            labels=pool.labels,
            on_critical=pool.stop,
            rec=rec,
            interval_s=0.02,
        )
        with guard:
            pool.launch(preflight=False, settle_checks=0)  # launched against advice, as in the incident
            for _ in rec.steps(100):
                pool.run(0.05)
    assert guard.tripped
    assert pool.pids == []  # stopped
    assert guard.min_available is not None and guard.min_available > 0  # before the budget was gone
    critical = next(e for e in guard.events if e.level == "critical")
    assert critical.available < 250e6
    text = guard.message()
    assert "critical: " in text and "top consumers: worker " in text and "RSS " in text
    assert rec.trace.event("memory-critical") is not None


@pytest.mark.leak
def test_three_workers_of_200_mb_run_without_tripping():
    with WorkerPool(3, "200 MB", cap="300 MB", budget="1 GB") as pool:
        guard = harness.MemoryGuard(
            warn="200 MB", critical="100 MB", budget="1 GB", pids=lambda: pool.pids, on_critical=pool.stop
        )
        with guard:
            pool.launch()
            pool.run(1.5)
            assert len(pool.pids) == 3
    assert not guard.events, guard.message()
    assert pool.failures() == []


def test_preflight_refuses_a_pool_that_cannot_fit():
    with WorkerPool(5, "300 MB", cap="400 MB", budget="1 GB") as pool, pytest.raises(PoolError) as err:
        pool.launch()
    assert "5 workers need 1.5 GB–2.0 GB against 1.0 GB: does not fit" in str(err.value)
    assert pool.procs == {}


def test_a_single_worker_over_its_own_cap_is_named():
    with WorkerPool(2, "100 MB", cap="300 MB") as pool:
        pool.launch()
        pool._start("worker greedy", 150_000_000, 300_000_000, 220_000_000)  # grows 300 MB/s past 220 MB
        pool.run(0.1)
        for _ in range(400):  # up to ~20 s on a loaded machine; it ends as soon as the worker exits
            if pool.procs["worker greedy"].poll() is not None:
                break
            pool.run(0.05)
        pool.stop()
        failures = pool.failures()
    assert len(failures) == 1
    assert failures[0].startswith("worker greedy exited 3: worker-greedy over its cap: RSS ")
    assert "> cap 220000000" in failures[0]
