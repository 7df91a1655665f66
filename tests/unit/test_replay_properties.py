"""Property tests over buffer configurations: the fixed buffer frees what it evicts and
its accounting equals the real bytes of what it holds."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness
from harness.scenarios.replay import EpisodeReplay


@st.composite
def configs(draw):
    obs_shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    lengths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=25))
    capacity = draw(st.integers(1, 200))
    dtype = draw(st.sampled_from(["uint8", "float32", "int16"]))
    batch = draw(st.integers(1, 8))
    window = draw(st.integers(1, 12))
    return obs_shape, lengths, capacity, dtype, batch, window


def watch_all(tracker, episodes, key=None):
    # A helper, so no loop variable in the test's frame keeps the last episode alive
    # (the first version of this test did exactly that, and the tracker said so).
    for ep in episodes:
        tracker.watch(ep if key is None else ep[key], label=f"episode {int(ep['id'])}")


def check_views(buf, batch, window, obs_shape):
    for view in buf.sample_views(batch, window):
        assert view["obs"].shape == (window, *obs_shape)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.integers(0, 2**32 - 1))
def test_fixed_buffer_frees_evicted_episodes_and_accounts_exactly(config, seed):
    obs_shape, lengths, capacity, dtype, batch, window = config
    buf = EpisodeReplay(capacity, obs_shape, dtype, seed=seed)
    tracker = harness.track_release()
    rng = np.random.default_rng(seed)
    batches = []
    for length in lengths:
        for t in range(length):
            obs = rng.integers(0, 100, size=obs_shape).astype(dtype)
            watch_all(tracker, buf.add_step(obs, t % 3, 0.5, t == length - 1))
            if buf.can_sample(window):
                sampled = buf.sample(batch, window)  # copies: holding them must not pin episodes
                assert sampled["obs"].shape == (batch, window, *obs_shape)
                batches.append(sampled)
                check_views(buf, batch, window, obs_shape)  # views, dropped at once
        # Accounting equals the real bytes of every array the buffer holds.
        held = list(buf.held_arrays())
        assert buf.nbytes == sum(a.nbytes for a in held)
        del held
        acct = buf.accounting
        assert acct.obs_bytes == sum(ep["obs"].nbytes for ep in buf.episodes)
        assert acct.episodes == len(buf.episodes)
        assert acct.total_steps == sum(len(ep["obs"]) for ep in buf.episodes)
        # Capacity holds, except for a lone episode longer than the whole buffer.
        assert acct.total_steps <= capacity or len(buf.episodes) == 1
        # FIFO: stored ids are consecutive and follow the evicted ones.
        ids = [int(ep["id"]) for ep in buf.episodes]
        assert ids == list(range(buf.evictions, buf.evictions + len(ids)))
    assert buf.evicted_ids == list(range(buf.evictions))
    assert tracker.alive() == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(2, 30), min_size=3, max_size=12), st.integers(0, 1000))
def test_a_retained_view_is_caught_on_the_very_first_eviction(lengths, seed):
    """The bad path, for contrast: a history that keeps a view of each stored episode."""
    buf = EpisodeReplay(sum(lengths) // 2, (2, 2), seed=seed)
    tracker = harness.track_release()
    history = []
    first_eviction = caught_at = None
    for length in lengths:
        for t in range(length):
            evicted = buf.add_step(np.zeros((2, 2), np.uint8), 0, 0.0, t == length - 1)
            watch_all(tracker, evicted, key="obs")
            if evicted and first_eviction is None:
                first_eviction = buf.evictions
                if tracker.alive():
                    caught_at = buf.evictions
            del evicted
        history.append(buf.episodes[-1]["obs"][:1])  # a one-step view pins the whole episode
    assert first_eviction is not None  # capacity is half of what was added
    assert caught_at == first_eviction
