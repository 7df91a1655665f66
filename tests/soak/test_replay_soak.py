"""The nightly soak: the replay scenario for the whole --soak-minutes budget, behind a gate.

Run with ``pytest -m soak --soak-minutes=20``. Each test first validates: 1,500 steps past
eviction must not already grow; otherwise it fails at once instead of burning the budget.
"""

from __future__ import annotations

import time

import pytest

import harness

pytest.importorskip("torch")

from fixtures.replay import EpisodeReplay, EpisodeSource
from fixtures.scenarios import FIXED, LIMIT
from fixtures.trainer import Trainer

GATE_STEPS = 1_500


def soak_replay(rec, soak, variant: str) -> None:
    buf = EpisodeReplay(FIXED.capacity_steps, FIXED.obs_shape, seed=0)
    src = EpisodeSource(FIXED.obs_shape, FIXED.episode_lengths, seed=1)
    trainer = Trainer(FIXED.obs_shape, variant=variant)
    gate_at = None
    for step in soak.steps(rec, after="eviction"):
        buf.add_step(*src.step())
        if step % FIXED.train_every == 0 and buf.can_sample(FIXED.length):
            trainer.train_step(buf, FIXED.batch, FIXED.length)
        rec.account(buffer=buf.nbytes)
        if buf.evicting and rec.mark("eviction"):
            gate_at = step + GATE_STEPS
        if step == gate_at:
            # The gate: fail fast when memory already grows after eviction.
            harness.assert_no_linear_growth(rec.trace, after="eviction", max_growth=LIMIT)


@pytest.mark.soak(max_growth=LIMIT, after="eviction")
def test_replay_soak_stays_flat(memory_trace, soak):
    soak_replay(memory_trace, soak, "fixed")


@pytest.mark.soak
def test_the_gate_stops_a_leaking_soak_early(memory_trace, soak):
    started = time.monotonic()
    with pytest.raises(harness.GrowthError, match="RSS grows"):
        soak_replay(memory_trace, soak, "view_leak")
    assert time.monotonic() - started < 30
