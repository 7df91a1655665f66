"""Growth verdicts on synthetic traces: figures, window, projection, evidence, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import harness
from harness.errors import GrowthError, TraceError
from harness.recording.trace import Event, Trace

MB = 1_000_000


def synthetic(
    slope_per_step: float,
    steps: int = 40_000,
    event_at: int | None = 10_000,
    noise: float = 0.0,
    accounted: float | None = None,
    seed: int = 0,
) -> Trace:
    rng = np.random.default_rng(seed)
    trace = Trace(name="synthetic", meta={"machine_memory": 24 * 2**30})
    base = 2_400 * MB
    for step in range(0, steps, 10):
        grow = slope_per_step * max(0, step - (event_at or 0))
        rss = base + grow + (rng.normal(0, noise) if noise else 0.0)
        trace.append(step, step * 0.001, {"rss": rss}, {"buffer": accounted} if accounted is not None else None)
    if event_at is not None:
        trace.add_event(Event("eviction", event_at, event_at * 0.001))
    return trace


def test_linear_growth_after_eviction_fails_with_figures_window_and_projection():
    trace = synthetic(4_100, noise=300_000, accounted=1_000 * MB)
    with pytest.raises(GrowthError) as err:
        harness.assert_no_linear_growth(trace, after="eviction", max_growth="1 MB/1k steps")
    text = str(err.value)
    assert text.startswith("RSS grows 4.1 MB per 1k steps after 'eviction' (step 10,000; window steps 12,999–39,990")
    assert "95% interval 4.0 MB–4.2 MB/1k" in text or "95% interval 4.1 MB–4.1 MB/1k" in text
    assert "limit 1 MB/1k steps" in text
    # Settle: 10% of the 29,990 steps after the event. 24 GiB = 25.77 GB; from ~2.52 GB
    # at step 39,990, at 4,100 B/step: ~5.67M more steps.
    assert "At this rate 25.8 GB (this machine's memory) is reached at step 5,7" in text
    assert "Unaccounted memory (RSS minus declared buffer bytes) grows 4.1 MB/1k steps" in text
    assert "look for references to evicted data" in text


def test_growth_before_the_event_does_not_count():
    trace = Trace(name="fill")
    for step in range(0, 20_000, 10):
        rss = 100 * MB + 50_000 * min(step, 10_000)  # fills, then flat
        trace.append(step, 0.0, {"rss": rss})
    trace.add_event(Event("eviction", 10_000, 0.0))
    verdict = harness.assert_no_linear_growth(trace, after="eviction", max_growth="1 MB/1k steps")
    assert verdict.passed and verdict.growth.slope == 0.0
    # Without the event the window includes the fill: the interval lies above the limit,
    # but only the first half grows, so it is a transient and not linear growth.
    whole = harness.assert_no_linear_growth(trace, max_growth="1 MB/1k steps", settle=0)
    # The best break of the window falls at the end of the fill (block medians 333 steps
    # wide): 50,000 B/step before it, exactly flat after it, so the rise is not sustained.
    assert whole.growth.exceeds(1_000) and whole.trend is not None
    assert whole.trend.slope == 0.0 and abs(whole.trend.before - 50_000) < 1_000
    assert abs(whole.trend.shift_step - 10_000) <= 400
    assert "the rise stopped: after step 10," in whole.message()
    assert "50.0 MB/1k steps before" in whole.message()


def test_a_few_allocator_steps_in_a_flat_run_pass():
    trace = Trace(name="steps")
    for step in range(0, 30_000, 10):
        rss = 500 * MB + (1 * MB if step > 12_000 else 0) + (2 * MB if step > 21_000 else 0)
        trace.append(step, 0.0, {"rss": rss})
    trace.add_event(Event("eviction", 5_000, 0.0))
    verdict = harness.assert_no_linear_growth(trace, after="eviction", max_growth="1 MB/1k steps")
    assert verdict.passed
    assert verdict.growth.slope < 0.2 * 1_000


def test_growing_accounted_memory_points_at_capacity_not_at_a_leak():
    trace = Trace(name="unbounded")
    for step in range(0, 20_000, 10):
        buf = 3_000.0 * step
        trace.append(step, 0.0, {"rss": 400 * MB + buf}, {"buffer": buf})
    trace.add_event(Event("eviction", 1_000, 0.0))
    with pytest.raises(GrowthError, match="the structure itself keeps growing; check that its capacity is enforced"):
        harness.assert_no_linear_growth(trace, after="eviction", max_growth="1 MB/1k steps")
    harness.assert_no_linear_growth(trace, after="eviction", max_growth="1 MB/1k steps", signal="unaccounted")


def test_an_event_never_marked_lists_the_events_there_are():
    trace = synthetic(0, event_at=None)
    with pytest.raises(TraceError) as err:
        harness.assert_no_linear_growth(trace, after="eviction")
    assert str(err.value) == (
        "after='eviction': trace 'synthetic' has no event 'eviction' (events marked: none); "
        "call rec.mark('eviction') when it happens, or run long enough for it to happen"
    )


def test_an_empty_trace_and_a_short_window_are_one_line_errors():
    with pytest.raises(TraceError, match=r"^trace 'empty' is empty: nothing was sampled \(did the loop run\?\)$"):
        harness.assert_no_linear_growth(Trace(name="empty"))
    short = synthetic(0, steps=10_050, event_at=10_000)
    with pytest.raises(TraceError, match=r"window after 'eviction' \(step 10,000\).* has 4 samples, fewer than the 20"):
        harness.assert_no_linear_growth(short, after="eviction")


def test_budget_argument_drives_the_projection():
    trace = synthetic(53_000, steps=20_000, event_at=5_000)  # incident 1: 53 MB per 1k steps
    with pytest.raises(GrowthError, match=r"At this rate 6.4 GB \(budget\) is reached at step 8[0-9],"):
        harness.assert_no_linear_growth(trace, after="eviction", budget="6 GiB")


def test_diagnose_tells_ram_leak_from_no_leak():
    leak = synthetic(4_100, accounted=1_000 * MB)
    flat = synthetic(0, accounted=1_000 * MB)
    assert harness.diagnose(leak, after="eviction").case == "C"
    assert harness.diagnose(flat, after="eviction").case == "D"
    assert "RAM leak" in str(harness.diagnose(leak, after="eviction"))


def _with_cuda(allocated_slope: float, reserved_slope: float) -> Trace:
    trace = Trace(name="gpu")
    for step in range(0, 20_000, 10):
        grow = max(0, step - 5_000)
        trace.append(
            step,
            0.0,
            {
                "rss": 2_000 * MB,
                "cuda_allocated": 1_000 * MB + allocated_slope * grow,
                "cuda_reserved": 1_500 * MB + reserved_slope * grow,
            },
            {"buffer": 500 * MB},
        )
    trace.add_event(Event("eviction", 5_000, 0.0))
    return trace


def test_diagnose_tells_gpu_leak_from_fragmentation():
    # Incident 1's cases: A, allocated climbs; B, allocated flat while reserved climbs.
    assert harness.diagnose(_with_cuda(5_000, 5_000), after="eviction").case == "A"
    frag = harness.diagnose(_with_cuda(0, 5_000), after="eviction")
    assert frag.case == "B" and "fragmentation" in frag.title
    assert harness.diagnose(_with_cuda(0, 0), after="eviction").case == "D"


def _rss_stairs(alloc_slope: float, seed: int = 0, alloc_noise: float = 200_000) -> Trace:
    """RSS climbing in stairs (a new high-water mark every ~2,000 steps, 3 MB each) while
    the allocators' live bytes move by ``alloc_slope`` bytes a step, with noise."""
    rng = np.random.default_rng(seed)
    trace = Trace(name="stairs", meta={"machine_memory": 24 * 2**30})
    for step in range(0, 20_000, 10):
        rss = 500 * MB + 3 * MB * (step // 2_000) + rng.normal(0, 50_000)
        alloc = 200 * MB + alloc_slope * step + rng.normal(0, alloc_noise)
        trace.append(step, step * 0.001, {"rss": rss, "allocated": alloc})
    trace.add_event(Event("warm", 1_000, 1.0))
    return trace


def test_rss_growing_while_the_allocators_hold_no_more_passes_with_a_retention_warning():
    trace = _rss_stairs(0.0)
    with pytest.warns(harness.RetentionWarning) as caught:
        verdict = harness.assert_no_linear_growth(trace, after="warm", max_growth="1 MB/1k steps")
    assert verdict.passed and verdict.retention and verdict.signal == "rss"
    text = str(caught[0].message)
    assert "Passed with a warning: RSS grows, but the allocators' live bytes (malloc + Python objects) do not" in text
    assert "malloc_trim(0)" in text and "signal='rss'" in text
    assert verdict.summary_line().startswith("PASS (warning: RSS retention) rss 1.5 MB/1k steps")
    assert verdict.as_dict()["retention"] is True
    # Asked to judge RSS itself, the same trace fails: RSS is what the OOM killer sees.
    with pytest.raises(GrowthError, match=r"^RSS grows 1.5 MB per 1k steps"):
        harness.assert_no_linear_growth(trace, after="warm", max_growth="1 MB/1k steps", signal="rss")


def test_rss_stairs_with_growing_live_bytes_fail_on_the_allocator():
    trace = _rss_stairs(1_500.0)  # the code holds 1.5 KB more each step
    with pytest.raises(GrowthError) as err:
        harness.assert_no_linear_growth(trace, after="warm", max_growth="1 MB/1k steps")
    assert err.value.verdict.signal == "allocated" and not err.value.verdict.retention


def test_live_bytes_not_clearly_under_the_limit_do_not_excuse_rss():
    # The allocators grow 0.95 KB/step under 30 MB of noise: their interval reaches the
    # 1 KB/step limit, so RSS's growth is not excused as retention.
    trace = _rss_stairs(950.0, alloc_noise=30 * MB)
    verdict = harness.growth_verdict(trace, after="warm", max_growth="1 MB/1k steps")
    alloc = verdict.judgement("allocated")
    assert alloc is not None and alloc.growth.high >= 1_000
    assert not verdict.passed and not verdict.retention
