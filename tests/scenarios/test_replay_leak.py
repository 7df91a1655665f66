"""Incident 1 end to end: the fixed replay passes, each bad variant is caught."""

from __future__ import annotations

import pytest

import harness

pytest.importorskip("torch")

from harness.scenarios.drive import BAD_STEPS, FIXED, LIMIT, ReplayConfig, drive_replay


# Judged after the first full turnover of the buffer: in a cold process the allocator
# creeps up to ~1 MB/1k steps until about then (1 of 50 clean seeds failed when judged
# right after the first eviction; see reports/studies/false_positives.json).
@pytest.mark.leak(max_growth="1 MB/1k steps", after="turnover")
def test_fixed_replay_stays_flat_after_turnover(memory_trace):
    run = drive_replay(memory_trace, FIXED, watch_evicted=True)
    assert run.buffer.evictions > 10
    run.tracker.assert_released()


@pytest.mark.leak
def test_view_leak_is_caught_by_growth_and_by_liveness(memory_trace):
    run = drive_replay(memory_trace, ReplayConfig(variant="view_leak", steps=BAD_STEPS), watch_evicted=True)
    with pytest.raises(harness.GrowthError) as growth:
        harness.assert_no_linear_growth(memory_trace.trace, after="eviction", max_growth=LIMIT)
    text = str(growth.value)
    assert text.startswith("Allocator live memory grows") and "after 'eviction'" in text
    assert "limit 1 MB/1k steps" in text
    # RSS grows ~15x what the allocator holds on to: fragmentation amplifies the leak.
    assert "RSS grows" in text and "of what leaks reaches the OS" in text
    assert "Unaccounted memory" in text and "references to evicted data" in text
    with pytest.raises(harness.ReleaseError) as released:
        run.tracker.assert_released()
    chain = str(released.value)
    assert "Trainer._inflight (deque" in chain
    assert "ndarray view" in chain and ".base" in chain


@pytest.mark.leak
def test_loss_accumulated_with_its_graph_is_caught(memory_trace):
    drive_replay(memory_trace, ReplayConfig(variant="loss_leak", steps=BAD_STEPS))
    with pytest.raises(harness.GrowthError, match=r"Allocator live memory grows .* per 1k steps after 'eviction'"):
        harness.assert_no_linear_growth(memory_trace.trace, after="eviction", max_growth=LIMIT)
