"""A bounded trace: its memory stays capped whatever the run's length, and its verdicts
agree with the full-resolution trace's on long clean and leaky runs."""

from __future__ import annotations

import numpy as np
import pytest

import harness
from harness.recording.trace import Event, Trace

PAGE = 4096.0


def synthetic_rss(n: int, seed: int, leak_per_step: float = 0.0, leak_from: int = 0, step_size: int = 1):
    """RSS of a long run, in pages: a stationary AR(1) wobble, allocator stairs that come
    back down, rare spikes, and (optionally) a leak from ``leak_from`` on."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.int64) * step_size
    wobble = np.zeros(n)
    e = rng.normal(0, 30 * PAGE, n)
    phi = 0.999
    for a in range(0, n, 100_000):  # AR(1) in chunks: lfilter-free and fast enough
        b = min(n, a + 100_000)
        prev = wobble[a - 1] if a else 0.0
        seg = np.empty(b - a)
        for i in range(b - a):
            prev = phi * prev + e[a + i] * 0.05
            seg[i] = prev
        wobble[a:b] = seg
    stairs = np.zeros(n)
    for start in rng.integers(0, n, 6):
        stairs[start : start + rng.integers(n // 50, n // 10)] += rng.choice([-1, 1]) * 2e6
    spikes = np.where(rng.random(n) < 1e-4, 30e6, 0.0)
    leak = np.where(steps >= leak_from, (steps - leak_from) * leak_per_step, 0.0)
    rss = 800e6 + wobble + stairs + spikes + leak
    return steps, np.floor(rss / PAGE) * PAGE


def fill(trace: Trace, steps, rss, chunk: int = 50_000) -> Trace:
    for a in range(0, len(steps), chunk):
        b = a + chunk
        trace.extend(
            steps[a:b], steps[a:b] * 1e-3, {"v": {"rss": rss[a:b]}, "a": {"buffer": np.full(len(steps[a:b]), 1e8)}}
        )
    return trace


@pytest.mark.parametrize(
    ("leak", "expect_pass"),
    [(0.0, True), (40.0, False)],  # limit 20 B/step: a clean run and a leak at twice the limit
    ids=["clean", "leaky"],
)
def test_verdicts_on_the_bounded_trace_agree_with_full_resolution(leak, expect_pass):
    n = 1_500_000
    steps, rss = synthetic_rss(n, seed=7, leak_per_step=leak, leak_from=n // 2)
    full = fill(Trace("full", {"machine_memory": 2**36}, bounded=False), steps, rss)
    bounded = fill(Trace("bounded", {"machine_memory": 2**36}), steps, rss)
    for trace in (full, bounded):
        trace.add_event(Event("midway", n // 2, n // 2 * 1e-3))
    assert bounded.decimated and len(bounded) < 80_000 and len(full) == n
    for signal in ("rss", "unaccounted"):
        vf = harness.growth_verdict(full, after="midway", max_growth="20 KB/1k steps", signal=signal)
        vb = harness.growth_verdict(bounded, after="midway", max_growth="20 KB/1k steps", signal=signal)
        assert vf.passed is vb.passed is expect_pass, (vf.summary_line(), vb.summary_line())
        assert vb.growth.slope == pytest.approx(vf.growth.slope, abs=2.0), (vf.growth, vb.growth)
    df = harness.diagnose(full, after="midway", max_growth="20 KB/1k steps")
    db = harness.diagnose(bounded, after="midway", max_growth="20 KB/1k steps")
    assert df.case == db.case
    # the true peak survives decimation (a spike lives on in its block's maximum)
    assert bounded.peak("rss") == full.peak("rss") == rss.max()


def test_memory_stays_capped_however_many_samples():
    trace = Trace("cap")
    sizes = []
    steps, rss = synthetic_rss(200_000, seed=1)
    for rep in range(15):  # 3 million samples
        trace.extend(steps + rep * 200_000, steps * 1e-3, {"v": {"rss": rss}, "a": {"buffer": rss / 2}})
        trace.signal("unaccounted")  # the cached view counts too
        sizes.append(trace.nbytes)
    assert trace.samples == 3_000_000
    assert max(sizes) < 12_000_000, sizes
    assert sizes[-1] <= max(sizes[5:8]) * 1.1, sizes  # flat once the history is full
    assert int(trace.counts.sum()) == trace.samples
    assert np.all(np.diff(trace.steps) > 0)


def test_per_sample_appends_fold_like_bulk_extends():
    steps, rss = synthetic_rss(150_000, seed=3)
    one = Trace("one")
    for s, r in zip(steps.tolist(), rss.tolist(), strict=True):
        one.append(s, s * 1e-3, {"rss": r})
    bulk = fill(Trace("bulk"), steps, rss)
    assert one.decimated
    assert np.array_equal(one.steps, bulk.steps)
    assert np.array_equal(one.signal("rss"), bulk.signal("rss"))
    assert np.array_equal(one.extremes("rss")[1], bulk.extremes("rss")[1])


def test_head_of_a_bounded_trace_keeps_what_was_known_then():
    steps, rss = synthetic_rss(300_000, seed=5)
    trace = fill(Trace("h"), steps, rss)
    trace.add_event(Event("a", 1_000, 1.0))
    trace.add_event(Event("b", 250_000, 250.0))
    cut = trace.head(200_000)
    assert int(cut.steps[-1]) <= 200_000 and [e.name for e in cut.events] == ["a"]
    assert 195_000 < cut.samples <= 200_001
    harness.growth_verdict(cut, after="a", max_growth="1 MB/1k steps")
