"""The nightly soak: the replay scenario for the whole --soak-minutes budget, behind a gate.

Run with ``pytest -m soak --soak-minutes=20``. Each test first validates: 1,500 steps past
the buffer's first turnover must not already grow; otherwise it fails at once instead of
burning the budget.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

import harness

pytest.importorskip("torch")

from harness.scenarios.drive import FIXED, LIMIT, ReplayRun, drive_replay

GATE_STEPS = 1_500


def soak_replay(rec: harness.Recorder, soak: harness.SoakBudget, variant: str) -> ReplayRun:
    def gate(step: int, run: ReplayRun) -> None:
        if run.turnover_step is not None and step == run.turnover_step + GATE_STEPS:
            # Fail fast when memory already grows: the budget is not burnt on a known leak.
            harness.assert_no_linear_growth(rec.trace, after="turnover", max_growth=LIMIT)

    config = replace(FIXED, variant=variant)
    return drive_replay(rec, config, steps=soak.steps(rec, after="turnover"), on_step=gate)


@pytest.mark.soak(max_growth=LIMIT, after="turnover")
def test_replay_soak_stays_flat(memory_trace, soak):
    soak_replay(memory_trace, soak, "fixed")


@pytest.mark.soak
def test_the_gate_stops_a_leaking_soak_early(memory_trace, soak):
    started = time.monotonic()
    with pytest.raises(harness.GrowthError, match="RSS grows"):
        soak_replay(memory_trace, soak, "view_leak")
    assert time.monotonic() - started < 30
