"""Input that used to be read silently wrong: a fractional soak step budget, and a trace whose
steps go backwards (analysed as "window steps 677–116" without a word)."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness
from harness.errors import HarnessUsageError, TraceError
from harness.plugin.settings import resolve


def settings_with(**cli):
    return resolve(cli=lambda dest: cli.get(dest), ini=lambda key: "", rootdir=Path("/tmp"), environ={})


@pytest.mark.parametrize("value", ["0.5", "2.9", "0", "-3", "many"])
def test_a_soak_step_budget_must_be_a_whole_number_of_steps(value):
    with pytest.raises(HarnessUsageError, match=rf"cannot read '{value}' from command-line option --soak-steps"):
        settings_with(soak_steps=value)


def test_a_soak_step_budget_reads_underscores_and_commas():
    assert settings_with(soak_steps="1_000_000").soak_steps == 1_000_000
    assert settings_with(soak_steps="2,000").soak_steps == 2_000


def test_steps_that_go_backwards_are_named_not_analysed():
    trace = harness.Trace(name="phases")
    for step in [*range(0, 700), *range(100, 500)]:
        trace.append(step, 0.0, {"rss": 1e8 + step})
    with pytest.raises(TraceError, match=r"steps go backwards at row 701 \(step 100 after 699\)"):
        harness.growth_verdict(trace, max_growth="1 MB/1k steps")
